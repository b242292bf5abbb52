package status

import (
	"fmt"
	"math"
	"time"

	"github.com/edged/edged/broker"
	"github.com/edged/edged/persist"
)

// The views below are what the JSON API returns and what the pages render:
// one snapshot per request, so a page and the API agree.

// rateWindow is how far back a recent rate is measured (at least).
const rateWindow = 10 * time.Second

// Overview is GET /api/v1/overview.
type Overview struct {
	Version          string  `json:"version"`
	UptimeSeconds    int64   `json:"uptime_seconds"`
	ClientsConnected int64   `json:"clients_connected"`
	ClientsMaximum   int64   `json:"clients_maximum"`
	ClientsTotal     int64   `json:"clients_total"`
	ClientsOffline   int64   `json:"clients_offline"`
	Subscriptions    int64   `json:"subscriptions"`
	Retained         int64   `json:"retained"`
	Queued           int64   `json:"queued"`
	MsgsReceived     uint64  `json:"messages_received"`
	MsgsSent         uint64  `json:"messages_sent"`
	MsgsDropped      uint64  `json:"messages_dropped"`
	BytesReceived    uint64  `json:"bytes_received"`
	BytesSent        uint64  `json:"bytes_sent"`
	MsgsInPerSec     float64 `json:"messages_received_per_second"`
	MsgsOutPerSec    float64 `json:"messages_sent_per_second"`
	HeapBytes        uint64  `json:"heap_bytes"`
	StoreBytes       int64   `json:"store_bytes"`
	StoreFsyncs      uint64  `json:"store_fsyncs"`
	FsyncsPerSec     float64 `json:"store_fsyncs_per_second"`
	StoreWritten     int64   `json:"store_written_bytes"`
	// WrittenPerHour is the bytes the store wrote over the last hour (or
	// since start, scaled to an hour): the flash-wear figure.
	WrittenPerHour float64 `json:"store_written_bytes_per_hour"`
	StoreErrors    uint64  `json:"store_errors"`
	StoreStopped   string  `json:"store_stopped,omitempty"`
	// Load is $SYS/broker/load/...: per minute, over 1, 5 and 15 minutes.
	Load broker.Load `json:"load"`
	// CSRFToken is what a script sends as X-CSRF-Token with an action.
	CSRFToken string `json:"csrf_token"`
}

func (s *Server) overview() Overview {
	now := time.Now()
	st := s.src.Broker.Stats()
	o := Overview{
		Version:          s.src.Version,
		UptimeSeconds:    int64(st.Uptime / time.Second),
		ClientsConnected: st.ClientsConnected,
		ClientsMaximum:   st.ClientsMaximum,
		ClientsTotal:     st.ClientsTotal,
		ClientsOffline:   st.ClientsTotal - st.ClientsConnected,
		Subscriptions:    st.Subscriptions,
		Retained:         st.Retained,
		Queued:           st.QueuedMessages,
		MsgsReceived:     st.MsgsReceived,
		MsgsSent:         st.MsgsSent,
		MsgsDropped:      st.MsgsDropped,
		BytesReceived:    st.BytesReceived,
		BytesSent:        st.BytesSent,
		HeapBytes:        st.HeapBytes,
		StoreErrors:      st.StoreErrors,
		Load:             s.src.Broker.LoadAverages(),
		CSRFToken:        s.token,
	}
	var ps persist.Stats
	if s.src.Store != nil {
		ps = s.src.Store.Stats()
		o.StoreBytes, o.StoreFsyncs, o.StoreWritten = ps.FileSize, ps.Fsyncs, ps.Written
		if err := s.src.Store.Err(); err != nil {
			o.StoreStopped = err.Error()
		}
	}
	if b, ok := s.hist.base(now, rateWindow); ok {
		d := now.Sub(b.t)
		o.MsgsInPerSec = perSecond(st.MsgsReceived, b.msgsIn, d)
		o.MsgsOutPerSec = perSecond(st.MsgsSent, b.msgsOut, d)
		o.FsyncsPerSec = perSecond(ps.Fsyncs, b.fsyncs, d)
	}
	if b, ok := s.hist.base(now, time.Hour); ok {
		if d := now.Sub(b.t); d > 0 && ps.Written >= b.written {
			o.WrittenPerHour = float64(ps.Written-b.written) * float64(time.Hour) / float64(d)
		}
	}
	return o
}

// sample reads the counters the history keeps.
func (s *Server) sample(now time.Time) sample {
	st := s.src.Broker.Stats()
	x := sample{t: now, msgsIn: st.MsgsReceived, msgsOut: st.MsgsSent, bytesIn: st.BytesReceived, bytesOut: st.BytesSent}
	if s.src.Store != nil {
		ps := s.src.Store.Stats()
		x.fsyncs, x.written = ps.Fsyncs, ps.Written
	}
	for _, br := range s.src.Bridges {
		bs := br.Status()
		x.bridgeSent = append(x.bridgeSent, bs.Sent)
		x.bridgeQueued = append(x.bridgeQueued, bs.Queue.Len)
	}
	return x
}

// Point is one interval of GET /api/v1/history: what happened between
// the previous sample and T (Unix seconds).
type Point struct {
	T        int64   `json:"t"`
	Seconds  float64 `json:"seconds"`
	MsgsIn   uint64  `json:"messages_received"`
	MsgsOut  uint64  `json:"messages_sent"`
	BytesIn  uint64  `json:"bytes_received"`
	BytesOut uint64  `json:"bytes_sent"`
	Fsyncs   uint64  `json:"fsyncs"`
	Written  int64   `json:"written_bytes"`
}

func (s *Server) history() []Point {
	all := s.hist.all()
	out := make([]Point, 0, len(all))
	d := func(a, b uint64) uint64 {
		if a < b {
			return 0
		}
		return a - b
	}
	for i := 1; i < len(all); i++ {
		a, b := all[i-1], all[i]
		out = append(out, Point{T: b.t.Unix(), Seconds: b.t.Sub(a.t).Seconds(),
			MsgsIn: d(b.msgsIn, a.msgsIn), MsgsOut: d(b.msgsOut, a.msgsOut),
			BytesIn: d(b.bytesIn, a.bytesIn), BytesOut: d(b.bytesOut, a.bytesOut),
			Fsyncs: d(b.fsyncs, a.fsyncs), Written: max(b.written-a.written, 0)})
	}
	return out
}

// Session is one entry of GET /api/v1/sessions.
type Session struct {
	ClientID      string   `json:"client_id"`
	Online        bool     `json:"online"`
	Persistent    bool     `json:"persistent"`
	User          string   `json:"user"`
	HasUser       bool     `json:"has_user"`
	Listener      string   `json:"listener"`
	Remote        string   `json:"remote"`
	Subscriptions int      `json:"subscriptions"`
	Filters       []string `json:"filters"` // the first maxFilters
	Inflight      int      `json:"inflight"`
	Queued        int      `json:"queued"`
	QueuedBytes   int64    `json:"queued_bytes"`
	Dropped       uint64   `json:"dropped"`
	OfflineSince  int64    `json:"offline_since,omitempty"` // Unix seconds
}

// maxFilters bounds the filters listed per session.
const maxFilters = 20

// Sessions is GET /api/v1/sessions.
type Sessions struct {
	Total    int       `json:"total"`
	Online   int       `json:"online"`
	Sessions []Session `json:"sessions"` // the first limit, by client id
}

func (s *Server) sessions(limit int) Sessions {
	all := s.src.Broker.Sessions()
	out := Sessions{Total: len(all), Sessions: make([]Session, 0, min(limit, len(all)))}
	for _, si := range all {
		if si.Online {
			out.Online++
		}
		if len(out.Sessions) >= limit {
			continue
		}
		v := Session{ClientID: si.ClientID, Online: si.Online, Persistent: si.Persistent, User: si.Username,
			HasUser: si.HasUsername, Listener: si.Listener, Remote: si.Remote, Subscriptions: len(si.Subscriptions),
			Inflight: si.Inflight, Queued: si.Queued, QueuedBytes: si.QueuedBytes, Dropped: si.Dropped}
		for i, sub := range si.Subscriptions {
			if i == maxFilters {
				break
			}
			v.Filters = append(v.Filters, fmt.Sprintf("%s (QoS %d)", sub.Filter, sub.QoS))
		}
		if !si.OfflineSince.IsZero() {
			v.OfflineSince = si.OfflineSince.Unix()
		}
		out.Sessions = append(out.Sessions, v)
	}
	return out
}

// Serial is one entry of GET /api/v1/serial.
type Serial struct {
	Name       string `json:"name"`
	Device     string `json:"device"`
	Open       bool   `json:"open"`
	PortOpens  uint64 `json:"port_opens"`
	PortLosses uint64 `json:"port_losses"`
	FramesIn   uint64 `json:"frames_received"`
	FramesOut  uint64 `json:"frames_sent"`
	BytesIn    uint64 `json:"bytes_received"`
	BytesOut   uint64 `json:"bytes_sent"`
	CRCErrors  uint64 `json:"crc_errors"`
	Dropped    uint64 `json:"frames_dropped"`
	Resets     uint64 `json:"resets_sent"`
	Overflows  uint64 `json:"overflows"`
	LastFrame  int64  `json:"last_frame,omitempty"` // Unix milliseconds
}

func (s *Server) serial() []Serial {
	out := make([]Serial, 0, len(s.src.Serial))
	for _, p := range s.src.Serial {
		st := p.Listener.Stats()
		v := Serial{Name: p.Name, Device: p.Device, Open: st.Open, PortOpens: st.PortOpens, PortLosses: st.PortLosses,
			FramesIn: st.FramesIn, FramesOut: st.FramesOut, BytesIn: st.BytesIn, BytesOut: st.BytesOut,
			CRCErrors: st.CRCErrors, Dropped: st.Dropped(), Resets: st.ResetsSent, Overflows: st.Overflows}
		if !st.LastFrame.IsZero() {
			v.LastFrame = st.LastFrame.UnixMilli()
		}
		out = append(out, v)
	}
	return out
}

// Bridge is one entry of GET /api/v1/bridges.
type Bridge struct {
	Name        string `json:"name"`
	Address     string `json:"address"`
	ClientID    string `json:"client_id"`
	Connected   bool   `json:"connected"`
	Protocol    string `json:"protocol"`        // MQTT version upstream: "5", "3.1.1"; "" before the first connection
	Since       int64  `json:"since,omitempty"` // Unix seconds of the last state change
	Queued      int64  `json:"queued"`
	QueuedBytes int64  `json:"queued_bytes"`
	OldestAge   int64  `json:"oldest_age_seconds"`
	Sent        uint64 `json:"sent"`
	// SentBytes are the topic and payload bytes sent upstream,
	// SentBytesHour those of the last hour (for metered links).
	SentBytes     uint64 `json:"sent_bytes"`
	SentBytesHour uint64 `json:"sent_bytes_hour"`
	QueuedHigh    int64  `json:"queued_high"` // of Queued, in the priority: high queue
	// SentPerSec is the upstream rate; DrainPerSec how fast the backlog
	// shrinks (negative: it grows). TimeToEmpty is Queued / DrainPerSec in
	// seconds, -1 when the backlog does not shrink.
	SentPerSec  float64           `json:"sent_per_second"`
	DrainPerSec float64           `json:"drain_per_second"`
	TimeToEmpty float64           `json:"time_to_empty_seconds"`
	Dropped     map[string]uint64 `json:"dropped"` // by reason: limit, max_age, purged, offline_qos0, expired, oversize, refused
}

func (s *Server) bridges() []Bridge {
	now := time.Now()
	base, ok := s.hist.base(now, rateWindow)
	out := make([]Bridge, 0, len(s.src.Bridges))
	for i, br := range s.src.Bridges {
		st := br.Status()
		q := st.Queue
		v := Bridge{Name: st.Name, Address: st.Address, ClientID: st.ClientID, Connected: st.Connected,
			Protocol: st.Protocol, Queued: q.Len, QueuedBytes: q.Bytes, Sent: st.Sent, TimeToEmpty: -1,
			SentBytes: st.SentBytes, SentBytesHour: st.SentBytesHour, QueuedHigh: st.QueuedHigh,
			Dropped: map[string]uint64{"limit": q.Dropped - min(q.Expired, q.Dropped), "max_age": q.Expired, "purged": st.Purged,
				"offline_qos0": st.OfflineDropped, "expired": st.Drops.Expired, "oversize": st.Drops.Oversize, "refused": st.Drops.Refused}}
		if !st.Since.IsZero() {
			v.Since = st.Since.Unix()
		}
		if !q.Oldest.IsZero() {
			v.OldestAge = int64(max(now.Sub(q.Oldest), 0) / time.Second)
		}
		if ok && i < len(base.bridgeSent) {
			d := now.Sub(base.t)
			v.SentPerSec = perSecond(st.Sent, base.bridgeSent[i], d)
			if d > 0 {
				v.DrainPerSec = float64(base.bridgeQueued[i]-q.Len) / d.Seconds()
			}
		}
		switch {
		case q.Len == 0:
			v.TimeToEmpty = 0
		case v.DrainPerSec > 0:
			v.TimeToEmpty = math.Ceil(float64(q.Len) / v.DrainPerSec)
		}
		out = append(out, v)
	}
	return out
}
