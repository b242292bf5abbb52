package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edged/edged/broker/packet"
)

// The hostile-client suite: floods against the real edged binary, each
// asserting that edged keeps serving a normal client and that its resident
// memory stays under a stated bound. The RSS figures are logged for the
// README.
//
// Attackers dial from other loopback addresses (127.0.0.2 and up: Linux
// routes all of 127.0.0.0/8 to lo), so that the per-address limits apply to
// them and not to the normal client on 127.0.0.1.

// hostileRSSBound is what edged's VmRSS must stay under during a flood,
// with memory_limit: 32MiB. VmRSS counts the binary's mapped pages and the
// store's mmap too (about 7 MiB), and memory_limit is a soft target for the
// Go heap, hence the margin. A -race binary's shadow memory multiplies
// everything; there the growth over the idle process is bounded instead.
const hostileRSSBound = 48 << 20

// hostileConfig is the configuration the suite runs edged with: the
// shipped defaults, but a short connect_timeout to keep the tests short.
func hostileConfig(dir, extraLimits, listener string) string {
	if listener == "" {
		listener = "{name: local, address: 127.0.0.1:0}"
	}
	return "data_dir: " + dir + "/data\nmemory_limit: 32MiB\nsys_interval: 1h\n" +
		"limits: {connect_timeout: 2s" + extraLimits + "}\n" +
		"listeners:\n  - " + listener + "\n"
}

// raiseNofile lifts the soft limit on open files to the hard limit for the
// test process; edged, started from it, inherits it.
func raiseNofile(t *testing.T, need uint64) {
	t.Helper()
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
	}
	if rl.Cur < need {
		t.Skipf("RLIMIT_NOFILE %d is below the %d this test needs", rl.Cur, need)
	}
}

// rss is edged's VmRSS in bytes.
func (p *edgedProc) rss(t *testing.T) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmRSS:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in /proc/PID/status")
	return 0
}

// rssMeter records edged's idle RSS, then checks it under a flood.
type rssMeter struct {
	p    *edgedProc
	idle int64
}

func newRSSMeter(t *testing.T, p *edgedProc) *rssMeter {
	// A normal client first, so that the idle figure includes what serving
	// one costs.
	normalRoundTrip(t, p.addr, "warmup")
	return &rssMeter{p: p, idle: p.rss(t)}
}

// check logs the RSS now and fails if it is over hostileRSSBound (without
// -race), or more than raceGrowth over the idle RSS (with -race).
func (m *rssMeter) check(t *testing.T, what string, raceGrowth int64) {
	t.Helper()
	now := m.p.rss(t)
	t.Logf("RSS %s: %.1f MiB (idle %.1f MiB, race %v)", what, float64(now)/(1<<20), float64(m.idle)/(1<<20), raceEnabled)
	switch {
	case !raceEnabled && now > hostileRSSBound:
		t.Errorf("RSS %s is %.1f MiB, over the bound of %d MiB with memory_limit: 32MiB",
			what, float64(now)/(1<<20), hostileRSSBound>>20)
	case raceEnabled && now-m.idle > raceGrowth:
		t.Errorf("RSS %s grew by %.1f MiB over idle, over %d MiB (race build)",
			what, float64(now-m.idle)/(1<<20), raceGrowth>>20)
	}
}

// dialFrom dials addr from the loopback address local.
func dialFrom(local, addr string) (net.Conn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
	return d.Dial("tcp", addr)
}

// attacker returns the n-th attacking source address: 127.0.0.2 and up.
func attacker(n int) string { return fmt.Sprintf("127.0.0.%d", 2+n) }

// openSockets counts the connections edged has not closed: one whose
// reads (after what edged sent) time out is still open.
func openSockets(conns []net.Conn) int {
	n := 0
	var b [4096]byte
	for _, c := range conns {
		for {
			c.SetReadDeadline(time.Now().Add(time.Millisecond))
			_, err := c.Read(b[:])
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				n++
			}
			if err != nil {
				break
			}
		}
	}
	return n
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		c.Close()
	}
}

// normalRoundTrip checks that edged serves a normal client: CONNECT,
// SUBSCRIBE at QoS 1 and a QoS 1 PUBLISH to itself, within 10 s.
func normalRoundTrip(t *testing.T, addr, id string) {
	t.Helper()
	if err := roundTrip(addr, id); err != nil {
		t.Fatalf("normal client %s: %v", id, err)
	}
}

func roundTrip(addr, id string) error {
	got := make(chan packet.Packet, 8)
	c, _, err := dialMQTT(addr, id, true, func(c *tclient, p packet.Packet) {
		if pub, ok := p.(*packet.Publish); ok && pub.QoS == 1 {
			c.send(&packet.Puback{PacketID: pub.PacketID})
		}
		got <- p
	})
	if err != nil {
		return err
	}
	defer c.close()
	topic := "alive/" + id
	c.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: topic, QoS: 1}}})
	deadline := time.After(10 * time.Second)
	var suback, puback, msg bool
	for !suback || !puback || !msg {
		select {
		case p := <-got:
			switch p := p.(type) {
			case *packet.Suback:
				suback = true
				c.send(&packet.Publish{Topic: topic, Payload: []byte("ok"), QoS: 1, PacketID: 2})
			case *packet.Puback:
				puback = true
			case *packet.Publish:
				msg = string(p.Payload) == "ok"
			}
		case <-deadline:
			return fmt.Errorf("no QoS 1 round trip within 10s (suback %v, puback %v, message %v)", suback, puback, msg)
		}
	}
	c.send(&packet.Disconnect{})
	return nil
}

// countLogs counts edged's log records with message msg, and sums their
// "suppressed" counts.
func (p *edgedProc) countLogs(msg string) (lines, suppressed int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.logs {
		if r["msg"] == msg {
			lines++
			if n, ok := r["suppressed"].(float64); ok {
				suppressed += int(n)
			}
		}
	}
	return lines, suppressed
}

// Subscribers that never read, sent large QoS 0 messages: each write
// queue is bounded in bytes (limits.max_write_queue_bytes, 1 MiB) and the
// rest is dropped and logged as a slow consumer. Before, four of them took
// edged to 820 MB under memory_limit: 32MiB.
func TestHostileNonReadingSubscribers(t *testing.T) {
	dir := t.TempDir()
	p := startEdged(t, dir, hostileConfig(dir, "", ""))
	m := newRSSMeter(t, p)
	for i := range 4 {
		nc, err := dialSmallRecvBuf(p.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		b := (&packet.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: fmt.Sprint("stalled", i), CleanSession: true}).AppendTo(nil, packet.V311)
		b = (&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "big/#", QoS: 0}}}).AppendTo(b, packet.V311)
		if _, err := nc.Write(b); err != nil {
			t.Fatal(err)
		}
		// CONNACK and SUBACK are read; then it never reads again.
		br := bufio.NewReader(nc)
		nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		for range 2 {
			if _, err := packet.Read(br, 0, packet.V311); err != nil {
				t.Fatal(err)
			}
		}
	}
	acked := make(chan struct{})
	pub, _, err := dialMQTT(p.addr, "flooder", true, func(_ *tclient, pk packet.Packet) {
		if _, ok := pk.(*packet.Puback); ok {
			close(acked)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.close()
	payload := bytes.Repeat([]byte("p"), 200<<10)
	for range 500 { // 100 MB, 500 messages: under max_write_queue's 1024 packets
		if err := pub.send(&packet.Publish{Topic: "big/x", Payload: payload}); err != nil {
			t.Fatal(err)
		}
	}
	// A QoS 1 message after them: PUBACK means edged handled them all.
	pub.send(&packet.Publish{Topic: "flood/done", QoS: 1, PacketID: 1})
	select {
	case <-acked:
	case <-time.After(10 * time.Second):
		t.Fatal("no PUBACK after the flood")
	}
	m.check(t, "with 4 subscribers not reading 500 x 200 KB QoS 0", 96<<20)
	normalRoundTrip(t, p.addr, "normal")
	if lines, _ := p.countLogs("slow consumer: write queue full, QoS 0 message dropped"); lines == 0 || lines > 10 {
		t.Errorf("%d slow-consumer log lines, want 1 to 10 (rate-limited)", lines)
	}
}

// dialSmallRecvBuf dials addr with a tiny socket receive buffer, so that a
// client that stops reading backs up edged's writes at once.
func dialSmallRecvBuf(addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		return errors.Join(err, serr)
	}}
	return d.Dial("tcp", addr)
}

// Thousands of sockets that never send CONNECT (a half-open flood): those
// over limits.max_pending_connections_per_address (32) are closed at once,
// the rest at connect_timeout, and a normal client is served meanwhile.
// Before, 10,000 of them held 80 MB for the whole connect timeout.
func TestHostileHalfOpenFlood(t *testing.T) {
	const hosts, perHost = 6, 500
	raiseNofile(t, hosts*perHost+1000)
	dir := t.TempDir()
	p := startEdged(t, dir, hostileConfig(dir, "", ""))
	m := newRSSMeter(t, p)
	var conns []net.Conn
	defer func() { closeAll(conns) }()
	for i := range hosts * perHost {
		c, err := dialFrom(attacker(i%hosts), p.addr)
		if err != nil {
			t.Fatalf("socket %d: %v", i, err)
		}
		conns = append(conns, c)
	}
	normalRoundTrip(t, p.addr, "normal")
	m.check(t, fmt.Sprintf("with %d silent sockets from %d addresses", len(conns), hosts), 32<<20)
	// Sockets edged has not accepted yet look open too: poll briefly.
	open := openSockets(conns)
	for deadline := time.Now().Add(time.Second); open > hosts*32 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		open = openSockets(conns)
	}
	if open > hosts*32 {
		t.Fatalf("%d of %d silent sockets still open, want at most %d (32 per address)", open, len(conns), hosts*32)
	}
	t.Logf("%d of %d silent sockets held", open, len(conns))
	if lines, suppressed := p.countLogs("connection closed at accept"); lines == 0 || lines > 10 {
		t.Errorf("%d lines (%d suppressed) for sockets closed at accept, want 1 to 10", lines, suppressed)
	}
	// connect_timeout (2s, from accept) closes the rest. Sockets edged
	// accepted late under load get their 2 s from then: poll, with a
	// bound far above the timeout but far below never.
	open = openSockets(conns)
	for deadline := time.Now().Add(8 * time.Second); open > 0 && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		open = openSockets(conns)
	}
	if open > 0 {
		t.Fatalf("%d silent sockets open 8 s after connect_timeout", open)
	}
	if lines, _ := p.countLogs("no CONNECT within the connect timeout; closing"); lines == 0 {
		t.Error("CONNECT timeouts not logged")
	}
}

// Slowloris: clients sending their CONNECT one byte at a time cannot
// stretch connect_timeout, a deadline from accept; a normal client is
// served meanwhile.
func TestHostileSlowloris(t *testing.T) {
	const hosts, perHost = 4, 25
	dir := t.TempDir()
	p := startEdged(t, dir, hostileConfig(dir, "", ""))
	m := newRSSMeter(t, p)
	var conns []net.Conn
	defer func() { closeAll(conns) }()
	for i := range hosts * perHost {
		c, err := dialFrom(attacker(i%hosts), p.addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	connect := (&packet.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: strings.Repeat("s", 60), CleanSession: true}).AppendTo(nil, packet.V311)
	start := time.Now()
	for i := 0; i < len(connect)-1 && time.Since(start) < 4*time.Second; i++ {
		for _, c := range conns {
			c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
			c.Write(connect[i : i+1])
		}
		if i == 5 {
			normalRoundTrip(t, p.addr, "normal")
		}
		time.Sleep(100 * time.Millisecond)
	}
	m.check(t, fmt.Sprintf("with %d slowloris clients", len(conns)), 32<<20)
	if open := openSockets(conns); open > 0 {
		t.Fatalf("%d of %d slowloris clients still open %s after accept, with connect_timeout 2s",
			open, len(conns), time.Since(start).Round(time.Millisecond))
	}
	lines, suppressed := p.countLogs("no CONNECT within the connect timeout; closing")
	if lines == 0 || lines > 10 {
		t.Errorf("%d CONNECT timeout lines (%d suppressed) for %d clients, want 1 to 10 (rate-limited)", lines, suppressed, len(conns))
	}
}

// Oversized remaining lengths: clients announcing packets up to the
// maximum size and sending a few bytes of them make edged hold what they
// sent, not what they announced; one over max_packet_size is closed at
// once. Before, each announced 256 KiB was allocated from the header.
func TestHostileOversizedLengths(t *testing.T) {
	const hosts, perHost = 5, 100
	raiseNofile(t, hosts*perHost+1000)
	dir := t.TempDir()
	p := startEdged(t, dir, hostileConfig(dir, "", ""))
	m := newRSSMeter(t, p)
	var conns []net.Conn
	defer func() { closeAll(conns) }()
	// Connected clients announcing a PUBLISH of 256 KiB - 1.
	announce := append([]byte{0x30, 0xff, 0xff, 0x0f}, make([]byte, 100)...)
	for i := range hosts * perHost {
		c, err := dialFrom(attacker(i%hosts), p.addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		if code, err := connectKeepalive(c, fmt.Sprint("big", i), 0); err != nil || code != packet.Success {
			t.Fatalf("client %d: CONNACK %v, %v", i, code, err)
		}
		if _, err := c.Write(announce); err != nil {
			t.Fatal(err)
		}
	}
	// Pending clients announcing a CONNECT of 64 KiB - 1.
	for i := range hosts * 30 {
		c, err := dialFrom(attacker(i%hosts), p.addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		c.Write(append([]byte{0x10, 0xff, 0xff, 0x03}, make([]byte, 10)...))
	}
	normalRoundTrip(t, p.addr, "normal")
	time.Sleep(200 * time.Millisecond)
	m.check(t, fmt.Sprintf("with %d clients announcing 256 KiB packets and %d announcing 64 KiB CONNECTs", hosts*perHost, hosts*30), 48<<20)
	if open := openSockets(conns[:hosts*perHost]); open != hosts*perHost {
		t.Errorf("%d of %d clients announcing a PUBLISH are open, want all (keepalive 0)", open, hosts*perHost)
	}
	// Over max_packet_size: closed at once.
	c, err := dialFrom(attacker(hosts), p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b := (&packet.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: "huge", CleanSession: true}).AppendTo(nil, packet.V311)
	c.Write(append(b, 0x30, 0xff, 0xff, 0xff, 0x7f))
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	br := bufio.NewReader(c)
	for { // CONNACK may or may not get out before the close
		if _, err = packet.Read(br, 0, packet.V311); err != nil {
			break
		}
	}
	if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("a PUBLISH announcing 256 MiB: got %v, want the connection closed at once", err)
	}
}

// Idle clients with keepalive 0 from one host cannot lock everyone out:
// limits.max_connections_per_address (128) refuses the rest with CONNACK
// 0x03, logged rate-limited; max_keepalive refuses keepalive 0 with 0x02.
// Before, 1,024 of them took every connection, with one log line each.
func TestHostileIdleLockout(t *testing.T) {
	raiseNofile(t, 2000)
	dir := t.TempDir()
	p := startEdged(t, dir, hostileConfig(dir, ", max_connections: 200, max_keepalive: 60s", ""))
	m := &rssMeter{p: p, idle: p.rss(t)} // the normal client of newRSSMeter has keepalive 0
	var conns []net.Conn
	defer func() { closeAll(conns) }()
	codes := map[packet.Reason]int{}
	for i := range 300 {
		c, err := dialFrom(attacker(0), p.addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		code, err := connectKeepalive(c, fmt.Sprint("idle", i), 60)
		if err != nil {
			t.Fatal(err)
		}
		codes[code]++
	}
	if codes[packet.Success] != 128 || codes[packet.ServerUnavailable] != 172 {
		t.Fatalf("300 idle clients from one address: CONNACK codes %v, want 128 accepted and 172 0x03", codes)
	}
	// keepalive 0 is never timed out: refused under max_keepalive.
	c, err := dialFrom(attacker(1), p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if code, err := connectKeepalive(c, "forever", 0); err != nil || code != packet.ClientIdentifierNotValid {
		t.Fatalf("keepalive 0 with max_keepalive 60s: CONNACK %v (%v), want 0x02", code, err)
	}
	// The normal client keeps a keepalive within max_keepalive.
	nc, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if code, err := connectKeepalive(nc, "normal", 30); err != nil || code != packet.Success {
		t.Fatalf("normal client: CONNACK %v (%v)", code, err)
	}
	m.check(t, "with 128 idle clients and 172 refused", 32<<20)
	lines, suppressed := p.countLogs("connection refused")
	if lines == 0 || lines > 10 {
		t.Errorf("%d refusal lines for 173 refusals, want 1 to 10 (rate-limited)", lines)
	}
	t.Logf("refusals: %d lines, %d suppressed", lines, suppressed)
}

// connectKeepalive sends CONNECT with the given keepalive and returns the
// CONNACK code.
func connectKeepalive(c net.Conn, id string, keepalive uint16) (packet.Reason, error) {
	c.SetDeadline(time.Now().Add(5 * time.Second))
	defer c.SetDeadline(time.Time{})
	b := (&packet.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: id, CleanSession: true, KeepAlive: keepalive}).AppendTo(nil, packet.V311)
	if _, err := c.Write(b); err != nil {
		return 0, err
	}
	p, err := packet.Read(bufio.NewReader(c), 0, packet.V311)
	if err != nil {
		return 0, err
	}
	ca, ok := p.(*packet.Connack)
	if !ok {
		return 0, fmt.Errorf("got %T, want CONNACK", p)
	}
	return ca.Reason, nil
}

// WebSocket: idle HTTP keep-alive connections count as pending connections
// (those over 32 per address are closed at once) and are closed after
// connect_timeout; a normal WebSocket client is served meanwhile. Before,
// they were never closed and 1,012 of them exhausted edged's descriptors.
func TestHostileWebSocketIdle(t *testing.T) {
	const hosts, perHost = 5, 60
	raiseNofile(t, 2000)
	dir := t.TempDir()
	p := startEdged(t, dir, hostileConfig(dir, "", "{name: web, address: 127.0.0.1:0, websocket: {path: /mqtt}}"))
	m := &rssMeter{p: p, idle: p.rss(t)}
	var conns []net.Conn
	defer func() { closeAll(conns) }()
	var wg sync.WaitGroup
	var mu sync.Mutex
	answered := 0
	for i := range hosts * perHost {
		c, err := dialFrom(attacker(i%hosts), p.addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A request that does not upgrade, then idle on keep-alive.
			c.SetDeadline(time.Now().Add(2 * time.Second))
			c.Write([]byte("GET /mqtt HTTP/1.1\r\nHost: edged\r\n\r\n"))
			var b [512]byte
			if n, _ := c.Read(b[:]); n > 0 {
				mu.Lock()
				answered++
				mu.Unlock()
			}
			c.SetDeadline(time.Time{})
		}()
	}
	wg.Wait()
	start := time.Now()
	pahoRoundTrip(t, "ws://"+p.addr+"/mqtt", nil)
	m.check(t, fmt.Sprintf("with %d idle WebSocket HTTP connections", len(conns)), 32<<20)
	open := openSockets(conns)
	for deadline := time.Now().Add(time.Second); open > hosts*32 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond) // not accepted yet looks open too
		open = openSockets(conns)
	}
	t.Logf("%d of %d HTTP connections answered, %d open", answered, len(conns), open)
	if open > hosts*32 {
		t.Fatalf("%d of %d idle HTTP connections open, want at most %d (32 per address)", open, len(conns), hosts*32)
	}
	time.Sleep(2500*time.Millisecond - time.Since(start))
	if open := openSockets(conns); open > 0 {
		t.Fatalf("%d idle HTTP connections open after connect_timeout", open)
	}
}
