package bridge

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edged/edged/broker/packet"
)

// link5 is an MQTT 5.0 upstream connection driven by edged's own codec
// (broker/packet). It keeps no store: like the paho link, the durable queue
// is edged's, and a publish cut off by a drop is sent again from it.
//
// Goroutines: a reader (acknowledgements, PUBLISH from upstream, PINGRESP),
// a writer (batches what is sent and flushes when it has nothing more,
// under a write deadline) and a pinger; all end with the connection.
type link5 struct {
	br   *Bridge
	conn net.Conn
	cs   *connState
	out  chan outPacket

	mu   sync.Mutex
	ids  map[uint16]*token5 // packet ids in use by this client
	next uint16

	recvMax  int  // the upstream's Receive Maximum [MQTT-3.3.4-7]
	maxPkt   int  // the upstream's Maximum Packet Size; 0 none [MQTT-3.1.2-24]
	maxQoS   byte // the upstream's Maximum QoS [MQTT-3.2.2-11]
	retainOK bool // the upstream's Retain Available [MQTT-3.2.2-14]
	inMax    int  // our Receive Maximum: QoS 1/2 publishes from upstream not yet acknowledged

	inflight atomic.Int32 // QoS 1/2 publishes awaiting their acknowledgement
	inbound  atomic.Int32 // QoS 1/2 publishes from upstream not yet acknowledged by us
	pong     chan struct{}
	wg       sync.WaitGroup
	closing  atomic.Bool
}

type outPacket struct {
	b   []byte
	tok *token5 // completed once written (QoS 0, DISCONNECT); nil otherwise
}

// token5 is a request awaiting its answer: an mqtt.Token, so that the
// forwarder treats both links alike.
type token5 struct {
	done   chan struct{}
	once   sync.Once
	err    error
	id     uint16
	qos    byte            // 1 or 2 for a publish; 0 for SUBSCRIBE and a released PUBREL
	sub    bool            // a SUBSCRIBE
	rel    bool            // a stale packet id's PUBREL awaiting PUBCOMP
	result []packet.Reason // SUBACK
}

var _ mqtt.Token = (*token5)(nil)

func newToken5() *token5 { return &token5{done: make(chan struct{})} }

func (t *token5) complete(err error) {
	t.once.Do(func() { t.err = err; close(t.done) })
}

func (t *token5) Wait() bool { <-t.done; return true }
func (t *token5) WaitTimeout(d time.Duration) bool {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-t.done:
		return true
	case <-tm.C:
		return false
	}
}
func (t *token5) Done() <-chan struct{} { return t.done }
func (t *token5) Error() error {
	select {
	case <-t.done:
		return t.err
	default:
		return nil
	}
}

// Reasons to give up on 5.0 in auto mode (see Config.Protocol).
var (
	errV5Refused   = errors.New("upstream refused MQTT 5.0")
	errClosedEarly = errors.New("upstream closed the connection before CONNACK")
)

// connect5 dials and performs the 5.0 handshake.
func (br *Bridge) connect5(ctx context.Context, cs *connState, acks *acker) (*link5, error) {
	c, err := br.dial(ctx, br.cur)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", br.cur.addr, err)
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	l, err := br.handshake5(c, cs, acks)
	if !stop() || err != nil {
		c.Close()
		if err == nil {
			err = ctx.Err()
		}
		if ctx.Err() == nil && br.cfg.Protocol == ProtocolAuto {
			switch {
			case errors.Is(err, errV5Refused):
				br.cur.proto = packet.V311
				br.log.Info("upstream refused MQTT 5.0; using MQTT 3.1.1 from now on", "error", err)
				return nil, errRetryNow
			case errors.Is(err, errClosedEarly):
				// Some 3.1.1 brokers just close; so does a load balancer
				// whose backend is down. Try 3.1.1 once: only a CONNACK
				// to it makes the fallback stick (see connection).
				br.cur.proto, br.cur.tentative311 = packet.V311, true
				br.log.Debug("upstream closed an MQTT 5.0 connection before CONNACK; trying MQTT 3.1.1", "error", err)
				return nil, errRetryNow
			}
		}
		return nil, fmt.Errorf("connecting to %s: %w", br.cur.addr, err)
	}
	return l, nil
}

func (br *Bridge) handshake5(c net.Conn, cs *connState, acks *acker) (*link5, error) {
	persistent := len(br.rules.in) > 0
	inMax := min(br.cfg.Window, 65535)
	rm := uint16(inMax)
	cp := &packet.Connect{
		ProtocolName: "MQTT", ProtocolLevel: byte(packet.V5),
		CleanSession: !persistent,
		KeepAlive:    uint16(br.cfg.KeepAlive / time.Second),
		ClientID:     br.cfg.ClientID,
		Properties:   &packet.Properties{ReceiveMaximum: &rm},
	}
	if persistent {
		// Clean Start 0 and a session expiry interval: the upstream session
		// and its subscriptions outlive a drop [MQTT-3.1.2-23].
		se := uint32(min(br.cfg.SessionExpiry/time.Second, time.Duration(^uint32(0))))
		cp.Properties.SessionExpiry = &se
	}
	if br.cfg.Username != "" {
		u := br.cfg.Username
		cp.Username = &u
		if br.cfg.Password != "" {
			cp.Password = []byte(br.cfg.Password)
		}
	}
	if br.cfg.NotificationTopic != "-" {
		cp.Will = &packet.Will{Topic: br.cfg.NotificationTopic, Payload: []byte("0"), QoS: 1, Retain: true}
	}
	c.SetDeadline(time.Now().Add(br.cfg.ConnectTimeout))
	if _, err := c.Write(cp.AppendTo(nil, packet.V5)); err != nil {
		return nil, fmt.Errorf("writing CONNECT: %w", err)
	}
	r := bufio.NewReaderSize(c, 32<<10)
	first, n, err := packet.ReadHeader(r)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) || isReset(err) {
			return nil, fmt.Errorf("%w: %w", errClosedEarly, err)
		}
		return nil, fmt.Errorf("reading CONNACK: %w", err)
	}
	if packet.Type(first>>4) != packet.CONNACK || n > 1<<16 {
		return nil, fmt.Errorf("upstream answered CONNECT with %v", packet.Type(first>>4))
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, fmt.Errorf("reading CONNACK: %w", err)
	}
	if n == 2 && body[1] != 0 {
		// A 3.1.1 broker answers a CONNECT of a level it does not know with
		// its return code 0x01, in its own format [MQTT-3.1.2-2].
		if body[1] == 0x01 {
			return nil, fmt.Errorf("%w: CONNACK return code 0x01", errV5Refused)
		}
		return nil, fmt.Errorf("upstream refused the connection: CONNACK return code 0x%02x", body[1])
	}
	p, err := packet.Decode(first, body, packet.V5)
	if err != nil {
		return nil, fmt.Errorf("decoding CONNACK: %w", err)
	}
	ca := p.(*packet.Connack)
	if ca.Reason == packet.UnsupportedProtocolVersion {
		return nil, fmt.Errorf("%w: CONNACK reason 0x84", errV5Refused)
	}
	if ca.Reason.IsFailure() {
		return nil, fmt.Errorf("upstream refused the connection: %v (0x%02x)", ca.Reason, byte(ca.Reason))
	}
	c.SetDeadline(time.Time{})
	l := &link5{
		br: br, conn: c, cs: cs, out: make(chan outPacket, 1024),
		ids: make(map[uint16]*token5), recvMax: 65535, maxQoS: 2, retainOK: true,
		inMax: inMax, pong: make(chan struct{}, 1),
	}
	keepAlive := br.cfg.KeepAlive
	if pr := ca.Properties; pr != nil {
		if pr.ReceiveMaximum != nil {
			l.recvMax = int(*pr.ReceiveMaximum)
		}
		if pr.MaximumPacketSize != nil && uint64(*pr.MaximumPacketSize) < uint64(packet.MaxRemainingLength)+5 {
			l.maxPkt = int(*pr.MaximumPacketSize)
		}
		if pr.MaximumQoS != nil {
			l.maxQoS = *pr.MaximumQoS
		}
		if pr.RetainAvailable != nil {
			l.retainOK = *pr.RetainAvailable == 1
		}
		if pr.ServerKeepAlive != nil {
			// The server's keep alive replaces ours [MQTT-3.2.2-21].
			keepAlive = time.Duration(*pr.ServerKeepAlive) * time.Second
		}
	}
	// PUBRELs for the QoS 2 packet ids a drop left unfinished, so the
	// upstream does not take a new publish reusing one for the duplicate
	// of the old one. They hold their ids until PUBCOMP, so no new publish
	// reuses them meanwhile (what paho needs seedStore for). Only a session
	// the upstream kept has them.
	br.recvMax5.Store(int32(l.recvMax))
	var stale []uint16
	if persistent && ca.SessionPresent {
		stale = br.cur.staleQoS2
	} else {
		br.cur.staleQoS2 = nil
	}
	l.wg.Go(func() { l.writer(keepAlive) })
	l.wg.Go(func() { l.reader(r, acks) })
	if keepAlive > 0 {
		l.wg.Go(func() { l.pinger(keepAlive) })
	}
	for _, id := range stale {
		t := newToken5()
		t.id, t.rel = id, true
		l.mu.Lock()
		l.ids[id] = t
		l.mu.Unlock()
		l.send(&packet.Pubrel{PacketID: id}, nil)
	}
	return l, nil
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && !op.Timeout()
}

// send queues p for the writer; tok, if not nil, completes once it is
// written. It fails only when the connection is down.
func (l *link5) send(p packet.Packet, tok *token5) error {
	select {
	case l.out <- outPacket{b: p.AppendTo(nil, packet.V5), tok: tok}:
		return nil
	case <-l.cs.done:
		return l.cs.err
	}
}

func (l *link5) fail(err error) { l.cs.fail(fmt.Errorf("%w: %w", ErrConnectionLost, err)) }

// writer writes what send queued, flushing when the queue is empty, each
// flush under a write deadline of the keepalive: a link that takes nothing
// for that long is dead (as paho's write timeout).
func (l *link5) writer(keepAlive time.Duration) {
	bw := bufio.NewWriterSize(l.conn, 32<<10)
	var written []*token5
	timeout := max(keepAlive, l.br.cfg.KeepAlive, time.Second)
	for {
		var o outPacket
		select {
		case o = <-l.out:
		case <-l.cs.done:
			return
		}
		// The deadline covers the whole batch: bw.Write flushes by itself
		// when its buffer fills.
		l.conn.SetWriteDeadline(time.Now().Add(timeout))
		for n := 1; ; n++ {
			bw.Write(o.b)
			if o.tok != nil {
				written = append(written, o.tok)
			}
			// A batch ends when nothing more is queued, or after 256
			// packets, so each deadline covers a bounded amount.
			if len(l.out) == 0 || n == 256 {
				break
			}
			o = <-l.out
		}
		if err := bw.Flush(); err != nil {
			l.fail(fmt.Errorf("writing: %w", err))
			return
		}
		for _, t := range written {
			t.complete(nil)
		}
		clear(written)
		written = written[:0]
	}
}

// pinger sends PINGREQ every keepalive; a PINGRESP that does not arrive
// within PingTimeout drops the connection (a half-open link).
func (l *link5) pinger(keepAlive time.Duration) {
	t := time.NewTicker(keepAlive)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-l.cs.done:
			return
		}
		select {
		case <-l.pong:
		default:
		}
		if l.send(&packet.Pingreq{}, nil) != nil {
			return
		}
		w := time.NewTimer(l.br.cfg.PingTimeout)
		select {
		case <-l.pong:
			w.Stop()
		case <-w.C:
			l.fail(errors.New("keepalive ping unanswered"))
			return
		case <-l.cs.done:
			w.Stop()
			return
		}
	}
}

// reader handles what the upstream sends until the connection fails.
func (l *link5) reader(r *bufio.Reader, acks *acker) {
	defer l.conn.Close()
	for {
		p, err := packet.Read(r, 0, packet.V5)
		if err != nil {
			if l.closing.Load() {
				err = net.ErrClosed
			}
			l.fail(fmt.Errorf("reading: %w", err))
			return
		}
		if err := l.handle(p, acks); err != nil {
			// A protocol error by the upstream: say why and drop the
			// connection [MQTT-4.13.2-1].
			l.send(&packet.Disconnect{Reason: packet.ProtocolError}, nil)
			l.fail(err)
			return
		}
	}
}

func (l *link5) take(id uint16) *token5 {
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.ids[id]
	if t != nil {
		delete(l.ids, id)
	}
	return t
}

func (l *link5) peek(id uint16) *token5 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ids[id]
}

func (l *link5) handle(p packet.Packet, acks *acker) error {
	switch p := p.(type) {
	case *packet.Puback:
		t := l.peek(p.PacketID)
		if t == nil {
			return nil // not ours (any more); nothing to complete
		}
		if t.qos != 1 {
			return fmt.Errorf("PUBACK for packet id %d, which is not a QoS 1 publish", p.PacketID)
		}
		l.take(p.PacketID)
		l.inflight.Add(-1)
		t.complete(refusal(p.Reason))
	case *packet.Pubrec:
		t := l.peek(p.PacketID)
		if t == nil {
			// An id we do not know: answer it with 0x92 so the upstream can
			// end the exchange [MQTT-4.3.3].
			return l.send(&packet.Pubrel{PacketID: p.PacketID, Reason: packet.PacketIdentifierNotFound}, nil)
		}
		if t.qos != 2 {
			return fmt.Errorf("PUBREC for packet id %d, which is not a QoS 2 publish", p.PacketID)
		}
		if p.Reason.IsFailure() {
			// The exchange ends here and the id is free [MQTT-4.3.3-4].
			l.take(p.PacketID)
			l.inflight.Add(-1)
			t.complete(refusal(p.Reason))
			return nil
		}
		return l.send(&packet.Pubrel{PacketID: p.PacketID}, nil)
	case *packet.Pubcomp:
		t := l.peek(p.PacketID)
		if t == nil {
			return nil
		}
		if t.qos != 2 && !t.rel {
			return fmt.Errorf("PUBCOMP for packet id %d, which is not a QoS 2 publish", p.PacketID)
		}
		l.take(p.PacketID)
		if !t.rel {
			l.inflight.Add(-1)
		}
		// A PUBCOMP with 0x92 (packet identifier not found) still ends the
		// exchange: the PUBREC said the upstream has the message.
		t.complete(nil)
	case *packet.Suback:
		t := l.take(p.PacketID)
		if t != nil {
			t.result = p.Reasons
			t.complete(nil)
		}
	case *packet.Publish:
		return l.inPublish(p, acks)
	case *packet.Pubrel:
		// Our PUBREC went out only once the message was durable here.
		if l.inbound.Load() > 0 {
			l.inbound.Add(-1)
		}
		return l.send(&packet.Pubcomp{PacketID: p.PacketID}, nil)
	case *packet.Pingresp:
		select {
		case l.pong <- struct{}{}:
		default:
		}
	case *packet.Disconnect:
		return fmt.Errorf("%w: upstream sent DISCONNECT: %v (0x%02x)", errUpstreamDisconnect, p.Reason, byte(p.Reason))
	default:
		return fmt.Errorf("upstream sent %v", p.Type())
	}
	return nil
}

// errUpstreamDisconnect: the upstream ended the connection with DISCONNECT.
var errUpstreamDisconnect = errors.New("disconnected by upstream")

func refusal(r packet.Reason) error {
	if r.IsFailure() {
		return &refusedError{reason: r}
	}
	return nil
}

// msg5 is a PUBLISH from upstream, an mqtt.Message for Bridge.deliver and
// the acker, which acknowledges it once it is durable locally.
type msg5 struct {
	l      *link5
	p      *packet.Publish
	props  []byte    // encoded, without the per-connection properties
	expiry time.Time // zero: none
}

var _ mqtt.Message = (*msg5)(nil)

func (m *msg5) Duplicate() bool   { return m.p.Dup }
func (m *msg5) Qos() byte         { return m.p.QoS }
func (m *msg5) Retained() bool    { return m.p.Retain }
func (m *msg5) Topic() string     { return m.p.Topic }
func (m *msg5) MessageID() uint16 { return m.p.PacketID }
func (m *msg5) Payload() []byte   { return m.p.Payload }
func (m *msg5) Ack() {
	switch m.p.QoS {
	case 1:
		m.l.inbound.Add(-1)
		m.l.send(&packet.Puback{PacketID: m.p.PacketID}, nil)
	case 2:
		m.l.send(&packet.Pubrec{PacketID: m.p.PacketID}, nil)
	}
}

func (l *link5) inPublish(p *packet.Publish, acks *acker) error {
	if p.Properties != nil && p.Properties.TopicAlias != nil {
		// We allow no topic alias (Topic Alias Maximum absent, so 0)
		// [MQTT-3.2.2-17] [MQTT-3.3.2-9].
		return errors.New("upstream sent a topic alias")
	}
	if p.QoS > 0 && int(l.inbound.Add(1)) > l.inMax {
		// [MQTT-3.3.4-9]: more unacknowledged QoS 1/2 publishes than our
		// Receive Maximum; DISCONNECT 0x93 would say so, a protocol
		// error covers it.
		return errors.New("upstream exceeded our receive maximum")
	}
	m := &msg5{l: l, p: p}
	if pr := p.Properties; pr != nil {
		if pr.MessageExpiry != nil {
			m.expiry = time.Now().Add(time.Duration(*pr.MessageExpiry) * time.Second)
		}
		// The expiry is kept as a time; subscription identifiers belong
		// to this connection.
		pr.MessageExpiry, pr.SubscriptionIDs = nil, nil
		m.props = packet.AppendProperties(nil, pr)
	}
	l.br.deliver(m, acks, l.cs)
	return nil
}

// publish implements link.
func (l *link5) publish(topic string, qos byte, retain bool, payload []byte, props *packet.Properties) (mqtt.Token, error) {
	// Never above the upstream's Maximum QoS [MQTT-3.2.2-11], never a
	// retained message where retain is not available [MQTT-3.2.2-14].
	qos = min(qos, l.maxQoS)
	retain = retain && l.retainOK
	p := &packet.Publish{QoS: qos, Retain: retain, Topic: topic, Payload: payload, Properties: props}
	if qos > 0 {
		p.PacketID = 1 // its size is the same for every id
	}
	if l.maxPkt > 0 && p.Size(packet.V5) > l.maxPkt {
		return nil, errTooLarge // [MQTT-3.1.2-24]
	}
	t := newToken5()
	if qos == 0 {
		l.send(p, t)
		return t, nil
	}
	t.qos = qos
	l.register(t)
	p.PacketID = t.id
	if n := l.inflight.Add(1); n > l.br.peak5.Load() {
		l.br.peak5.Store(n) // only the forwarder's goroutine publishes
	}
	l.send(p, nil)
	return t, nil
}

// register gives t the next packet identifier not in use and records it
// until its acknowledgement.
func (l *link5) register(t *token5) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for {
		l.next++
		if l.next == 0 {
			l.next = 1
		}
		if _, used := l.ids[l.next]; !used {
			break
		}
	}
	t.id = l.next
	l.ids[t.id] = t
}

// subscribe implements link. No Local keeps the upstream from sending our
// own publishes back (what bridge mode does over 3.1.1) [MQTT-3.8.3-3], and
// Retain As Published keeps their retain flag, as bridge mode does.
func (l *link5) subscribe(ctx context.Context, cs *connState, subs map[string]byte) error {
	s := &packet.Subscribe{}
	for f, q := range subs {
		s.Subscriptions = append(s.Subscriptions, packet.Subscription{Filter: f, QoS: min(q, l.maxQoS), NoLocal: true, RetainAsPublished: true})
	}
	t := newToken5()
	t.sub = true
	l.register(t)
	s.PacketID = t.id
	if err := l.send(s, nil); err != nil {
		return err
	}
	if err := waitToken(ctx, t, cs); err != nil {
		return err
	}
	for i, r := range t.result {
		if r.IsFailure() && i < len(s.Subscriptions) {
			return fmt.Errorf("subscribing to %q: %v: %w", s.Subscriptions[i].Filter, r, ErrSubscribeRefused)
		}
	}
	return nil
}

func (l *link5) receiveMax() int { return l.recvMax }

func (l *link5) packetID(tok mqtt.Token) uint16 {
	if t, ok := tok.(*token5); ok && t.qos == 2 {
		return t.id
	}
	return 0
}

func (l *link5) open() bool { return !l.cs.failed() }

func (*link5) version() packet.Version { return packet.V5 }

// disconnect implements link: DISCONNECT with reason 0 (normal; the will
// is not published [MQTT-3.14.4-3]).
func (l *link5) disconnect(quiesce uint) {
	l.closing.Store(true)
	if quiesce > 0 && !l.cs.failed() {
		wait := time.NewTimer(time.Duration(quiesce) * time.Millisecond)
		defer wait.Stop()
		t := newToken5()
		if l.send(&packet.Disconnect{}, t) == nil {
			select {
			case <-t.Done():
				// The upstream should close once it read the DISCONNECT
				// (MQTT 5.0 section 3.14.4); the reader drains what it
				// still sends until then. Closing first, with bytes
				// unread, would be a reset, which may discard the
				// DISCONNECT before the upstream read it: it would
				// publish the bridge's will [MQTT-3.14.4-3].
				select {
				case <-l.cs.done:
				case <-wait.C:
				}
			case <-wait.C:
			}
		}
	}
	l.conn.Close()
	l.fail(net.ErrClosed)
	l.wg.Wait()
}
