package bridge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edged/edged/broker/packet"
)

// Broker is what a bridge needs of the local broker. *broker.Server
// implements it.
type Broker interface {
	// AddTap makes routing append every message whose topic matches one
	// of filters and that accept takes, except those published with origin
	// name, to the durable queue named queue, in the commit that stores
	// the message, before its publisher is acknowledged. notify is called
	// after each such commit and must not block.
	AddTap(name, queue string, filters []string, accept func(topic string) bool, notify func()) error
	// PublishFrom publishes a message locally through normal routing;
	// the tap named origin skips it. done is called once it is durable.
	PublishFrom(origin, topic string, payload []byte, qos byte, retain bool, done func(error))
}

// Queue is a bridge's durable FIFO (a persist.DB queue in edged).
type Queue interface {
	// SetLimits sets the bounds applied when a message is appended.
	SetLimits(QueueLimits)
	// Read returns up to max entries with Seq > afterSeq, ascending.
	// Fewer than max means the end of the queue was reached.
	Read(afterSeq uint64, max int) ([]Entry, error)
	// Delete removes entries; done is called, without blocking, once the
	// deletion is durable or failed.
	Delete(seqs []uint64, done func(error))
	// Stats describes the queue.
	Stats() QueueStats
	// Expire deletes the entries older than the MaxAge limit. It may
	// block until the deletion is durable.
	Expire(now time.Time) error
}

// Entry is one queued message.
type Entry struct {
	Seq     uint64 // position in the queue; increasing, never reused
	Topic   string // local topic
	Payload []byte
	QoS     byte
	Retain  bool
	Time    time.Time // when the local broker received it
	// Properties is the encoded MQTT 5.0 property block the message was
	// published with (see packet.DecodeProperties), nil for 3.1.x.
	Properties []byte
	// Expiry is when the message expires (its Message Expiry Interval
	// after Time); zero never. An expired entry is dropped, not sent.
	Expiry time.Time
}

// QueueStats describes a durable queue.
type QueueStats struct {
	Len     int64
	Bytes   int64
	Oldest  time.Time // time of the head entry; zero when empty
	Dropped uint64    // entries dropped by a limit, ever (persisted)
	Expired uint64    // of which for MaxAge
}

// Publisher5 is implemented by a Broker that carries MQTT 5.0 properties:
// the bridge publishes messages that came down an in rule with it, so
// they keep their properties and their remaining expiry (zero: none).
// props is an encoded property block as in Entry.Properties. Without it,
// such messages are published with PublishFrom and lose their properties.
type Publisher5 interface {
	PublishFrom5(origin, topic string, payload []byte, qos byte, retain bool, props []byte, expiry time.Time, done func(error))
}

// ErrRunning is returned by Run when the bridge is already running.
var ErrRunning = errors.New("bridge: already running")

// errRetryNow asks Run to reconnect without waiting (a protocol fallback).
var errRetryNow = errors.New("bridge: retrying at once")

// Bridge forwards messages between the local broker and one upstream
// broker. Create it with New before the local broker serves clients, then
// call Run once.
type Bridge struct {
	cfg    Config
	rules  rules
	broker Broker
	queue  Queue
	log    *slog.Logger
	host   string      // host:port to dial
	tls    *tls.Config // nil for tcp://

	wake    chan struct{} // 1-buffered; the tap appended to the queue
	sysWake chan struct{} // 1-buffered; the connection state changed
	running atomic.Bool

	connected atomic.Bool
	since     atomic.Int64  // Unix nanoseconds of the last change of connected
	sent      atomic.Uint64 // messages acknowledged upstream (or written, QoS 0)
	expired   atomic.Uint64 // messages dropped because their message expiry passed while queued
	oversize  atomic.Uint64 // messages dropped as larger than the upstream's maximum packet size
	refused   atomic.Uint64 // messages the upstream refused with a 5.0 reason code
	protoUp   atomic.Uint32 // packet.Version of the last connection established; 0 none yet
	peak5     atomic.Int32  // the most QoS 1/2 publishes ever awaiting acknowledgement on a 5.0 link
	recvMax5  atomic.Int32  // the Receive Maximum of the last 5.0 connection
	purged    atomic.Uint64 // messages deleted by Purge

	mu       sync.Mutex
	deleting map[uint64]struct{} // seqs whose deletion is not durable yet

	// Owned by the Run goroutine.
	proto   packet.Version // the protocol to connect with (auto: 5 until the upstream refuses it)
	private bool           // try MQTT bridge mode (protocol level 0x84), 3.1.1 only
	// tentative311: auto mode is trying 3.1.1 after a 5.0 connection was
	// closed before CONNACK; it sticks only if 3.1.1 gets a CONNACK.
	tentative311 bool
	staleQoS2    []uint16 // packet ids of QoS 2 publishes cut off by a drop
}

// New checks cfg, reads its TLS files, sets the queue's limits and
// registers the tap of the out rules with b. Call it before b serves
// clients, so that no message published before is missed.
func New(cfg Config, b Broker, q Queue) (*Bridge, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("configuring bridge %q: %w", cfg.Name, err)
	}
	cfg = cfg.withDefaults()
	host, useTLS, _ := parseAddress(cfg.Address)
	br := &Bridge{
		cfg:      cfg,
		rules:    newRules(cfg.Topics),
		broker:   b,
		queue:    q,
		log:      cfg.Logger.With("bridge", cfg.Name),
		host:     host,
		wake:     make(chan struct{}, 1),
		sysWake:  make(chan struct{}, 1),
		deleting: make(map[uint64]struct{}),
		private:  true,
		proto:    packet.V5,
	}
	if cfg.Protocol == Protocol311 {
		br.proto = packet.V311
	}
	if useTLS {
		tc, err := clientTLS(cfg.TLS, host)
		if err != nil {
			return nil, fmt.Errorf("configuring bridge %q: %w", cfg.Name, err)
		}
		br.tls = tc
	}
	q.SetLimits(cfg.Queue)
	if fs := br.rules.tapFilters(); len(fs) > 0 {
		// Only topics an out rule can name upstream: with remote_prefix ""
		// the filter a/# also matches "a", which has no upstream name; it
		// must not be queued (and acknowledged) only to be dropped.
		accept := func(topic string) bool { _, _, ok := br.rules.mapOut(topic, 0); return ok }
		if err := b.AddTap(cfg.Name, QueueName(cfg.Name), fs, accept, br.notify); err != nil {
			return nil, fmt.Errorf("adding queue tap of bridge %q: %w", cfg.Name, err)
		}
	}
	return br, nil
}

// Name returns the bridge's name.
func (br *Bridge) Name() string { return br.cfg.Name }

// Connected reports whether the upstream connection is up.
func (br *Bridge) Connected() bool { return br.connected.Load() }

// Sent returns how many messages were acknowledged upstream since New.
func (br *Bridge) Sent() uint64 { return br.sent.Load() }

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

// notify is the tap's callback: it runs on the store's goroutine.
func (br *Bridge) notify() {
	select {
	case br.wake <- struct{}{}:
	default:
	}
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
	failures := 0
	// lastLogged is the connect error last logged at Warn: the same error
	// again goes to Debug, a different one (the upstream's DNS name now
	// resolves but the port is closed, then TLS fails) to Warn again.
	lastLogged := ""
	for {
		upAt, err := br.connection(ctx)
		if ctx.Err() != nil {
			return nil
		}
		switch {
		case errors.Is(err, errRetryNow):
			continue
		case !upAt.IsZero():
			failures, lastLogged = 0, ""
			up := time.Since(upAt)
			if up >= br.cfg.StableAfter {
				bo.reset()
			}
			if err != nil {
				br.log.Warn("upstream connection lost", "error", err, "uptime", up.Round(time.Millisecond))
			} else {
				br.log.Warn("upstream connection lost", "uptime", up.Round(time.Millisecond))
			}
		default:
			failures++
			if msg := fmt.Sprint(err); msg != lastLogged {
				lastLogged = msg
				br.log.Warn("connecting upstream failed; retrying with backoff", "address", br.cfg.Address, "attempt", failures, "error", err)
			} else {
				br.log.Debug("connecting upstream failed", "address", br.cfg.Address, "attempt", failures, "error", err)
			}
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

func (br *Bridge) setConnected(up bool) {
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
			if br.cfg.Queue.MaxAge > 0 {
				if err := br.queue.Expire(time.Now()); err != nil {
					br.log.Warn("expiring bridge queue", "error", err)
				}
			}
		}
	}
}

func (br *Bridge) publishSys() {
	st := br.queue.Stats()
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
		{"queued", strconv.FormatInt(st.Len, 10)},
		{"queued_bytes", strconv.FormatInt(st.Bytes, 10)},
		{"oldest_age", strconv.FormatInt(age, 10)},
		{"dropped", strconv.FormatUint(st.Dropped, 10)},
		{"sent", strconv.FormatUint(br.sent.Load(), 10)},
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

// read reads up to n entries after seq, leaving out those whose deletion
// is not durable yet. last is the Seq of the last entry read (after, if
// none) and end reports that the end of the queue was reached.
func (br *Bridge) read(after uint64, n int) (es []Entry, last uint64, end bool, err error) {
	// Snapshot before reading: a seq that leaves deleting before this point
	// is durably deleted, so Read cannot return it.
	br.mu.Lock()
	skip := maps.Clone(br.deleting)
	br.mu.Unlock()
	es, err = br.queue.Read(after, n)
	if err != nil {
		return nil, after, false, fmt.Errorf("reading queue: %w", err)
	}
	last, end = after, len(es) < n
	if len(es) > 0 {
		last = es[len(es)-1].Seq
	}
	if len(skip) > 0 {
		es = slices.DeleteFunc(es, func(e Entry) bool { _, ok := skip[e.Seq]; return ok })
	}
	return es, last, end, nil
}

// remove deletes entries acknowledged upstream from the queue.
func (br *Bridge) remove(seqs []uint64) {
	br.mu.Lock()
	for _, s := range seqs {
		br.deleting[s] = struct{}{}
	}
	br.mu.Unlock()
	br.queue.Delete(seqs, func(err error) {
		br.mu.Lock()
		for _, s := range seqs {
			delete(br.deleting, s)
		}
		br.mu.Unlock()
		if err != nil {
			br.log.Error("deleting forwarded messages from the queue; they will be sent again", "count", len(seqs), "error", err)
		}
	})
}
