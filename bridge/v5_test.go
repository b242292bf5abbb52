package bridge_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edged/edged/bridge"
	"github.com/edged/edged/broker/packet"
	"github.com/edged/edged/internal/testutil"
	"github.com/edged/edged/persist"
)

// msg5 is one message as mosquitto_sub -V 5 printed it.
type msg5 struct {
	topic, payload, contentType, corr, respTopic, expiry, format, user string
	dedup                                                              string // value of the "dedup" user property
}

// sub5 is a real MQTT 5.0 client, mosquitto_sub -V 5, subscribed to a
// filter on a mosquitto, printing every message with its properties.
type sub5 struct {
	mu   sync.Mutex
	msgs []msg5
}

func startSub5(t testing.TB, m *testutil.Mosquitto, filter string) *sub5 {
	t.Helper()
	bin := testutil.NeedTool(t, "mosquitto_sub")
	pubBin := testutil.NeedTool(t, "mosquitto_pub")
	host, port, _ := net.SplitHostPort(m.Addr)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-V", "5", "-h", host, "-p", port, "-q", "1", "-t", filter, "-t", "ready/sub5",
		"-F", "%t\t%p\t%C\t%D\t%R\t%E\t%F\t%P")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &sub5{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			f := strings.Split(sc.Text(), "\t")
			if len(f) != 8 {
				continue
			}
			s.mu.Lock()
			m := msg5{topic: f[0], payload: f[1], contentType: f[2], corr: f[3], respTopic: f[4], expiry: f[5], format: f[6], user: f[7]}
			// A trailing "dedup:<value>" is the bridge's (Config.DedupProperty).
			if i := strings.LastIndex(m.user, "dedup:"); i >= 0 {
				m.user, m.dedup = strings.TrimSuffix(m.user[:i], " "), m.user[i+len("dedup:"):]
			}
			s.msgs = append(s.msgs, m)
			s.mu.Unlock()
		}
		io.Copy(io.Discard, out)
	}()
	t.Cleanup(func() { cancel(); <-done; cmd.Wait() })
	// Subscribed once a message published after it arrives.
	testutil.WaitFor(t, 10*time.Second, func() error {
		if err := exec.Command(pubBin, "-V", "5", "-h", host, "-p", port, "-t", "ready/sub5", "-m", "x").Run(); err != nil {
			return err
		}
		time.Sleep(50 * time.Millisecond)
		for _, m := range s.snapshot() {
			if m.topic == "ready/sub5" {
				return nil
			}
		}
		return fmt.Errorf("mosquitto_sub not subscribed yet")
	})
	return s
}

func (s *sub5) snapshot() []msg5 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.msgs)
}

// distinct returns the first arrival of each topic+payload, in arrival
// order, leaving out the readiness probes, and the number of duplicates.
func (s *sub5) distinct() (first []msg5, dups int) {
	seen := map[string]bool{}
	for _, m := range s.snapshot() {
		if m.topic == "ready/sub5" {
			continue
		}
		k := m.topic + "\x00" + m.payload
		if seen[k] {
			dups++
			continue
		}
		seen[k] = true
		first = append(first, m)
	}
	return first, dups
}

func (s *sub5) waitDistinct(t testing.TB, n int, timeout time.Duration) []msg5 {
	t.Helper()
	var got []msg5
	testutil.WaitFor(t, timeout, func() error {
		if got, _ = s.distinct(); len(got) < n {
			return fmt.Errorf("received %d distinct messages, want %d", len(got), n)
		}
		return nil
	})
	return got
}

// props5 are the properties test message i is published with: user
// properties with a repeated key (their order matters [MQTT-3.3.2-18]),
// content type, correlation data, response topic, payload format and a
// message expiry of expiry seconds.
func props5(i int, expiry uint32) []byte {
	pf := byte(1)
	return packet.AppendProperties(nil, &packet.Properties{
		PayloadFormat: &pf, MessageExpiry: &expiry, ContentType: "application/json",
		ResponseTopic: "reply/" + strconv.Itoa(i), CorrelationData: []byte("corr-" + strconv.Itoa(i)),
		User: []packet.UserProperty{{Key: "b", Value: "2"}, {Key: "a", Value: "1"}, {Key: "b", Value: strconv.Itoa(i)}},
	})
}

// check5 checks that m arrived with the properties of props5 and returns
// the message expiry interval it arrived with.
func check5(t testing.TB, m msg5) int {
	t.Helper()
	i := m.payload
	want := msg5{topic: m.topic, payload: i, contentType: "application/json", corr: "corr-" + i,
		respTopic: "reply/" + i, expiry: m.expiry, format: "1", user: "b:2 a:1 b:" + i, dedup: m.dedup}
	if !strings.HasPrefix(m.dedup, "edged-test-cloud:") {
		t.Errorf("message %s: dedup property %q, want edged-test-cloud:<seq>", i, m.dedup)
	}
	if m != want {
		t.Errorf("message %s arrived as\n%+v, want\n%+v", i, m, want)
	}
	e, err := strconv.Atoi(m.expiry)
	if err != nil {
		t.Errorf("message %s: message expiry %q", i, m.expiry)
	}
	return e
}

// TestV5OutageProperties is the outage test with an MQTT 5.0 upstream
// (mosquitto 2): messages queued with 5.0 properties while the proxy resets,
// blackholes and refuses the uplink all arrive, in order per topic, with at
// most a window of duplicates per outage, with their user properties (in
// order), content type, correlation data, response topic and payload format
// intact, and with their message expiry reduced by the time spent queued;
// one that expired while queued is dropped and counted, not sent.
func TestV5OutageProperties(t *testing.T) {
	m := testutil.StartMosquitto(t, testutil.MosquittoOptions{})
	px := testutil.StartProxy(t, m.Addr)
	us := startSub5(t, m, "site1/s/#")
	cfg := bcfg("cloud", px.Addr(), bridge.Rule{Pattern: "s/#", Direction: bridge.Out, QoS: 1, RemotePrefix: "site1/"})
	cfg.Protocol = bridge.Protocol5
	cfg.Window = 32
	cfg.DedupProperty = "dedup"
	l := startLocal(t, t.TempDir(), cfg)
	br := l.bridges[0]
	waitConnected(t, br, true)
	if p := br.Protocol(); p != bridge.Protocol5 {
		t.Fatalf("protocol %q, want 5", p)
	}

	const expiry = 600
	msg := func(topic string, i int, ttl time.Duration) persist.Message {
		now := time.Now()
		return persist.Message{Topic: topic, Payload: []byte(strconv.Itoa(i)), QoS: 1, Time: now.UnixNano(),
			Properties: props5(i, uint32(ttl/time.Second)), Expiry: now.Add(ttl).UnixNano()}
	}
	const n, topics = 1500, 5
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n {
			l.inject(t, "cloud", msg(fmt.Sprintf("s/%d", i%topics), i, expiry*time.Second))
			if i%10 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	outages := 0
	for _, f := range []func(){
		func() { px.Reset() },
		func() { px.Blackhole(true); time.Sleep(1500 * time.Millisecond); px.Blackhole(false) },
		func() { px.SetDown(true); time.Sleep(300 * time.Millisecond); px.SetDown(false) },
		func() { px.Reset() },
	} {
		time.Sleep(150 * time.Millisecond)
		f()
		outages++
	}
	<-done

	// Queued for 3 s while the link is down: 20 messages with 600 s to
	// live, and one with 1 s, which expires in the queue.
	const k = 20
	px.SetDown(true)
	px.Reset()
	outages++
	waitConnected(t, br, false)
	for i := range k {
		l.inject(t, "cloud", msg("s/queued", n+i, expiry*time.Second))
	}
	l.inject(t, "cloud", msg("s/expires", n+k, time.Second))
	time.Sleep(3 * time.Second)
	px.SetDown(false)

	got := us.waitDistinct(t, n+k, 60*time.Second)
	_, dups := us.distinct()
	rm := make([]rmsg, 0, len(got))
	for _, m := range got {
		rm = append(rm, rmsg{topic: m.topic, payload: m.payload})
		e := check5(t, m)
		switch {
		case m.topic == "site1/s/expires":
			t.Errorf("message %s arrived although it expired in the queue", m.payload)
		case m.topic == "site1/s/queued" && (e > expiry-3 || e < expiry-30):
			t.Errorf("message %s queued 3 s arrived with message expiry %d, want %d-3 or less", m.payload, e, expiry)
		case e > expiry || e < 1:
			t.Errorf("message %s arrived with message expiry %d, want 1..%d", m.payload, e, expiry)
		}
	}
	if _, err := checkOrder(rm); err != nil {
		t.Error(err)
	}
	// The de-duplication property: every copy of a message carries the
	// same value, and no two messages share one.
	ids, owner := map[string]string{}, map[string]string{}
	for _, m := range us.snapshot() {
		if m.topic == "ready/sub5" {
			continue
		}
		k := m.topic + "\x00" + m.payload
		if prev, ok := ids[k]; ok && prev != m.dedup {
			t.Errorf("message %s: copies with dedup %q and %q", m.payload, prev, m.dedup)
		}
		if o, ok := owner[m.dedup]; ok && o != k {
			t.Errorf("dedup %q on two messages", m.dedup)
		}
		ids[k], owner[m.dedup] = m.dedup, k
	}
	t.Logf("%d messages, %d outages, %d duplicates", n+k, outages, dups)
	if dups > cfg.Window*outages {
		t.Errorf("%d duplicates > window %d x %d outages", dups, cfg.Window, outages)
	}
	if d := br.Drops(); d.Expired != 1 || d.Oversize != 0 || d.Refused != 0 {
		t.Errorf("drops %+v, want 1 expired", d)
	}
	testutil.WaitFor(t, 5*time.Second, func() error {
		if st := l.stats("cloud"); st.Len != 0 {
			return fmt.Errorf("queue holds %d", st.Len)
		}
		return nil
	})
}

// refusingFront stands for a 3.1.1-only broker in front of a real
// mosquitto: a CONNECT of protocol level 5 is answered by answer (and the
// connection closed); any other is passed on, with all that follows, to
// mosquitto. It counts the 5.0 attempts.
type refusingFront struct {
	ln       net.Listener
	mu       sync.Mutex
	attempts int
}

func startRefusingFront(t testing.TB, target string, answer []byte) *refusingFront {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &refusingFront{ln: ln}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { f.serve(c, target, answer) })
		}
	})
	return f
}

func (f *refusingFront) serve(c net.Conn, target string, answer []byte) {
	defer c.Close()
	r := bufio.NewReader(c)
	first, n, err := packet.ReadHeader(r)
	if err != nil || packet.Type(first>>4) != packet.CONNECT || n > 1<<16 {
		return
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil || n < 7 {
		return
	}
	if body[6] == byte(packet.V5) { // level after the protocol name "MQTT"
		f.mu.Lock()
		f.attempts++
		f.mu.Unlock()
		if answer != nil {
			c.Write(answer)
		}
		return
	}
	up, err := net.Dial("tcp", target)
	if err != nil {
		return
	}
	defer up.Close()
	// Pass the CONNECT on: its fixed header, rebuilt, and its body.
	head := []byte{first}
	for v := n; ; {
		b := byte(v % 128)
		v /= 128
		if v > 0 {
			b |= 0x80
		}
		head = append(head, b)
		if v == 0 {
			break
		}
	}
	up.Write(append(head, body...))
	go func() { io.Copy(c, up); c.Close() }()
	io.Copy(up, r)
}

func (f *refusingFront) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.attempts
}

// TestV5AutoFallback: with protocol auto, an upstream that speaks only
// 3.1.1 (refusing 5.0 with CONNACK reason 0x84, with the 3.1.1 return code
// 0x01, or by closing the connection) gets 3.1.1 from then on, and the
// messages flow. The hostile case: with protocol 5 the bridge does not fall
// back and keeps retrying 5.0.
func TestV5AutoFallback(t *testing.T) {
	m := testutil.StartMosquitto(t, testutil.MosquittoOptions{})
	answers := map[string][]byte{
		"reason-0x84": (&packet.Connack{Reason: packet.UnsupportedProtocolVersion}).AppendTo(nil, packet.V5),
		"code-0x01":   {0x20, 0x02, 0x00, 0x01},
		"close":       nil,
	}
	for name, answer := range answers {
		t.Run(name, func(t *testing.T) {
			front := startRefusingFront(t, m.Addr, answer)
			us := subscribe(t, m.Addr, "sub-"+name, true, "site1/#", 1)
			cfg := bcfg("cloud", front.ln.Addr().String(), bridge.Rule{Pattern: "s/#", Direction: bridge.Out, QoS: 1, RemotePrefix: "site1/"})
			cfg.ClientID = "edged-fallback-" + name
			cfg.Protocol = bridge.ProtocolAuto
			l := startLocal(t, t.TempDir(), cfg)
			br := l.bridges[0]
			waitConnected(t, br, true)
			if p := br.Protocol(); p != bridge.Protocol311 {
				t.Fatalf("protocol %q, want 3.1.1", p)
			}
			l.publish(t, "s/1", []byte("hello"), 1, false)
			waitPayload(t, us, "site1/s/1", "hello")
			if a := front.count(); a != 1 {
				t.Errorf("%d 5.0 attempts, want 1 (the fallback sticks)", a)
			}
		})
	}
	// A proxy that accepts and closes every connection (an upstream that
	// is down behind a load balancer) must not make auto give up 5.0:
	// once the upstream is back, the bridge speaks 5.0.
	t.Run("down-is-not-3.1.1-only", func(t *testing.T) {
		px := testutil.StartProxy(t, m.Addr)
		px.SetDown(true)
		cfg := bcfg("cloud", px.Addr(), bridge.Rule{Pattern: "s/#", Direction: bridge.Out, QoS: 1})
		cfg.ClientID = "edged-fallback-down"
		cfg.Protocol = bridge.ProtocolAuto
		l := startLocal(t, t.TempDir(), cfg)
		time.Sleep(time.Second) // several 5.0 and 3.1.1 attempts, all closed
		px.SetDown(false)
		br := l.bridges[0]
		waitConnected(t, br, true)
		if p := br.Protocol(); p != bridge.Protocol5 {
			t.Fatalf("protocol %q after the upstream came back, want 5", p)
		}
	})
	t.Run("protocol-5-does-not-fall-back", func(t *testing.T) {
		front := startRefusingFront(t, m.Addr, answers["reason-0x84"])
		cfg := bcfg("cloud", front.ln.Addr().String(), bridge.Rule{Pattern: "s/#", Direction: bridge.Out, QoS: 1})
		cfg.Protocol = bridge.Protocol5
		l := startLocal(t, t.TempDir(), cfg)
		testutil.WaitFor(t, 10*time.Second, func() error {
			if a := front.count(); a < 3 {
				return fmt.Errorf("%d 5.0 attempts", a)
			}
			return nil
		})
		if br := l.bridges[0]; br.Connected() || br.Protocol() != "" {
			t.Fatalf("connected %v with protocol %q to an upstream refusing 5.0", br.Connected(), br.Protocol())
		}
	})
}

// TestV5ReceiveMaximum: mosquitto with max_inflight_messages 2 announces
// Receive Maximum 2; a bridge with window 64 never has more than 2 QoS 1
// publishes awaiting acknowledgement, and everything arrives.
func TestV5ReceiveMaximum(t *testing.T) {
	m := testutil.StartMosquitto(t, testutil.MosquittoOptions{MaxInflight: 2})
	us := subscribe(t, m.Addr, "sub", true, "site1/#", 1)
	cfg := bcfg("cloud", m.Addr, bridge.Rule{Pattern: "s/#", Direction: bridge.Out, QoS: 1, RemotePrefix: "site1/"})
	cfg.Protocol = bridge.Protocol5
	cfg.Window = 64
	l := startLocal(t, t.TempDir(), cfg)
	const n = 500
	for i := range n {
		l.srv.Publish("s/"+strconv.Itoa(i%3), []byte(strconv.Itoa(i)), 1, false, nil)
	}
	us.waitDistinct(t, n, 30*time.Second)
	if _, err := checkOrder(us.snapshot()); err != nil {
		t.Error(err)
	}
	peak, rm := bridge.Inflight5(l.bridges[0])
	t.Logf("upstream receive maximum %d, peak in flight %d", rm, peak)
	if rm != 2 {
		t.Errorf("upstream receive maximum %d, want 2", rm)
	}
	if peak < 1 || peak > 2 {
		t.Errorf("peak in flight %d, want 1..2", peak)
	}
}

// TestV5OversizeDoesNotStall: a message larger than the upstream's Maximum
// Packet Size (mosquitto max_packet_size 1000) is dropped, counted and
// logged; the messages behind it go on, in order.
func TestV5OversizeDoesNotStall(t *testing.T) {
	m := testutil.StartMosquitto(t, testutil.MosquittoOptions{Extra: []string{"max_packet_size 1000"}})
	us := subscribe(t, m.Addr, "sub", true, "site1/#", 1)
	cfg := bcfg("cloud", m.Addr, bridge.Rule{Pattern: "s/#", Direction: bridge.Out, QoS: 1, RemotePrefix: "site1/"})
	cfg.Protocol = bridge.Protocol5
	l := startLocal(t, t.TempDir(), cfg)
	br := l.bridges[0]
	waitConnected(t, br, true)
	const n, big = 20, 7
	for i := range n {
		p := []byte(strconv.Itoa(i))
		if i == big {
			p = append(p, strings.Repeat(" ", 2000)...)
		}
		l.publish(t, "s/1", p, 1, false)
	}
	us.waitDistinct(t, n-1, 10*time.Second)
	got := us.snapshot()
	if _, err := checkOrder(got); err != nil {
		t.Error(err)
	}
	for _, m := range got {
		if len(m.payload) > 100 {
			t.Errorf("the oversize message arrived (%d bytes)", len(m.payload))
		}
	}
	if d := br.Drops(); d.Oversize != 1 {
		t.Errorf("drops %+v, want 1 oversize", d)
	}
	if st := br.Status(); st.Drops.Oversize != 1 || st.Protocol != bridge.Protocol5 {
		t.Errorf("status drops %+v protocol %q, want 1 oversize over 5", st.Drops, st.Protocol)
	}
	testutil.WaitFor(t, 5*time.Second, func() error {
		if st := l.stats("cloud"); st.Len != 0 {
			return fmt.Errorf("queue holds %d", st.Len)
		}
		return nil
	})
}

// TestV5InRuleProperties: a 5.0 message sent down an in rule by a real 5.0
// client (mosquitto_pub -V 5) reaches the local broker with its user
// properties in order, content type, correlation data and response topic
// (Publisher5), and its remaining expiry as a time.
func TestV5InRuleProperties(t *testing.T) {
	m := testutil.StartMosquitto(t, testutil.MosquittoOptions{})
	cfg := bcfg("cloud", m.Addr, bridge.Rule{Pattern: "cmd/#", Direction: bridge.In, QoS: 1})
	cfg.Protocol = bridge.Protocol5
	l := startLocal(t, t.TempDir(), cfg)
	waitConnected(t, l.bridges[0], true)
	ls := subscribe(t, l.addr, "local-sub", true, "cmd/#", 1)
	// A local 5.0 subscriber (mosquitto_sub -V 5) sees them too, with the
	// expiry interval that is left.
	lhost, lport, _ := net.SplitHostPort(l.addr)
	var subOut bytes.Buffer
	msub := exec.Command(testutil.NeedTool(t, "mosquitto_sub"), "-V", "5", "-h", lhost, "-p", lport, "-i", "local-v5",
		"-q", "1", "-t", "cmd/#", "-C", "1", "-W", "20", "-F", "%t|%p|%C|%R|%D|%E|%P")
	msub.Stdout, msub.Stderr = &subOut, &subOut
	if err := msub.Start(); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 5*time.Second, func() error {
		for _, si := range l.srv.Sessions() {
			if si.ClientID == "local-v5" && len(si.Subscriptions) == 1 {
				return nil
			}
		}
		return errors.New("mosquitto_sub not subscribed yet")
	})
	host, port, _ := net.SplitHostPort(m.Addr)
	start := time.Now()
	out, err := exec.Command(testutil.NeedTool(t, "mosquitto_pub"), "-V", "5", "-h", host, "-p", port, "-q", "1",
		"-t", "cmd/valve", "-m", "open",
		"-D", "publish", "user-property", "b", "2", "-D", "publish", "user-property", "a", "1",
		"-D", "publish", "user-property", "b", "3", "-D", "publish", "content-type", "text/plain",
		"-D", "publish", "correlation-data", "c-42", "-D", "publish", "response-topic", "reply/valve",
		"-D", "publish", "message-expiry-interval", "100").CombinedOutput()
	if err != nil {
		t.Fatalf("mosquitto_pub: %v: %s", err, out)
	}
	waitPayload(t, ls, "cmd/valve", "open")
	got := l.b5.published()
	if len(got) != 1 || got[0].topic != "cmd/valve" {
		t.Fatalf("published with properties: %+v", got)
	}
	p, err := packet.DecodeProperties(got[0].props, packet.PUBLISH)
	if err != nil {
		t.Fatal(err)
	}
	if p == nil || p.ContentType != "text/plain" || string(p.CorrelationData) != "c-42" || p.ResponseTopic != "reply/valve" ||
		!slices.Equal(p.User, []packet.UserProperty{{Key: "b", Value: "2"}, {Key: "a", Value: "1"}, {Key: "b", Value: "3"}}) {
		t.Errorf("properties %+v", p)
	}
	if e := got[0].expiry; e.Before(start.Add(90*time.Second)) || e.After(time.Now().Add(100*time.Second)) {
		t.Errorf("expiry in %s, want about 100s", time.Until(e))
	}
	if err := msub.Wait(); err != nil {
		t.Fatalf("mosquitto_sub: %v: %s", err, subOut.String())
	}
	f := strings.Split(strings.TrimSpace(subOut.String()), "|")
	if len(f) != 7 || f[0] != "cmd/valve" || f[1] != "open" || f[2] != "text/plain" || f[3] != "reply/valve" || f[4] != "c-42" ||
		!strings.Contains(f[6], "b:2") || !strings.Contains(f[6], "a:1") || !strings.Contains(f[6], "b:3") {
		t.Fatalf("local 5.0 subscriber got %q", subOut.String())
	}
	if e, err := strconv.Atoi(f[5]); err != nil || e < 90 || e > 100 {
		t.Errorf("local 5.0 subscriber got message expiry %q, want 90..100", f[5])
	}
}

// TestV5PersistentSession: an in rule over 5.0 keeps its upstream session
// (Clean Start 0, a session expiry interval): a command published upstream
// while the link is down arrives once it is back. The hostile half: with
// session_expiry 1s and a 3 s outage the upstream has dropped the session,
// and the command sent meanwhile is gone (what session_expiry means).
func TestV5PersistentSession(t *testing.T) {
	for _, tc := range []struct {
		name   string
		expiry time.Duration
		want   bool
	}{{"kept", time.Hour, true}, {"expired", time.Second, false}} {
		t.Run(tc.name, func(t *testing.T) {
			m := testutil.StartMosquitto(t, testutil.MosquittoOptions{})
			px := testutil.StartProxy(t, m.Addr)
			cfg := bcfg("cloud", px.Addr(), bridge.Rule{Pattern: "cmd/#", Direction: bridge.In, QoS: 1})
			cfg.Protocol = bridge.Protocol5
			cfg.SessionExpiry = tc.expiry
			l := startLocal(t, t.TempDir(), cfg)
			br := l.bridges[0]
			waitConnected(t, br, true)
			ls := subscribe(t, l.addr, "local-sub", true, "cmd/#", 1)
			px.SetDown(true)
			px.Reset()
			waitConnected(t, br, false)
			time.Sleep(1500 * time.Millisecond) // mosquitto notices the drop; 1s expires
			cloud := pub(t, m.Addr, "cloud-pub")
			mustPublish(t, cloud, "cmd/valve", 1, false, "open")
			time.Sleep(1500 * time.Millisecond)
			px.SetDown(false)
			waitConnected(t, br, true)
			if tc.want {
				waitPayload(t, ls, "cmd/valve", "open")
				return
			}
			time.Sleep(time.Second)
			if n := ls.distinct(); n != 0 {
				t.Fatalf("%d messages arrived from an expired session", n)
			}
		})
	}
}

// TestV5DedupPriority: with a priority: high rule the bridge has two
// queues whose sequence numbers both start at 1, yet every message
// forwarded over 5.0 carries a distinct dedup value: the high queue's are
// "<client_id>:high:<seq>", the normal queue's "<client_id>:<seq>". The
// hostile half: the bare seqs of the two queues do collide, so a value
// made of the seq alone would name two messages.
func TestV5DedupPriority(t *testing.T) {
	m := testutil.StartMosquitto(t, testutil.MosquittoOptions{})
	us := startSub5(t, m, "site1/#")
	cfg := bcfg("cloud", m.Addr,
		bridge.Rule{Pattern: "s/#", Direction: bridge.Out, QoS: 1, RemotePrefix: "site1/"},
		bridge.Rule{Pattern: "alarm/#", Direction: bridge.Out, QoS: 1, RemotePrefix: "site1/", Priority: bridge.PriorityHigh})
	cfg.Protocol = bridge.Protocol5
	cfg.DedupProperty = "dedup"
	cfg.NotificationTopic = "-" // only the messages reach site1/#
	l := startLocal(t, t.TempDir(), cfg)
	waitConnected(t, l.bridges[0], true)
	const n = 5
	for i := range n {
		l.publish(t, "s/1", []byte("n"+strconv.Itoa(i)), 1, false)
		l.publish(t, "alarm/1", []byte("h"+strconv.Itoa(i)), 1, false)
	}
	got := us.waitDistinct(t, 2*n, 10*time.Second)
	values := map[string]string{} // dedup value -> payload
	seqs := map[string][]string{} // queue -> bare seqs
	for _, msg := range got {
		if prev, ok := values[msg.dedup]; ok {
			t.Errorf("dedup value %q sent for %s and %s", msg.dedup, prev, msg.payload)
		}
		values[msg.dedup] = msg.payload
		rest, ok := strings.CutPrefix(msg.dedup, cfg.ClientID+":")
		if !ok {
			t.Fatalf("message %s: dedup %q does not start with the client id", msg.payload, msg.dedup)
		}
		queue := "normal"
		if strings.HasPrefix(msg.payload, "h") {
			queue = "high"
			if rest, ok = strings.CutPrefix(rest, "high:"); !ok {
				t.Errorf("high message %s: dedup %q, want %s:high:<seq>", msg.payload, msg.dedup, cfg.ClientID)
			}
		}
		if _, err := strconv.ParseUint(rest, 10, 64); err != nil {
			t.Errorf("message %s: dedup %q does not end in a seq", msg.payload, msg.dedup)
		}
		seqs[queue] = append(seqs[queue], rest)
	}
	if !slices.ContainsFunc(seqs["high"], func(s string) bool { return slices.Contains(seqs["normal"], s) }) {
		t.Errorf("the two queues' seqs do not overlap (high %v, normal %v): the test shows nothing", seqs["high"], seqs["normal"])
	}
}

// TestV5AutoPerAddress: with protocol auto and two addresses, what auto
// learns about one address stays with it. The first address is down (a
// proxy closing every connection, which must not cost it 5.0), the second
// speaks only 3.1.1 (refuses 5.0 with CONNACK 0x84) and gets 3.1.1; once
// the first is back the bridge switches to it (failover priority) and
// speaks 5.0 there, not the 3.1.1 the second address taught it.
func TestV5AutoPerAddress(t *testing.T) {
	m := testutil.StartMosquitto(t, testutil.MosquittoOptions{})
	px := testutil.StartProxy(t, m.Addr)
	px.SetDown(true)
	front := startRefusingFront(t, m.Addr, (&packet.Connack{Reason: packet.UnsupportedProtocolVersion}).AppendTo(nil, packet.V5))
	cfg := bcfg("cloud", "", bridge.Rule{Pattern: "s/#", Direction: bridge.Out, QoS: 1})
	cfg.Address = ""
	cfg.Addresses = []string{"tcp://" + px.Addr(), "tcp://" + front.ln.Addr().String()}
	cfg.PrimaryRetry = 100 * time.Millisecond
	cfg.Protocol = bridge.ProtocolAuto
	l := startLocal(t, t.TempDir(), cfg)
	br := l.bridges[0]
	testutil.WaitFor(t, 10*time.Second, func() error {
		if a, p := br.Address(), br.Protocol(); !br.Connected() || a != cfg.Addresses[1] || p != bridge.Protocol311 {
			return fmt.Errorf("connected %v to %q with %q, want the second address with 3.1.1", br.Connected(), a, p)
		}
		return nil
	})
	px.SetDown(false)
	testutil.WaitFor(t, 10*time.Second, func() error {
		if a, p := br.Address(), br.Protocol(); !br.Connected() || a != cfg.Addresses[0] || p != bridge.Protocol5 {
			return fmt.Errorf("connected %v to %q with %q, want the first address with 5", br.Connected(), a, p)
		}
		return nil
	})
}

// TestV5PublisherToUpstream is the outage test end to end with real 5.0
// clients on both sides: mosquitto_pub -V 5 publishes to edged with
// properties while the uplink to a 5.0 mosquitto is reset and blackholed;
// every message it had acknowledged reaches the upstream 5.0 subscriber,
// in order, with its user properties (in order), content type, correlation
// data, response topic and payload format, and a message expiry no longer
// than it was published with.
func TestV5PublisherToUpstream(t *testing.T) {
	m := testutil.StartMosquitto(t, testutil.MosquittoOptions{})
	px := testutil.StartProxy(t, m.Addr)
	us := startSub5(t, m, "site1/v/#")
	cfg := bcfg("cloud", px.Addr(), bridge.Rule{Pattern: "v/#", Direction: bridge.Out, QoS: 1, RemotePrefix: "site1/"})
	cfg.Protocol = bridge.Protocol5
	l := startLocal(t, t.TempDir(), cfg)
	br := l.bridges[0]
	waitConnected(t, br, true)

	const n = 300
	host, port, _ := net.SplitHostPort(l.addr)
	pub := exec.Command(testutil.NeedTool(t, "mosquitto_pub"), "-V", "5", "-h", host, "-p", port, "-i", "v5-pub",
		"-q", "1", "-t", "v/x", "-l",
		"-D", "publish", "user-property", "b", "2", "-D", "publish", "user-property", "a", "1",
		"-D", "publish", "content-type", "text/plain", "-D", "publish", "correlation-data", "c-1",
		"-D", "publish", "response-topic", "reply/v", "-D", "publish", "payload-format-indicator", "1",
		"-D", "publish", "message-expiry-interval", "600")
	stdin, err := pub.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var pubOut bytes.Buffer
	pub.Stdout, pub.Stderr = &pubOut, &pubOut
	if err := pub.Start(); err != nil {
		t.Fatal(err)
	}
	outages := []func(){
		func() { px.Reset() },
		func() { px.Blackhole(true); time.Sleep(time.Second); px.Blackhole(false) },
		func() { px.SetDown(true); time.Sleep(300 * time.Millisecond); px.SetDown(false) },
	}
	for i := range n {
		if _, err := fmt.Fprintf(stdin, "%d\n", i); err != nil {
			t.Fatal(err)
		}
		if i%100 == 50 {
			outages[i/100]()
		}
		if i%10 == 0 {
			time.Sleep(2 * time.Millisecond)
		}
	}
	stdin.Close()
	if err := pub.Wait(); err != nil {
		t.Fatalf("mosquitto_pub: %v: %s", err, pubOut.String())
	}

	got := us.waitDistinct(t, n, 60*time.Second)
	for i, m := range got {
		want := msg5{topic: "site1/v/x", payload: strconv.Itoa(i), contentType: "text/plain", corr: "c-1",
			respTopic: "reply/v", expiry: m.expiry, format: "1", user: "b:2 a:1"}
		if m != want {
			t.Fatalf("message %d arrived as\n%+v, want\n%+v", i, m, want)
		}
		if e, err := strconv.Atoi(m.expiry); err != nil || e < 1 || e > 600 {
			t.Fatalf("message %d: message expiry %q, want 1..600", i, m.expiry)
		}
	}
}
