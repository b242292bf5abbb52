// Command footprint measures edged's footprint for `make footprint`: the
// size of each stripped binary in dist/, and the resident memory (VmRSS) of
// the amd64 binary idle, with N idle MQTT clients connected, and with M
// QoS 1 messages queued for one offline persistent subscriber, again after
// a restart with that backlog on disk (with the time until edged accepts
// connections), and while that subscriber drains it. It starts edged itself on a
// free 127.0.0.1 port with a temporary data directory; every step is
// bounded by a timeout. It speaks MQTT 3.1.1 on raw sockets with edged's own
// codec (broker/packet).
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/edged/edged/broker/packet"
)

// Targets from the issue.
const (
	maxArmBinary  = 10 << 20 // bytes
	maxIdleRSS    = 15 << 20 // bytes
	maxPerClient  = 8 << 10  // bytes (issue 9: an idle client costs at most 8 KiB)
	maxRestartRSS = 32 << 20 // bytes, with 200,000 64-byte messages queued
	maxStartup    = time.Second
	settle        = 2 * time.Second
	ioTimeout     = 10 * time.Second
	publishWindow = 256 // unacknowledged PUBLISH packets in flight
)

func main() {
	dist := flag.String("dist", "dist", "directory with the edged-linux-* binaries")
	bin := flag.String("bin", "", "binary to measure (default: DIST/edged-linux-amd64)")
	clients := flag.Int("clients", 1000, "idle MQTT clients to connect")
	queued := flag.Int("queued", 200000, "QoS 1 messages to queue for an offline subscriber")
	payload := flag.Int("payload", 64, "payload bytes per queued message")
	flag.StringVar(&memoryLimit, "memory-limit", "", "edged's memory_limit setting, e.g. 40MiB (default: none)")
	flag.Parse()
	if *bin == "" {
		*bin = filepath.Join(*dist, "edged-linux-amd64")
	}
	if err := run(*dist, *bin, *clients, *queued, *payload); err != nil {
		fmt.Fprintln(os.Stderr, "footprint:", err)
		os.Exit(1)
	}
}

// memoryLimit is the memory_limit written into edged's configuration.
var memoryLimit string

type row struct{ what, value, target, verdict string }

func run(dist, bin string, nClients, nQueued, payload int) error {
	var rows []row
	// Binary sizes.
	names, _ := filepath.Glob(filepath.Join(dist, "edged-linux-*"))
	sort.Strings(names)
	if len(names) == 0 {
		return fmt.Errorf("no %s/edged-linux-* binaries: run make cross", dist)
	}
	for _, n := range names {
		st, err := os.Stat(n)
		if err != nil {
			return err
		}
		arch := strings.TrimPrefix(filepath.Base(n), "edged-linux-")
		r := row{what: "binary " + arch, value: mib(st.Size())}
		if strings.HasPrefix(arch, "arm") || strings.HasPrefix(arch, "mips") {
			r.target, r.verdict = "< 10 MiB", verdict(st.Size(), maxArmBinary, mib)
		}
		rows = append(rows, r)
	}

	work, err := os.MkdirTemp("", "edged-footprint-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	// Idle, then with idle clients.
	e, err := startEdged(bin, filepath.Join(work, "a"), nClients)
	if err != nil {
		return err
	}
	defer e.stop()
	time.Sleep(settle)
	idle, err := e.rss()
	if err != nil {
		return err
	}
	rows = append(rows, row{"idle RSS (amd64)", mib(idle), "< 15 MiB", verdict(idle, maxIdleRSS, mib)},
		row{"", e.last, "", ""})
	conns, err := connectIdle(e.addr, nClients)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	if err != nil {
		return err
	}
	time.Sleep(settle)
	withClients, err := e.rss()
	if err != nil {
		return err
	}
	per := (withClients - idle) / int64(nClients)
	rows = append(rows,
		row{fmt.Sprintf("RSS, %d idle clients", nClients), mib(withClients), "", ""},
		row{"", e.last, "", ""},
		row{"per idle client", kib(per), "<= 8 KiB", verdict(per, maxPerClient+1, kib)})
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	if err := e.stop(); err != nil {
		return err
	}

	// A fresh edged with a backlog for one offline persistent subscriber.
	e, err = startEdged(bin, filepath.Join(work, "b"), nQueued)
	if err != nil {
		return err
	}
	defer e.stop()
	if err := persistentSubscribe(e.addr, "footprint-sub", "fp/q"); err != nil {
		return err
	}
	time.Sleep(settle)
	before, err := e.rss()
	if err != nil {
		return err
	}
	t0 := time.Now()
	if err := publishQoS1(e.addr, "fp/q", nQueued, payload); err != nil {
		return err
	}
	took := time.Since(t0)
	time.Sleep(settle)
	withQueue, err := e.rss()
	if err != nil {
		return err
	}
	rows = append(rows,
		row{fmt.Sprintf("RSS, %d QoS 1 queued (%d B payload)", nQueued, payload), mib(withQueue), "", ""},
		row{"", e.last, "", ""},
		row{"  per queued message", fmt.Sprintf("%d B", (withQueue-before)/int64(nQueued)), "", ""},
		row{"  publish rate (sync: batch)", fmt.Sprintf("%.0f msg/s", float64(nQueued)/took.Seconds()), "", ""})
	if err := e.stop(); err != nil {
		return err
	}
	if st, err := os.Stat(filepath.Join(work, "b", "data", "edged.db")); err == nil {
		rows = append(rows, row{"  store file", mib(st.Size()), "", ""})
	}
	e, err = startEdged(bin, filepath.Join(work, "b"), nQueued)
	if err != nil {
		return err
	}
	time.Sleep(settle)
	restarted, err := e.rss()
	if err != nil {
		return err
	}
	var peak int64
	var peakDetail string
	rows = append(rows, row{"RSS after restart with that backlog", mib(restarted), "≤ 32 MiB", verdict(restarted, maxRestartRSS+1, mib)},
		row{"", e.last, "", ""},
		row{"  time until it accepts connections", e.startup.Round(time.Millisecond).String(), "< 1s",
			verdict(int64(e.startup), int64(maxStartup), func(n int64) string { return time.Duration(n).String() })})
	t0 = time.Now()
	if err := drain(e.addr, "footprint-sub", nQueued, func() {
		if r, err := e.rss(); err == nil && r > peak {
			peak, peakDetail = r, e.last
		}
	}); err != nil {
		return err
	}
	took = time.Since(t0)
	rows = append(rows, row{"  peak RSS while the subscriber drains it", mib(peak), "", ""},
		row{"", peakDetail, "", ""},
		row{"  drain rate", fmt.Sprintf("%.0f msg/s", float64(nQueued)/took.Seconds()), "", ""})
	if err := e.stop(); err != nil {
		return err
	}

	v, _ := exec.Command(bin, "version").Output()
	fmt.Fprintf(os.Stdout, "edged footprint: %s (%s, memory_limit: %s)\n\n", strings.TrimSpace(string(v)), bin, limitOrZero())
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "measure\tvalue\ttarget\t")
	fmt.Fprintln(tw, "-------\t-----\t------\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.what, r.value, r.target, r.verdict)
	}
	return tw.Flush()
}

func limitOrZero() string {
	if memoryLimit == "" {
		return "0"
	}
	return memoryLimit
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
func kib(n int64) string { return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10)) }

func verdict(v, limit int64, f func(int64) string) string {
	if v < limit {
		return "ok"
	}
	return "MISSED by " + f(v-limit)
}

type edged struct {
	cmd  *exec.Cmd
	addr string
	log  string
	done chan error
	last string // RssAnon and RssFile of the last rss call
	// startup is the time from starting the process until it accepted a
	// connection.
	startup time.Duration
}

// startEdged starts bin with a config sized for n clients or messages and
// waits (at most 20 s) until it accepts connections.
func startEdged(bin, dir string, n int) (*edged, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := fmt.Sprintf(`data_dir: %s
memory_limit: %s
log: {level: warn}
listeners:
  - name: local
    address: %s
    allow_anonymous: true
persistence: {sync: batch}
limits:
  max_connections: %d
  max_connections_per_address: -1   # every client comes from 127.0.0.1
  max_pending_connections_per_address: -1
  max_queued_messages: %d
  max_queued_bytes: 1GiB
`, filepath.Join(dir, "data"), limitOrZero(), addr, n+100, n+100)
	cfgPath := filepath.Join(dir, "edged.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "edged.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(bin, "-c", cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	e := &edged{cmd: cmd, addr: addr, log: logPath, done: make(chan error, 1)}
	go func() { e.done <- cmd.Wait() }()
	start := time.Now()
	deadline := start.Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			e.startup = time.Since(start)
			c.Close()
			return e, nil
		}
		select {
		case err := <-e.done:
			e.cmd = nil
			return nil, fmt.Errorf("edged exited at start (%v): %s", err, tail(logPath))
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			e.stop()
			return nil, fmt.Errorf("edged not listening on %s after 20 s", addr)
		}
	}
}

// stop sends SIGTERM and waits at most 15 s, then kills.
func (e *edged) stop() error {
	if e.cmd == nil {
		return nil
	}
	defer func() { e.cmd = nil }()
	_ = e.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-e.done:
		if err != nil {
			return fmt.Errorf("edged exited with %v: %s", err, tail(e.log))
		}
		return nil
	case <-time.After(15 * time.Second):
		_ = e.cmd.Process.Kill()
		<-e.done
		return errors.New("edged did not stop within 15 s of SIGTERM")
	}
}

// rss reads VmRSS from /proc/PID/status, in bytes, and remembers its
// anonymous and file-backed parts (the bbolt file is mmapped: its pages
// count in VmRSS but are page cache the kernel can reclaim).
func (e *edged) rss() (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", e.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	vals := map[string]int64{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 3 && f[2] == "kB" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				return 0, err
			}
			vals[strings.TrimSuffix(f[0], ":")] = kb << 10
		}
	}
	rss, ok := vals["VmRSS"]
	if !ok {
		return 0, errors.New("no VmRSS in /proc/PID/status")
	}
	e.last = fmt.Sprintf("anon %s, file %s", mib(vals["RssAnon"]), mib(vals["RssFile"]))
	return rss, nil
}

func tail(path string) string {
	data, _ := os.ReadFile(path)
	if len(data) > 2000 {
		data = data[len(data)-2000:]
	}
	return string(data)
}

// connectIdle opens n MQTT connections (clean session, keepalive 0 so no
// PINGREQ is needed) and returns them after each got its CONNACK.
func connectIdle(addr string, n int) ([]net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	jobs := make(chan int)
	results := make(chan result)
	for range 32 {
		go func() {
			for i := range jobs {
				c, err := mqttConnect(addr, fmt.Sprintf("footprint-idle-%d", i), true)
				results <- result{c, err}
			}
		}()
	}
	go func() {
		for i := range n {
			jobs <- i
		}
		close(jobs)
	}()
	var conns []net.Conn
	var firstErr error
	for range n {
		r := <-results
		if r.err != nil && firstErr == nil {
			firstErr = r.err
		}
		if r.c != nil {
			conns = append(conns, r.c)
		}
	}
	if firstErr != nil {
		return conns, fmt.Errorf("connecting %d clients: %w", n, firstErr)
	}
	return conns, nil
}

// persistentSubscribe connects with clean session 0, subscribes to topic
// with QoS 1 and disconnects, leaving a session that queues messages.
func persistentSubscribe(addr, id, topic string) error {
	c, err := mqttConnect(addr, id, false)
	if err != nil {
		return err
	}
	defer c.Close()
	sub := &packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: topic, QoS: 1}}}
	if _, err := c.Write(packet.Encode(sub, packet.V311)); err != nil {
		return err
	}
	p, err := packet.Read(bufio.NewReader(c), 0, packet.V311)
	if err != nil {
		return fmt.Errorf("reading SUBACK: %w", err)
	}
	if sa, ok := p.(*packet.Suback); !ok || len(sa.Reasons) != 1 || sa.Reasons[0] != packet.GrantedQoS1 {
		return fmt.Errorf("SUBACK: want QoS 1 granted, got %#v", p)
	}
	_, err = c.Write(packet.Encode(&packet.Disconnect{}, packet.V311))
	return err
}

// drain resumes the persistent session id and reads and acknowledges n
// QoS 1 messages, calling sample every 10,000.
func drain(addr, id string, n int, sample func()) error {
	c, err := mqttConnect(addr, id, false)
	if err != nil {
		return err
	}
	defer c.Close()
	r, w := bufio.NewReader(c), bufio.NewWriter(c)
	for i := 0; i < n; i++ {
		_ = c.SetDeadline(time.Now().Add(ioTimeout))
		if r.Buffered() == 0 {
			if err := w.Flush(); err != nil {
				return err
			}
		}
		p, err := packet.Read(r, 0, packet.V311)
		if err != nil {
			return fmt.Errorf("draining, after %d messages: %w", i, err)
		}
		pub, ok := p.(*packet.Publish)
		if !ok || pub.QoS != 1 {
			return fmt.Errorf("draining: want a QoS 1 PUBLISH, got %s", p.Type())
		}
		if _, err := w.Write((&packet.Puback{PacketID: pub.PacketID}).AppendTo(w.AvailableBuffer(), packet.V311)); err != nil {
			return err
		}
		if i%10000 == 0 {
			sample()
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	_, err = c.Write(packet.Encode(&packet.Disconnect{}, packet.V311))
	return err
}

// publishQoS1 publishes n QoS 1 messages to topic, with up to
// publishWindow unacknowledged at a time, and returns when all are acked.
func publishQoS1(addr, topic string, n, size int) error {
	c, err := mqttConnect(addr, "footprint-pub", true)
	if err != nil {
		return err
	}
	defer c.Close()
	window := make(chan struct{}, publishWindow)
	acked := make(chan error, 1)
	go func() {
		r := bufio.NewReader(c)
		for i := 0; i < n; i++ {
			_ = c.SetReadDeadline(time.Now().Add(ioTimeout))
			p, err := packet.Read(r, 0, packet.V311)
			if err != nil {
				acked <- fmt.Errorf("after %d PUBACKs: %w", i, err)
				return
			}
			if _, ok := p.(*packet.Puback); !ok {
				acked <- fmt.Errorf("want PUBACK, got %s", p.Type())
				return
			}
			<-window
		}
		acked <- nil
	}()
	w := bufio.NewWriter(c)
	msg := bytes.Repeat([]byte{'x'}, size)
	for i := 0; i < n; i++ {
		select {
		case window <- struct{}{}:
		case err := <-acked:
			return fmt.Errorf("publishing: %w", err)
		case <-time.After(ioTimeout):
			return fmt.Errorf("no PUBACK for %s after %d messages", ioTimeout, i)
		}
		p := &packet.Publish{QoS: 1, Topic: topic, PacketID: uint16(i%65535 + 1), Payload: msg}
		if _, err := w.Write(p.AppendTo(w.AvailableBuffer(), packet.V311)); err != nil {
			return err
		}
		if len(window) == cap(window) || i == n-1 {
			_ = c.SetWriteDeadline(time.Now().Add(ioTimeout))
			if err := w.Flush(); err != nil {
				return err
			}
		}
	}
	if err := <-acked; err != nil {
		return err
	}
	_, err = c.Write(packet.Encode(&packet.Disconnect{}, packet.V311))
	return err
}

// mqttConnect dials addr and completes an MQTT 3.1.1 CONNECT (keepalive 0,
// so an idle client needs no PINGREQ).
func mqttConnect(addr, id string, clean bool) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(ioTimeout))
	connect := &packet.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: id, CleanSession: clean}
	if _, err := c.Write(packet.Encode(connect, packet.V311)); err != nil {
		c.Close()
		return nil, err
	}
	// Unbuffered, so that no byte after the CONNACK is read away from the
	// caller.
	p, err := packet.Read(c, 0, packet.V311)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("reading CONNACK: %w", err)
	}
	if ca, ok := p.(*packet.Connack); !ok || ca.Reason != packet.Success {
		c.Close()
		return nil, fmt.Errorf("CONNACK refused: %#v", p)
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}
