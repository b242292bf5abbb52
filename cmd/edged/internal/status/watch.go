package status

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/edged/edged/broker"
)

// The topic browser streams live messages with server-sent events. Each
// stream is bounded: at most watchBuffer messages and watchBytes bytes
// wait for a slow browser (more are counted as dropped), payloads are cut
// to maxShownPayload bytes, and at most maxWatches streams are open.
const (
	maxWatches      = 8
	watchBuffer     = 256
	watchBytes      = 256 << 10
	maxShownPayload = 1024
	maxShownTopic   = 1024
)

// Watched is one event of GET /api/v1/watch.
type Watched struct {
	Topic     string `json:"topic"`
	Payload   string `json:"payload"`
	Binary    bool   `json:"binary,omitempty"` // payload is not UTF-8: shown as hex
	Size      int    `json:"size"`             // the payload's full size
	QoS       byte   `json:"qos"`
	Retain    bool   `json:"retain,omitempty"`
	Time      int64  `json:"time"`              // Unix milliseconds
	Dropped   uint64 `json:"dropped,omitempty"` // messages dropped before this one
	Truncated bool   `json:"truncated,omitempty"`
}

type watchQueue struct {
	mu      sync.Mutex
	items   []Watched
	bytes   int
	dropped uint64
	wake    chan struct{}
}

func (q *watchQueue) push(m broker.WatchedMessage) {
	w := Watched{Topic: m.Topic, Size: len(m.Payload), QoS: m.QoS, Retain: m.Retain, Time: m.Time.UnixMilli()}
	if len(w.Topic) > maxShownTopic {
		w.Topic, w.Truncated = w.Topic[:maxShownTopic], true
	}
	p := m.Payload
	if len(p) > maxShownPayload {
		p, w.Truncated = p[:maxShownPayload], true
	}
	if utf8.Valid(p) {
		w.Payload = string(p)
	} else {
		w.Payload, w.Binary = fmt.Sprintf("%x", p), true
	}
	n := len(w.Topic) + len(w.Payload)
	q.mu.Lock()
	if len(q.items) >= watchBuffer || q.bytes+n > watchBytes {
		q.dropped++
		q.mu.Unlock()
		return
	}
	w.Dropped, q.dropped = q.dropped, 0
	q.items = append(q.items, w)
	q.bytes += n
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *watchQueue) take() ([]Watched, uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	items, d := q.items, q.dropped
	q.items, q.bytes, q.dropped = nil, 0, 0
	return items, d
}

func (s *Server) watch(w http.ResponseWriter, r *http.Request) {
	filter := r.URL.Query().Get("filter")
	if filter == "" {
		http.Error(w, "filter is required", http.StatusBadRequest)
		return
	}
	s.watchMu.Lock()
	if s.watches >= maxWatches {
		s.watchMu.Unlock()
		http.Error(w, "too many topic browsers open", http.StatusServiceUnavailable)
		return
	}
	s.watches++
	s.watchMu.Unlock()
	defer func() {
		s.watchMu.Lock()
		s.watches--
		s.watchMu.Unlock()
	}()
	q := &watchQueue{wake: make(chan struct{}, 1)}
	stop, err := s.src.Broker.Watch(filter, watchOf(r), q.push)
	if err != nil {
		code := http.StatusBadRequest
		if errors.Is(err, broker.ErrWatchDenied) {
			code = http.StatusForbidden
		}
		http.Error(w, err.Error(), code)
		return
	}
	defer stop()
	s.log.Debug("topic browser opened", "filter", filter, "user", userOf(r))
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	fmt.Fprintf(w, "event: open\ndata: %s\n\n", jsonString(url.QueryEscape(filter)))
	rc.Flush()
	keep := time.NewTicker(15 * time.Second)
	defer keep.Stop()
	for {
		var out []byte
		select {
		case <-r.Context().Done():
			return
		case <-keep.C:
			out = []byte(": keepalive\n\n")
		case <-q.wake:
			items, dropped := q.take()
			for _, it := range items {
				b, _ := json.Marshal(it)
				out = fmt.Appendf(out, "data: %s\n\n", b)
			}
			if dropped > 0 {
				out = fmt.Appendf(out, "event: dropped\ndata: %d\n\n", dropped)
			}
		}
		rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := w.Write(out); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func urlQuery(s string) string { return url.QueryEscape(s) }
