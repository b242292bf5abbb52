package broker

import (
	"strconv"
	"time"
)

// Stats is a snapshot of the broker's counters, as published on $SYS.
type Stats struct {
	Uptime           time.Duration
	ClientsConnected int64
	// ClientsTotal counts connected clients and offline persistent
	// sessions, as Mosquitto does.
	ClientsTotal   int64
	MsgsReceived   uint64
	MsgsSent       uint64
	BytesReceived  uint64
	BytesSent      uint64
	MsgsDropped    uint64
	Subscriptions  int64
	Retained       int64
	StoreErrors    uint64
	SlowConsumers  uint64
	QueuedMessages int64
	// ClientsMaximum is the most clients connected at once since start.
	ClientsMaximum int64
	// Connects counts the clients admitted since start.
	Connects uint64
	// HeapBytes is the Go heap in use by live and unswept objects.
	HeapBytes uint64
}

// Stats returns the current counters.
func (s *Server) Stats() Stats {
	st := Stats{
		Uptime:           time.Since(s.start),
		ClientsConnected: s.stats.connected.Load(),
		MsgsReceived:     s.stats.msgsReceived.Load(),
		MsgsSent:         s.stats.msgsSent.Load(),
		BytesReceived:    s.stats.bytesReceived.Load(),
		BytesSent:        s.stats.bytesSent.Load(),
		MsgsDropped:      s.stats.pubDropped.Load(),
		Subscriptions:    int64(s.topics.len()),
		Retained:         int64(s.retained.len()),
		StoreErrors:      s.stats.storeErrors.Load(),
		SlowConsumers:    s.stats.slowConsumers.Load(),
		ClientsMaximum:   s.stats.maxConnected.Load(),
		Connects:         s.stats.connects.Load(),
		HeapBytes:        heapBytes(),
	}
	s.mu.Lock()
	sessions := make([]*session, 0, len(s.sessions))
	for _, ss := range s.sessions {
		sessions = append(sessions, ss)
	}
	s.mu.Unlock()
	st.ClientsTotal = int64(len(sessions))
	for _, ss := range sessions {
		ss.mu.Lock()
		st.QueuedMessages += int64(ss.queuedLocked())
		ss.mu.Unlock()
	}
	return st
}

// housekeeping publishes $SYS topics and expires abandoned sessions until
// Shutdown.
func (s *Server) housekeeping() {
	defer s.bg.Done()
	interval := s.cfg.SysInterval
	if interval < 0 {
		interval = time.Minute
	}
	if e := s.cfg.Limits.SessionExpiry; e > 0 {
		interval = min(interval, max(e/4, time.Second))
	}
	s.publishSys()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.publishSys()
			s.expireSessions(time.Now())
		}
	}
}

// publishSys publishes the broker's $SYS topics as retained QoS 0
// messages, as Mosquitto does. They are not written to the store.
func (s *Server) publishSys() {
	if s.cfg.SysInterval < 0 {
		return
	}
	st := s.Stats()
	u := func(v uint64) []byte { return strconv.AppendUint(nil, v, 10) }
	i := func(v int64) []byte { return strconv.AppendInt(nil, v, 10) }
	for _, kv := range []struct {
		topic string
		value []byte
	}{
		{"version", []byte("edged " + s.cfg.Version)},
		{"uptime", []byte(strconv.FormatInt(int64(st.Uptime/time.Second), 10) + " seconds")},
		{"clients/connected", i(st.ClientsConnected)},
		{"clients/total", i(st.ClientsTotal)},
		{"clients/disconnected", i(st.ClientsTotal - st.ClientsConnected)},
		{"messages/received", u(st.MsgsReceived)},
		{"messages/sent", u(st.MsgsSent)},
		{"messages/dropped", u(st.MsgsDropped)},
		{"messages/queued", i(st.QueuedMessages)},
		{"bytes/received", u(st.BytesReceived)},
		{"bytes/sent", u(st.BytesSent)},
		{"subscriptions/count", i(st.Subscriptions)},
		{"retained messages/count", i(st.Retained)},
		{"store/errors", u(st.StoreErrors)},
		{"clients/slow_consumers", u(st.SlowConsumers)},
	} {
		s.publishInternal("$SYS/broker/"+kv.topic, kv.value)
	}
	s.loadMu.Lock()
	s.publishLoad(st, time.Now())
	s.loadMu.Unlock()
}

// publishInternal routes a broker-made retained QoS 0 message without
// counting it as received.
func (s *Server) publishInternal(topic string, payload []byte) {
	s.route(&message{topic: topic, payload: payload, retain: true}, nil, nil, nil)
}

// expireSessions removes persistent sessions offline longer than
// limits.session_expiry.
func (s *Server) expireSessions(now time.Time) {
	exp := s.cfg.Limits.SessionExpiry
	if exp <= 0 {
		return
	}
	cutoff := now.Add(-exp).Unix()
	s.routeMu.Lock()
	defer s.routeMu.Unlock()
	s.mu.Lock()
	var n int
	for _, ss := range s.sessions {
		ss.mu.Lock()
		expired := ss.conn == nil && ss.lastSeen != 0 && ss.lastSeen <= cutoff
		ss.mu.Unlock()
		if expired {
			s.discardLocked(ss)
			n++
		}
	}
	s.mu.Unlock()
	s.commitLocked(nil)
	if n > 0 {
		s.log.Info("expired persistent sessions", "count", n)
	}
}
