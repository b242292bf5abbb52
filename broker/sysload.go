package broker

import (
	"math"
	"runtime/metrics"
	"strconv"
	"time"
)

// This file publishes the $SYS topics that Mosquitto's dashboards expect
// beyond the counters of sys.go: $SYS/broker/load/... (1, 5 and 15 minute
// moving averages), clients/{maximum,active,inactive} and heap/current.

// peakConnected records n clients connected at once in maxConnected.
func (st *stats) peakConnected(n int64) {
	for {
		m := st.maxConnected.Load()
		if n <= m || st.maxConnected.CompareAndSwap(m, n) {
			return
		}
	}
}

// loadNames are the counters with load averages, under
// $SYS/broker/load/. edged's messages are PUBLISH packets (Mosquitto's
// load/messages counts every packet, its load/publish only PUBLISH).
var loadNames = [...]string{"messages/received", "messages/sent", "bytes/received", "bytes/sent",
	"connections", "publish/dropped"}

// loadWindows are the averaging windows, as Mosquitto's 1min, 5min, 15min.
var loadWindows = [...]struct {
	name string
	secs float64
}{{"1min", 60}, {"5min", 300}, {"15min", 900}}

// sysLoad holds the moving averages. Only the housekeeping goroutine uses
// it.
type sysLoad struct {
	last time.Time
	prev [len(loadNames)]uint64
	avg  [len(loadNames)][len(loadWindows)]float64
}

// update folds the counters' growth since the last call into the averages
// the way Mosquitto does (sys_tree.c): the growth as a rate per minute,
// weighted in with exp(-elapsed/window).
func (l *sysLoad) update(now time.Time, cur [len(loadNames)]uint64) {
	if l.last.IsZero() {
		l.last, l.prev = now, cur
		return
	}
	elapsed := now.Sub(l.last).Seconds()
	if elapsed <= 0 {
		return
	}
	for i := range cur {
		perMin := float64(cur[i]-l.prev[i]) * 60 / elapsed
		for j, w := range loadWindows {
			e := math.Exp(-elapsed / w.secs)
			l.avg[i][j] = e*l.avg[i][j] + (1-e)*perMin
		}
	}
	l.last, l.prev = now, cur
}

// Load is a snapshot of the $SYS/broker/load averages: for each name of
// $SYS/broker/load/<name>/ (such as "messages/received"), the 1, 5 and 15
// minute averages in units per minute.
type Load map[string][3]float64

// heapBytes reads the bytes of live and not yet swept heap objects
// (Mosquitto's heap/current counts its allocations) without stopping the
// world as runtime.ReadMemStats does.
func heapBytes() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// publishLoad updates the load averages from st and publishes them with
// the client counts and the heap size.
func (s *Server) publishLoad(st Stats, now time.Time) {
	s.load.update(now, [len(loadNames)]uint64{st.MsgsReceived, st.MsgsSent, st.BytesReceived, st.BytesSent,
		s.stats.connects.Load(), st.MsgsDropped})
	for i, name := range loadNames {
		for j, w := range loadWindows {
			s.publishInternal("$SYS/broker/load/"+name+"/"+w.name, strconv.AppendFloat(nil, s.load.avg[i][j], 'f', 2, 64))
		}
	}
	i := func(v int64) []byte { return strconv.AppendInt(nil, v, 10) }
	s.publishInternal("$SYS/broker/clients/maximum", i(st.ClientsMaximum))
	s.publishInternal("$SYS/broker/clients/active", i(st.ClientsConnected))
	s.publishInternal("$SYS/broker/clients/inactive", i(st.ClientsTotal-st.ClientsConnected))
	s.publishInternal("$SYS/broker/heap/current", strconv.AppendUint(nil, st.HeapBytes, 10))
}

// LoadAverages returns the $SYS/broker/load averages as last published
// (all zero before the second $SYS interval). It is safe to call from
// any goroutine.
func (s *Server) LoadAverages() Load {
	s.loadMu.Lock()
	defer s.loadMu.Unlock()
	out := make(Load, len(loadNames))
	for i, name := range loadNames {
		out[name] = s.load.avg[i]
	}
	return out
}
