package broker_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/edged/edged/broker"
	"github.com/edged/edged/broker/brokertest"
	"github.com/edged/edged/broker/packet"
	"github.com/edged/edged/internal/testutil"
)

// Hostile clients at the broker level: what limits.* promise, on real TCP.
// Memory under floods is measured against the real binary in
// cmd/edged/hostile_test.go.

// logRecorder is a slog.Handler that keeps every record's message and
// attributes, for tests of what the broker logs.
type logRecorder struct {
	mu   sync.Mutex
	recs []map[string]any
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	return &withAttrs{r: r, attrs: as}
}
func (r *logRecorder) WithGroup(string) slog.Handler { return r }
func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	return r.add(rec, nil)
}

func (r *logRecorder) add(rec slog.Record, attrs []slog.Attr) error {
	m := map[string]any{"msg": rec.Message, "level": rec.Level.String()}
	for _, a := range attrs {
		m[a.Key] = a.Value.Any()
	}
	rec.Attrs(func(a slog.Attr) bool {
		m[a.Key] = a.Value.Any()
		return true
	})
	r.mu.Lock()
	r.recs = append(r.recs, m)
	r.mu.Unlock()
	return nil
}

// with returns the records whose message is msg.
func (r *logRecorder) with(msg string) []map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []map[string]any
	for _, m := range r.recs {
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

type withAttrs struct {
	r     *logRecorder
	attrs []slog.Attr
}

func (w *withAttrs) Enabled(context.Context, slog.Level) bool { return true }
func (w *withAttrs) WithAttrs(as []slog.Attr) slog.Handler {
	return &withAttrs{r: w.r, attrs: append(append([]slog.Attr(nil), w.attrs...), as...)}
}
func (w *withAttrs) WithGroup(string) slog.Handler { return w }
func (w *withAttrs) Handle(_ context.Context, rec slog.Record) error {
	return w.r.add(rec, w.attrs)
}

// dialFrom dials addr from the loopback address local (any of 127.0.0.0/8
// reaches a listener on 127.0.0.1 on Linux), so that a test can play
// several source addresses.
func dialFrom(t testing.TB, local, addr string) *rawClient {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawClient{t: t, nc: nc, br: bufio.NewReader(nc)}
}

// closedAtOnce reports whether the broker closes c within a second.
func closedAtOnce(c *rawClient) bool {
	_, err := c.read(time.Second)
	return isClosedErr(err)
}

// roundTrip checks that the broker still serves a normal client: connect,
// subscribe and a QoS 1 publish to itself.
func roundTrip(t *testing.T, addr, id string) {
	t.Helper()
	c := dialConnect(t, addr, id, true)
	c.sub("alive/"+id, 1)
	c.send(&packet.Publish{Topic: "alive/" + id, Payload: []byte("ok"), QoS: 1, PacketID: 7})
	// PUBACK and the delivery may come in either order.
	var gotAck, gotMsg bool
	for !gotAck || !gotMsg {
		switch p := c.next().(type) {
		case *packet.Puback:
			gotAck = true
		case *packet.Publish:
			gotMsg = true
			c.ackIncoming(p)
		default:
			t.Fatalf("got %s", describe(p))
		}
	}
}

// Limits.MaxWriteQueueBytes: a subscriber that does not read gets QoS 0
// messages dropped once its write queue holds that many bytes, long before
// it holds MaxWriteQueue packets; the drop is logged as a slow consumer.
func TestWriteQueueBytes(t *testing.T) {
	logs := &logRecorder{}
	s, addr := startBroker(t, broker.Config{Logger: slog.New(logs),
		Limits: broker.Limits{MaxWriteQueueBytes: 256 << 10}})
	slow := dialSmallRecvBuf(t, addr)
	slow.connect(&packet.Connect{ClientID: "slow", CleanSession: true}, false, packet.Success)
	slow.sub("big", 0)
	pub := dialConnect(t, addr, "pub", true)
	payload := bytes.Repeat([]byte("b"), 64<<10)
	for range 100 { // 6.4 MB; 100 packets is far below MaxWriteQueue
		pub.send(&packet.Publish{Topic: "big", Payload: payload})
	}
	pub.sync()
	st := s.Stats()
	// The socket buffers take some before the queue fills; 256 KiB of
	// queue and a few MB of kernel buffers at most.
	if st.MsgsDropped < 30 {
		t.Fatalf("%d of 100 64 KiB messages dropped with MaxWriteQueueBytes 256 KiB, want most", st.MsgsDropped)
	}
	if n := len(logs.with("slow consumer: write queue full, QoS 0 message dropped")); n == 0 || n > 10 {
		t.Errorf("%d slow-consumer lines for %d drops, want 1 to 10 (rate-limited)", n, st.MsgsDropped)
	}
	t.Logf("dropped %d of 100", st.MsgsDropped)
	roundTrip(t, addr, "normal")
}

// Limits.MaxPendingConnections and MaxPendingPerAddress: connections that
// have not sent CONNECT are counted, and one over a limit is closed at once
// (ConnectTimeout is long here). Another address, and a connection once
// its CONNECT is handled, are not held back.
func TestPendingConnectionLimits(t *testing.T) {
	logs := &logRecorder{}
	_, addr := startBroker(t, broker.Config{Logger: slog.New(logs), ConnectTimeout: time.Minute,
		Limits: broker.Limits{MaxPendingConnections: 8, MaxPendingPerAddress: 3}})
	for range 3 {
		dialFrom(t, "127.0.0.2", addr)
	}
	over := dialFrom(t, "127.0.0.2", addr)
	if !closedAtOnce(over) {
		t.Fatal("a 4th silent connection from one address stayed open with MaxPendingPerAddress 3")
	}
	// Another address is not held back by the first.
	other := dialFrom(t, "127.0.0.3", addr)
	other.connect(&packet.Connect{ClientID: "other", CleanSession: true}, false, packet.Success)
	// Once connected, a client is no longer pending: 3 more from .3.
	for range 3 {
		dialFrom(t, "127.0.0.3", addr)
	}
	// 6 pending now; 2 more fill the global limit of 8.
	dialFrom(t, "127.0.0.4", addr)
	dialFrom(t, "127.0.0.4", addr)
	if c := dialFrom(t, "127.0.0.5", addr); !closedAtOnce(c) {
		t.Fatal("a 9th silent connection stayed open with MaxPendingConnections 8")
	}
	if n := len(logs.with("connection closed at accept")); n == 0 {
		t.Error("connections closed at accept were not logged")
	}
}

// A pending connection stops counting when it ends: silent sockets that
// are closed free their slots.
func TestPendingReleasedOnClose(t *testing.T) {
	_, addr := startBroker(t, broker.Config{ConnectTimeout: time.Minute,
		Limits: broker.Limits{MaxPendingPerAddress: 2}})
	for range 5 {
		a, b := dialFrom(t, "127.0.0.2", addr), dialFrom(t, "127.0.0.2", addr)
		a.drop()
		b.drop()
		time.Sleep(50 * time.Millisecond)
	}
	waitFor(t, 5*time.Second, func() error {
		c := dialFrom(t, "127.0.0.2", addr)
		c.send(&packet.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: "x", CleanSession: true})
		if _, err := c.read(2 * time.Second); err != nil {
			return fmt.Errorf("CONNECT after closed pending connections: %v", err)
		}
		return nil
	})
}

// Limits.ConnectTimeout is a deadline from accept: a client sending its
// CONNECT one byte at a time (slowloris) is closed when it passes, and the
// timeout is logged.
func TestConnectTimeoutSlowloris(t *testing.T) {
	logs := &logRecorder{}
	_, addr := startBroker(t, broker.Config{Logger: slog.New(logs), ConnectTimeout: 500 * time.Millisecond})
	c := dialRaw(t, addr)
	b := (&packet.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: "slowloris-client-id", CleanSession: true}).AppendTo(nil, packet.V311)
	start := time.Now()
	for _, x := range b[:len(b)-1] {
		if _, err := c.nc.Write([]byte{x}); err != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
		if time.Since(start) > 5*time.Second {
			break
		}
	}
	c.closedWithin(5 * time.Second)
	if el := time.Since(start); el > 3*time.Second {
		t.Fatalf("closed after %s, want about ConnectTimeout 500ms", el)
	}
	waitFor(t, 2*time.Second, func() error {
		if len(logs.with("no CONNECT within the connect timeout; closing")) == 0 {
			return fmt.Errorf("CONNECT timeout not logged")
		}
		return nil
	})
}

// Limits.MaxConnectionsPerAddress: one host cannot take every connection.
// Over it a CONNECT gets 0x03; another address still connects, and a
// takeover from the full address is allowed [MQTT-3.1.4-2]. Refusals are
// logged with the user name, rate-limited.
func TestMaxConnectionsPerAddress(t *testing.T) {
	logs := &logRecorder{}
	s, addr := startBroker(t, broker.Config{Logger: slog.New(logs),
		Limits: broker.Limits{MaxConnections: 100, MaxConnectionsPerAddress: 3}})
	for i := range 3 {
		c := dialFrom(t, "127.0.0.2", addr)
		c.connect(&packet.Connect{ClientID: fmt.Sprint("idle", i), CleanSession: false}, false, packet.Success)
	}
	for i := range 30 {
		c := dialFrom(t, "127.0.0.2", addr)
		user := "mallory"
		c.connect(&packet.Connect{ClientID: fmt.Sprint("more", i), CleanSession: true, Username: &user},
			false, packet.ServerUnavailable)
		c.expectClosed()
	}
	roundTrip(t, addr, "normal")
	// A takeover replaces a connection: allowed at the limit.
	c := dialFrom(t, "127.0.0.2", addr)
	c.connect(&packet.Connect{ClientID: "idle0", CleanSession: false}, true, packet.Success)
	waitConnected(t, s, 4) // with "normal"

	refused := logs.with("connection refused")
	if len(refused) == 0 || len(refused) > 10 {
		t.Fatalf("%d refusal lines for 30 refusals, want 1 to 10 (rate-limited)", len(refused))
	}
	if refused[0]["user"] != "mallory" {
		t.Errorf("refusal logged without the user name: %v", refused[0])
	}
}

// WithMaxConnections bounds one listener; the others keep the global limit.
func TestListenerMaxConnections(t *testing.T) {
	s, addr := startBroker(t, broker.Config{}, broker.WithMaxConnections(2))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(context.Background(), ln, broker.WithName("other"))
	dialConnect(t, addr, "a", true)
	dialConnect(t, addr, "b", true)
	c := dialRaw(t, addr)
	c.connect(&packet.Connect{ClientID: "c", CleanSession: true}, false, packet.ServerUnavailable)
	dialConnect(t, ln.Addr().String(), "d", true)
}

// Limits.MaxKeepalive refuses, as Mosquitto's max_keepalive does for MQTT
// 3.1.1, a keepalive of 0 or over the maximum with CONNACK 0x02.
func TestMaxKeepalive(t *testing.T) {
	_, addr := startBroker(t, broker.Config{Limits: broker.Limits{MaxKeepalive: 60 * time.Second}})
	for _, tc := range []struct {
		keepalive uint16
		code      packet.Reason
	}{{0, packet.ClientIdentifierNotValid}, {61, packet.ClientIdentifierNotValid},
		{65535, packet.ClientIdentifierNotValid}, {1, packet.Success}, {60, packet.Success}} {
		c := dialRaw(t, addr)
		c.connect(&packet.Connect{ClientID: fmt.Sprint("ka", tc.keepalive), CleanSession: true, KeepAlive: tc.keepalive},
			false, tc.code)
	}
}

// A malformed Limits value is refused by New.
func TestHostileLimitsValidate(t *testing.T) {
	for _, l := range []broker.Limits{{MaxWriteQueueBytes: -1}, {MaxKeepalive: -time.Second},
		{MaxKeepalive: 1500 * time.Millisecond}, {MaxKeepalive: 70000 * time.Second}} {
		if _, err := broker.New(broker.Config{Limits: l}); err == nil {
			t.Errorf("New accepted %+v", l)
		}
	}
}

// A failed TLS handshake is logged, rate-limited, with the listener and
// the remote address; a client that completes it is served.
func TestTLSHandshakeFailureLogged(t *testing.T) {
	logs := &logRecorder{}
	s, err := broker.New(broker.Config{Logger: slog.New(logs), SysInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	ca := testutil.NewTestCA(t, "edged test CA", testutil.ECDSA)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tln := tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{ca.Issue(t, "127.0.0.1").TLS()}})
	brokertest.Serve(t, s, tln, broker.WithName("secure"))
	for range 20 {
		c := dialRaw(t, ln.Addr().String())
		c.write([]byte("\x10\x0c\x00\x04MQTT\x04\x02\x00\x00\x00\x00")) // plain MQTT on a TLS port
		c.expectClosed()
	}
	tc, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: ca.Pool()})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	c := &rawClient{t: t, nc: tc, br: bufio.NewReader(tc)}
	c.connect(&packet.Connect{ClientID: "tls", CleanSession: true}, false, packet.Success)
	lines := logs.with("TLS handshake failed")
	if len(lines) == 0 || len(lines) > 10 {
		t.Fatalf("%d lines for 20 failed handshakes, want 1 to 10 (rate-limited)", len(lines))
	}
	if lines[0]["listener"] != "secure" || lines[0]["remote"] == nil {
		t.Errorf("TLS failure logged without listener and remote: %v", lines[0])
	}
}
