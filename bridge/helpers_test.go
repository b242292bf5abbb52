package bridge_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/edged/edged/bridge"
	"github.com/edged/edged/broker"
	"github.com/edged/edged/internal/testutil"
	"github.com/edged/edged/persist"
)

// testLogger logs to t when -v is given, else discards.
func testLogger(t testing.TB) *slog.Logger {
	if !testing.Verbose() {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// local is a real edged broker with a bbolt store in dir, serving on
// 127.0.0.1:0, with its bridges running.
type local struct {
	t       testing.TB
	srv     *broker.Server
	b5      *broker5 // what the bridges see of srv
	db      *persist.DB
	addr    string
	bridges []*bridge.Bridge
	queues  map[string]bridge.Queues // by bridge name
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	errs    chan error
	once    sync.Once
}

// startLocal opens the store in dir, creates the bridges (before serving,
// as edged does), serves and runs the bridges. t.Cleanup stops it all.
func startLocal(t testing.TB, dir string, cfgs ...bridge.Config) *local {
	t.Helper()
	db, err := persist.Open(persist.Options{Path: filepath.Join(dir, "edged.db")})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := broker.New(broker.Config{Store: db, SysInterval: -1, Logger: testLogger(t)})
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	l := &local{t: t, srv: srv, b5: &broker5{Server: srv, notify: map[string]func(){}}, db: db, errs: make(chan error, 8), queues: map[string]bridge.Queues{}}
	for _, c := range cfgs {
		if c.Logger == nil {
			c.Logger = testLogger(t)
		}
		qs := bridge.OpenQueues(c, db.Queue)
		l.queues[c.Name] = qs
		br, err := bridge.New(c, l.b5, qs)
		if err != nil {
			srv.Shutdown(context.Background())
			db.Close()
			t.Fatal(err)
		}
		l.bridges = append(l.bridges, br)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l.addr = ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	l.wg.Go(func() {
		if err := srv.Serve(ctx, ln); err != nil {
			l.errs <- fmt.Errorf("Serve: %w", err)
		}
	})
	for _, br := range l.bridges {
		l.wg.Go(func() {
			if err := br.Run(ctx); err != nil {
				l.errs <- fmt.Errorf("Run: %w", err)
			}
		})
	}
	t.Cleanup(l.stop)
	return l
}

// stop stops the bridges and the broker and closes the store.
func (l *local) stop() {
	l.once.Do(func() {
		l.cancel()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := l.srv.Shutdown(ctx); err != nil {
			l.t.Errorf("Shutdown: %v", err)
		}
		l.wg.Wait()
		if err := l.db.Close(); err != nil {
			l.t.Errorf("closing store: %v", err)
		}
		close(l.errs)
		for err := range l.errs {
			l.t.Error(err)
		}
	})
}

// publish publishes locally through the broker and waits until durable.
func (l *local) publish(t testing.TB, topic string, payload []byte, qos byte, retain bool) {
	t.Helper()
	done := make(chan error, 1)
	l.srv.Publish(topic, payload, qos, retain, func(err error) { done <- err })
	if err := <-done; err != nil {
		t.Fatalf("publishing %s: %v", topic, err)
	}
}

// broker5 is the local broker as the bridges see it: it records what the
// bridges publish with MQTT 5.0 properties (bridge.Publisher5) before
// publishing it through srv, and keeps the taps' notify functions so a
// test can append to a bridge queue directly (inject).
type broker5 struct {
	*broker.Server
	mu     sync.Mutex
	notify map[string]func()
	got    []published5
}

type published5 struct {
	topic  string
	props  []byte
	expiry time.Time
}

func (b *broker5) AddTap(origin string, q *persist.Queue, filters []string, accept func(*persist.Message) bool, notify func()) error {
	b.mu.Lock()
	b.notify[q.Name()] = notify
	b.mu.Unlock()
	return b.Server.AddTap(origin, q, filters, accept, notify)
}

func (b *broker5) PublishFrom5(origin, topic string, payload []byte, qos byte, retain bool, props []byte, expiry time.Time, done func(error)) {
	b.mu.Lock()
	b.got = append(b.got, published5{topic, bytes.Clone(props), expiry})
	b.mu.Unlock()
	b.Server.PublishFrom5(origin, topic, payload, qos, retain, props, expiry, done)
}

func (b *broker5) published() []published5 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.got)
}

// inject appends m to the normal queue of bridge name in one commit, as
// the tap does for a message the broker received, and wakes the bridge: a
// test sets a message's properties and expiry exactly (a real 5.0
// publisher's path is TestV5PublisherToUpstream).
func (l *local) inject(t testing.TB, name string, m persist.Message) {
	t.Helper()
	q := l.queues[name].Normal
	done := make(chan error, 1)
	q.Add([]persist.Message{m}, func(err error) { done <- err })
	if err := <-done; err != nil {
		t.Fatalf("appending to queue: %v", err)
	}
	l.b5.mu.Lock()
	n := l.b5.notify[q.Name()]
	l.b5.mu.Unlock()
	n()
}

func (l *local) stats(name string) persist.QueueStats {
	return l.queues[name].Normal.Stats()
}

// startMochi starts mochi-mqtt (a third-party Go broker) in-process on
// 127.0.0.1:0, with TLS if tc is not nil, and returns its address.
func startMochi(t testing.TB, tc *tls.Config) string {
	t.Helper()
	s := mochi.New(&mochi.Options{Logger: slog.New(slog.DiscardHandler), InlineClient: false})
	if err := s.AddHook(new(auth.AllowHook), nil); err != nil {
		t.Fatal(err)
	}
	ln := listeners.NewTCP(listeners.Config{ID: "t", Address: "127.0.0.1:0", TLSConfig: tc})
	if err := s.AddListener(ln); err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return ln.Address()
}

// upstreams are the two real upstream brokers the end-to-end tests run
// against.
var upstreams = []struct {
	name  string
	start func(t testing.TB) string
}{
	{"mochi", func(t testing.TB) string { return startMochi(t, nil) }},
	{"mosquitto", func(t testing.TB) string { return testutil.StartMosquitto(t, testutil.MosquittoOptions{}).Addr }},
}

// sub is a paho client that records what it receives.
type sub struct {
	c    mqtt.Client
	mu   sync.Mutex
	msgs []rmsg
	seen map[string]int
}

type rmsg struct {
	topic   string
	payload string
	retain  bool
	qos     byte
}

// subscribe connects a client to addr and subscribes to filter. A
// persistent client (clean false) keeps its session over reconnects.
func subscribe(t testing.TB, addr, id string, clean bool, filter string, qos byte) *sub {
	t.Helper()
	return subscribeOpts(t, mqtt.NewClientOptions().AddBroker("tcp://"+addr).SetClientID(id).SetCleanSession(clean), filter, qos)
}

// subscribeTLS subscribes to "#" over TLS with a client certificate.
func subscribeTLS(t testing.TB, addr string, roots *x509.CertPool, cert *tls.Certificate) *sub {
	t.Helper()
	o := mqtt.NewClientOptions().AddBroker("tls://" + addr).SetClientID("tls-sub").SetCleanSession(true).
		SetTLSConfig(&tls.Config{RootCAs: roots, Certificates: []tls.Certificate{*cert}, ServerName: "cloud.example"})
	return subscribeOpts(t, o, "#", 1)
}

func subscribeOpts(t testing.TB, o *mqtt.ClientOptions, filter string, qos byte) *sub {
	t.Helper()
	s := &sub{seen: map[string]int{}}
	o.
		SetAutoReconnect(true).SetOrderMatters(true).SetKeepAlive(30 * time.Second).
		SetMaxReconnectInterval(200 * time.Millisecond)
	o.SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) {
		s.mu.Lock()
		s.msgs = append(s.msgs, rmsg{m.Topic(), string(m.Payload()), m.Retained(), m.Qos()})
		s.seen[m.Topic()+"\x00"+string(m.Payload())]++
		s.mu.Unlock()
	})
	s.c = mqtt.NewClient(o)
	if tok := s.c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connecting subscriber: %v", tok.Error())
	}
	if filter != "" {
		if tok := s.c.Subscribe(filter, qos, nil); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("subscribing: %v", tok.Error())
		}
	}
	t.Cleanup(func() { s.c.Disconnect(0) })
	return s
}

func (s *sub) snapshot() []rmsg {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]rmsg(nil), s.msgs...)
}

func (s *sub) distinct() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.seen)
}

// waitCount waits until s has received n distinct messages.
func (s *sub) waitDistinct(t testing.TB, n int, timeout time.Duration) {
	t.Helper()
	testutil.WaitFor(t, timeout, func() error {
		if d := s.distinct(); d < n {
			return fmt.Errorf("received %d distinct messages, want %d", d, n)
		}
		return nil
	})
}

// pub publishes from a plain paho client.
func pub(t testing.TB, addr, id string) mqtt.Client {
	t.Helper()
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connecting publisher: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c
}

func mustPublish(t testing.TB, c mqtt.Client, topic string, qos byte, retain bool, payload string) {
	t.Helper()
	if tok := c.Publish(topic, qos, retain, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publishing %s: %v", topic, tok.Error())
	}
}

// checkOrder checks that, per topic, the first occurrences of payloads
// "<n>" arrive in increasing n, and counts the duplicates.
func checkOrder(msgs []rmsg) (dups int, err error) {
	last := map[string]int{}
	seen := map[string]bool{}
	for _, m := range msgs {
		k := m.topic + "\x00" + m.payload
		if seen[k] {
			dups++
			continue
		}
		seen[k] = true
		var n int
		if _, err := fmt.Sscanf(m.payload, "%d", &n); err != nil {
			continue
		}
		if p, ok := last[m.topic]; ok && n < p {
			return dups, fmt.Errorf("topic %s: %d after %d", m.topic, n, p)
		}
		last[m.topic] = n
	}
	return dups, nil
}

// bcfg is a bridge configuration for tests: fast backoff and keepalive.
func bcfg(name, addr string, rules ...bridge.Rule) bridge.Config {
	return bridge.Config{
		Name:        name,
		Address:     "tcp://" + addr,
		ClientID:    "edged-test-" + name,
		KeepAlive:   time.Second,
		PingTimeout: 500 * time.Millisecond,
		Backoff:     bridge.Backoff{Min: 20 * time.Millisecond, Max: 200 * time.Millisecond},
		Topics:      rules,
		SysInterval: 50 * time.Millisecond,
	}
}

var _ = errors.New
var _ = io.EOF
