package serialio

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"sync"
	"time"
)

var _ net.Conn = (*conn)(nil)

// inputBuffer is how many bytes a conn buffers for the broker (16 frames
// at the default max_frame of 4 KiB), and always at least one frame. When
// the buffer is full the port reader waits, for at most inputStall, before
// it closes the conn as too slow (ErrInputOverflow). A fixed byte bound
// keeps a large max_frame from multiplying into 255 channels x 16 frames.
const (
	inputBuffer = 64 << 10
	inputStall  = 2 * time.Second
	// replaceWait bounds how long a CONNECT that replaces a channel's conn
	// waits for the broker to close the old one (see session.handleFrame).
	replaceWait = time.Second
)

// conn is one logical MQTT connection on a port: a channel with cobs-crc16
// framing, or the whole port with raw framing. The session's reader goroutine
// pushes inbound bytes; the broker reads and writes.
type conn struct {
	s       *session
	channel byte
	local   Addr
	remote  Addr

	mu      sync.Mutex
	in      bytes.Buffer
	err     error         // why the conn ended; nil while open
	byClose bool          // ended by Close: Read fails even with data buffered
	lastIn  byte          // type of the last inbound packet
	notify  chan struct{} // 1-buffered: input arrived
	space   chan struct{} // 1-buffered: Read consumed input
	done    chan struct{}
	// released is closed once the broker has closed the conn (Close).
	released chan struct{}
	relOnce  sync.Once
	rdl      deadline
	wdl      deadline
	wmu      sync.Mutex // serialises Write; guards out and frames
	out      []byte     // partial outbound MQTT packet
	frames   []byte     // encoded frames of one Write
	maxBody  int        // largest MQTT packet that fits a frame
}

func newConn(s *session, channel byte) *conn {
	c := &conn{
		s:        s,
		channel:  channel,
		local:    s.l.addr,
		remote:   s.l.addr,
		notify:   make(chan struct{}, 1),
		space:    make(chan struct{}, 1),
		done:     make(chan struct{}),
		released: make(chan struct{}),
		rdl:      makeDeadline(),
		wdl:      makeDeadline(),
		maxBody:  s.l.cfg.MaxFrame - 3,
	}
	if !s.raw {
		c.remote.Channel = int(channel)
	}
	return c
}

// push appends inbound bytes for Read, waiting up to inputStall for room.
// ok is false if the conn is closed, or stop closed, first; overflow is set
// if the wait timed out.
func (c *conn) push(p []byte, stop <-chan struct{}) (ok, overflow bool) {
	var timer *time.Timer
	for {
		c.mu.Lock()
		if c.err != nil {
			c.mu.Unlock()
			return false, false
		}
		if c.in.Len() == 0 || c.in.Len()+len(p) <= inputBuffer {
			break
		}
		c.mu.Unlock()
		if timer == nil {
			timer = time.NewTimer(inputStall)
			defer timer.Stop()
		}
		select {
		case <-c.space:
		case <-c.done:
		case <-stop:
			return false, false
		case <-timer.C:
			return false, true
		}
	}
	c.in.Write(p)
	if len(p) > 0 {
		c.lastIn = p[0] & 0xF0
	}
	c.mu.Unlock()
	signal(c.notify)
	return true, false
}

// signal wakes the waiter on a 1-buffered channel, if any.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// end closes the conn with reason; Read returns buffered data first unless
// local is set. It reports whether the conn was open.
func (c *conn) end(reason error, local bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return false
	}
	c.err, c.byClose = reason, local
	close(c.done)
	return true
}

func (c *conn) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err != nil
}

// Read reads the inbound MQTT byte stream. It returns os.ErrDeadlineExceeded
// after the read deadline, and once the link ended the conn, the reason
// (ErrPortLost, ErrChannelReplaced, ErrChannelReset, ErrInputOverflow).
func (c *conn) Read(p []byte) (int, error) {
	for {
		if isClosedChan(c.rdl.wait()) {
			return 0, os.ErrDeadlineExceeded
		}
		c.mu.Lock()
		if c.err != nil && c.byClose {
			c.mu.Unlock()
			return 0, net.ErrClosed
		}
		if c.in.Len() > 0 {
			n, _ := c.in.Read(p)
			c.mu.Unlock()
			signal(c.space)
			return n, nil
		}
		if err := c.err; err != nil {
			c.mu.Unlock()
			return 0, err
		}
		c.mu.Unlock()
		select {
		case <-c.notify:
		case <-c.done:
		case <-c.rdl.wait():
		}
	}
}

// Write accepts an MQTT byte stream. With cobs-crc16 framing it buffers a
// partial packet and sends each complete packet as one frame on the conn's
// channel; all frames of one Write go to the port in one write, made by the
// port's writer goroutine from a copy of p. Write waits for that write; it
// returns os.ErrDeadlineExceeded at the write deadline, and the conn's end
// reason once the conn or the port is closed, even while the port write is
// blocked in the driver. Frames given up before the writer took them are not
// sent; frames it already took are still sent whole.
func (c *conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.writeErr(); err != nil {
		return 0, err
	}
	if c.s.raw {
		if err := c.portWrite(p, 0); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	c.out = append(c.out, p...)
	c.frames = c.frames[:0]
	off, n := 0, 0
	for {
		total, ok, err := packetLen(c.out[off:])
		if err != nil {
			c.out = c.out[:0]
			return 0, fmt.Errorf("framing outbound packet: %w", err)
		}
		if ok && total > c.maxBody {
			c.out = c.out[:0]
			return 0, fmt.Errorf("framing outbound packet of %d bytes: %w", total, ErrFrameTooLarge)
		}
		if !ok || len(c.out)-off < total {
			break
		}
		c.frames = AppendFrame(c.frames, c.channel, c.out[off:off+total])
		off += total
		n++
	}
	c.out = c.out[:copy(c.out, c.out[off:])]
	if n > 0 {
		if err := c.portWrite(c.frames, n); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// portWrite has the session write b, holding frames frames, and waits for
// it until the write deadline or the conn's end.
func (c *conn) portWrite(b []byte, frames int) error {
	err := c.s.write(b, frames, c.done, c.wdl.wait())
	if err == errWriteAborted {
		if err = c.writeErr(); err == nil {
			err = ErrPortLost // the session ended first; the conn is ending
		}
	}
	return err
}

func (c *conn) writeErr() error {
	if isClosedChan(c.wdl.wait()) {
		return os.ErrDeadlineExceeded
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		if c.byClose {
			return net.ErrClosed
		}
		return c.err
	}
	return nil
}

// Close ends the conn. With cobs-crc16 framing, unless the sensor's last
// packet was DISCONNECT, the sensor is sent RESET for the channel so that it
// reconnects at once instead of waiting for its own timeout.
func (c *conn) Close() error {
	defer c.relOnce.Do(func() { close(c.released) })
	c.mu.Lock()
	last := c.lastIn
	c.mu.Unlock()
	if !c.end(net.ErrClosed, true) {
		return nil
	}
	c.rdl.stop()
	c.wdl.stop()
	if c.s.detach(c) && !c.s.raw && last != mqttDisconnect {
		c.s.sendReset(c.channel)
	}
	return nil
}

// LocalAddr returns the port's address.
func (c *conn) LocalAddr() net.Addr { return c.local }

// RemoteAddr returns the channel's address.
func (c *conn) RemoteAddr() net.Addr { return c.remote }

// SetDeadline sets the read and write deadlines.
func (c *conn) SetDeadline(t time.Time) error {
	c.rdl.set(t)
	c.wdl.set(t)
	return nil
}

// SetReadDeadline sets the deadline for pending and future Reads.
func (c *conn) SetReadDeadline(t time.Time) error {
	c.rdl.set(t)
	return nil
}

// SetWriteDeadline sets the deadline for pending and future Writes. A Write
// waiting for a port write blocked in the driver returns at the deadline;
// the port write itself completes when the driver lets it.
func (c *conn) SetWriteDeadline(t time.Time) error {
	c.wdl.set(t)
	return nil
}
