package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// brMosquitto starts /usr/sbin/mosquitto (the Debian package) on a free
// loopback port and returns its address. Without it the test is skipped,
// or fails when the CI environment variable is set.
func brMosquitto(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/mosquitto"); serr == nil {
			bin, err = "/usr/sbin/mosquitto", nil
		}
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("mosquitto is required in CI: %v", err)
		}
		t.Skipf("mosquitto not installed: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	conf := filepath.Join(t.TempDir(), "mosquitto.conf")
	err = os.WriteFile(conf, []byte(fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n"+
		"max_queued_messages 0\nmax_inflight_messages 100\nlog_dest stderr\nlog_type error\nlog_type warning\n", port)), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := exec.Command(bin, "-c", conf)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-done })
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	waitForT(t, 10*time.Second, func() error {
		select {
		case <-done:
			t.Fatalf("mosquitto exited: %s", out.String())
		default:
		}
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	})
	return addr
}

// brProxy sits between edged's bridge and the upstream and injects faults:
// reset every connection, blackhole (accept, forward nothing), or refuse.
type brProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  map[*brPipe]struct{}
	black  bool
	down   bool
	closed bool
	wg     sync.WaitGroup
}

type brPipe struct {
	client, server net.Conn
	black          bool
}

func startBrProxy(t *testing.T, target string) *brProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &brProxy{ln: ln, target: target, conns: map[*brPipe]struct{}{}}
	p.wg.Go(p.accept)
	t.Cleanup(p.close)
	return p
}

func (p *brProxy) addr() string { return p.ln.Addr().String() }

func (p *brProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down || p.closed {
			p.mu.Unlock()
			brRST(c)
			continue
		}
		pc := &brPipe{client: c, black: p.black}
		p.conns[pc] = struct{}{}
		p.mu.Unlock()
		if pc.black {
			p.wg.Go(func() { p.pipe(pc, c, nil) })
			continue
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			p.drop(pc)
			continue
		}
		p.mu.Lock()
		pc.server = s
		p.mu.Unlock()
		p.wg.Go(func() { p.pipe(pc, c, s) })
		p.wg.Go(func() { p.pipe(pc, s, c) })
	}
}

func (p *brProxy) pipe(pc *brPipe, src, dst net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && dst != nil {
			p.mu.Lock()
			black := pc.black
			p.mu.Unlock()
			if !black {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					err = werr
				}
			}
		}
		if err != nil {
			p.drop(pc)
			return
		}
	}
}

func (p *brProxy) drop(pc *brPipe) {
	p.mu.Lock()
	delete(p.conns, pc)
	s := pc.server
	p.mu.Unlock()
	brRST(pc.client)
	if s != nil {
		brRST(s)
	}
}

func brRST(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

func (p *brProxy) reset() {
	p.mu.Lock()
	var all []*brPipe
	for pc := range p.conns {
		all = append(all, pc)
	}
	p.mu.Unlock()
	for _, pc := range all {
		p.drop(pc)
	}
}

// blackhole stops forwarding on every connection until turned off, which
// resets the blackholed connections (a real link's TCP is dead by then).
func (p *brProxy) blackhole(on bool) {
	p.mu.Lock()
	p.black = on
	var dead []*brPipe
	for pc := range p.conns {
		if on {
			pc.black = true
		} else if pc.black {
			dead = append(dead, pc)
		}
	}
	p.mu.Unlock()
	for _, pc := range dead {
		p.drop(pc)
	}
}

func (p *brProxy) setDown(on bool) {
	p.mu.Lock()
	p.down = on
	p.mu.Unlock()
	if on {
		p.reset()
	}
}

func (p *brProxy) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.ln.Close()
	p.reset()
	p.wg.Wait()
}

// brSub is a persistent paho subscriber that records every message.
type brSub struct {
	mu   sync.Mutex
	msgs [][2]string // topic, payload
	seen map[[2]string]bool
}

func startBrSub(t *testing.T, addr, id, filter string) *brSub {
	t.Helper()
	s := &brSub{seen: map[[2]string]bool{}}
	o := mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).SetCleanSession(false).
		SetOrderMatters(true).SetAutoReconnect(true).SetMaxReconnectInterval(200 * time.Millisecond)
	o.SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) {
		k := [2]string{m.Topic(), string(m.Payload())}
		s.mu.Lock()
		s.msgs = append(s.msgs, k)
		s.seen[k] = true
		s.mu.Unlock()
	})
	c := mqtt.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connecting upstream subscriber: %v", tok.Error())
	}
	if tok := c.Subscribe(filter, 1, nil); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribing upstream: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return s
}

func (s *brSub) distinct() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.seen)
}

// check returns the duplicate count and the first per-topic order
// violation among first arrivals of payloads "<n>".
func (s *brSub) check() (dups int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	last := map[string]int{}
	seen := map[[2]string]bool{}
	for _, k := range s.msgs {
		if seen[k] {
			dups++
			continue
		}
		seen[k] = true
		var n int
		if _, e := fmt.Sscanf(k[1], "%d", &n); e != nil {
			continue
		}
		if p, ok := last[k[0]]; ok && n < p && err == nil {
			err = fmt.Errorf("topic %s: %d arrived after %d", k[0], n, p)
		}
		last[k[0]] = n
	}
	return dups, err
}
