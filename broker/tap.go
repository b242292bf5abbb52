package broker

import (
	"errors"

	"github.com/edged/edged/broker/packet"
	"github.com/edged/edged/persist"
)

// A tap is a durable queue fed by routing: every message whose topic
// matches one of its filters is appended to the store's FIFO named Queue in
// the same commit that stores it for local sessions, before the publisher is
// acknowledged. The bridge's store-and-forward queues are taps.
type tap struct {
	name    string // also the origin that is never fed back to it
	queue   string
	filters []string
	accept  func(topic string) bool // nil: every matching topic
	notify  func()
}

// ErrNoStore is returned by AddTap on a server without a Store.
var ErrNoStore = errors.New("broker: a durable queue needs a store")

// AddTap feeds the store queue named queue with every message routed from
// now on whose topic matches one of filters and, if accept is not nil, that
// accept takes (a bridge refuses topics it has no upstream name for), except
// messages published with origin name (see PublishFrom): that keeps a bridge
// from sending back up what came down from it. accept runs under the
// routing lock and must be quick. notify is called, from the store's
// goroutine and without blocking, after each commit that appended to the
// queue. Call AddTap before serving clients.
func (s *Server) AddTap(name, queue string, filters []string, accept func(topic string) bool, notify func()) error {
	if s.store == nil {
		return ErrNoStore
	}
	for _, f := range filters {
		if !packet.ValidTopicFilter(f) {
			return errors.New("broker: invalid topic filter " + f)
		}
	}
	s.routeMu.Lock()
	defer s.routeMu.Unlock()
	s.taps = append(s.taps, &tap{name: name, queue: queue, filters: filters, accept: accept, notify: notify})
	return nil
}

// tapsLocked appends a QueueAppend op for every tap m matches and returns
// the taps to notify. It needs routeMu.
func (s *Server) tapsLocked(m *message) []*tap {
	var hit []*tap
	for _, t := range s.taps {
		if t.name == m.origin() || t.accept != nil && !t.accept(m.topic) {
			continue
		}
		for _, f := range t.filters {
			if packet.MatchTopic(f, m.topic) {
				s.pendingOps = append(s.pendingOps, persist.QueueAppend{Queue: t.queue, Msg: m.record()})
				hit = append(hit, t)
				break
			}
		}
	}
	return hit
}

// PublishFrom is Publish for a message that arrived from origin (a bridge's
// name): taps named origin do not receive it.
func (s *Server) PublishFrom(origin, topic string, payload []byte, qos byte, retain bool, done func(error)) {
	s.stats.msgsReceived.Add(1)
	m := &message{topic: topic, payload: payload, qos: min(qos, 2), retain: retain}
	if origin != "" {
		m.ext = &msgExt{origin: origin}
	}
	s.route(m, nil, nil, done)
}
