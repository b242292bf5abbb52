package broker

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/edged/edged/broker/packet"
	"github.com/edged/edged/persist"
)

// update runs fn with the session locked, and with routeMu held first when
// the session is persistent, then hands the store ops fn built. done is
// called after that commit, or, when there was nothing to commit, by update
// itself after the locks are released. done may be nil.
func (ss *session) update(fn func(), done func(error)) {
	s := ss.s
	if ss.persistent() {
		s.routeMu.Lock()
		ss.mu.Lock()
		fn()
		ss.mu.Unlock()
		committed := s.commitLocked(done)
		s.routeMu.Unlock()
		if committed || done == nil {
			return
		}
	} else {
		ss.mu.Lock()
		fn()
		ss.mu.Unlock()
		if done == nil {
			return
		}
	}
	done(nil)
}

// connect handles the CONNECT packet; it returns closeNone when the
// connection is accepted.
func (c *conn) connect(p *packet.Connect) closeReason {
	s := c.s
	c.info = ClientInfo{
		ClientID:  p.ClientID,
		Listener:  c.opts.name,
		Remote:    c.nc.RemoteAddr(),
		Anonymous: c.opts.anonymous,
	}
	if p.Username != nil {
		c.info.Username, c.info.HasUsername = *p.Username, true
	}
	if c.version == packet.V31 {
		// MQTT 3.1 (section 3.1, "Client Identifier"): between 1 and 23
		// characters; the server answers others with 0x02, as Mosquitto
		// does for an empty one. Counted in characters, not bytes.
		if n := utf8.RuneCountInString(p.ClientID); n < 1 || n > 23 {
			return c.refuse(packet.ClientIdentifierNotValid,
				fmt.Errorf("MQTT 3.1 client id of %d characters (1 to 23 allowed)", n))
		}
	}
	// The session expiry: a 5.0 client's Session Expiry Interval, a 3.1.1
	// client's clean session flag (0: never expires), capped by
	// Limits.SessionExpiry. The keepalive and what CONNACK says of both.
	var expiry uint32
	keepAlive := p.KeepAlive
	var props *packet.Properties
	if c.version == packet.V5 {
		var refused packet.Reason
		if expiry, keepAlive, props, refused = c.connectV5(p); refused != packet.Success {
			return c.refuse(refused, errors.New("enhanced authentication (an authentication method) is not supported"))
		}
	} else if !p.CleanSession {
		expiry = s.capExpiry(persist.ExpiryNever)
	}
	if p.ClientID == "" {
		if !p.CleanSession && c.version != packet.V5 {
			// [MQTT-3.1.3-8]; 5.0 allows it [MQTT-3.1.3-7].
			return c.refuse(packet.ClientIdentifierNotValid, nil)
		}
		// The server assigns a unique id [MQTT-3.1.3-6], and tells a 5.0
		// client [MQTT-3.2.2-16].
		var b [8]byte
		rand.Read(b[:])
		c.info.ClientID = "edged-" + hex.EncodeToString(b[:])
		if props != nil {
			props.AssignedClientID = c.info.ClientID
		}
	}
	if code := c.authenticate(p.Password); code != packet.Success {
		return c.refuse(code, nil)
	}
	if p.Will != nil {
		c.will = &message{topic: p.Will.Topic, payload: p.Will.Payload, qos: p.Will.QoS, retain: p.Will.Retain}
		if wp := p.Will.Properties; wp != nil && c.version == packet.V5 {
			// The will's properties go out with it (MQTT 5.0 section
			// 3.1.3.2), all but the Will Delay Interval, which is edged's;
			// its message expiry runs from publication (willAt).
			fp := *wp
			fp.WillDelay = nil
			c.will.ext = newMsgExt(&fp, time.Now().UnixNano(), c.info.ClientID)
		}
	}
	c.keepAlive = time.Duration(keepAlive) * time.Second
	c.log = c.log.With("client_id", c.info.ClientID)

	present, ok := s.attach(c, c.info.ClientID, p.CleanSession, expiry, props)
	if !ok {
		return c.refuse(packet.ServerUnavailable, nil)
	}
	s.publishDueWills(false)
	c.log.Info("client connected", userAttr(&c.info), "protocol", int(c.version), "clean_session", p.CleanSession,
		"session_present", present, "keepalive", int(keepAlive), "session_expiry", expiry)
	return closeNone
}

func (c *conn) authenticate(password []byte) packet.Reason {
	a := c.s.cfg.Auth
	switch {
	case a == nil && c.opts.anonymous:
		return packet.Success
	case a == nil:
		return packet.NotAuthorized
	case !c.info.HasUsername && c.opts.anonymous:
		return packet.Success
	}
	return a.Authenticate(&c.info, password)
}

// attach binds the connection to its session: a new one for a clean
// session or an unknown client id, else the existing one. A client already
// connected with the same id is disconnected first [MQTT-3.1.4-2]. It sends
// CONNACK and, for a resumed session, re-sends what is in flight. It reports
// whether a session was present, and false for ok when the connection
// would exceed Limits.MaxConnections (a takeover replaces a connection, so
// it is always allowed [MQTT-3.1.4-2]).
func (s *Server) attach(c *conn, id string, clean bool, expiry uint32, props *packet.Properties) (present, ok bool) {
	s.routeMu.Lock()
	defer s.routeMu.Unlock()
	s.mu.Lock()
	old := s.sessions[id]
	takeover := false
	if old != nil {
		old.mu.Lock()
		takeover = old.conn != nil
		old.mu.Unlock()
	}
	// Counted here, under s.mu, so that concurrent CONNECTs cannot all
	// pass the check before any of them is counted.
	if c.admitErr = s.admitLocked(c, takeover); c.admitErr != nil {
		s.mu.Unlock()
		return false, false
	}
	var ss *session
	if old != nil {
		old.mu.Lock()
		oc := old.conn
		if oc != nil {
			oc.log.Info("session taken over by a new connection")
			oc.end(closeTakeover)
			old.conn = nil
		}
		switch {
		case clean || old.endsLocked():
		case old.ownedByLocked(&c.info):
			ss, present = old, true
			if !old.ownerKnown {
				c.log.Info("session stored without an owner adopted", userAttr(&c.info))
			}
			if oc != nil {
				// The session goes on: the old connection's will is not
				// published, as in Mosquitto (it is when either side is
				// clean, or the session is discarded for another user).
				oc.willCancelled.Store(true)
			}
		default:
			// Another identity must not get the session's subscriptions
			// and messages: its CONNECT is a clean start, and the old
			// session is discarded as a clean session's CONNECT would
			// (see doc.go, "Access control").
			c.log.Warn("persistent session of another user discarded", userAttr(&c.info),
				"session_user", old.owner.Username)
		}
		old.mu.Unlock()
		if ss == nil {
			// A clean session discards any previous session
			// [MQTT-3.1.2-6].
			s.discardLocked(old)
		}
	}
	if ss == nil {
		ss = newSession(s, id, expiry == 0)
		s.sessions[id] = ss
	}
	s.mu.Unlock()

	ss.mu.Lock()
	ss.stopAllRetainedLocked()
	ss.conn = c
	ss.lastSeen = 0
	ss.version, ss.expiry = byte(c.version), expiry
	// The client is back in time: a will waiting for its delay is not
	// published [MQTT-3.1.3-9].
	if ss.will != nil && ss.persistent() {
		s.pendingOps = append(s.pendingOps, persist.SetWill{ClientID: ss.id})
	}
	ss.will, ss.willDue = nil, 0
	c.sess = ss
	if ss.persistent() {
		// Only the info record: the subscriptions are stored one by one as
		// they change.
		s.pendingOps = append(s.pendingOps, ss.putSessionOp(0))
	}
	ss.setOwnerLocked(&c.info)
	if present {
		// The rules may have changed while the client was away.
		if removed := ss.reauthorizeLocked(); len(removed) > 0 {
			c.log.Info("subscriptions revoked on resume", "filters", removed)
		}
	}
	// CONNACK is the first packet the client receives [MQTT-3.2.0-1];
	// session present as in [MQTT-3.2.2-2] [MQTT-3.2.2-3].
	// MQTT 3.1 has no session present flag: its CONNACK's first byte is
	// reserved (Mosquitto sends 0 too; the codec leaves it out at V31).
	c.outMu.Lock()
	c.acked = true
	c.outMu.Unlock()
	c.send(&packet.Connack{SessionPresent: present && c.version != packet.V31, Properties: props})
	if present {
		ss.resumeLocked()
	}
	ss.mu.Unlock()
	s.commitLocked(nil)
	return present, true
}

// discardLocked removes a session, its subscriptions and its stored state.
// It needs routeMu and s.mu.
func (s *Server) discardLocked(ss *session) {
	ss.mu.Lock()
	ss.gone = true
	ss.takeWillLocked()
	for f := range ss.subs {
		s.topics.unsubscribe(ss, f)
	}
	ss.subs = map[string]subOpts{}
	ss.partial = nil
	ss.subSeqs = nil
	ss.stopAllRetainedLocked()
	ss.pending.clear()
	ss.spilled, ss.spilledBytes = 0, 0
	ss.inflight = nil
	persistent := ss.persistent()
	ss.mu.Unlock()
	if s.sessions[ss.id] == ss {
		delete(s.sessions, ss.id)
	}
	if persistent {
		s.pendingOps = append(s.pendingOps, persist.DeleteSession{ClientID: ss.id})
	}
}

// detach unbinds a closed connection from its session. A clean session
// ends with its connection [MQTT-3.1.2-6]; a persistent one stays with its
// subscriptions and queue.
//
// will is the connection's will if it has a Will Delay Interval (5.0) and
// is to be published: if the session outlives the connection, the session
// keeps it until it is due, and detach reports true; otherwise the caller
// publishes it now.
func (s *Server) detach(c *conn, ss *session, will *message) (delayed bool) {
	s.routeMu.Lock()
	defer s.routeMu.Unlock()
	ss.mu.Lock()
	if ss.conn != c {
		// Taken over: the session belongs to the new connection.
		ss.mu.Unlock()
		return false
	}
	ss.conn = nil
	ss.stopAllRetainedLocked()
	ss.lastSeen = time.Now().Unix()
	ends := ss.endsLocked()
	if ss.persistent() && !ends {
		s.pendingOps = append(s.pendingOps, ss.putSessionOp(ss.lastSeen))
	}
	if will != nil && !ends {
		// A 5.0 will with a delay waits for the earlier of its delay and
		// the session's end [MQTT-3.1.3-9] [MQTT-3.1.2-8].
		ss.will = will
		ss.willDue = time.Now().Add(time.Duration(min(c.v5.willDelay, s.capExpiry(ss.expiry))) * time.Second).UnixNano()
		delayed = true
		if ss.persistent() {
			// Stored with its due time, so a restart while it waits
			// publishes it on time (restore), not never.
			s.pendingOps = append(s.pendingOps, persist.SetWill{ClientID: ss.id,
				Will: &persist.Will{Msg: will.record(), Due: ss.willDue}})
		}
	}
	ss.mu.Unlock()
	if ends {
		s.mu.Lock()
		s.discardLocked(ss)
		s.mu.Unlock()
	}
	s.commitLocked(nil)
	return delayed
}

// handle handles one packet after CONNECT.
func (c *conn) handle(p packet.Packet) closeReason {
	ss := c.sess
	switch p := p.(type) {
	case *packet.Publish:
		return c.publish(p)
	case *packet.Puback:
		return c.ack(packet.PUBACK, p.PacketID)
	case *packet.Pubrec:
		return c.ack(packet.PUBREC, p.PacketID)
	case *packet.Pubcomp:
		return c.ack(packet.PUBCOMP, p.PacketID)
	case *packet.Pubrel:
		// PUBCOMP even for an unknown id: the client may be completing a
		// flow whose state the server already dropped [MQTT-4.3.3-2]; 5.0
		// says so with 0x92 (packet identifier not found), as Mosquitto
		// does. It goes out only once the id's release is durable: the
		// client may reuse the id at once, and a restart that still
		// remembered it would swallow the new message as a duplicate. (Its
		// reason is set by update, before committed lets it be written.)
		_, counted := c.v5.in2[p.PacketID]
		delete(c.v5.in2, p.PacketID)
		ack := &packet.Pubcomp{PacketID: p.PacketID}
		e, ok := c.queueAckCounted(ack, false, counted)
		if !ok {
			return closeReason(c.reason.Load())
		}
		v5 := c.version == packet.V5
		ss.update(func() {
			if _, ok := ss.inbound[p.PacketID]; ok {
				delete(ss.inbound, p.PacketID)
				ss.opLocked(persist.DeleteInbound{ClientID: ss.id, PacketID: p.PacketID})
			} else if v5 {
				ack.Reason = packet.PacketIdentifierNotFound
			}
		}, func(err error) { c.committed(e, err) })
	case *packet.Subscribe:
		return c.subscribe(p)
	case *packet.Unsubscribe:
		return c.unsubscribe(p)
	case *packet.Pingreq:
		if _, ok := c.queueAck(&packet.Pingresp{}, true); !ok { // [MQTT-3.12.4-1]
			return closeReason(c.reason.Load())
		}
	case *packet.Disconnect:
		return c.disconnected(p)
	case *packet.Connect:
		// A second CONNECT is a protocol violation [MQTT-3.1.0-2].
		c.log.Info("closing connection", "error", "second CONNECT")
		return closeProtocol
	default:
		// CONNACK, SUBACK, UNSUBACK and PINGRESP go from server to client
		// only.
		c.log.Info("closing connection", "error", "unexpected "+p.Type().String())
		return closeProtocol
	}
	return closeNone
}

// ack handles PUBACK, PUBREC and PUBCOMP. One that does not fit the
// message in flight with its packet id (see session.ackLocked) is a
// protocol violation and closes the connection, as in Mosquitto.
func (c *conn) ack(t packet.Type, pid uint16) closeReason {
	ss := c.sess
	var err error
	ss.update(func() { err = ss.ackLocked(t, pid) }, nil)
	if err != nil {
		c.log.Info("closing connection", "error", err)
		return closeProtocol
	}
	return closeNone
}

// publish handles a PUBLISH from the client.
func (c *conn) publish(p *packet.Publish) closeReason {
	c.s.stats.msgsReceived.Add(1)
	counted, ok := c.countInbound(p)
	if !ok {
		c.log.Info("closing connection", "error", "receive maximum exceeded",
			"receive_maximum", c.s.cfg.Limits.receiveMaximum())
		return closeRecvMax
	}
	m := &message{topic: p.Topic, payload: p.Payload, qos: p.QoS, retain: p.Retain}
	refused := packet.Success
	if c.version == packet.V5 {
		var r closeReason
		if refused, r = c.publish5(p, m); r != closeNone {
			return r
		}
	}
	allowed := refused == packet.Success && c.s.mayPublish(&c.info, m.topic, false)
	if !allowed && refused == packet.Success {
		// 5.0 reports the refusal [MQTT-3.4.2.1]; before 5.0 the
		// acknowledgement has no reason and the encoder leaves it out.
		refused = packet.NotAuthorized
	}
	switch p.QoS {
	case 0:
		if allowed {
			c.s.route(m, nil, nil, nil)
		}
	case 1:
		e, ok := c.queueAckCounted(&packet.Puback{PacketID: p.PacketID, Reason: refused}, false, counted)
		if !ok {
			return closeReason(c.reason.Load())
		}
		done := func(err error) { c.committed(e, err) }
		if !allowed {
			done(nil)
			break
		}
		// Method A of [MQTT-4.3.2]: the message is stored (where it must
		// outlive the connection) before PUBACK.
		c.s.route(m, nil, nil, done)
	case 2:
		return c.publishQoS2(p, m, allowed, refused)
	}
	return closeNone
}

// publishQoS2 handles a QoS 2 PUBLISH: the message is routed once per packet
// id until PUBREL, and PUBREC goes out once it is committed. A re-sent
// PUBLISH (DUP) is not delivered again [MQTT-4.3.3-2]; if the first copy is
// still waiting for the store (possibly on a connection that has since
// closed), this connection's PUBREC waits for that same commit.
// refused is the 5.0 reason a message that is not allowed is refused with.
func (c *conn) publishQoS2(p *packet.Publish, m *message, allowed bool, refused packet.Reason) closeReason {
	ss, pid := c.sess, p.PacketID
	if !allowed && c.version == packet.V5 {
		// PUBREC 0x87 ends the flow: a PUBREL follows only a PUBREC
		// below 0x80 [MQTT-4.3.3-4], so no state is kept, and the
		// receive maximum slot is released with it.
		_, counted := c.v5.in2[pid]
		delete(c.v5.in2, pid)
		if _, ok := c.queueAckCounted(&packet.Pubrec{PacketID: pid, Reason: refused}, true, counted); !ok {
			return closeReason(c.reason.Load())
		}
		return closeNone
	}
	ss.mu.Lock()
	if ss.conn != c {
		// Taken over: the session's QoS 2 state belongs to the new
		// connection now.
		ss.mu.Unlock()
		return closeTakeover
	}
	committed, seen := ss.inbound[pid]
	ss.mu.Unlock()
	if seen && committed {
		if _, ok := c.queueAck(&packet.Pubrec{PacketID: pid}, true); !ok {
			return closeReason(c.reason.Load())
		}
		return closeNone
	}
	e, ok := c.queueAck(&packet.Pubrec{PacketID: pid}, false)
	if !ok {
		return closeReason(c.reason.Load())
	}
	ss.mu.Lock()
	if ss.conn != c {
		ss.mu.Unlock()
		return closeTakeover
	}
	committed, seen = ss.inbound[pid]
	switch {
	case seen && !committed:
		ss.inboundWaiters[pid] = append(ss.inboundWaiters[pid], func(err error) { c.committed(e, err) })
		ss.mu.Unlock()
		return closeNone
	case seen:
		ss.mu.Unlock()
		c.acks.done(e)
		return closeNone
	}
	// New, or its first copy failed to commit: route it.
	ss.inbound[pid] = false
	ss.mu.Unlock()
	done := func(err error) {
		ss.mu.Lock()
		if err != nil {
			delete(ss.inbound, pid)
		} else if _, ok := ss.inbound[pid]; ok {
			ss.inbound[pid] = true
		}
		waiters := ss.inboundWaiters[pid]
		delete(ss.inboundWaiters, pid)
		ss.mu.Unlock()
		c.committed(e, err)
		for _, w := range waiters {
			w(err)
		}
	}
	var extra []persist.Op
	if ss.persistent() {
		extra = []persist.Op{persist.PutInbound{ClientID: ss.id, PacketID: pid}}
	}
	if !allowed {
		ss.update(func() {
			if extra != nil {
				ss.opLocked(extra[0])
			}
		}, done)
		return closeNone
	}
	c.s.route(m, ss, extra, done)
	return closeNone
}

// grantedSub is one filter of a SUBSCRIBE that was granted.
type grantedSub struct {
	filter string
	o      subOpts
	isNew  bool // the session had no subscription to filter before
}

// subscribe handles SUBSCRIBE: SUBACK goes out once the subscriptions of a
// persistent session are committed, then the matching retained messages.
func (c *conn) subscribe(p *packet.Subscribe) closeReason {
	ss := c.sess
	var id uint32
	if p.Properties != nil && len(p.Properties.SubscriptionIDs) > 0 {
		// The decoder admits one; it applies to every filter of the
		// packet [MQTT-3.8.2.1.2].
		id = p.Properties.SubscriptionIDs[0]
	}
	codes := make([]packet.Reason, len(p.Subscriptions))
	var granted []grantedSub
	var grants []Grant
	var at []int // the index in codes of each granted
	for i, sub := range p.Subscriptions {
		// An invalid or refused filter gets the failure code; the others
		// in the same packet are still granted [MQTT-3.9.3]. Before 5.0
		// every failure is 0x80 on the wire.
		g, code := GrantNone, packet.TopicFilterInvalid
		if validFilter(sub.Filter) {
			if g = c.s.grant(&c.info, sub.Filter); g == GrantNone {
				c.s.logDenied("subscription denied", &c.info, "filter", sub.Filter)
				code = packet.NotAuthorized
			}
		}
		if g == GrantNone {
			codes[i] = code
			continue
		}
		codes[i] = packet.Reason(sub.QoS) // GrantedQoS0, 1 or 2
		o := subOpts{qos: sub.QoS, rh: sub.RetainHandling, id: id}
		if sub.NoLocal {
			o.flags |= subNoLocal
		}
		if sub.RetainAsPublished {
			o.flags |= subRetainAsPublished
		}
		granted = append(granted, grantedSub{filter: sub.Filter, o: o})
		grants = append(grants, g)
		at = append(at, i)
	}
	e, ok := c.queueAck(&packet.Suback{PacketID: p.PacketID, Reasons: codes}, false)
	if !ok {
		return closeReason(c.reason.Load())
	}
	s := c.s
	s.routeMu.Lock()
	ss.mu.Lock()
	if ss.conn != c {
		// Taken over between reading and handling: the session is not this
		// connection's any more (and may have been discarded).
		ss.mu.Unlock()
		s.routeMu.Unlock()
		return closeTakeover
	}
	max, refused := s.cfg.Limits.MaxSubscriptions, 0
	kept := granted[:0]
	for j, g := range granted {
		// A subscription to an existing filter replaces it
		// [MQTT-3.8.4-3]; a new one beyond MaxSubscriptions is refused.
		// (SUBACK is not written before c.subscribed, so its codes may
		// still change.)
		_, existed := ss.subs[g.filter]
		if !existed && max > 0 && len(ss.subs) >= max {
			codes[at[j]] = packet.QuotaExceeded
			refused++
			continue
		}
		g.isNew = !existed
		ss.setSubLocked(g.filter, g.o)
		ss.setGrantLocked(g.filter, grants[j])
		kept = append(kept, g)
	}
	granted = kept
	ss.mu.Unlock()
	if refused > 0 {
		if ok, n := s.limitWarn.allow(); ok {
			c.log.Warn("subscription limit reached; filters refused", "max_subscriptions", max,
				"refused", refused, "suppressed", n)
		}
	}
	committed := s.commitLocked(func(err error) { c.subscribed(e, granted, err) })
	s.routeMu.Unlock()
	if !committed {
		c.subscribed(e, granted, nil)
	}
	return closeNone
}

// subscribed runs once a SUBSCRIBE's subscriptions are durable: under
// routeMu it makes them live, queues SUBACK, then starts sending the
// matching retained messages with the retain flag set [MQTT-3.3.1-6]
// [MQTT-3.8.4-3], as many as the client has room for now, the rest as it
// makes room (retainCursor). A message routed before this point is thus in
// the retained store (if retained) and not delivered live; one routed after
// is delivered live, and the cursor skips its topic if it has not sent that
// topic's retained message yet: the subscriber sees SUBACK, then retained
// and live messages, never a stale retained value after a newer live one on
// the same topic and never one message twice. Retain handling (5.0) 1
// sends them only for a new subscription, 2 never [MQTT-3.3.1-10]
// [MQTT-3.3.1-11].
func (c *conn) subscribed(e *ackEntry, granted []grantedSub, err error) {
	s, ss := c.s, c.sess
	s.routeMu.Lock()
	ss.mu.Lock()
	if !ss.gone {
		for _, g := range granted {
			// Unless an UNSUBSCRIBE or another SUBSCRIBE changed it since.
			if o, ok := ss.subs[g.filter]; ok && o == g.o {
				s.topics.subscribe(ss, g.filter, g.o)
			}
		}
	}
	// SUBACK is queued after the subscriptions are live, so a client that
	// publishes as soon as it has the SUBACK gets its own message, and
	// before the retained messages, so they follow it.
	c.committed(e, err)
	if err == nil && ss.conn == c && !ss.gone {
		for _, g := range granted {
			// Not for a filter unsubscribed since: its retained messages
			// are no longer wanted. Never for a shared subscription
			// (MQTT 5.0, sections 3.8.4 and 4.8.2).
			o, ok := ss.subs[g.filter]
			if ok && o == g.o && (o.rh == 0 || o.rh == 1 && g.isNew) && !strings.HasPrefix(g.filter, sharePrefix) {
				ss.startRetainedLocked(g.filter, o)
			}
		}
		ss.retainFillLocked()
	}
	ss.mu.Unlock()
	s.commitLocked(nil)
	s.routeMu.Unlock()
}

// unsubscribe handles UNSUBSCRIBE of exact filters; UNSUBACK is sent even
// when nothing matched [MQTT-3.10.4-5], in 5.0 with a reason per filter
// [MQTT-3.11.3-1].
func (c *conn) unsubscribe(p *packet.Unsubscribe) closeReason {
	ss := c.sess
	ack := &packet.Unsuback{PacketID: p.PacketID}
	// The UNSUBACK is written once committed, after update has set its
	// reasons.
	e, ok := c.queueAck(ack, false)
	if !ok {
		return closeReason(c.reason.Load())
	}
	v5 := c.version == packet.V5
	ss.update(func() {
		var reasons []packet.Reason
		if v5 {
			reasons = make([]packet.Reason, len(p.Filters))
		}
		for i, f := range p.Filters {
			if !ss.deleteSubLocked(f) && v5 {
				reasons[i] = packet.NoSubscriptionExisted
			}
		}
		ack.Reasons = reasons
	}, func(err error) { c.committed(e, err) })
	return closeNone
}
