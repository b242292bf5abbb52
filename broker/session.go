package broker

import (
	"sync"
	"time"

	"github.com/edged/edged/broker/packet"
	"github.com/edged/edged/persist"
)

// session is the MQTT session of one client id. It outlives connections
// when clean is false. Every field below mu is guarded by it; a persistent
// session's methods that end in Locked also need Server.routeMu, because
// they may append store ops (see doc.go).
type session struct {
	s     *Server
	id    string
	clean bool // immutable: a clean start replaces the session object

	mu   sync.Mutex
	conn *conn // nil while the client is offline
	subs map[string]subOpts
	// owner is the identity of the client the session belongs to, also
	// while it is offline: its subscriptions are checked with it (see
	// access.go). ownerKnown is false only for a session loaded from a
	// store written before owners were recorded.
	owner      ClientInfo
	ownerKnown bool
	// partial holds the filters of subs granted GrantSome: while there are
	// any, each message is checked with the Authorizer before delivery.
	partial map[string]struct{}
	// subSeqs holds, for a persistent session, the store key of each
	// filter in subs (persist.Subscription.Seq): a SUBSCRIBE or
	// UNSUBSCRIBE writes only the filters it names. nextSubSeq is the last
	// key assigned. subSeqs is nil until needed.
	subSeqs    map[string]uint64
	nextSubSeq uint64
	inflight   []*outMsg // sent, unacknowledged, in send order
	usedPIDs   map[uint16]struct{}
	nextPID    uint16
	// pending holds the queue's head in memory. For a persistent session
	// it holds at most sessionWindow messages: the ones after them are
	// spilled, on disk only (or in a commit being built), in order, and
	// read back after lastMemID as the window drains (refillLocked).
	pending      msgQueue
	spilled      int
	spilledBytes int64
	lastMemID    uint64 // the store id of the newest message memory got (sent or pending)
	lastSpillID  uint64 // the store id of the newest message spilled
	refillWait   bool   // a refill waits for a commit (refillLocked)
	// inbound holds QoS 2 packet ids received and not yet released by
	// PUBREL; the value is true once the message is committed and PUBREC
	// may be sent for a re-sent PUBLISH.
	inbound map[uint16]bool
	// inboundWaiters are PUBRECs owed for re-sent QoS 2 PUBLISH packets
	// whose first copy is still being committed.
	inboundWaiters map[uint16][]func(error)
	lastSeen       int64 // Unix seconds of the last disconnect; 0 while online
	dropped        uint64
	// gone is set when the session is discarded (clean start, expiry): a
	// connection that still holds it must not bring it back to the store.
	gone bool
	// deferred counts writes to deferredFor waiting for a commit (see
	// writeAfterCommitLocked); while there are any, later QoS 1/2 writes
	// queue behind them so the client sees messages in order.
	deferred    int
	deferredFor *conn
	// retained sends the retained messages of new subscriptions as the
	// connection makes room (see retaincursor.go).
	retained retainCursors
}

func newSession(s *Server, id string, clean bool) *session {
	return &session{
		s:        s,
		id:       id,
		clean:    clean,
		subs:     make(map[string]subOpts),
		usedPIDs: make(map[uint16]struct{}),
		inbound:  make(map[uint16]bool),

		inboundWaiters: make(map[uint16][]func(error)),
	}
}

func (ss *session) persistent() bool { return !ss.clean && ss.s.store != nil }

// sessionWindow is how many queued messages (beyond the inflight window) a
// persistent session keeps in memory; the rest of its queue stays on disk.
// 256 messages refill the inflight window of the default max_inflight (32)
// eight times per read, keep a thousand offline sessions' memory small, and
// make one read of a few hundred KiB at most for small messages.
const sessionWindow = 256

// isGone reports whether the session was discarded; a nil session is not.
func (ss *session) isGone() bool {
	if ss == nil {
		return false
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.gone
}

// opLocked hands a store op to the commit being built. It needs routeMu.
func (ss *session) opLocked(op persist.Op) {
	if ss.persistent() && !ss.gone {
		ss.s.pendingOps = append(ss.s.pendingOps, op)
	}
}

// writeAfterCommitLocked writes p to the current connection once the ops
// built so far under routeMu are committed, for a state change the client
// must not see before it is durable. It needs routeMu when the session is
// persistent.
func (ss *session) writeAfterCommitLocked(p packet.Packet) {
	if !ss.persistent() || ss.gone {
		ss.writeLocked(p)
		return
	}
	c := ss.conn
	if ss.deferredFor != c {
		ss.deferredFor, ss.deferred = c, 0
	}
	ss.deferred++
	ss.s.afterCommit = append(ss.s.afterCommit, func() {
		ss.mu.Lock()
		defer ss.mu.Unlock()
		// A new connection has had everything in flight re-sent already.
		if c != nil && ss.conn == c {
			ss.writeLocked(p)
		}
		if ss.deferredFor == c {
			ss.deferred--
		}
	})
}

// hasDeferredLocked reports whether writes to the current connection are
// waiting for a commit.
func (ss *session) hasDeferredLocked() bool {
	return ss.deferred > 0 && ss.deferredFor == ss.conn
}

// deliverLocked takes message m for this session at delivery QoS qos. QoS 0
// goes straight to the connection, or nowhere if the client is offline
// [MQTT-3.1.2-5 allows but does not require queueing it]. QoS 1 and 2 are
// sent if the inflight window has room, else queued within the session's
// limits; a message over a limit is dropped and counted.
func (ss *session) deliverLocked(m *message, qos byte) { ss.deliverFlagLocked(m, qos, false, nil) }

// deliverRetainedLocked delivers a retained message because of a new
// subscription: with the retain flag set [MQTT-3.3.1-8] and the
// subscription's identifier, if any.
func (ss *session) deliverRetainedLocked(m *message, qos byte, ids []uint32) {
	ss.deliverFlagLocked(m, qos, true, ids)
}

// deliverFlagLocked is deliverLocked with the retain flag to send and the
// identifiers of the matching subscriptions (5.0; nil if none). An expired
// message is not delivered [MQTT-3.3.2-5].
func (ss *session) deliverFlagLocked(m *message, qos byte, retain bool, ids []uint32) {
	if m.ext != nil && m.expired(time.Now().UnixNano()) {
		return
	}
	// The one read check for live, retained and queued deliveries: a
	// subscription granted for part of its filter gets only what its owner
	// may read.
	if !ss.readableLocked(m.topic) {
		return
	}
	if qos == 0 {
		if ss.conn != nil {
			p := &packet.Publish{Topic: m.topic, Payload: m.payload, Retain: retain}
			if m.ext != nil || ids != nil {
				p.Properties = m.pubProps(ids, time.Now().UnixNano())
			}
			if !ss.conn.sendQoS0(p) {
				ss.s.stats.pubDropped.Add(1)
			}
		}
		return
	}
	if ss.conn == nil && ss.clean {
		return
	}
	l := &ss.s.cfg.Limits
	queued, queuedBytes := ss.pending.len()+ss.spilled, ss.pending.bytes+ss.spilledBytes
	direct := ss.windowOpenLocked()
	if !direct && (queued >= l.MaxQueuedMessages || queuedBytes+m.size() > l.MaxQueuedBytes) {
		ss.dropped++
		ss.s.stats.pubDropped.Add(1)
		if ok, n := ss.s.storeWarn.allow(); ok {
			ss.s.log.Warn("session queue full; message dropped", "client_id", ss.id,
				"queued", queued, "queued_bytes", queuedBytes, "suppressed", n)
		}
		return
	}
	// Behind spilled messages, or beyond the window, a message goes to
	// disk only. One without a store id (a retained message for a new
	// subscription) gets one for that, and its retain flag is stored.
	spill := !direct && ss.persistent() && !ss.gone && (ss.spilled > 0 || ss.pending.len() >= sessionWindow)
	if spill && m.id == 0 {
		cp := *m
		cp.id = ss.s.nextMsgID
		ss.s.nextMsgID++
		m = &cp
		ss.opLocked(persist.PutMessage{ID: m.id, Msg: m.record()})
	}
	if m.id != 0 {
		ss.opLocked(persist.Enqueue{ClientID: ss.id, MsgID: m.id, QoS: qos, Retain: retain, SubIDs: ids})
	}
	switch {
	case spill:
		ss.spilled++
		ss.spilledBytes += m.size()
		ss.lastSpillID = m.id
		return
	case m.id != 0:
		// Refills read after every message memory has had, sent or not.
		ss.lastMemID = m.id
	}
	if direct {
		ss.sendLocked(newOutMsg(m, qos, retain, ids))
	} else {
		ss.pending.push(newOutMsg(m, qos, retain, ids))
	}
}

// sendLocked assigns a packet id to om, moves it in flight and writes it.
func (ss *session) sendLocked(om *outMsg) {
	om.pid = ss.allocPIDLocked()
	ss.inflight = append(ss.inflight, om)
	if om.msg.id != 0 {
		ss.opLocked(persist.SetInflight{ClientID: ss.id, MsgID: om.msg.id, PacketID: om.pid})
	}
	// A QoS 2 message goes out only once its packet id is durable: after a
	// crash it is re-sent with that id and DUP, and the client recognises
	// it; under a new id it would be a second delivery. (A QoS 1 message
	// may arrive twice anyway, but waits behind a QoS 2 one to keep the
	// order.)
	if (om.qos == 2 && om.msg.id != 0) || ss.hasDeferredLocked() {
		ss.writeAfterCommitLocked(om.publish(false))
		return
	}
	ss.writeLocked(om.publish(false))
}

// writeLocked queues a QoS 1/2 publish or PUBREL on the connection. A
// connection that cannot take it is a slow consumer: it is closed, and the
// message stays in flight for the next connection.
func (ss *session) writeLocked(p packet.Packet) {
	if ss.conn != nil && !ss.conn.send(p) && !ss.conn.isClosed() {
		ss.s.stats.slowConsumers.Add(1)
		ss.conn.close(closeSlowConsumer)
	}
}

func (ss *session) allocPIDLocked() uint16 {
	for {
		ss.nextPID++
		if ss.nextPID == 0 {
			ss.nextPID = 1
		}
		if _, used := ss.usedPIDs[ss.nextPID]; !used {
			ss.usedPIDs[ss.nextPID] = struct{}{}
			return ss.nextPID
		}
	}
}

// windowOpenLocked reports whether a QoS 1 or 2 message can be sent at
// once: the client is connected, the inflight window has room and nothing
// is queued ahead, in memory or spilled to disk.
func (ss *session) windowOpenLocked() bool {
	return ss.conn != nil && len(ss.inflight) < ss.s.cfg.Limits.MaxInflight && ss.pending.len() == 0 && ss.spilled == 0
}

// fillLocked sends queued messages while the inflight window has room,
// reading spilled ones back from the store when the window is empty, then
// retained messages for new subscriptions (which wait behind the queue).
func (ss *session) fillLocked() {
	for ss.conn != nil && len(ss.inflight) < ss.s.cfg.Limits.MaxInflight {
		if ss.pending.len() == 0 && !ss.refillLocked() {
			break
		}
		om := ss.pending.pop()
		if om.msg.ext != nil && om.msg.expired(time.Now().UnixNano()) {
			// Expired while queued: dropped, not sent [MQTT-3.3.2-5].
			ss.s.stats.pubDropped.Add(1)
			if om.msg.id != 0 {
				ss.opLocked(persist.Dequeue{ClientID: ss.id, MsgID: om.msg.id})
			}
			continue
		}
		ss.sendLocked(om)
	}
	ss.retainFillLocked()
}

// refillLocked reads up to sessionWindow spilled messages into the empty
// window and reports whether it got any. It needs routeMu.
//
// The store returns committed entries only, and a session's entries are
// committed in MsgID order, so a read returns the oldest spilled messages
// and never skips one. When it returns fewer than were spilled, the others
// are still being committed (or failed to be, or the stored count was
// wrong): refillWait is set and an empty commit built after them retries
// once they are done. If that retry still finds fewer and nothing was
// spilled since, the missing ones are not on disk and the count is reset,
// so the session does not wait for them forever.
func (ss *session) refillLocked() bool {
	if ss.spilled == 0 || ss.refillWait || ss.gone {
		return false
	}
	s := ss.s
	want := min(ss.spilled, sessionWindow)
	qs, err := s.store.ReadSessionQueue(ss.id, ss.lastMemID, want)
	if err != nil {
		s.stats.storeErrors.Add(1)
		if ok, n := s.storeWarn.allow(); ok {
			s.log.Error("reading a session queue from the store failed; its messages wait",
				"client_id", ss.id, "queued", ss.spilled, "error", err, "suppressed", n)
		}
		return false
	}
	for i := range qs {
		q := &qs[i]
		m := messageFromRecord(q.MsgID, &q.Msg)
		ss.pending.push(newOutMsg(m, q.QoS, q.Retain, q.SubIDs))
		ss.lastMemID = q.MsgID
		ss.spilled--
		ss.spilledBytes -= m.size()
	}
	if len(qs) < want && ss.spilled > 0 {
		if ss.lastMemID >= ss.lastSpillID {
			// Everything spilled is committed and read: the rest is not
			// on disk (a failed commit, or stats of a damaged store).
			s.log.Warn("session queue shorter than counted; continuing with what is stored",
				"client_id", ss.id, "missing", ss.spilled)
			ss.spilled, ss.spilledBytes = 0, 0
		} else {
			ss.refillWait = true
			waitFor := ss.lastSpillID
			s.afterCommit = append(s.afterCommit, func() {
				ss.update(func() {
					ss.refillWait = false
					if ss.lastSpillID == waitFor && ss.spilled > 0 {
						// Everything up to waitFor is committed now.
						ss.lastSpillID = 0
					}
					ss.fillLocked()
				}, nil)
			})
		}
	}
	return len(qs) > 0
}

// resumeLocked re-sends, on a new connection of a resumed session, every
// unacknowledged PUBLISH with DUP set and every PUBREL, in their original
// order and with their original packet ids [MQTT-4.4.0-1], then queued
// messages.
func (ss *session) resumeLocked() {
	for _, om := range ss.inflight {
		if om.pubrel {
			ss.writeLocked(&packet.Pubrel{PacketID: om.pid})
		} else {
			ss.writeLocked(om.publish(true))
		}
	}
	ss.fillLocked()
}

// ackLocked handles PUBACK, PUBREC and PUBCOMP for an outbound message.
func (ss *session) ackLocked(t packet.Type, pid uint16) {
	i := -1
	for j, om := range ss.inflight {
		if om.pid == pid {
			i = j
			break
		}
	}
	if i < 0 {
		// An ack for an id not in flight (a duplicate after a resend) is
		// ignored; MQTT 3.1.1 has no way to refuse it.
		return
	}
	om := ss.inflight[i]
	switch {
	case t == packet.PUBACK && om.qos == 1, t == packet.PUBCOMP && om.qos == 2 && om.pubrel:
		ss.inflight = append(ss.inflight[:i], ss.inflight[i+1:]...)
		delete(ss.usedPIDs, pid)
		if om.msg.id != 0 {
			ss.opLocked(persist.Dequeue{ClientID: ss.id, MsgID: om.msg.id})
		}
		ss.fillLocked()
	case t == packet.PUBREC && om.qos == 2:
		if !om.pubrel && om.msg.id != 0 {
			om.pubrel = true
			ss.opLocked(persist.SetInflight{ClientID: ss.id, MsgID: om.msg.id, PacketID: pid, Pubrel: true})
			// PUBREL only once that is durable: a crash before it would
			// re-send the PUBLISH after the client completed the flow and
			// forgot the id [MQTT-4.3.3-1]. Dones run in commit order, so
			// PUBRELs keep the order of their PUBRECs [MQTT-4.6.0-4].
			ss.writeAfterCommitLocked(&packet.Pubrel{PacketID: pid})
			return
		}
		om.pubrel = true
		// A PUBREC repeated after a resend gets its PUBREL again.
		ss.writeLocked(&packet.Pubrel{PacketID: pid})
	}
}

// setSubLocked adds or replaces the subscription to filter, and stores
// that one record, with its 5.0 options, for a persistent session.
func (ss *session) setSubLocked(filter string, o subOpts) {
	ss.subs[filter] = o
	if !ss.persistent() {
		return
	}
	seq := ss.subSeqs[filter]
	if seq == 0 {
		ss.nextSubSeq++
		seq = ss.nextSubSeq
		if ss.subSeqs == nil {
			ss.subSeqs = make(map[string]uint64)
		}
		ss.subSeqs[filter] = seq
	}
	ss.opLocked(persist.PutSubscription{ClientID: ss.id, Sub: persist.Subscription{Seq: seq, Filter: filter, QoS: o.qos,
		NoLocal: o.flags&subNoLocal != 0, RetainAsPublished: o.flags&subRetainAsPublished != 0,
		RetainHandling: o.rh, ID: o.id}})
}

// deleteSubLocked removes the subscription to filter: from the topic tree,
// its retained messages not yet sent, and the store; it reports whether
// there was one. UNSUBSCRIBE and a revoking ACL reload both end here.
func (ss *session) deleteSubLocked(filter string) bool {
	if _, ok := ss.subs[filter]; !ok {
		return false
	}
	ss.s.topics.unsubscribe(ss, filter)
	ss.stopRetainedLocked(filter)
	delete(ss.subs, filter)
	delete(ss.partial, filter)
	if seq, ok := ss.subSeqs[filter]; ok {
		delete(ss.subSeqs, filter)
		ss.opLocked(persist.DeleteSubscription{ClientID: ss.id, Seq: seq})
	}
	return true
}

// queuedLocked returns the number of messages the session holds.
func (ss *session) queuedLocked() int { return len(ss.inflight) + ss.pending.len() + ss.spilled }
