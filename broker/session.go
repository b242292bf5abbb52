package broker

import (
	"fmt"
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
	// version is the protocol version the session's client last
	// connected with; expiry its Session Expiry Interval, seconds, capped
	// by Limits.SessionExpiry: persist.ExpiryNever for a 3.1.1 session
	// (clean session 0), 0 when the session ends with its connection
	// (see endsLocked). Stored with the session.
	version byte
	expiry  uint32
	// will is a will waiting for its Will Delay Interval (5.0) while the
	// client is offline, due at willDue (Unix nanoseconds); published by
	// housekeeping, or when the session ends, and cancelled when the
	// client reconnects in time [MQTT-3.1.3-9].
	will    *message
	willDue int64
	dropped uint64
	// gone is set when the session is discarded (clean start, expiry): a
	// connection that still holds it must not bring it back to the store.
	gone bool
	// deferred counts writes to deferredFor waiting for a commit (see
	// writeAfterCommitLocked); while there are any, later QoS 1/2 writes
	// queue behind them so the client sees messages in order.
	deferred    int
	deferredFor *conn
	// held are writes to a clean session's connection waiting for the
	// commit of a client's QoS 2 message (holdFor), tagged with that
	// route's holdSeq, and the QoS 1/2 writes queued behind them to
	// keep the order. Released in order by releaseHeld. Bounded like the
	// inflight window: one entry per held route still committing plus the
	// window's messages.
	held []heldWrite
	// holdFor is set while route delivers a client's QoS 2 message to the
	// session: the route's holdSeq. Its writes wait for its commit.
	holdFor uint64
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
		expiry:         persist.ExpiryNever, // until attach or restore says otherwise
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
// must not see before it is durable, and for every write of a client's QoS
// 2 message (holdFor). It needs routeMu when the session is persistent.
func (ss *session) writeAfterCommitLocked(p packet.Packet) {
	switch {
	case ss.gone || ss.conn == nil:
		return
	case !ss.persistent():
		if ss.holdFor != 0 {
			ss.held = append(ss.held, heldWrite{seq: ss.holdFor, p: p})
			return
		}
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
			ss.writeNowLocked(p)
		}
		if ss.deferredFor == c {
			ss.deferred--
		}
	})
}

// heldWrite is a write held for the commit of route number seq.
type heldWrite struct {
	seq uint64
	p   packet.Packet
}

// releaseHeld writes, in order, the held writes of routes up to seq, once
// their commit is done.
func (ss *session) releaseHeld(seq uint64) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	i := 0
	for ; i < len(ss.held) && ss.held[i].seq <= seq; i++ {
		if ss.conn != nil && !ss.gone {
			ss.writeNowLocked(ss.held[i].p)
		}
	}
	n := copy(ss.held, ss.held[i:])
	clear(ss.held[n:])
	ss.held = ss.held[:n]
	if n == 0 {
		ss.held = nil
	}
}

// hasDeferredLocked reports whether writes to the current connection are
// waiting for a commit.
func (ss *session) hasDeferredLocked() bool {
	return ss.deferred > 0 && ss.deferredFor == ss.conn
}

// deliverRetainedLocked delivers a retained message because of a new
// subscription: with the retain flag set [MQTT-3.3.1-8] and the
// subscription's identifier, if any.
func (ss *session) deliverRetainedLocked(m *message, qos byte, ids []uint32) {
	ss.deliverFlagLocked(m, qos, true, ids)
}

// deliverFlagLocked takes message m for this session at delivery QoS qos,
// sent with the retain flag retain and the identifiers ids of the matching
// subscriptions (5.0; nil if none). QoS 0 goes straight to the connection,
// or nowhere if the client is offline [MQTT-3.1.2-5 allows but does not
// require queueing it]. QoS 1 and 2 are sent if the inflight window has
// room, else queued within the session's limits; a message over a limit is
// dropped and counted. An expired message is not delivered [MQTT-3.3.2-5].
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
			if ss.conn.tooBigFor(p) {
				ss.dropTooBigLocked(&outMsg{msg: &message{topic: m.topic}})
				return
			}
			if ss.holdFor != 0 {
				ss.writeAfterCommitLocked(p)
			} else if !ss.conn.sendQoS0(p) {
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
	if ss.conn.tooBigFor(om.publish(false)) {
		ss.dropTooBigLocked(om)
		return
	}
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
	if (om.qos == 2 && om.msg.id != 0) || ss.hasDeferredLocked() || ss.holdFor != 0 {
		ss.writeAfterCommitLocked(om.publish(false))
		return
	}
	ss.writeLocked(om.publish(false))
}

// writeLocked queues a QoS 1/2 publish or PUBREL on the connection,
// behind the writes held for a QoS 2 message's commit (held) if any.
func (ss *session) writeLocked(p packet.Packet) {
	if n := len(ss.held); n > 0 {
		ss.held = append(ss.held, heldWrite{seq: ss.held[n-1].seq, p: p})
		return
	}
	ss.writeNowLocked(p)
}

// writeNowLocked queues p on the connection. A QoS 0 PUBLISH that does not
// fit is dropped and counted; for anything else, a connection that cannot
// take it is a slow consumer: it is closed, and the message stays in
// flight for the next connection.
func (ss *session) writeNowLocked(p packet.Packet) {
	c := ss.conn
	if c == nil {
		return
	}
	if pub, ok := p.(*packet.Publish); ok && pub.QoS == 0 {
		if !c.sendQoS0(pub) {
			ss.s.stats.pubDropped.Add(1)
		}
		return
	}
	if !c.send(p) && !c.ending() {
		ss.s.stats.slowConsumers.Add(1)
		c.close(closeSlowConsumer)
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
	return ss.conn != nil && len(ss.inflight) < ss.windowLocked() && ss.pending.len() == 0 && ss.spilled == 0
}

// fillLocked sends queued messages while the inflight window has room,
// reading spilled ones back from the store when the window is empty, then
// retained messages for new subscriptions (which wait behind the queue).
func (ss *session) fillLocked() {
	for ss.conn != nil && len(ss.inflight) < ss.windowLocked() {
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
	kept := ss.inflight[:0]
	for _, om := range ss.inflight {
		switch {
		case om.pubrel:
			ss.writeLocked(&packet.Pubrel{PacketID: om.pid})
		case ss.conn.tooBigFor(om.publish(true)):
			// The new connection allows smaller packets.
			delete(ss.usedPIDs, om.pid)
			ss.dropTooBigLocked(om)
			continue
		default:
			ss.writeLocked(om.publish(true))
		}
		kept = append(kept, om)
	}
	clear(ss.inflight[len(kept):])
	ss.inflight = kept
	ss.fillLocked()
}

// windowLocked is how many QoS 1 and 2 messages may be in flight to the
// client: Limits.MaxInflight, or a 5.0 client's smaller Receive Maximum
// [MQTT-3.3.4-9].
func (ss *session) windowLocked() int {
	w := ss.s.cfg.Limits.MaxInflight
	if c := ss.conn; c != nil && c.version == packet.V5 {
		w = min(w, int(c.v5.sendMax))
	}
	return w
}

// dropTooBigLocked drops, for this session only, a message larger than its
// client's Maximum Packet Size [MQTT-3.1.2-25]: it is counted as dropped and
// leaves the session's stored queue.
func (ss *session) dropTooBigLocked(om *outMsg) {
	ss.dropped++
	ss.s.stats.pubDropped.Add(1)
	if om.msg.id != 0 {
		ss.opLocked(persist.Dequeue{ClientID: ss.id, MsgID: om.msg.id})
	}
	if ok, n := ss.s.limitWarn.allow(); ok {
		ss.s.log.Info("message larger than the client's maximum packet size dropped for it", "client_id", ss.id,
			"topic", om.msg.topic, "maximum_packet_size", ss.conn.v5.maxOut, "suppressed", n)
	}
}

// ackLocked handles PUBACK, PUBREC and PUBCOMP for an outbound message.
// An acknowledgement of the wrong kind for the message in flight with that
// packet id is a protocol violation, as Mosquitto treats it: PUBREC or
// PUBCOMP for a QoS 1 message, PUBACK for a QoS 2 one [MQTT-4.3.2-1 and
// MQTT-4.3.3-1 fix which packets answer each QoS], and PUBCOMP for a QoS 2
// message whose PUBREC has not arrived (no PUBREL was sent for it). The
// message stays in flight for the session's next connection.
func (ss *session) ackLocked(t packet.Type, pid uint16) error {
	i := -1
	for j, om := range ss.inflight {
		if om.pid == pid {
			i = j
			break
		}
	}
	if i < 0 {
		// An ack for an id not in flight (a duplicate after a resend) is
		// ignored, as Mosquitto does (it logs a warning).
		return nil
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
			return nil
		}
		om.pubrel = true
		// A PUBREC repeated after a resend gets its PUBREL again.
		ss.writeLocked(&packet.Pubrel{PacketID: pid})
	case t == packet.PUBCOMP && om.qos == 2:
		return fmt.Errorf("PUBCOMP for packet id %d before its PUBREC", pid)
	default:
		return fmt.Errorf("%s for packet id %d, a QoS %d message", t, pid, om.qos)
	}
	return nil
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
