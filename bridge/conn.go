package bridge

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/edged/edged/broker/packet"
)

// closedChan is a closed channel: there is nothing to wait for.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func protoName(v packet.Version) string {
	if v == packet.V5 {
		return Protocol5
	}
	return Protocol311
}

// connState ends one upstream connection: the first failure closes done.
type connState struct {
	done chan struct{}
	once sync.Once
	err  error
}

func newConnState() *connState { return &connState{done: make(chan struct{})} }

func (cs *connState) fail(err error) {
	cs.once.Do(func() {
		cs.err = err
		close(cs.done)
	})
}

// is reports whether the connection ended with an error that is target.
func (cs *connState) is(target error) bool { return cs.failed() && errors.Is(cs.err, target) }

func (cs *connState) failed() bool {
	select {
	case <-cs.done:
		return true
	default:
		return false
	}
}

// connection runs one upstream connection: connect, announce, subscribe,
// forward until it fails or ctx is done. upAt is when it was established
// (zero if it never was).
func (br *Bridge) connection(ctx context.Context) (upAt time.Time, err error) {
	cs := newConnState()
	acks := newAcker()
	var (
		client     link
		seedsEmpty <-chan struct{}
	)
	if br.cur.proto == packet.V5 {
		l, err := br.connect5(ctx, cs, acks)
		if err != nil {
			return time.Time{}, err
		}
		client, seedsEmpty = l, closedChan
	} else {
		c, seeds, err := br.connect(ctx, cs, acks)
		if err != nil {
			if br.cur.tentative311 && !errors.Is(err, errRetryNow) {
				// 3.1.1 got no CONNACK either: the upstream is down, not
				// 3.1.1-only. Back to 5.0.
				br.cur.proto, br.cur.tentative311 = packet.V5, false
			}
			return time.Time{}, err
		}
		if br.cur.tentative311 {
			br.cur.tentative311 = false
			br.log.Info("upstream closed MQTT 5.0 connections but accepted MQTT 3.1.1; using MQTT 3.1.1 from now on")
		}
		client, seedsEmpty = pahoLink{c}, seeds.empty
	}
	upAt = time.Now()
	// paho does not claim the ids of the PUBRELs it resends: send nothing
	// that takes a packet id before every one of them got its PUBCOMP.
	// An upstream that never completes them is treated like a failed
	// connection attempt.
	seedWait := time.NewTimer(br.cfg.ConnectTimeout)
	select {
	case <-seedsEmpty:
		seedWait.Stop()
	case <-seedWait.C:
		client.disconnect(0)
		return upAt, errors.New("upstream did not complete the re-sent PUBRELs")
	case <-cs.done:
		seedWait.Stop()
		client.disconnect(0)
		return upAt, cs.err
	case <-ctx.Done():
		seedWait.Stop()
		client.disconnect(0)
		return upAt, nil
	}

	var wg sync.WaitGroup
	wg.Go(func() { acks.run(cs.done) })
	if br.cur != br.targets[0] && br.cfg.Failover == FailoverPriority {
		wg.Go(func() { br.watchPrimary(ctx, cs) })
	}
	defer func() {
		br.setConnected(false)
		if ctx.Err() != nil && !cs.failed() || cs.is(errPrimaryBack) || errors.Is(err, errIdle) {
			// A clean stop, a switch back to the first address or a lazy
			// bridge going idle: say so, since the will is not published
			// after DISCONNECT.
			if br.cfg.NotificationTopic != "-" {
				if t, err := client.publish(br.cfg.NotificationTopic, 1, true, []byte("0"), nil); err == nil {
					t.WaitTimeout(time.Second)
				}
			}
			client.disconnect(250)
		} else {
			client.disconnect(0)
		}
		cs.fail(ErrConnectionLost) // stop the acker
		wg.Wait()
	}()

	// An upstream that does not know bridge mode may accept the CONNECT
	// and then drop the connection (mochi-mqtt does): if the connection
	// fails after a first request went out and before its answer, use plain
	// MQTT 3.1.1 from now on. A drop with nothing asked (no notification
	// topic, no in rules, an empty queue) says nothing about bridge mode.
	confirmed, probed := false, false
	probe := func() { probed = true }
	confirm := func() {
		if !confirmed {
			confirmed = true
			// The PUBRELs for stale QoS 2 ids went out before this round
			// trip, so the upstream broker has them.
			br.cur.staleQoS2 = nil
		}
	}
	defer func() {
		if err != nil && probed && !confirmed && br.cur.private && br.cur.proto != packet.V5 && ctx.Err() == nil && time.Since(upAt) < time.Second {
			br.cur.private = false
			br.log.Info("upstream dropped a bridge-mode connection (protocol level 0x84); using plain MQTT 3.1.1", "error", err)
			err = fmt.Errorf("%w: %w", errRetryNow, err)
		}
	}()
	if br.cfg.NotificationTopic != "-" {
		// This QoS 1 round trip also waits out the PUBCOMPs of the PUBRELs
		// re-sent for stale QoS 2 packet ids (see store.go).
		probe()
		t, err := client.publish(br.cfg.NotificationTopic, 1, true, []byte("1"), nil)
		if err == nil {
			err = waitToken(ctx, t, cs)
		}
		if err != nil {
			return upAt, fmt.Errorf("publishing state: %w", err)
		}
		confirm()
	}
	if subs := br.rules.subscriptions(); len(subs) > 0 {
		probe()
		if err := client.subscribe(ctx, cs, subs); err != nil {
			return upAt, fmt.Errorf("subscribing: %w", err)
		}
		confirm()
	}
	br.log.Info("upstream connected", "address", br.cur.addr, "client_id", br.cfg.ClientID, "protocol", protoName(client.version()))
	br.protoUp.Store(uint32(client.version()))
	br.setConnected(true)
	return upAt, br.forward(ctx, client, cs, probe, confirm)
}

// watchPrimary checks every PrimaryRetry whether the first address accepts
// connections and then ends the connection cs with errPrimaryBack, so Run
// switches back to it. It returns when cs ends or ctx is done.
//
// The check sends no CONNECT (that would take over or disturb the
// bridge's session there): it dials (with the TLS handshake for tls://) and
// then expects silence for primaryQuiet, as an MQTT server waiting for
// CONNECT keeps; a connection closed or reset at once (a load balancer
// with no backend, a proxy refusing) is not back.
func (br *Bridge) watchPrimary(ctx context.Context, cs *connState) {
	t := time.NewTicker(br.cfg.PrimaryRetry)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-cs.done:
			return
		case <-t.C:
		}
		c, err := br.dial(ctx, br.targets[0]) // bounded by ConnectTimeout
		if err == nil {
			c.SetReadDeadline(time.Now().Add(primaryQuiet))
			var b [1]byte
			_, err = c.Read(b[:])
			c.Close()
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				cs.fail(errPrimaryBack)
				return
			}
			if err == nil {
				err = errors.New("it sent data before CONNECT")
			}
		}
		br.log.Debug("the first upstream address is still down", "address", br.targets[0].addr, "error", err)
	}
}

// primaryQuiet is how long the first address must keep a new connection
// open and silent to count as back (see watchPrimary).
const primaryQuiet = 200 * time.Millisecond

// connect dials and performs the MQTT handshake with a new paho client.
// paho is transport only: no automatic reconnect, no store of its own.
func (br *Bridge) connect(ctx context.Context, cs *connState, acks *acker) (mqtt.Client, *seedStore, error) {
	persistent := len(br.rules.in) > 0
	var (
		mu       sync.Mutex
		stopKill func() bool
	)
	dialCtx, cancel := context.WithCancel(ctx)
	defer cancel()

	opts := mqtt.NewClientOptions()
	opts.AddBroker("tcp://" + br.cur.host) // dialled by the function below
	opts.SetClientID(br.cfg.ClientID)
	if br.cfg.Username != "" {
		opts.SetUsername(br.cfg.Username)
		opts.SetPassword(br.cfg.Password)
	}
	opts.SetCleanSession(!persistent)
	opts.SetKeepAlive(br.cfg.KeepAlive)
	opts.SetPingTimeout(br.cfg.PingTimeout)
	opts.SetConnectTimeout(br.cfg.ConnectTimeout)
	opts.SetWriteTimeout(br.cfg.KeepAlive)
	opts.SetAutoReconnect(false)
	opts.SetConnectRetry(false)
	opts.SetResumeSubs(false)
	opts.SetOrderMatters(true)
	opts.SetAutoAckDisabled(true)
	if br.cur.private {
		opts.SetProtocolVersion(0x84) // bridge mode: no echo of our publishes
	} else {
		opts.SetProtocolVersion(4)
	}
	var stale []uint16
	if persistent {
		stale = br.cur.staleQoS2
	}
	seeds := newSeedStore(stale)
	opts.SetStore(seeds)
	if br.cfg.NotificationTopic != "-" {
		opts.SetBinaryWill(br.cfg.NotificationTopic, []byte("0"), 1, true)
	}
	opts.SetCustomOpenConnectionFn(func(*url.URL, mqtt.ClientOptions) (net.Conn, error) {
		raw, err := br.dial(dialCtx, br.cur)
		if err != nil {
			return nil, err
		}
		c := newBufConn(raw, br.cfg.KeepAlive) // paho's write timeout

		mu.Lock()
		stopKill = context.AfterFunc(dialCtx, func() { c.Close() })
		mu.Unlock()
		return c, nil
	})
	// Messages of a persistent session can arrive before SUBSCRIBE is
	// even sent, so every message goes through the default handler.
	opts.SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { br.deliver(m, acks, cs) })
	opts.SetConnectionLostHandler(func(_ mqtt.Client, err error) {
		cs.fail(fmt.Errorf("%w: %w", ErrConnectionLost, err))
	})

	client := mqtt.NewClient(opts)
	t := client.Connect()
	<-t.Done() // bounded by ConnectTimeout, and by ctx through dialCtx
	mu.Lock()
	if stopKill != nil {
		stopKill()
	}
	mu.Unlock()
	if err := t.Error(); err != nil {
		if br.cur.private && errors.Is(err, packets.ErrorRefusedBadProtocolVersion) {
			br.cur.private = false
			br.log.Info("upstream refused bridge mode (protocol level 0x84); using plain MQTT 3.1.1", "error", err)
			return nil, nil, errRetryNow
		}
		return nil, nil, fmt.Errorf("connecting to %s: %w", br.cur.addr, err)
	}
	if ctx.Err() != nil {
		client.Disconnect(0)
		return nil, nil, ctx.Err()
	}
	return client, seeds, nil
}

func (br *Bridge) dial(ctx context.Context, t *target) (net.Conn, error) {
	d := net.Dialer{Timeout: br.cfg.ConnectTimeout}
	c, err := d.DialContext(ctx, "tcp", t.host)
	if err != nil {
		return nil, fmt.Errorf("dialing: %w", err)
	}
	if t.tls == nil {
		return c, nil
	}
	tc := tls.Client(c, t.tls)
	hctx, cancel := context.WithTimeout(ctx, br.cfg.ConnectTimeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("handshaking TLS: %w", err)
	}
	return tc, nil
}

func waitToken(ctx context.Context, t mqtt.Token, cs *connState) error {
	select {
	case <-t.Done():
		if err := t.Error(); err != nil {
			return err
		}
		if cs.failed() {
			return cs.err
		}
		return nil
	case <-cs.done:
		return cs.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// deliver runs on paho's router goroutine for every message from
// upstream: it publishes it locally and acknowledges it upstream only once
// it is durable here.
func (br *Bridge) deliver(m mqtt.Message, acks *acker, cs *connState) {
	p := acks.add(m)
	local, qos, ok := br.rules.mapIn(m.Topic(), m.Qos())
	if !ok {
		br.log.Debug("dropping upstream message no in rule matches", "topic", m.Topic())
		acks.ready(p)
		return
	}
	done := func(err error) {
		if err != nil {
			cs.fail(fmt.Errorf("%w: %w", ErrLocalPublish, err))
			return
		}
		acks.ready(p)
	}
	if m5, ok := m.(*msg5); ok && (m5.props != nil || !m5.expiry.IsZero()) {
		if b5, ok := br.broker.(Publisher5); ok {
			b5.PublishFrom5(br.cfg.Name, local, m.Payload(), qos, m.Retained(), m5.props, m5.expiry, done)
			return
		}
	}
	br.broker.PublishFrom(br.cfg.Name, local, m.Payload(), qos, m.Retained(), done)
}

// acker acknowledges upstream messages in the order they arrived
// [MQTT-4.6.0-2], each once it is durable locally. Local done callbacks run
// on the store's goroutine and must not block, and paho's Ack can, so the
// acks go through this queue to a goroutine of their own.
type acker struct {
	mu   sync.Mutex
	q    []*pendingAck
	wake chan struct{}
}

type pendingAck struct {
	m     mqtt.Message
	ready bool
}

func newAcker() *acker { return &acker{wake: make(chan struct{}, 1)} }

func (a *acker) add(m mqtt.Message) *pendingAck {
	p := &pendingAck{m: m}
	a.mu.Lock()
	a.q = append(a.q, p)
	a.mu.Unlock()
	return p
}

func (a *acker) ready(p *pendingAck) {
	a.mu.Lock()
	p.ready = true
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// run acks until stop is closed; what is left is resent by upstream.
func (a *acker) run(stop <-chan struct{}) {
	var batch []mqtt.Message
	for {
		select {
		case <-stop:
			return
		case <-a.wake:
		}
		a.mu.Lock()
		i := 0
		for i < len(a.q) && a.q[i].ready {
			batch = append(batch, a.q[i].m)
			a.q[i] = nil
			i++
		}
		a.q = a.q[i:]
		a.mu.Unlock()
		for _, m := range batch {
			m.Ack()
		}
		clear(batch)
		batch = batch[:0]
	}
}

// seedStore is the paho Store of one connection. It stores nothing: the
// durable queue is edged's. It only holds PUBREL packets for the packet ids
// of QoS 2 publishes that a dropped connection left unfinished, which paho
// sends right after CONNACK on a persistent session: otherwise the
// upstream broker would take a new publish that reuses such an id for the
// duplicate of the old one and drop it.
type seedStore struct {
	mu    sync.Mutex
	keys  []string // in the order the publishes were first sent
	pkts  map[string]packets.ControlPacket
	empty chan struct{} // closed once every seeded PUBREL got its PUBCOMP
}

var _ mqtt.Store = (*seedStore)(nil)

// newSeedStore seeds PUBRELs for ids, in order: the upstream broker
// releases the messages it holds in the order of the PUBRELs.
func newSeedStore(ids []uint16) *seedStore {
	s := &seedStore{pkts: make(map[string]packets.ControlPacket, len(ids)), empty: make(chan struct{})}
	for _, id := range ids {
		p := packets.NewControlPacket(packets.Pubrel).(*packets.PubrelPacket)
		p.MessageID = id
		k := "o." + strconv.Itoa(int(id))
		if _, dup := s.pkts[k]; !dup {
			s.keys = append(s.keys, k)
		}
		s.pkts[k] = p
	}
	s.checkEmpty()
	return s
}

func (s *seedStore) Open()                                   {}
func (s *seedStore) Close()                                  {}
func (s *seedStore) Put(key string, _ packets.ControlPacket) {}

func (s *seedStore) Get(key string) packets.ControlPacket {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pkts[key]
}

func (s *seedStore) All() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]string, 0, len(s.pkts))
	for _, k := range s.keys {
		if _, ok := s.pkts[k]; ok {
			keys = append(keys, k)
		}
	}
	return keys
}

func (s *seedStore) Del(key string) {
	s.mu.Lock()
	delete(s.pkts, key)
	s.checkEmpty()
	s.mu.Unlock()
}

func (s *seedStore) Reset() {
	s.mu.Lock()
	clear(s.pkts)
	s.keys = nil
	s.checkEmpty()
	s.mu.Unlock()
}

func (s *seedStore) checkEmpty() {
	if len(s.pkts) == 0 {
		select {
		case <-s.empty:
		default:
			close(s.empty)
		}
	}
}
