package bridge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edged/edged/broker/packet"
	"github.com/edged/edged/persist"
)

// Broker is what a bridge needs of the local broker. *broker.Server
// implements it.
type Broker interface {
	// AddTap makes routing append every message whose topic matches one
	// of filters and that accept takes, except those published with
	// origin, to q, in the commit that stores the message, before its
	// publisher is acknowledged. notify is called after each such commit
	// and must not block.
	AddTap(origin string, q *persist.Queue, filters []string, accept func(m *persist.Message) bool, notify func()) error
	// PublishFrom publishes a message locally through normal routing;
	// the taps of origin skip it. done is called once it is durable.
	PublishFrom(origin, topic string, payload []byte, qos byte, retain bool, done func(error))
}

// Queues are the durable queues of one bridge, opened with OpenQueues in
// the store the broker commits to.
type Queues struct {
	Normal *persist.Queue // QueueName(name)
	High   *persist.Queue // HighQueueName(name); nil unless a rule has priority high
}

// OpenQueues opens the durable queues of the bridge cfg with open (the
// Queue method of the broker's store, *persist.DB or *persist.Memory),
// each with cfg.Queue's limits. cmd/edged calls it once per bridge and
// hands the result to New, which gives the queues to the broker's taps and
// reads them.
func OpenQueues(cfg Config, open func(name string, l persist.QueueLimits) *persist.Queue) Queues {
	qs := Queues{Normal: open(QueueName(cfg.Name), cfg.Queue)}
	if newRules(cfg.Topics).hasHigh() {
		qs.High = open(HighQueueName(cfg.Name), cfg.Queue)
	}
	return qs
}

// fifo is what the forwarder needs of a durable queue; *persist.Queue is
// one (a test substitutes one whose deletes race with reads).
type fifo interface {
	Read(afterSeq uint64, max int) ([]persist.Entry, error)
	Delete(seqs []uint64, done func(error))
	Stats() persist.QueueStats
	Expire(now time.Time) (int64, error)
}

// Publisher5 is implemented by a Broker that carries MQTT 5.0 properties:
// the bridge publishes messages that came down an in rule with it, so
// they keep their properties and their remaining expiry (zero: none).
// props is an encoded property block as in persist.Message.Properties. Without it,
// such messages are published with PublishFrom and lose their properties.
type Publisher5 interface {
	PublishFrom5(origin, topic string, payload []byte, qos byte, retain bool, props []byte, expiry time.Time, done func(error))
}

// ErrRunning is returned by Run when the bridge is already running.
var ErrRunning = errors.New("bridge: already running")

// errRetryNow asks Run to reconnect without waiting (a protocol fallback).
var errRetryNow = errors.New("bridge: retrying at once")

// errPrimaryBack ends a connection to another address than the first once
// the first accepts connections again (FailoverPriority).
var errPrimaryBack = errors.New("bridge: the first upstream address is back")

// errIdle ends the connection of a lazy bridge that had nothing to send
// for IdleTimeout.
var errIdle = errors.New("bridge: idle")

// Bridge forwards messages between the local broker and one upstream
// broker. Create it with New before the local broker serves clients, then
// call Run once.
type Bridge struct {
	cfg    Config
	rules  rules
	broker Broker
	queues Queues
	normal *lane // Queues.Normal
	high   *lane // Queues.High; nil without priority: high rules
	latest *latest
	log    *slog.Logger
	// targets are the upstream addresses in configuration order.
	targets []*target

	sysWake chan struct{} // 1-buffered; the connection state changed
	running atomic.Bool

	connected atomic.Bool
	address   atomic.Pointer[string] // of the connection up; nil when down
	since     atomic.Int64           // Unix nanoseconds of the last change of connected
	sent      atomic.Uint64          // messages acknowledged upstream (or written, QoS 0)
	expired   atomic.Uint64          // messages dropped because their message expiry passed while queued
	oversize  atomic.Uint64          // messages dropped as larger than the upstream's maximum packet size
	refused   atomic.Uint64          // messages the upstream refused with a 5.0 reason code
	protoUp   atomic.Uint32          // packet.Version of the last connection established; 0 none yet
	peak5     atomic.Int32           // the most QoS 1/2 publishes ever awaiting acknowledgement on a 5.0 link
	recvMax5  atomic.Int32           // the Receive Maximum of the last 5.0 connection
	sentBytes atomic.Uint64          // their topic and payload bytes
	purged    atomic.Uint64          // messages deleted by Purge
	hourly    *hourly                // of sentBytes

	// Owned by the Run goroutine.
	cur *target // of the connection being made or up
}

// target is one upstream address with what the bridge learnt about it.
// Its mutable fields are owned by the Run goroutine.
type target struct {
	addr    string      // as configured
	host    string      // host:port to dial
	tls     *tls.Config // nil for tcp://
	private bool        // try MQTT bridge mode (protocol level 0x84), 3.1.1 only
	// proto is the protocol to connect with (auto: 5 until this address
	// refuses it; each address may be a different broker).
	proto packet.Version
	// tentative311: auto mode is trying 3.1.1 after a 5.0 connection to
	// this address was closed before CONNACK; it sticks only if 3.1.1 gets
	// a CONNACK.
	tentative311 bool
	staleQoS2    []uint16 // packet ids of QoS 2 publishes cut off by a drop
	// lastLogged is the connect error last logged at Warn for this address.
	lastLogged string
}

// New checks cfg, reads its TLS files, sets the queue's limits and
// registers the tap of the out rules with b. Call it before b serves
// clients, so that no message published before is missed.
func New(cfg Config, b Broker, qs Queues) (*Bridge, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("configuring bridge %q: %w", cfg.Name, err)
	}
	cfg = cfg.withDefaults()
	br := &Bridge{
		cfg:     cfg,
		rules:   newRules(cfg.Topics),
		broker:  b,
		queues:  qs,
		log:     cfg.Logger.With("bridge", cfg.Name),
		sysWake: make(chan struct{}, 1),
		hourly:  newHourly(time.Now(), 0),
	}
	if qs.Normal == nil || br.rules.hasHigh() && qs.High == nil {
		return nil, fmt.Errorf("configuring bridge %q: its queues are not open (see OpenQueues)", cfg.Name)
	}
	br.normal = newLane("normal", qs.Normal, br.log)
	if qs.High != nil {
		br.high = newLane("high", qs.High, br.log)
	}
	br.latest = newLatest(cfg.Queue)
	for _, a := range cfg.Addresses {
		host, useTLS, _ := parseAddress(a)
		t := &target{addr: a, host: host, private: true, proto: packet.V5}
		if cfg.Protocol == Protocol311 {
			t.proto = packet.V311
		}
		if useTLS {
			tc, err := clientTLS(cfg.TLS, host)
			if err != nil {
				return nil, fmt.Errorf("configuring bridge %q: %w", cfg.Name, err)
			}
			t.tls = tc
		}
		br.targets = append(br.targets, t)
	}
	br.cur = br.targets[0]
	if fs := br.rules.tapFilters(); len(fs) > 0 {
		if err := b.AddTap(cfg.Name, qs.Normal, fs, func(m *persist.Message) bool { return br.accept(m, false) }, br.normal.notify); err != nil {
			return nil, fmt.Errorf("adding queue tap of bridge %q: %w", cfg.Name, err)
		}
		if br.high != nil {
			if err := b.AddTap(cfg.Name, qs.High, fs, func(m *persist.Message) bool { return br.accept(m, true) }, br.high.notify); err != nil {
				return nil, fmt.Errorf("adding queue tap of bridge %q: %w", cfg.Name, err)
			}
		}
	}
	return br, nil
}

// accept is the taps' accept function: it runs under the broker's routing
// lock. It takes a message for the high queue or the normal one by the
// priority of the first out rule that maps it. Only topics an out rule can
// name upstream are taken: with remote_prefix "" the filter a/# also
// matches "a", which has no upstream name; it must not be queued (and
// acknowledged) only to be dropped. QoS 0 messages of rules with
// offline_qos0 drop or latest are not queued while the link is down.
func (br *Bridge) accept(m *persist.Message, high bool) bool {
	r, _ := br.rules.outRule(m.Topic)
	if r == nil || (r.Priority == PriorityHigh) != high {
		return false
	}
	if min(m.QoS, r.QoS) > 0 || r.OfflineQoS0 == "" || r.OfflineQoS0 == OfflineQueue {
		return true
	}
	return br.latest.admit(m, r.OfflineQoS0, high)
}

// Name returns the bridge's name.
func (br *Bridge) Name() string { return br.cfg.Name }

// Connected reports whether the upstream connection is up.
func (br *Bridge) Connected() bool { return br.connected.Load() }

// Address returns the upstream address in use, as configured, or "" when
// the bridge is not connected.
func (br *Bridge) Address() string {
	if a := br.address.Load(); a != nil {
		return *a
	}
	return ""
}

// Sent returns how many messages were acknowledged upstream since New.
func (br *Bridge) Sent() uint64 { return br.sent.Load() }

// SentBytes returns the topic and payload bytes of the messages counted by
// Sent.
func (br *Bridge) SentBytes() uint64 { return br.sentBytes.Load() }

// Protocol returns the MQTT version of the last upstream connection
// established, Protocol5 or Protocol311; "" before the first one.
func (br *Bridge) Protocol() string {
	if v := br.protoUp.Load(); v != 0 {
		return protoName(packet.Version(v))
	}
	return ""
}

// Drops counts the queued messages a bridge dropped instead of sending
// them upstream, since New (queue limits are counted in QueueStats).
type Drops struct {
	Expired  uint64 // their MQTT 5.0 message expiry passed while queued
	Oversize uint64 // larger than the upstream's maximum packet size (5.0)
	Refused  uint64 // refused by the upstream with a 5.0 reason code >= 0x80
}

// Drops returns the counts of messages dropped instead of sent.
func (br *Bridge) Drops() Drops {
	return Drops{Expired: br.expired.Load(), Oversize: br.oversize.Load(), Refused: br.refused.Load()}
}

func clientTLS(c *TLSConfig, hostport string) (*tls.Config, error) {
	host, _, _ := net.SplitHostPort(hostport)
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
	if c == nil {
		return tc, nil
	}
	if c.ServerName != "" {
		tc.ServerName = c.ServerName
	}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("reading CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("reading CA file %s: no PEM certificate in it", c.CAFile)
		}
		tc.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("loading client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// Run connects to the upstream broker and forwards until ctx is done,
// reconnecting with backoff after every failure. It returns nil when ctx
// is done, after a clean DISCONNECT upstream; it does not return on
// upstream failures. Messages not yet acknowledged upstream stay in the
// queue for the next Run, in this process or after a restart.
func (br *Bridge) Run(ctx context.Context) error {
	if !br.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer br.running.Store(false)
	var wg sync.WaitGroup
	defer wg.Wait()
	if br.cfg.SysInterval > 0 {
		wg.Go(func() { br.sysLoop(ctx) })
	}
	bo := newBackoff(br.cfg.Backoff.Min, br.cfg.Backoff.Max)
	failures := 0 // connection attempts failed in a row
	cur := 0
	lazyWait := br.cfg.Start == StartLazy
	downAt := time.Now()
	for {
		if lazyWait {
			if !br.waitLazy(ctx, downAt) {
				return nil
			}
			lazyWait = false
		}
		br.cur = br.targets[cur]
		upAt, err := br.connection(ctx)
		if ctx.Err() != nil {
			return nil
		}
		wait := true
		switch {
		case errors.Is(err, errRetryNow):
			continue
		case errors.Is(err, errIdle):
			br.log.Info("nothing to send; disconnected until the queue fills (start: lazy)",
				"address", br.cur.addr, "lazy_threshold", br.cfg.LazyThreshold, "lazy_interval", br.cfg.LazyInterval)
			failures = 0
			lazyWait, downAt = true, time.Now()
			continue
		case errors.Is(err, errPrimaryBack):
			br.log.Info("the first upstream address accepts connections again; switching to it",
				"from", br.cur.addr, "to", br.targets[0].addr)
			failures = 0
			cur = 0
			continue
		case !upAt.IsZero():
			failures, br.cur.lastLogged = 0, ""
			up := time.Since(upAt)
			if up >= br.cfg.StableAfter {
				bo.reset()
			}
			if err != nil {
				br.log.Warn("upstream connection lost", "address", br.cur.addr, "error", err, "uptime", up.Round(time.Millisecond))
			} else {
				br.log.Warn("upstream connection lost", "address", br.cur.addr, "uptime", up.Round(time.Millisecond))
			}
			cur = br.nextTarget(cur, true)
		default:
			failures++
			// The same error of an address again goes to Debug, a
			// different one (the upstream's DNS name now resolves but the
			// port is closed, then TLS fails) to Warn again.
			if msg := fmt.Sprint(err); msg != br.cur.lastLogged {
				br.cur.lastLogged = msg
				br.log.Warn("connecting upstream failed; retrying with backoff", "address", br.cur.addr, "attempt", failures, "error", err)
			} else {
				br.log.Debug("connecting upstream failed", "address", br.cur.addr, "attempt", failures, "error", err)
			}
			cur = br.nextTarget(cur, false)
			// The addresses are tried in a row; the backoff is waited
			// once every address failed.
			wait = failures%len(br.targets) == 0
		}
		if !wait {
			continue
		}
		t := time.NewTimer(bo.next())
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// waitLazy waits until a lazy bridge should connect: its queues hold
// LazyThreshold messages, a priority: high message was queued, or
// LazyInterval passed since downAt. It returns false when ctx is done.
func (br *Bridge) waitLazy(ctx context.Context, downAt time.Time) bool {
	t := time.NewTimer(time.Until(downAt.Add(br.cfg.LazyInterval)))
	defer t.Stop()
	var high <-chan struct{}
	if br.high != nil {
		high = br.high.wake
		if br.high.q.Stats().Len > 0 {
			return true
		}
	}
	for {
		if n := br.Stats().Len; n >= br.cfg.LazyThreshold {
			br.log.Info("queue reached lazy_threshold; connecting", "queued", n)
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		case <-high:
			return true
		case <-br.normal.wake:
		}
	}
}

// nextTarget returns the index of the address to connect to after cur
// failed (lost: after it was up). With FailoverPriority a lost connection
// starts again from the first address.
func (br *Bridge) nextTarget(cur int, lost bool) int {
	if lost && br.cfg.Failover == FailoverPriority {
		return 0
	}
	return (cur + 1) % len(br.targets)
}

func (br *Bridge) setConnected(up bool) {
	if up {
		br.address.Store(&br.cur.addr)
		// Queue what offline_qos0 latest kept, before new QoS 0 messages.
		br.latest.online(br.normal, br.high, br.log)
	} else {
		br.latest.offline()
		br.address.Store(nil)
	}
	if br.connected.Swap(up) != up {
		br.since.Store(time.Now().UnixNano())
	}
	select {
	case br.sysWake <- struct{}{}:
	default:
	}
}

// sysLoop publishes $SYS/broker/bridge/<name>/... every SysInterval and
// when the connection state changes, and deletes expired queue entries.
func (br *Bridge) sysLoop(ctx context.Context) {
	t := time.NewTicker(br.cfg.SysInterval)
	defer t.Stop()
	for {
		br.publishSys()
		select {
		case <-ctx.Done():
			return
		case <-br.sysWake:
		case <-t.C:
			for _, l := range br.lanes() {
				if _, err := l.q.Expire(time.Now()); err != nil {
					br.log.Warn("expiring bridge queue", "queue", l.name, "error", err)
				}
			}
		}
	}
}

// lanes returns the bridge's queues, the high one first.
func (br *Bridge) lanes() []*lane {
	if br.high != nil {
		return []*lane{br.high, br.normal}
	}
	return []*lane{br.normal}
}

// Stats returns the stats of the bridge's queues (normal and high), added
// up.
func (br *Bridge) Stats() persist.QueueStats {
	var st persist.QueueStats
	for _, l := range br.lanes() {
		s := l.q.Stats()
		st.Len += s.Len
		st.Bytes += s.Bytes
		st.Dropped += s.Dropped
		st.Expired += s.Expired
		if !s.Oldest.IsZero() && (st.Oldest.IsZero() || s.Oldest.Before(st.Oldest)) {
			st.Oldest = s.Oldest
		}
	}
	return st
}

func (br *Bridge) publishSys() {
	st := br.Stats()
	var high int64
	if br.high != nil {
		high = br.high.q.Stats().Len
	}
	sentBytes := br.sentBytes.Load()
	state := "0"
	if br.connected.Load() {
		state = "1"
	}
	age := int64(0)
	if !st.Oldest.IsZero() {
		age = int64(max(time.Since(st.Oldest), 0) / time.Second)
	}
	p := "$SYS/broker/bridge/" + br.cfg.Name + "/"
	for _, kv := range [...]struct{ k, v string }{
		{"state", state},
		{"address", br.Address()},
		{"queued", strconv.FormatInt(st.Len, 10)},
		{"queued_bytes", strconv.FormatInt(st.Bytes, 10)},
		{"oldest_age", strconv.FormatInt(age, 10)},
		{"dropped", strconv.FormatUint(st.Dropped, 10)},
		{"sent", strconv.FormatUint(br.sent.Load(), 10)},
		{"queued_high", strconv.FormatInt(high, 10)},
		{"offline_dropped", strconv.FormatUint(br.latest.dropped.Load(), 10)},
		{"offline_replaced", strconv.FormatUint(br.latest.replaced.Load(), 10)},
		{"sent_bytes", strconv.FormatUint(sentBytes, 10)},
		{"sent_bytes_hour", strconv.FormatUint(br.hourly.last(time.Now(), sentBytes), 10)},
		{"dropped_expired", strconv.FormatUint(br.expired.Load(), 10)},
		{"dropped_oversize", strconv.FormatUint(br.oversize.Load(), 10)},
		{"dropped_refused", strconv.FormatUint(br.refused.Load(), 10)},
	} {
		br.broker.PublishFrom(br.cfg.Name, p+kv.k, []byte(kv.v), 0, true, nil)
	}
	// Mosquitto publishes each bridge's state as
	// $SYS/broker/connection/<client id>/state, which dashboards expect
	// (not for an id that is no valid topic level).
	if !strings.ContainsAny(br.cfg.ClientID, "+#") {
		br.broker.PublishFrom(br.cfg.Name, "$SYS/broker/connection/"+br.cfg.ClientID+"/state", []byte(state), 0, true, nil)
	}
}
