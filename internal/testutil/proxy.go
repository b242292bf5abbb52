package testutil

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// Proxy forwards TCP from a loopback port to a target and injects the
// faults of a bad uplink: Reset resets every connection, Blackhole stops
// forwarding silently, SetDown refuses connections.
type Proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  map[*proxyConn]struct{}
	black  bool // blackholing: accept, forward nothing
	down   bool // refusing: accept and reset at once
	closed bool
	wg     sync.WaitGroup

	accepted atomic.Int64
}

type proxyConn struct {
	client, server net.Conn // server is nil for a blackholed connection
	black          bool
}

// StartProxy starts a proxy to target on 127.0.0.1:0; t.Cleanup closes it.
func StartProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{ln: ln, target: target, conns: map[*proxyConn]struct{}{}}
	p.wg.Go(p.accept)
	t.Cleanup(p.Close)
	return p
}

// Accepted returns how many connections the proxy accepted (refused ones
// too).
func (p *Proxy) Accepted() int64 { return p.accepted.Load() }

// Addr is the address to connect to instead of the target.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

func (p *Proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.accepted.Add(1)
		p.mu.Lock()
		if p.down || p.closed {
			p.mu.Unlock()
			rst(c)
			continue
		}
		pc := &proxyConn{client: c, black: p.black}
		p.conns[pc] = struct{}{}
		black := p.black
		p.mu.Unlock()
		if black {
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

// pipe copies src to dst unless the connection is blackholed.
func (p *Proxy) pipe(pc *proxyConn, src, dst net.Conn) {
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

func (p *Proxy) drop(pc *proxyConn) {
	p.mu.Lock()
	delete(p.conns, pc)
	s := pc.server
	p.mu.Unlock()
	rst(pc.client)
	if s != nil {
		rst(s)
	}
}

// rst closes c with a TCP reset.
func rst(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

// Reset resets every connection.
func (p *Proxy) Reset() {
	p.mu.Lock()
	var all []*proxyConn
	for pc := range p.conns {
		all = append(all, pc)
	}
	p.mu.Unlock()
	for _, pc := range all {
		p.drop(pc)
	}
}

// Blackhole silently stops forwarding on every connection, present and
// new, until turned off, which then resets the connections that were
// blackholed (as a real link's TCP connections are dead by then).
func (p *Proxy) Blackhole(on bool) {
	p.mu.Lock()
	p.black = on
	var dead []*proxyConn
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

// SetDown refuses connections while on, and resets the present ones.
func (p *Proxy) SetDown(on bool) {
	p.mu.Lock()
	p.down = on
	p.mu.Unlock()
	if on {
		p.Reset()
	}
}

// Close stops accepting, resets every connection and waits for the
// forwarding goroutines. t.Cleanup calls it; calling it twice is fine.
func (p *Proxy) Close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.ln.Close()
	p.Reset()
	p.wg.Wait()
}
