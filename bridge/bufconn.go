package bridge

import (
	"bufio"
	"net"
	"sync"
	"time"
)

// bufConn batches an upstream connection's reads and writes. paho reads a
// packet's fixed header byte by byte and writes every packet with a call of
// its own, a system call each: during a drain that is most of the bridge's
// CPU (three reads per PUBACK, one write per PUBLISH). bufConn reads through
// a buffer, and its Write only appends to a buffer that a goroutine of its
// own writes out, so that publishes made while one write is under way go
// out together in the next.
//
// Write returns once the bytes are buffered. A write error (or the write
// timeout, which stands in for paho's SetWriteDeadline, ignored here)
// closes the connection, so paho's reader fails and the connection is
// lost as before. This weakens one thing: a QoS 0 publish counts as sent
// (and is deleted from the queue) once buffered, not once in the socket; a
// drop right then may lose it, as QoS 0 allows. The buffer is bounded:
// Write blocks while maxPending bytes wait.
type bufConn struct {
	net.Conn
	r       *bufio.Reader
	timeout time.Duration // for each write

	mu      sync.Mutex
	cond    *sync.Cond
	buf     []byte // appended by Write
	spare   []byte // being written by the flusher
	err     error  // the first write error, or net.ErrClosed
	closing bool
	done    chan struct{} // closed when the flusher returned
}

const (
	bufConnRead = 32 << 10
	maxPending  = 256 << 10
)

func newBufConn(c net.Conn, timeout time.Duration) *bufConn {
	b := &bufConn{Conn: c, r: bufio.NewReaderSize(c, bufConnRead), timeout: timeout, done: make(chan struct{})}
	b.cond = sync.NewCond(&b.mu)
	go b.flush() // ends when the connection is closed or fails; Close waits for it
	return b
}

// Read implements net.Conn; paho reads from one goroutine.
func (b *bufConn) Read(p []byte) (int, error) { return b.r.Read(p) }

// Write implements net.Conn.
func (b *bufConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for b.err == nil && !b.closing && len(b.buf) >= maxPending {
		b.cond.Wait()
	}
	if b.err != nil {
		return 0, b.err
	}
	if b.closing {
		return 0, net.ErrClosed
	}
	b.buf = append(b.buf, p...)
	b.cond.Broadcast()
	return len(p), nil
}

// SetWriteDeadline implements net.Conn: writes are bounded by the timeout
// given to newBufConn instead.
func (b *bufConn) SetWriteDeadline(time.Time) error { return nil }

// SetDeadline implements net.Conn for reads (see SetWriteDeadline).
func (b *bufConn) SetDeadline(t time.Time) error { return b.Conn.SetReadDeadline(t) }

// flush writes out what Write buffered until the connection fails or is
// closed and everything buffered is written.
func (b *bufConn) flush() {
	defer close(b.done)
	for {
		b.mu.Lock()
		for len(b.buf) == 0 && b.err == nil && !b.closing {
			b.cond.Wait()
		}
		if b.err != nil || len(b.buf) == 0 { // closing with nothing left
			b.mu.Unlock()
			return
		}
		b.buf, b.spare = b.spare[:0], b.buf
		out := b.spare
		b.cond.Broadcast() // room for blocked writers
		b.mu.Unlock()
		if b.timeout > 0 {
			b.Conn.SetWriteDeadline(time.Now().Add(b.timeout))
		}
		if _, err := b.Conn.Write(out); err != nil {
			b.mu.Lock()
			b.err = err
			b.cond.Broadcast()
			b.mu.Unlock()
			b.Conn.Close() // paho's reader fails: the connection is lost
			return
		}
	}
}

// Close writes out what is buffered (a DISCONNECT, typically), for at
// most a second, closes the connection and waits for the flusher.
func (b *bufConn) Close() error {
	b.mu.Lock()
	b.closing = true
	b.cond.Broadcast()
	b.mu.Unlock()
	t := time.NewTimer(time.Second)
	defer t.Stop()
	select {
	case <-b.done:
	case <-t.C:
	}
	err := b.Conn.Close()
	b.mu.Lock()
	if b.err == nil {
		b.err = net.ErrClosed
	}
	b.cond.Broadcast()
	b.mu.Unlock()
	<-b.done
	return err
}
