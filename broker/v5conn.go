package broker

import (
	"errors"
	"io"
	"math"
	"sync/atomic"
	"time"

	"github.com/edged/edged/broker/packet"
	"github.com/edged/edged/persist"
)

// The MQTT 5.0 connection layer: what a 5.0 CONNECT asks for and what the
// broker grants in CONNACK, session expiry, server-initiated DISCONNECT,
// receive maximum and maximum packet size. See doc.go, "MQTT 5.0".

// disconnectDrain bounds how long a connection that was sent a DISCONNECT
// is read from (and the bytes discarded) after its write side is closed,
// so that the client reads the DISCONNECT instead of a reset caused by
// unread bytes; disconnectDrainBytes bounds how much is read.
const (
	disconnectDrain      = 500 * time.Millisecond
	disconnectDrainBytes = 4 << 20
)

// connV5 is the 5.0 state of a connection. The fields above in2 are set
// by the reader at CONNECT, before the connection is attached to its
// session, and never change: whoever reaches the connection through its
// session may read them.
type connV5 struct {
	// sendMax is the client's Receive Maximum: the most QoS 1 and 2
	// messages the broker may have in flight to it (65535 when absent).
	sendMax uint16
	// maxOut is the client's Maximum Packet Size; 0: no limit but the
	// protocol's.
	maxOut uint32
	// problemInfo is the client's Request Problem Information (true when
	// absent): false forbids reason strings and user properties on
	// anything but PUBLISH, CONNACK and DISCONNECT [MQTT-3.1.2-29].
	problemInfo bool
	// connectExpiry is the Session Expiry Interval the CONNECT asked for.
	connectExpiry uint32
	// willDelay is the will's Will Delay Interval, seconds.
	willDelay uint32

	// in2 holds the QoS 2 packet ids received on this connection and
	// counted against the receive maximum until their PUBCOMP. Reader
	// only.
	in2 map[uint16]struct{}
	// recvIn counts the QoS 1 and 2 PUBLISH packets received and not yet
	// answered (PUBACK, PUBCOMP) [MQTT-3.3.4-8] [MQTT-3.3.4-9].
	recvIn atomic.Int32
	// sentDisconnect is set once a DISCONNECT is queued: the connection
	// is half-closed and drained before it is closed (see cleanup).
	sentDisconnect atomic.Bool
}

// ReceiveMaximum is the broker's Receive Maximum: Limits.ReceiveMaximum, or
// MaxInflight when that is 0, at most 65535.
func (l *Limits) receiveMaximum() uint16 {
	n := l.ReceiveMaximum
	if n <= 0 {
		n = l.MaxInflight
	}
	return uint16(min(n, math.MaxUint16))
}

// advertisedPacketSize is the Maximum Packet Size edged advertises: the
// total size of a packet whose remaining length is MaxPacketSize, so that
// every packet within it is accepted [MQTT-3.2.2.3.6].
func advertisedPacketSize(maxRemaining int) uint32 {
	n := 1
	for v := maxRemaining; v >= 128; v /= 128 {
		n++
	}
	return uint32(1 + n + maxRemaining)
}

func u16(v uint16) *uint16 { return &v }
func u32(v uint32) *uint32 { return &v }
func u8(v byte) *byte      { return &v }

// connectV5 reads the 5.0 CONNECT properties into c.v5 and returns the
// session expiry to use (capped by Limits.SessionExpiry), the keepalive
// granted, and the CONNACK properties that say so. It refuses enhanced
// authentication (an Authentication Method) with 0x8C: edged does not
// support it [MQTT-4.12.0-1].
func (c *conn) connectV5(p *packet.Connect) (expiry uint32, keepAlive uint16, props *packet.Properties, refuse packet.Reason) {
	l := &c.s.cfg.Limits
	v := &c.v5
	v.sendMax, v.problemInfo = math.MaxUint16, true
	v.in2 = make(map[uint16]struct{})
	keepAlive = p.KeepAlive
	props = &packet.Properties{}
	if pp := p.Properties; pp != nil {
		if pp.AuthMethod != "" {
			return 0, 0, nil, packet.BadAuthenticationMethod
		}
		if pp.ReceiveMaximum != nil {
			v.sendMax = *pp.ReceiveMaximum // 0 is refused by the codec
		}
		if pp.MaximumPacketSize != nil {
			v.maxOut = *pp.MaximumPacketSize
		}
		if pp.RequestProblemInfo != nil {
			v.problemInfo = *pp.RequestProblemInfo != 0
		}
		if pp.SessionExpiry != nil {
			v.connectExpiry = *pp.SessionExpiry
		}
	}
	if p.Will != nil && p.Will.Properties != nil && p.Will.Properties.WillDelay != nil {
		v.willDelay = *p.Will.Properties.WillDelay
	}
	expiry = c.s.capExpiry(v.connectExpiry)
	if expiry != v.connectExpiry {
		// The server's value goes back in CONNACK [MQTT-3.2.2.3.2].
		props.SessionExpiry = u32(expiry)
	}
	if max := l.MaxKeepalive; max > 0 {
		// A 5.0 client asking for more (or for none) is told the maximum
		// in Server Keep Alive and must use it [MQTT-3.2.2-21].
		if m := uint16(max / time.Second); keepAlive == 0 || keepAlive > m {
			keepAlive = m
			props.ServerKeepAlive = u16(m)
		}
	}
	if rm := l.receiveMaximum(); rm != math.MaxUint16 {
		props.ReceiveMaximum = u16(rm)
	}
	props.MaximumPacketSize = u32(advertisedPacketSize(l.MaxPacketSize))
	// The Topic Alias Maximum the client may use [MQTT-3.2.2-17] (absent
	// means 0; limits.topic_alias_maximum, see alias.go).
	if l.TopicAliasMaximum > 0 {
		props.TopicAliasMaximum = u16(uint16(min(l.TopicAliasMaximum, math.MaxUint16)))
	}
	// Retained messages, wildcards, subscription identifiers and shared
	// subscriptions are available (the default when absent; said anyway,
	// for clients that log it); maximum QoS is 2 and is therefore not
	// sent [MQTT-3.2.2-9].
	props.RetainAvailable = u8(1)
	props.WildcardSubAvailable = u8(1)
	props.SubIDAvailable = u8(1)
	props.SharedSubAvailable = u8(1)
	return expiry, keepAlive, props, packet.Success
}

// capExpiry applies Limits.SessionExpiry to a Session Expiry Interval.
func (s *Server) capExpiry(e uint32) uint32 {
	if max := s.cfg.Limits.SessionExpiry; max > 0 {
		if m := uint32(min(max/time.Second, math.MaxUint32-1)); e > m {
			return m
		}
	}
	return e
}

// disconnectReason is the DISCONNECT reason code a 5.0 client is told
// when the broker closes its connection for r, and false when it is told
// nothing (the client left, or the connection cannot be written to).
func disconnectReason(r closeReason) (packet.Reason, bool) {
	switch r {
	case closeTakeover:
		return packet.SessionTakenOver, true
	case closeKeepalive:
		return packet.KeepAliveTimeout, true
	case closeShutdown:
		return packet.ServerShuttingDown, true
	case closeProtocol:
		return packet.ProtocolError, true
	case closeMalformed:
		return packet.MalformedPacket, true
	case closeTooLarge:
		return packet.PacketTooLarge, true
	case closeRecvMax:
		return packet.ReceiveMaximumExceeded, true
	case closeOperator:
		return packet.AdministrativeAction, true
	case closeStoreError:
		return packet.ImplementationSpecificError, true
	}
	return 0, false
}

// end closes the connection for r. A 5.0 client is first sent a DISCONNECT
// with the reason (never a 3.1.1 one, which has none): the writer flushes it,
// then closes [MQTT-4.13.1-1]. It may be called from any goroutine, with
// locks held: it does not block.
func (c *conn) end(r closeReason) {
	if c.draining.Load() {
		// Already closing (refused, or told why before): its last packet
		// is queued, and a second DISCONNECT must not follow it.
		return
	}
	code, ok := disconnectReason(r)
	c.outMu.Lock()
	v5 := c.version == packet.V5 && c.acked
	c.outMu.Unlock()
	if !ok || !v5 || c.isClosed() {
		if r == closeShutdown {
			c.drainAndClose(r)
		} else {
			c.close(r)
		}
		return
	}
	c.sendDisconnect(code, r.String(), r)
}

// sendDisconnect queues a 5.0 DISCONNECT with code and the reason string
// why as the connection's last packet, and closes it for r once written;
// cleanup then drains the half-closed socket (halfCloseDrain).
func (c *conn) sendDisconnect(code packet.Reason, why string, r closeReason) {
	// A reason string is allowed on DISCONNECT whatever Request Problem
	// Information says [MQTT-3.1.2-29].
	d := &packet.Disconnect{Reason: code, Properties: &packet.Properties{ReasonString: why}}
	if c.v5.maxOut > 0 && uint32(len(d.AppendTo(nil, packet.V5))) > c.v5.maxOut {
		d.Properties = nil // [MQTT-3.14.2-3]
	}
	c.reason.CompareAndSwap(int32(closeNone), int32(r))
	// Pushed whatever the queue holds: it is the last packet.
	if c.push(d, math.MaxInt, math.MaxInt64) {
		c.v5.sentDisconnect.Store(true)
	}
	c.drainAndClose(r)
}

// halfCloseDrain runs in cleanup after a DISCONNECT was written: it closes
// the write side and reads what the client still sends, briefly, so that
// closing does not reset a connection whose client has not read the
// DISCONNECT yet.
func (c *conn) halfCloseDrain() {
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
		c.nc.SetWriteDeadline(time.Now().Add(disconnectDrain))
		cw.CloseWrite()
	}
	c.nc.SetReadDeadline(time.Now().Add(disconnectDrain))
	io.Copy(io.Discard, io.LimitReader(c.nc, disconnectDrainBytes))
}

// countInbound counts a QoS 1 or 2 PUBLISH of a 5.0 client against the
// broker's Receive Maximum; it reports false, and the client is
// disconnected with 0x93, when the client exceeds it [MQTT-3.3.4-9]. A
// QoS 2 re-send of an id still counted is not counted again.
func (c *conn) countInbound(p *packet.Publish) (counted, ok bool) {
	if c.version != packet.V5 || p.QoS == 0 {
		return false, true
	}
	if p.QoS == 2 {
		if _, seen := c.v5.in2[p.PacketID]; seen {
			return false, true
		}
	}
	if n := c.v5.recvIn.Add(1); int(n) > int(c.s.cfg.Limits.receiveMaximum()) {
		c.v5.recvIn.Add(-1)
		return false, false
	}
	if p.QoS == 2 {
		c.v5.in2[p.PacketID] = struct{}{}
	}
	return true, true
}

// tooBigFor reports whether p is larger than the client's Maximum Packet
// Size: such a message is not sent to it [MQTT-3.1.2-24] but dropped for
// that client and counted [MQTT-3.1.2-25].
func (c *conn) tooBigFor(p *packet.Publish) bool {
	// A packet is at most 268,435,460 bytes: int64 holds it on 32-bit
	// platforms too.
	return c.v5.maxOut > 0 && int64(p.Size(c.version)) > int64(c.v5.maxOut)
}

// errSessionExpiryFromZero is the protocol error of a DISCONNECT that sets
// a session expiry when CONNECT set none [MQTT-3.14.2-2].
var errSessionExpiryFromZero = errors.New("DISCONNECT sets a session expiry interval after CONNECT set 0")

// disconnected handles a 5.0 client's DISCONNECT: a new Session Expiry
// Interval (not allowed if CONNECT's was 0), and reason 0x04, which
// publishes the will [MQTT-3.14.4-3].
func (c *conn) disconnected(p *packet.Disconnect) closeReason {
	if c.version != packet.V5 {
		return closeDisconnect
	}
	if pp := p.Properties; pp != nil && pp.SessionExpiry != nil {
		if c.v5.connectExpiry == 0 && *pp.SessionExpiry != 0 {
			c.log.Info("closing connection", "error", errSessionExpiryFromZero)
			return closeProtocol
		}
		e := c.s.capExpiry(*pp.SessionExpiry)
		ss := c.sess
		ss.update(func() {
			if ss.conn == c {
				ss.expiry = e
				ss.opLocked(ss.putSessionOp(0))
			}
		}, nil)
	}
	if p.Reason == packet.DisconnectWithWill {
		return closeDisconnectWill
	}
	return closeDisconnect
}

// putSessionOp is the store record of the session's info.
func (ss *session) putSessionOp(lastSeen int64) persist.PutSession {
	return persist.PutSession{ClientID: ss.id, LastSeen: lastSeen, Version: ss.version, ExpiryInterval: ss.expiry}
}

// endsLocked reports whether the session ends with its connection: a
// clean session, or a Session Expiry Interval of 0.
func (ss *session) endsLocked() bool { return ss.clean || ss.expiry == 0 }

// pendingWill is a will to publish with its client's identity (checked
// against the Authorizer like any will).
type pendingWill struct {
	msg  *message
	info ClientInfo
}

// takeWillLocked hands a waiting will to Server.endedWills: its session
// ends (expiry, clean start, discard) before the will's delay has passed,
// and a will goes out when its session ends [MQTT-3.1.3-9]. It needs
// routeMu.
func (ss *session) takeWillLocked() {
	if ss.will != nil {
		ss.s.endedWills = append(ss.s.endedWills, pendingWill{ss.will, ss.owner})
		ss.will, ss.willDue = nil, 0
	}
}

// publishWill routes will m of the client ci, if ci may publish to its
// topic, as published now: at the end of its connection or when its delay
// is over.
func (s *Server) publishWill(ci *ClientInfo, m *message) {
	if s.mayPublish(ci, m.topic, true) {
		s.route(m.willAt(time.Now().UnixNano()), nil, nil, nil)
	}
}

// publishDueWills publishes the wills of ended sessions and, if scan is
// set, those whose delay has passed (housekeeping, every second).
func (s *Server) publishDueWills(scan bool) {
	now := time.Now().UnixNano()
	s.routeMu.Lock()
	wills := s.endedWills
	s.endedWills = nil
	var stored []*session // persistent sessions whose stored will went out
	if scan {
		s.mu.Lock()
		for _, ss := range s.sessions {
			ss.mu.Lock()
			if ss.will != nil && ss.conn == nil && ss.willDue <= now {
				wills = append(wills, pendingWill{ss.will, ss.owner})
				ss.will, ss.willDue = nil, 0
				if ss.persistent() {
					stored = append(stored, ss)
				}
			}
			ss.mu.Unlock()
		}
		s.mu.Unlock()
	}
	s.routeMu.Unlock()
	for _, w := range wills {
		s.publishWill(&w.info, w.msg)
	}
	if len(stored) > 0 {
		// Removed from the store after the wills were routed, in the
		// same or a later commit than theirs: a crash in between
		// publishes a will twice rather than never. Not if the client
		// came back and left a new delayed will meanwhile.
		s.routeMu.Lock()
		for _, ss := range stored {
			ss.mu.Lock()
			if ss.will == nil {
				s.pendingOps = append(s.pendingOps, persist.SetWill{ClientID: ss.id})
			}
			ss.mu.Unlock()
		}
		s.commitLocked(nil)
		s.routeMu.Unlock()
	}
}
