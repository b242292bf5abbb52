package broker

import (
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/edged/edged/broker/packet"
)

// retainedStore holds the retained message of every topic.
//
// Every change is stamped with a sequence number: set stamps the entry it
// writes, and while any retainCursor is active, touch stamps the entry of a
// topic that a non-retained message was routed to. A cursor skips an entry
// stamped after it started: its subscriber got that topic's newer message
// live (see retainCursor).
type retainedStore struct {
	mu   sync.RWMutex
	msgs map[string]*retainedEntry
	seq  uint64 // the last stamp; guarded by mu
	// cursors counts the active retainCursors. It is incremented under
	// Server.routeMu, so route, which also holds it, never misses one.
	cursors atomic.Int64
}

// retainedEntry is one topic's retained message. An entry is updated in
// place when its topic gets a new retained message, so a cursor holding it
// sees the newest; deleted tells a cursor holding it that it is gone. Its
// fields are guarded by retainedStore.mu.
type retainedEntry struct {
	msg     *message
	seq     uint64
	deleted bool
}

func newRetainedStore() *retainedStore {
	return &retainedStore{msgs: make(map[string]*retainedEntry)}
}

// set stores m as its topic's retained message.
func (r *retainedStore) set(m *message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seq++
	if e := r.msgs[m.topic]; e != nil {
		e.msg, e.seq = m, r.seq
		return
	}
	r.msgs[m.topic] = &retainedEntry{msg: m, seq: r.seq}
}

// delete removes topic's retained message.
func (r *retainedStore) delete(topic string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.msgs[topic]; e != nil {
		e.deleted = true
		delete(r.msgs, topic)
	}
}

// touch records that a non-retained message was routed to topic, for the
// active cursors. Without any there is nothing to record: a cursor started
// later started after this message too.
func (r *retainedStore) touch(topic string) {
	if r.cursors.Load() == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.msgs[topic]; e != nil {
		r.seq++
		e.seq = r.seq
	}
}

func (r *retainedStore) len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.msgs)
}

// retainCursor sends the retained messages matching one new subscription
// [MQTT-3.3.1-6] a few at a time, as the client makes room: QoS 1 and 2
// ones while the inflight window is open and the session queue empty, QoS 0
// ones while the write queue is at most half full (the other half stays for
// live QoS 0 messages). It never queues or drops one for lack of room: it
// waits, and is resumed by an acknowledgement (session.fillLocked) or by the
// writer taking a batch (conn.drained). Its memory is constant, whatever
// the number of retained messages: it walks the retained store's map with a
// paused iterator, which has the semantics of a range loop across the
// store's changes: an entry is produced at most once, one deleted before it
// is reached is not produced, one added may or may not be.
//
// The subscription is live while the cursor walks, so a message routed to
// one of its topics reaches the subscriber live, possibly before the cursor
// gets there. The cursor then skips that topic: the entry's stamp is newer
// than the cursor's start. The subscriber thus never gets a retained value
// after a newer live message on the same topic, nor a retained message
// both live and from the cursor.
type retainCursor struct {
	filter string
	qos    byte     // granted
	ids    []uint32 // the subscription's identifier (5.0), sent with each; nil if none
	start  uint64   // the store's stamp when the subscription became live
	exact  bool     // filter without wildcards: one lookup, no iterator
	it     *reflect.MapIter
	held   *retainedEntry // matched, waiting for room
	ended  bool           // every entry has been looked at
	done   bool           // exhausted or stopped; no longer counted
}

// retainCursors are a session's cursors, served in SUBSCRIBE order. They
// belong to the session's current connection: they stop when it changes.
type retainCursors []*retainCursor

// startRetainedLocked starts sending the retained messages matching a
// subscription that has just become live. It needs routeMu: the start
// stamp must fall between the routes that did not see the subscription and
// those that did. A cursor for the same filter is replaced: a repeated
// SUBSCRIBE re-sends every retained message [MQTT-3.8.4-3].
func (ss *session) startRetainedLocked(filter string, o subOpts) {
	ss.stopRetainedLocked(filter)
	r := ss.s.retained
	r.cursors.Add(1)
	r.mu.RLock()
	start := r.seq
	r.mu.RUnlock()
	ss.retained = append(ss.retained, &retainCursor{
		filter: filter,
		qos:    o.qos,
		ids:    idList(o.id),
		start:  start,
		exact:  !strings.ContainsAny(filter, "+#"),
	})
}

// stopRetainedLocked stops the cursor of filter, if any: an UNSUBSCRIBE
// ends the delivery of its retained messages (those already sent or in
// flight complete) [MQTT-3.10.4-3 allows either].
func (ss *session) stopRetainedLocked(filter string) {
	for i, rc := range ss.retained {
		if rc.filter == filter {
			rc.stop(ss.s.retained)
			ss.retained = slices.Delete(ss.retained, i, i+1)
			return
		}
	}
}

// stopAllRetainedLocked stops every cursor: the connection changed.
// Retained messages not yet sent are not resumed on the next connection
// (see doc.go); those in flight are, with the session's other messages.
func (ss *session) stopAllRetainedLocked() {
	for _, rc := range ss.retained {
		rc.stop(ss.s.retained)
	}
	ss.retained = nil
}

func (rc *retainCursor) stop(r *retainedStore) {
	if !rc.done {
		rc.done = true
		rc.it, rc.held = nil, nil
		r.cursors.Add(-1)
	}
}

// retainFillLocked sends retained messages while the client has room. It
// needs routeMu when the session is persistent (a QoS 2 write may wait for
// a commit).
func (ss *session) retainFillLocked() {
	for len(ss.retained) > 0 && ss.conn != nil {
		rc := ss.retained[0]
		if !rc.fillLocked(ss) {
			return
		}
		rc.stop(ss.s.retained)
		ss.retained[0] = nil
		ss.retained = ss.retained[1:]
	}
	if len(ss.retained) == 0 {
		ss.retained = nil
	}
}

// fillLocked sends rc's messages while there is room; it reports true once
// rc is exhausted.
func (rc *retainCursor) fillLocked(ss *session) bool {
	r := ss.s.retained
	for {
		if rc.held == nil {
			rc.held = rc.next(r)
			if rc.held == nil {
				return true
			}
		}
		r.mu.RLock()
		m, seq, deleted := rc.held.msg, rc.held.seq, rc.held.deleted
		r.mu.RUnlock()
		if deleted || seq > rc.start {
			// Gone, or the client got a newer message on this topic live.
			rc.held = nil
			continue
		}
		qos := min(m.qos, rc.qos)
		if !ss.retainRoomLocked(qos) {
			return false
		}
		rc.held = nil
		// A copy without the store id: the session's stored queue does not
		// hold retained deliveries (the retained store keeps them), and it
		// must not share an id with a live copy.
		rm := *m
		rm.id = 0
		ss.deliverRetainedLocked(&rm, qos, rc.ids)
	}
}

// next returns the next entry matching rc's filter, or nil when there is
// none left.
func (rc *retainCursor) next(r *retainedStore) *retainedEntry {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if rc.ended {
		return nil
	}
	if rc.exact {
		rc.ended = true
		return r.msgs[rc.filter]
	}
	if rc.it == nil {
		rc.it = reflect.ValueOf(r.msgs).MapRange()
	}
	for rc.it.Next() {
		e := rc.it.Value().Interface().(*retainedEntry)
		if packet.MatchTopic(rc.filter, e.msg.topic) {
			return e
		}
	}
	rc.ended, rc.it = true, nil
	return nil
}

// retainRoomLocked reports whether a retained message at delivery QoS qos
// can go out now without being queued or dropped. A connection that is
// being drained before it closes (server shutdown) gets no more: the writer
// would never finish.
func (ss *session) retainRoomLocked(qos byte) bool {
	if ss.conn.draining.Load() {
		return false
	}
	if qos > 0 {
		return ss.windowOpenLocked()
	}
	return ss.conn.retainRoom()
}

// retainRoom reports whether the write queue is at most half full, for a
// QoS 0 retained message. If it is not, the writer calls drained when it
// takes its next batch: the check and the request are one step under outMu,
// so the wake-up cannot be missed.
func (c *conn) retainRoom() bool {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	if c.isClosed() {
		return false
	}
	if len(c.out) < max(1, c.s.cfg.Limits.MaxWriteQueue/2) {
		return true
	}
	c.wantDrained = true
	return false
}

// drained runs on the writer goroutine when it has taken a batch and a
// retainCursor asked for room: it resumes the session's cursors.
func (c *conn) drained() {
	ss := c.sess
	ss.update(func() {
		if ss.conn == c {
			ss.retainFillLocked()
		}
	}, nil)
}

// idList returns a subscription identifier as the list a PUBLISH carries;
// nil for none.
func idList(id uint32) []uint32 {
	if id == 0 {
		return nil
	}
	return []uint32{id}
}
