package bridge_test

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edged/edged/bridge"
	"github.com/edged/edged/internal/testutil"
)

// pmosqInflight is max_inflight_messages of the persistent mosquitto: after
// its restart it may send this many messages to a subscriber once more.
const pmosqInflight = 20

// TestUpstreamRestart stops a real mosquitto (persistence on) with SIGTERM
// or SIGKILL and starts it again on the same port while edged keeps
// publishing QoS 1 messages on an out rule: a persistent upstream
// subscriber receives every message, in publish order per topic, with a
// bounded number of duplicates. The bridge's persistent upstream session
// survives the restart: a command published upstream while the bridge was
// still away arrives locally, and so does one published after it is back.
func TestUpstreamRestart(t *testing.T) {
	t.Run("sigterm", func(t *testing.T) { t.Parallel(); testUpstreamRestart(t, syscall.SIGTERM) })
	t.Run("sigkill", func(t *testing.T) { t.Parallel(); testUpstreamRestart(t, syscall.SIGKILL) })
}

func testUpstreamRestart(t *testing.T, sig syscall.Signal) {
	m := testutil.StartMosquitto(t, testutil.MosquittoOptions{Persistence: true, MaxInflight: pmosqInflight, LogAll: true})
	// The proxy only keeps the bridge away from the restarted mosquitto
	// until a command was published there; mosquitto's port is the same.
	px := testutil.StartProxy(t, m.Addr)
	us := subscribeDup(t, m.Addr, "cloud-sub", "site1/s/#")
	cfg := bcfg("cloud", px.Addr(),
		bridge.Rule{Pattern: "s/#", Direction: bridge.Out, QoS: 1, RemotePrefix: "site1/"},
		bridge.Rule{Pattern: "cmd/#", Direction: bridge.In, QoS: 1, LocalPrefix: "dev/", RemotePrefix: "site1/"})
	cfg.Window = 32
	l := startLocal(t, t.TempDir(), cfg)
	br := l.bridges[0]
	ls := subscribe(t, l.addr, "local-app", true, "dev/#", 1)
	waitConnected(t, br, true)
	cloud := pub(t, m.Addr, "cloud-app-1")
	mustPublish(t, cloud, "site1/cmd/x", 1, false, "before")
	waitPayload(t, ls, "dev/cmd/x", "before")
	cloud.Disconnect(0)
	if sig == syscall.SIGKILL {
		// Only what mosquitto saved survives SIGKILL: wait until its
		// database holds the sessions (it saves after every change).
		testutil.WaitFor(t, 5*time.Second, func() error {
			_, err := os.Stat(m.DBFile())
			return err
		})
	}

	// Publish locally, paced, until well after the restart.
	const topics, minN, afterRestart = 4, 1500, 300
	var (
		published  atomic.Int64 // messages handed to the broker
		durable    atomic.Int64 // of which acknowledged
		restarted  atomic.Int64 // published count when mosquitto was back; 0 before
		pubErr     = make(chan error, 1)
		pubDone    = make(chan struct{})
		stopPub    = make(chan struct{})
		halfway    = make(chan struct{})
		halfwayOne sync.Once
	)
	go func() {
		defer close(pubDone)
		deadline := time.Now().Add(12 * time.Second)
		for i := 0; ; i++ {
			if r := restarted.Load(); i >= minN && r > 0 && int64(i) >= r+afterRestart {
				return
			}
			select {
			case <-stopPub:
				return
			default:
			}
			if time.Now().After(deadline) {
				pubErr <- fmt.Errorf("publisher: mosquitto not restarted after %d messages", i)
				return
			}
			if i == minN/4 {
				halfwayOne.Do(func() { close(halfway) })
			}
			published.Add(1)
			l.srv.Publish(fmt.Sprintf("s/%d", i%topics), []byte(strconv.Itoa(i)), 1, false, func(err error) {
				if err != nil {
					select {
					case pubErr <- fmt.Errorf("publishing %d: %w", i, err):
					default:
					}
				}
				durable.Add(1)
			})
			if i%2 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	defer func() { close(stopPub); <-pubDone }()

	select {
	case <-halfway:
	case err := <-pubErr:
		t.Fatal(err)
	case <-time.After(10 * time.Second):
		t.Fatal("publisher stalled")
	}
	downAt := time.Now()
	if sig == syscall.SIGKILL {
		m.Kill(t)
	} else {
		m.Stop(t)
	}
	px.SetDown(true) // from now on
	waitConnected(t, br, false)
	m.Restart(t) // same port, same persistence file
	// The bridge is kept away: a command sent now must wait in its
	// restored persistent session.
	cloud = pub(t, m.Addr, "cloud-app-2")
	mustPublish(t, cloud, "site1/cmd/x", 1, false, "while-away")
	restarted.Store(max(published.Load(), 1))
	px.SetDown(false)
	waitConnected(t, br, true)
	t.Logf("upstream %s: down and back in %s", sig, time.Since(downAt).Round(time.Millisecond))
	waitPayload(t, ls, "dev/cmd/x", "while-away")
	// And the subscription of the in rule works on the new connection.
	mustPublish(t, cloud, "site1/cmd/x", 1, false, "after")
	waitPayload(t, ls, "dev/cmd/x", "after")

	select {
	case <-pubDone:
	case <-time.After(15 * time.Second):
		t.Fatal("publisher did not finish")
	}
	select {
	case err := <-pubErr:
		t.Fatal(err)
	default:
	}
	n := int(published.Load())
	testutil.WaitFor(t, 5*time.Second, func() error {
		if d := durable.Load(); d != int64(n) {
			return fmt.Errorf("%d of %d local publishes durable", d, n)
		}
		return nil
	})
	us.waitDistinct(t, n, 15*time.Second)
	dups, err := checkOrder(us.snapshot())
	if err != nil {
		t.Fatal(err)
	}
	redelivered, fresh := us.dupSplit()
	t.Logf("%d messages across an upstream %s restart, %d duplicates: %d new copies (bridge resends, window %d), "+
		"%d redelivered by mosquitto with DUP set (its inflight %d)",
		n, sig, dups, fresh, cfg.Window, redelivered, pmosqInflight)
	// The bridge's own duplicates are bounded by its window; mosquitto's
	// redeliveries to the subscriber are its business (measured: up to
	// 32 with max_inflight_messages 20), checked only loosely.
	if fresh > cfg.Window {
		t.Errorf("%d messages sent twice by the bridge > window %d", fresh, cfg.Window)
	}
	if redelivered > 3*pmosqInflight {
		t.Errorf("mosquitto redelivered %d messages > 3 x its inflight %d", redelivered, pmosqInflight)
	}
	testutil.WaitFor(t, 5*time.Second, func() error {
		if st := l.stats("cloud"); st.Len != 0 {
			return fmt.Errorf("queue holds %d", st.Len)
		}
		return nil
	})
	if got := us.distinct(); got != n {
		t.Errorf("upstream got %d distinct messages, want %d", got, n)
	}
}

// TestNotificationWill checks the upstream notification topic: "1" while
// connected; "0" (the will) once the upstream times out a half-open link
// whose other end is gone; "1" again after reconnecting, also when the new
// connection takes over a session the upstream still holds; "0" after a
// clean stop.
func TestNotificationWill(t *testing.T) {
	m := testutil.StartMosquitto(t, testutil.MosquittoOptions{})
	fp := startFreezeProxy(t, m.Addr)
	cfg := bcfg("cloud", fp.addr(), bridge.Rule{Pattern: "s/#", Direction: bridge.Out, QoS: 1, RemotePrefix: "site1/"})
	// Bound the handshake: a connection made while frozen waits for its
	// CONNACK until ConnectTimeout.
	cfg.ConnectTimeout = time.Second
	const topic = "site1/edged/edged-test-cloud/state"
	l := startLocal(t, t.TempDir(), cfg)
	br := l.bridges[0]
	waitConnected(t, br, true)
	testutil.WaitRetained(t, m.Addr, topic, "1", 5*time.Second)

	// Half-open: the upstream hears nothing more, and the bridge cannot
	// reach it again. Only the will can say "0".
	start := time.Now()
	fp.freeze(true)
	testutil.WaitRetained(t, m.Addr, topic, "0", 10*time.Second)
	t.Logf("will published %s after the link went silent (keepalive %s)", time.Since(start).Round(time.Millisecond), cfg.KeepAlive)
	if br.Connected() {
		t.Error("bridge still reports connected over a dead link")
	}
	fp.freeze(false)
	start = time.Now()
	waitConnected(t, br, true)
	testutil.WaitRetained(t, m.Addr, topic, "1", 5*time.Second)

	// The present connection goes silent, new ones pass: the bridge
	// reconnects, possibly before the upstream gave up the old session
	// (a takeover). Once the upstream is done with the old connection,
	// its will must not have overwritten the new state.
	t.Logf("reconnected %s after the will", time.Since(start).Round(time.Millisecond))
	start = time.Now()
	accepted := fp.accepted()
	old := fp.freezeExisting()
	testutil.WaitFor(t, 8*time.Second, func() error {
		if fp.accepted() == accepted || !br.Connected() {
			return fmt.Errorf("bridge has not reconnected")
		}
		return nil
	})
	for _, c := range old {
		select {
		case <-c.serverGone:
		case <-time.After(8 * time.Second):
			t.Fatal("upstream did not close the silent connection")
		}
	}
	t.Logf("reconnected over a half-open link and old connection closed after %s", time.Since(start).Round(time.Millisecond))
	testutil.WaitRetained(t, m.Addr, topic, "1", 5*time.Second)
	if got := testutil.ReadRetained(t, m.Addr, topic); got != "1" {
		t.Errorf("state after a reconnect over a half-open link = %q, want 1", got)
	}

	// A clean stop publishes "0" itself (no will after DISCONNECT).
	l.stop()
	testutil.WaitRetained(t, m.Addr, topic, "0", 5*time.Second)
}

// dupSub is a persistent upstream subscriber that also records the DUP
// flag, to tell mosquitto's redeliveries from the bridge's resends.
type dupSub struct {
	*sub
	dup map[string][]bool // topic NUL payload: DUP flag of each arrival
}

func subscribeDup(t testing.TB, addr, id, filter string) *dupSub {
	t.Helper()
	d := &dupSub{sub: &sub{seen: map[string]int{}}, dup: map[string][]bool{}}
	o := mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).SetCleanSession(false).
		SetAutoReconnect(true).SetOrderMatters(true).SetMaxReconnectInterval(200 * time.Millisecond)
	o.SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) {
		k := m.Topic() + "\x00" + string(m.Payload())
		d.mu.Lock()
		d.msgs = append(d.msgs, rmsg{m.Topic(), string(m.Payload()), m.Retained(), m.Qos()})
		d.seen[k]++
		d.dup[k] = append(d.dup[k], m.Duplicate())
		d.mu.Unlock()
	})
	d.c = mqtt.NewClient(o)
	if tok := d.c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connecting subscriber: %v", tok.Error())
	}
	if tok := d.c.Subscribe(filter, 1, nil); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribing: %v", tok.Error())
	}
	t.Cleanup(func() { d.c.Disconnect(0) })
	return d
}

// dupSplit counts the second and later arrivals of a message: with the
// DUP flag (mosquitto resent it to this subscriber) or without (a new
// copy mosquitto received again, from the bridge).
func (d *dupSub) dupSplit() (redelivered, fresh int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, fs := range d.dup {
		for _, f := range fs[1:] {
			if f {
				redelivered++
			} else {
				fresh++
			}
		}
	}
	return redelivered, fresh
}

func waitConnected(t testing.TB, br *bridge.Bridge, want bool) {
	t.Helper()
	testutil.WaitFor(t, 10*time.Second, func() error {
		if br.Connected() != want {
			return fmt.Errorf("bridge connected = %v, want %v", !want, want)
		}
		return nil
	})
}

func waitPayload(t testing.TB, s *sub, topic, payload string) {
	t.Helper()
	testutil.WaitFor(t, 10*time.Second, func() error {
		s.mu.Lock()
		n := s.seen[topic+"\x00"+payload]
		s.mu.Unlock()
		if n == 0 {
			return fmt.Errorf("no %s=%s received", topic, payload)
		}
		return nil
	})
}

// freezeProxy forwards TCP to target until frozen. A frozen connection
// forwards nothing either way and stays open towards the target even when
// the client goes away, as a link that died silently: the upstream learns
// only from its keepalive. While the proxy is frozen, new connections are
// accepted and never reach the target.
type freezeProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	frozen bool
	conns  map[*fconn]struct{}
	n      int // connections accepted
	wg     sync.WaitGroup
}

type fconn struct {
	client, server net.Conn // server is nil when accepted frozen
	frozen         bool
	serverGone     chan struct{} // closed when the target closed its side
	goneOnce       sync.Once
}

func startFreezeProxy(t testing.TB, target string) *freezeProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &freezeProxy{ln: ln, target: target, conns: map[*fconn]struct{}{}}
	p.wg.Go(p.accept)
	t.Cleanup(p.close)
	return p
}

func (p *freezeProxy) addr() string { return p.ln.Addr().String() }

func (p *freezeProxy) accepted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

func (p *freezeProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		fc := &fconn{client: c, serverGone: make(chan struct{})}
		p.mu.Lock()
		p.n++
		fc.frozen = p.frozen
		p.conns[fc] = struct{}{}
		p.mu.Unlock()
		if fc.frozen {
			p.wg.Go(func() { p.pipe(fc, c, nil, false) })
			continue
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		fc.server = s
		p.mu.Unlock()
		p.wg.Go(func() { p.pipe(fc, c, s, false) })
		p.wg.Go(func() { p.pipe(fc, s, c, true) })
	}
}

// pipe copies src to dst while fc is not frozen. When src fails, both
// sides are closed, unless fc is frozen: then only src is.
func (p *freezeProxy) pipe(fc *fconn, src, dst net.Conn, fromServer bool) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		p.mu.Lock()
		frozen := fc.frozen
		p.mu.Unlock()
		if n > 0 && dst != nil && !frozen {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				err = werr
			}
		}
		if err != nil {
			if fromServer {
				fc.goneOnce.Do(func() { close(fc.serverGone) })
			}
			src.Close()
			if !frozen && dst != nil {
				dst.Close()
			}
			return
		}
	}
}

// freeze freezes every present connection, and new ones while on.
func (p *freezeProxy) freeze(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.frozen = on
	if on {
		for fc := range p.conns {
			fc.frozen = true
		}
	}
}

// freezeExisting freezes the present forwarded connections only.
func (p *freezeProxy) freezeExisting() []*fconn {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []*fconn
	for fc := range p.conns {
		if !fc.frozen && fc.server != nil {
			fc.frozen = true
			out = append(out, fc)
		}
	}
	return out
}

func (p *freezeProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for fc := range p.conns {
		fc.client.Close()
		if fc.server != nil {
			fc.server.Close()
		}
	}
	p.mu.Unlock()
	p.wg.Wait()
}
