package serialio

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.bug.st/serial"
)

// pollInterval is the port read timeout: how soon the reader notices Close
// or a failed write. A timed-out read returns (0, nil).
const pollInterval = 100 * time.Millisecond

// session is one open incarnation of the device. Its conns live and die with
// it; a reopened device gets a new session.
//
// Lock order: session.mu before conn.mu. wmu is taken alone and only around
// port writes and the final port close.
type session struct {
	l    *Listener
	port serial.Port
	raw  bool
	dec  *Decoder // reader goroutine only

	wmu  sync.Mutex // serialises writes to port
	dead atomic.Bool

	mu    sync.Mutex
	conns map[byte]*conn // cobs-crc16: open conn per channel
	cur   *conn          // raw: the open conn
	ended bool
}

func newSession(l *Listener, port serial.Port) *session {
	s := &session{l: l, port: port, raw: l.cfg.Framing == FramingRaw}
	if !s.raw {
		s.dec = NewDecoder(l.cfg.MaxFrame)
		s.conns = make(map[byte]*conn)
	}
	return s
}

// errStopped ends a session because the Listener is closing.
var errStopped = errors.New("listener closed")

// serve reads the port until the Listener closes or the port fails.
func (s *session) serve(done <-chan struct{}) error {
	buf := make([]byte, 4096)
	emit := func(f Frame, err error) { s.handleFrame(f, err, done) }
	for {
		select {
		case <-done:
			return errStopped
		default:
		}
		if s.dead.Load() {
			return fmt.Errorf("writing port: %w", ErrPortLost)
		}
		n, err := s.port.Read(buf)
		if n > 0 {
			s.l.st.bytesIn.Add(uint64(n))
			if s.raw {
				s.handleRaw(buf[:n], done)
			} else {
				s.dec.Feed(buf[:n], emit)
			}
		}
		if err != nil {
			return fmt.Errorf("reading port: %w", err)
		}
	}
}

// close ends every conn with reason and closes the port.
func (s *session) close(reason error) {
	s.mu.Lock()
	s.ended = true
	var cs []*conn
	for _, c := range s.conns {
		cs = append(cs, c)
	}
	if s.cur != nil {
		cs = append(cs, s.cur)
	}
	clear(s.conns)
	s.cur = nil
	s.mu.Unlock()
	for _, c := range cs {
		c.end(reason, false)
	}
	s.dead.Store(true)
	s.wmu.Lock()
	s.port.Close()
	s.wmu.Unlock()
}

// handleRaw passes bytes to the raw conn, offering a new one if needed.
func (s *session) handleRaw(p []byte, done <-chan struct{}) {
	s.mu.Lock()
	c, fresh := s.cur, false
	if c == nil {
		c, fresh = newConn(s, 0), true
		s.cur = c
	}
	s.mu.Unlock()
	if _, overflow := c.push(p, done); overflow {
		s.overflow(c)
		return
	}
	if fresh {
		s.l.offer(c)
	}
}

// handleFrame acts on one frame, or one dropped frame, from the decoder.
func (s *session) handleFrame(f Frame, err error, done <-chan struct{}) {
	st := &s.l.st
	switch err {
	case nil:
		st.framesIn.Add(1)
	case ErrCRC:
		st.crcErrors.Add(1)
		s.l.drop(err, int(f.Channel))
		if c := s.lookup(f.Channel); c != nil && f.Channel != ControlChannel {
			s.teardown(c, ErrChannelReset)
		}
		return
	case ErrLengthMismatch:
		st.lenMism.Add(1)
		s.l.drop(err, int(f.Channel))
		return
	case ErrFrameTooLarge:
		st.oversize.Add(1)
		s.l.drop(err, -1)
		return
	default:
		st.formatErrors.Add(1)
		s.l.drop(err, -1)
		return
	}
	if f.Channel == ControlChannel {
		if s.l.log.Enabled(context.Background(), slog.LevelDebug) {
			s.l.log.Debug("ignoring link-control frame from sensor", keyChannel, int(f.Body[0]))
		}
		return
	}
	s.mu.Lock()
	c := s.conns[f.Channel]
	var old *conn
	if c != nil && f.Body[0]&0xF0 == mqttConnect {
		old, c = c, nil
	}
	fresh := c == nil
	if fresh {
		c = newConn(s, f.Channel)
		s.conns[f.Channel] = c
	}
	s.mu.Unlock()
	if old != nil {
		old.end(ErrChannelReplaced, false)
		s.l.log.Info("serial channel replaced by a new connect", keyChannel, int(f.Channel))
	}
	if _, overflow := c.push(f.Body, done); overflow {
		s.overflow(c)
		return
	}
	if fresh {
		s.l.offer(c)
	}
}

func (s *session) lookup(ch byte) *conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns[ch]
}

// overflow closes a conn whose reader fell behind.
func (s *session) overflow(c *conn) {
	s.l.st.overflows.Add(1)
	s.l.limiter.warn(s.l.log, "overflow", "closing serial conn: broker reads too slowly", keyChannel, c.remote.Channel)
	s.teardown(c, ErrInputOverflow)
}

// teardown ends c with reason and, with framing, sends RESET for its channel.
func (s *session) teardown(c *conn, reason error) {
	c.end(reason, false)
	if s.detach(c) && !s.raw {
		s.sendReset(c.channel)
	}
}

// detach forgets c and reports whether it was the open conn of its channel.
func (s *session) detach(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return false
	}
	if s.raw {
		if s.cur == c {
			s.cur = nil
			return true
		}
		return false
	}
	if s.conns[c.channel] == c {
		delete(s.conns, c.channel)
		return true
	}
	return false
}

// sendReset sends link-control RESET for channel ch.
func (s *session) sendReset(ch byte) {
	frame := AppendFrame(make([]byte, 0, 16), ControlChannel, []byte{OpReset, ch})
	if err := s.write(frame, 1); err == nil {
		s.l.st.resetsSent.Add(1)
	}
}

// write writes b, which holds frames whole frames (0 for raw bytes), to the
// port. A failed write marks the session dead; the reader then ends it.
func (s *session) write(b []byte, frames int) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.dead.Load() {
		return ErrPortLost
	}
	for len(b) > 0 {
		n, err := s.port.Write(b)
		s.l.st.bytesOut.Add(uint64(n))
		if err != nil {
			s.dead.Store(true)
			return fmt.Errorf("writing port: %w: %w", ErrPortLost, err)
		}
		if n == 0 {
			s.dead.Store(true)
			return fmt.Errorf("writing port: %w", ErrPortLost)
		}
		b = b[n:]
	}
	s.l.st.framesOut.Add(uint64(frames))
	return nil
}
