package broker

import (
	"errors"
	"time"

	"github.com/edged/edged/broker/packet"
	"github.com/edged/edged/persist"
)

// A tap feeds a durable queue (a *persist.Queue, a bridge's) from routing:
// every message whose topic matches one of its filters, and that its
// accept function takes, is appended to the queue by an op of the same
// commit that stores it for local sessions, before the publisher is
// acknowledged. See bridge/doc.go for the whole PUBLISH path.
type tap struct {
	origin  string // messages published from this origin never go to it
	queue   *persist.Queue
	filters []string
	accept  func(m *persist.Message) bool // nil: every matching message
	notify  func()
}

// ErrNoStore is returned by AddTap on a server without a Store.
var ErrNoStore = errors.New("broker: a durable queue needs a store")

// AddTap appends to q every message routed from now on whose topic
// matches one of filters and, if accept is not nil, that accept takes (a
// bridge refuses topics it has no upstream name for, or ones another of
// its queues takes), except messages published with origin (see
// PublishFrom): that keeps a bridge from sending back up what came down
// from it. q must be a queue of the server's store. accept runs under the
// routing lock and must be quick; it must not keep m.Payload beyond the
// message's life without copying (the broker never modifies it). notify is
// called, from the store's goroutine and without blocking, after each
// commit that appended to q. Call AddTap before serving clients.
func (s *Server) AddTap(origin string, q *persist.Queue, filters []string, accept func(m *persist.Message) bool, notify func()) error {
	if s.store == nil {
		return ErrNoStore
	}
	if q == nil {
		return errors.New("broker: a tap needs a queue")
	}
	for _, f := range filters {
		if !packet.ValidTopicFilter(f) {
			return errors.New("broker: invalid topic filter " + f)
		}
	}
	s.routeMu.Lock()
	defer s.routeMu.Unlock()
	s.taps = append(s.taps, &tap{origin: origin, queue: q, filters: filters, accept: accept, notify: notify})
	return nil
}

// tapsLocked appends the queue's Append op for every tap m goes to and
// returns the taps to notify. It needs routeMu.
func (s *Server) tapsLocked(m *message) []*tap {
	var hit []*tap
	var rec persist.Message
	for _, t := range s.taps {
		if t.origin == m.origin() {
			continue
		}
		for _, f := range t.filters {
			if !packet.MatchTopic(f, m.topic) {
				continue
			}
			if rec.Topic == "" {
				rec = m.record()
			}
			if t.accept == nil || t.accept(&rec) {
				s.pendingOps = append(s.pendingOps, t.queue.Append(rec))
				hit = append(hit, t)
			}
			break
		}
	}
	return hit
}

// PublishFrom is Publish for a message that arrived from origin (a bridge's
// name): taps of that origin do not receive it.
func (s *Server) PublishFrom(origin, topic string, payload []byte, qos byte, retain bool, done func(error)) {
	s.stats.msgsReceived.Add(1)
	m := &message{topic: topic, payload: payload, qos: min(qos, 2), retain: retain}
	if origin != "" {
		m.ext = &msgExt{origin: origin}
	}
	s.route(m, nil, nil, done)
}

// PublishFrom5 is PublishFrom for a message that keeps MQTT 5.0
// properties (the bridge's Publisher5): props is an encoded PUBLISH
// property block as in persist.Message.Properties, and expiry when the
// message expires (zero: never). A 5.0 subscriber gets the properties and
// the remaining expiry interval [MQTT-3.3.2-6]; a topic alias, a message
// expiry interval or subscription identifiers in props are ignored, as
// they belong to the upstream connection. A block that does not decode
// costs the properties, not the message. A message already expired is
// acknowledged and not delivered, nor retained [MQTT-3.3.2-5].
func (s *Server) PublishFrom5(origin, topic string, payload []byte, qos byte, retain bool, props []byte, expiry time.Time, done func(error)) {
	s.stats.msgsReceived.Add(1)
	now := time.Now()
	if !expiry.IsZero() && !expiry.After(now) {
		if done != nil {
			done(nil)
		}
		return
	}
	var x *msgExt
	if p, err := packet.DecodeProperties(props, packet.PUBLISH); err == nil && p != nil {
		p.MessageExpiry = nil
		x = newMsgExt(p, now.UnixNano(), "")
	} else {
		x = &msgExt{}
	}
	x.origin = origin
	if !expiry.IsZero() {
		x.expiry = expiry.UnixNano()
	}
	s.route(&message{topic: topic, payload: payload, qos: min(qos, 2), retain: retain, ext: x}, nil, nil, done)
}
