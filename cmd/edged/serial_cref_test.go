package main

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edged/edged/broker/packet"
	"github.com/edged/edged/internal/ptytest"
	"github.com/edged/edged/internal/testutil"
)

// buildCRef compiles the C reference client's example into a temporary
// directory. Without gcc the test is skipped, or fails when CI is set.
func buildCRef(t *testing.T) string {
	t.Helper()
	gcc := testutil.NeedTool(t, "gcc")
	src := filepath.Join("..", "..", "serialio", "cref")
	bin := filepath.Join(t.TempDir(), "cref-example")
	build := exec.Command(gcc, "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2", "-o", bin,
		filepath.Join(src, "example.c"), filepath.Join(src, "edged_mqtt.c"), filepath.Join(src, "edged_frame.c"))
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("compiling the C reference client: %v\n%s", err, out)
	}
	return bin
}

// logged waits for a log record of p for which match is true.
func (p *edgedProc) logged(t *testing.T, what string, match func(map[string]any) bool) map[string]any {
	t.Helper()
	var rec map[string]any
	testutil.WaitFor(t, 10*time.Second, func() error {
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, r := range p.logs {
			if match(r) {
				rec = r
				return nil
			}
		}
		return fmt.Errorf("edged has not logged %s", what)
	})
	return rec
}

// listenerAddr returns the bound address of the named listener. With serial
// ports configured, the first "listening" record startEdged sees may be a
// serial port's, so p.addr is not reliable.
func (p *edgedProc) listenerAddr(t *testing.T, name string) string {
	t.Helper()
	rec := p.logged(t, "listening on "+name, func(r map[string]any) bool {
		return r["msg"] == "listening" && r["listener"] == name
	})
	return rec["address"].(string)
}

// The C reference client (serialio/cref), built with gcc, against the real
// edged binary over a kernel PTY: it connects, subscribes, publishes QoS 1
// messages that a TCP subscriber receives, receives a message published
// over TCP, and exits 0. edged's $SYS counters for the port count its
// frames.
//
//	example ── PTY A ── relay ── PTY B (symlink, serial: device) ── edged
//
// Both ends of a PTY pair are different kinds of file (the example opens a
// tty path, edged opens a tty path), so two pairs are joined by a relay.
func TestSerialCRefAgainstEdged(t *testing.T) {
	bin := buildCRef(t)
	dir := t.TempDir()
	dev := filepath.Join(dir, "ttyCREF")
	mB := ptytest.Link(t, dev)
	mA, slaveA := ptytest.Open(t)
	var relays sync.WaitGroup
	relays.Add(2)
	go func() { defer relays.Done(); ptytest.Copy(mB, mA) }()
	go func() { defer relays.Done(); ptytest.Copy(mA, mB) }()
	t.Cleanup(func() {
		mA.Close()
		mB.Close()
		relays.Wait()
	})

	proc := startEdged(t, dir, fmt.Sprintf(`
data_dir: %s
sys_interval: 100ms
listeners:
  - {name: tcp, address: "127.0.0.1:0"}
serial:
  - {name: uart0, device: %s, framing: cobs-crc16}
`, filepath.Join(dir, "data"), dev))
	addr := proc.listenerAddr(t, "tcp")
	proc.logged(t, "serial port open", func(r map[string]any) bool {
		return r["msg"] == "serial port open" && r["serial_port"] == "uart0"
	})

	obs := dialObserver(t, addr, "cref-observer", true)
	obs.subscribe(t, "cref/out", 1)

	const n = 6
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, slaveA, strconv.Itoa(n))
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	// Publish on the example's subscription until it has what it waits
	// for and exits: it subscribes at some point after it starts.
	pub := dialObserver(t, addr, "cref-publisher", true)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var exitErr error
	for running := true; running; {
		select {
		case exitErr = <-exited:
			running = false
		case <-tick.C:
			if err := pub.c.send(&packet.Publish{Topic: "cref/in", Payload: []byte("hello sensor")}); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Logf("example output:\n%s", out.String())
	if exitErr != nil {
		t.Fatalf("example: %v\n%s\nedged log:\n%s", exitErr, out.String(), proc.logText())
	}
	if !strings.Contains(out.String(), "message on cref/in: hello sensor") {
		t.Error("the example did not receive the message published over TCP")
	}
	got := map[string]int{}
	for len(got) < n {
		select {
		case p := <-obs.msgs:
			if p.QoS != 1 || !strings.HasPrefix(string(p.Payload), "reading ") {
				t.Fatalf("observer got %#v", p)
			}
			got[string(p.Payload)]++
		case <-time.After(5 * time.Second):
			t.Fatalf("observer got %v, want reading 0..%d", got, n-1)
		}
	}
	for i := range n {
		if got["reading "+strconv.Itoa(i)] == 0 {
			t.Errorf("reading %d never arrived: %v", i, got)
		}
	}

	// $SYS/broker/serial/uart0/... counts the example's frames: CONNECT,
	// SUBSCRIBE, n PUBLISH and DISCONNECT at least.
	sys := dialObserver(t, addr, "cref-sys", true)
	sys.subscribe(t, "$SYS/broker/serial/uart0/frames/received", 0)
	testutil.WaitFor(t, 5*time.Second, func() error {
		select {
		case p := <-sys.msgs:
			if v, _ := strconv.Atoi(string(p.Payload)); v < n+3 {
				return fmt.Errorf("frames/received %s, want at least %d", p.Payload, n+3)
			}
			return nil
		default:
			return fmt.Errorf("no $SYS frames/received yet")
		}
	})
	proc.stop(t)
}
