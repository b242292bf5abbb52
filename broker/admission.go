package broker

import (
	"fmt"
	"net"
)

// admission counts connections against the limits that keep one host, or
// many silent sockets, from taking every connection (Limits.MaxConnections,
// MaxConnectionsPerAddress, MaxPendingConnections, MaxPendingPerAddress and
// a listener's WithMaxConnections). Every field is guarded by Server.mu.
//
// A connection is pending from accept until its CONNECT is handled, and
// connected from CONNACK 0 until it ends. Pending limits are checked at
// accept, where a connection over them is closed at once; connection limits
// at CONNECT, where a client over them gets CONNACK 0x03.
type admission struct {
	pending       int
	pendingByAddr map[string]int
	connByAddr    map[string]int
}

func (a *admission) init() {
	a.pendingByAddr = make(map[string]int)
	a.connByAddr = make(map[string]int)
}

// addrKey is the source address a connection is counted under: its IP
// address, or "" (not counted per address) for a transport without one,
// such as a serial port.
func addrKey(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	return ""
}

// over reports whether n has reached limit; a limit <= 0 means none.
func over(n, limit int) bool { return limit > 0 && n >= limit }

// holdPendingLocked counts a new pending connection from addr, or returns
// why it is over a limit.
func (a *admission) holdPendingLocked(l *Limits, addr string) error {
	if over(a.pending, l.MaxPendingConnections) {
		return fmt.Errorf("%d connections have not sent CONNECT yet (limits.max_pending_connections)", a.pending)
	}
	if addr != "" && over(a.pendingByAddr[addr], l.MaxPendingPerAddress) {
		return fmt.Errorf("%d connections from %s have not sent CONNECT yet (limits.max_pending_connections_per_address)",
			a.pendingByAddr[addr], addr)
	}
	a.pending++
	if addr != "" {
		a.pendingByAddr[addr]++
	}
	return nil
}

func (a *admission) releasePendingLocked(addr string) {
	a.pending--
	if addr == "" {
		return
	}
	if n := a.pendingByAddr[addr] - 1; n > 0 {
		a.pendingByAddr[addr] = n
	} else {
		delete(a.pendingByAddr, addr)
	}
}

// admitLocked counts c as connected, or returns why it is over a limit. A
// takeover replaces a connection, so it is always admitted [MQTT-3.1.4-2].
// It needs Server.mu.
func (s *Server) admitLocked(c *conn, takeover bool) error {
	l, a := &s.cfg.Limits, &s.adm
	if !takeover {
		if n := s.stats.connected.Load(); l.MaxConnections > 0 && n >= int64(l.MaxConnections) {
			return fmt.Errorf("%d clients connected (limits.max_connections)", n)
		}
		if over(*c.opts.connected, c.opts.maxConns) {
			return fmt.Errorf("%d clients connected to listener %s (its max_connections)", *c.opts.connected, c.opts.name)
		}
		if c.addr != "" && over(a.connByAddr[c.addr], l.MaxConnectionsPerAddress) {
			return fmt.Errorf("%d clients connected from %s (limits.max_connections_per_address)", a.connByAddr[c.addr], c.addr)
		}
	}
	s.stats.peakConnected(s.stats.connected.Add(1))
	s.stats.connects.Add(1)
	*c.opts.connected++
	if c.addr != "" {
		a.connByAddr[c.addr]++
	}
	c.admitted = true
	return nil
}

// unadmit undoes admitLocked when the connection ends.
func (s *Server) unadmit(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.connected.Add(-1)
	*c.opts.connected--
	if c.addr == "" {
		return
	}
	if n := s.adm.connByAddr[c.addr] - 1; n > 0 {
		s.adm.connByAddr[c.addr] = n
	} else {
		delete(s.adm.connByAddr, c.addr)
	}
}

// releasePending ends the pending state of c once its CONNECT is handled
// (or the connection ends without one). Only the reader goroutine calls it.
func (c *conn) releasePending() {
	if !c.pending {
		return
	}
	c.pending = false
	c.s.mu.Lock()
	c.s.adm.releasePendingLocked(c.addr)
	c.s.mu.Unlock()
}
