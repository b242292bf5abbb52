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
	ss     *session
	qos    byte
	retain bool  // the retain flag it is forwarded with
	idAt   int32 // index of its subscription identifiers in route's idLists; -1 none
}

// route delivers m to every session with a matching subscription and
// updates the retained store. extra ops (a publisher's QoS 2 state) join the
// same commit unless their session, owner, has been discarded meanwhile. If anything had to be committed, done is called from the
// store once it is durable; otherwise route calls done itself before it
// returns. done may be nil.
//
// A client's QoS 2 message (owner set) is forwarded only after done (which
// queues the publisher's PUBREC), and with a store only once its commit is
// durable: until then every write it causes is held (session.holdFor). A crash
// before that commit loses the message with no subscriber having seen it,
// and the publisher, without PUBREC, sends it again; after the commit the
// packet id is stored, and a re-send is answered without routing it again.
// No exactly-once subscriber gets it twice.
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
	var idLists [][]uint32
	from := ""
	if m.ext != nil {
		from = m.ext.from
	}
	groups := s.topics.match(m.topic, from, func(ss *session, granted byte, rap bool, ids []uint32) {
		// The retain flag is cleared unless a subscription asked to keep it
		// (Retain As Published, 5.0) [MQTT-3.3.1-12] [MQTT-3.3.1-13];
		// a 3.1.1 subscriber gets it cleared as before [MQTT-3.3.1-9].
		t := target{ss: ss, qos: min(m.qos, granted), retain: rap && m.retain, idAt: -1}
		if ids != nil {
			t.idAt = int32(len(idLists))
			idLists = append(idLists, ids)
		}
		targets = append(targets, t)
	})
	for _, g := range groups {
		// One member of each matching shared subscription (see shared.go).
		if mem, ok := g.pickLocked(m.qos, m.size()); ok {
			t := target{ss: mem.ss, qos: min(m.qos, mem.o.qos), retain: mem.o.flags&subRetainAsPublished != 0 && m.retain, idAt: -1}
			if mem.o.id != 0 {
				t.idAt = int32(len(idLists))
				idLists = append(idLists, []uint32{mem.o.id})
			}
			targets = append(targets, t)
		}
	}
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
	hold := owner != nil && s.store != nil
	var earlier []func()
	if hold {
		s.holdSeq++
		earlier, s.afterCommit = s.afterCommit, nil
	} else if owner != nil && done != nil {
		// Nothing to commit: PUBREC first, then the message.
		done(nil)
		done = nil
	}
	for _, t := range targets {
		var ids []uint32
		if t.idAt >= 0 {
			ids = idLists[t.idAt]
		}
		t.ss.mu.Lock()
		if hold {
			t.ss.holdFor = s.holdSeq
		}
		t.ss.deliverFlagLocked(m, t.qos, t.retain, ids)
		t.ss.holdFor = 0
		t.ss.mu.Unlock()
	}
	if hold {
		mine := s.afterCommit
		s.afterCommit = earlier
		// A copy, so that only this branch moves a slice header to the
		// heap for the closure.
		seq, inner, targets := s.holdSeq, done, targets
		done = func(err error) {
			if inner != nil {
				inner(err) // the PUBREC, before the message
			}
			// Forwarded even if the commit failed: the publisher sends
			// it again, and a duplicate is better than a loss (doc.go).
			for _, f := range mine {
				f()
			}
			for _, t := range targets {
				if !t.ss.persistent() {
					t.ss.releaseHeld(seq)
				}
			}
		}
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
