package broker

import (
	"slices"
	"strings"
	"time"

	"github.com/edged/edged/persist"
)

// commitLocked hands the ops built under routeMu to the store. done is
// called once they are durable; commitLocked reports false, and does not
// call done, when there was nothing to commit. It needs routeMu.
func (s *Server) commitLocked(done func(error)) bool {
	if s.store == nil || (len(s.pendingOps) == 0 && len(s.afterCommit) == 0) {
		s.pendingOps = s.pendingOps[:0]
		return false
	}
	// With only deferred writes and no ops, the empty commit is an ordering
	// barrier: its done runs after every earlier commit's.
	ops := s.pendingOps
	s.pendingOps = nil
	if after := s.afterCommit; len(after) > 0 {
		s.afterCommit = nil
		inner := done
		done = func(err error) {
			for _, f := range after {
				f()
			}
			if inner != nil {
				inner(err)
			}
		}
	}
	s.store.Commit(ops, done)
	return true
}

type target struct {
	ss  *session
	qos byte
}

// route delivers m to every session with a matching subscription and
// updates the retained store. extra ops (a publisher's QoS 2 state) join the
// same commit unless their session, owner, has been discarded meanwhile. If anything had to be committed, done is called from the
// store once it is durable; otherwise route calls done itself before it
// returns. done may be nil.
//
// Everything happens under routeMu, and the commit is handed to the store
// before routeMu is released, so no acknowledgement of this message by a
// subscriber (which also needs routeMu) can reach the store first.
func (s *Server) route(m *message, owner *session, extra []persist.Op, done func(error)) {
	sys := strings.HasPrefix(m.topic, "$")
	s.routeMu.Lock()
	// Matching under routeMu orders this message against subscriptions
	// being made live (see conn.subscribed).
	var targets []target
	s.topics.match(m.topic, func(ss *session, granted byte) {
		targets = append(targets, target{ss, min(m.qos, granted)})
	})
	if m.time == 0 {
		m.time = time.Now().UnixNano()
	}
	persistMsg := false
	if s.store != nil && m.qos > 0 {
		for _, t := range targets {
			if t.qos > 0 && !t.ss.clean {
				persistMsg = true
				break
			}
		}
	}
	putAt := -1
	if persistMsg {
		m.id = s.nextMsgID
		s.nextMsgID++
		putAt = len(s.pendingOps)
		s.pendingOps = append(s.pendingOps, persist.PutMessage{ID: m.id, Msg: m.record()})
	}
	if len(extra) > 0 && !owner.isGone() {
		s.pendingOps = append(s.pendingOps, extra...)
	}
	if m.retain {
		// A retained message with an empty payload removes the topic's
		// retained message and is not stored [MQTT-3.3.1-10] [MQTT-3.3.1-11].
		if len(m.payload) == 0 {
			s.retained.delete(m.topic)
			if !sys {
				s.pendingOps = append(s.pendingOps, persist.DeleteRetained{Topic: m.topic})
			}
		} else {
			s.retained.set(m)
			if !sys {
				s.pendingOps = append(s.pendingOps, persist.PutRetained{Msg: m.record()})
			}
		}
	} else {
		// For retained-message cursors under way (see retainCursor).
		s.retained.touch(m.topic)
	}
	if len(s.watchers) > 0 {
		s.watchLocked(m)
	}
	var taps []*tap
	if len(s.taps) > 0 {
		taps = s.tapsLocked(m)
	}
	for _, t := range targets {
		t.ss.mu.Lock()
		t.ss.deliverLocked(m, t.qos)
		t.ss.mu.Unlock()
	}
	if putAt >= 0 && !slices.ContainsFunc(s.pendingOps[putAt:], isEnqueue) {
		// Every persistent target dropped it on a full queue.
		s.pendingOps = slices.Delete(s.pendingOps, putAt, putAt+1)
	}
	if len(taps) > 0 {
		inner := done
		done = func(err error) {
			if err == nil {
				for _, t := range taps {
					t.notify()
				}
			}
			if inner != nil {
				inner(err)
			}
		}
	}
	committed := s.commitLocked(done)
	s.routeMu.Unlock()
	if !committed && done != nil {
		done(nil)
	}
}

func isEnqueue(op persist.Op) bool {
	_, ok := op.(persist.Enqueue)
	return ok
}

// Publish publishes a message from inside the process (the bridge, $SYS,
// serial port statistics), through the same routing as a network client's
// PUBLISH. done, if not nil, is called once the message is durable where it
// must be.
func (s *Server) Publish(topic string, payload []byte, qos byte, retain bool, done func(error)) {
	s.stats.msgsReceived.Add(1)
	s.route(&message{topic: topic, payload: payload, qos: min(qos, 2), retain: retain}, nil, nil, done)
}
