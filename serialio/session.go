package serialio

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.bug.st/serial"
)

// pollInterval is the port read timeout: how soon the reader notices Close
// or a failed write. A timed-out read returns (0, nil).
const pollInterval = 100 * time.Millisecond

// Port writer limits.
const (
	// writeQueue is how many writes may wait for the port's writer.
	writeQueue = 16
	// resetWait bounds how long sendReset waits for room in a full write
	// queue before it drops the RESET.
	resetWait = 250 * time.Millisecond
)

// session is one open incarnation of the device. Its conns live and die with
// it; a reopened device gets a new session.
//
// One writer goroutine per session owns port.Write and the final
// port.Close: a write blocked in the driver (the far end stopped reading)
// then holds up only that goroutine, never close, the reader, Listener.Close
// or a conn's Write past its deadline, and the device is never closed under
// a write in progress, so no later write can reach a reused descriptor.
//
// Lock order: session.mu before conn.mu. fdmu is taken alone.
type session struct {
	l    *Listener
	port serial.Port
	raw  bool
	dec  *Decoder // reader goroutine only

	wq     chan *writeReq // to the writer, in order
	stop   chan struct{}  // closed by close: the writer closes the port and exits
	exited chan struct{}  // closed by the writer once the port is closed
	dead   atomic.Bool    // the port failed or the session ended: no more writes
	busy   atomic.Bool    // the writer is in port.Write

	fdmu       sync.Mutex // held around port.Close and an output flush
	portClosed bool

	mu    sync.Mutex
	conns map[byte]*conn // cobs-crc16: open conn per channel
	cur   *conn          // raw: the open conn
	ended bool
}

// writeReq is one write handed to the session's writer: whole frames (or
// raw bytes), written in one piece, never interleaved with another.
type writeReq struct {
	b      []byte // a copy: the caller's buffer may be reused
	frames int
	reset  bool         // a RESET from sendReset: counted, nobody waits
	state  atomic.Int32 // reqQueued, then reqTaken by the writer or reqCancelled by the caller
	res    chan error   // 1-buffered; nil for a RESET
}

// writeReq states.
const (
	reqQueued int32 = iota
	reqTaken
	reqCancelled
)

// errWriteAborted is returned by session.write when it stopped waiting
// because the conn or the session ended; the conn says why.
var errWriteAborted = errors.New("write aborted")

func newSession(l *Listener, port serial.Port) *session {
	s := &session{
		l:      l,
		port:   port,
		raw:    l.cfg.Framing == FramingRaw,
		wq:     make(chan *writeReq, writeQueue),
		stop:   make(chan struct{}),
		exited: make(chan struct{}),
	}
	if !s.raw {
		s.dec = NewDecoder(l.cfg.MaxFrame)
		s.conns = make(map[byte]*conn)
	}
	l.addWriter(s)
	go s.writer()
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

// close ends every conn with reason and tells the writer to close the port.
// It does not wait for a write in progress: the writer closes the port once
// that write returns (see waitWriter).
func (s *session) close(reason error) {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return
	}
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
	close(s.stop)
	if s.busy.Load() {
		go s.flushOutput()
	}
}

// flushOutput runs when close finds a write in progress, which may be
// blocked because the far end stopped reading. If the write is still going
// after pollInterval, it discards the output the driver has not sent, which
// lets the write finish on a real UART (not on a pseudo-terminal). It runs
// in its own goroutine, as a driver may take its time; fdmu keeps the writer
// from closing the port under the ioctl.
func (s *session) flushOutput() {
	t := time.NewTimer(pollInterval)
	defer t.Stop()
	select {
	case <-s.exited:
		return
	case <-t.C:
	}
	s.fdmu.Lock()
	defer s.fdmu.Unlock()
	if !s.portClosed {
		s.port.ResetOutputBuffer()
	}
}

// waitWriter waits until the writer closed the port, for at most d or until
// stop closes.
func (s *session) waitWriter(d time.Duration, stop <-chan struct{}) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-s.exited:
	case <-t.C:
	case <-stop:
	}
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
		st.lastFrame.Store(time.Now().UnixNano())
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
		// The old conn ended as a network loss: its will is published
		// [MQTT-3.1.2-8]. The new CONNECT waits (at most replaceWait, the
		// port's other channels with it) until the broker has closed the
		// old conn, or the broker would see a session takeover instead,
		// which continues a persistent session without the will.
		t := time.NewTimer(replaceWait)
		select {
		case <-old.released:
		case <-t.C:
		case <-done:
		}
		t.Stop()
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

// sendReset queues link-control RESET for channel ch. It is best effort and
// does not wait for the write: it gives up at once on a dead session, and
// after resetWait if the write queue stays full (a write is stuck).
func (s *session) sendReset(ch byte) {
	if s.dead.Load() {
		return
	}
	req := &writeReq{b: AppendFrame(make([]byte, 0, 16), ControlChannel, []byte{OpReset, ch}), frames: 1, reset: true}
	select {
	case s.wq <- req:
		return
	case <-s.stop:
		return
	default:
	}
	t := time.NewTimer(resetWait)
	defer t.Stop()
	select {
	case s.wq <- req:
	case <-s.stop:
	case <-t.C:
		s.l.limiter.warn(s.l.log, "reset", "dropping serial RESET: port writes are stuck", keyChannel, int(ch))
	}
}

// write has the writer write a copy of b, which holds frames whole frames
// (0 for raw bytes), and waits for the result. It stops waiting when
// abort closes (the conn ended) or the session ends, returning
// errWriteAborted, or when deadline closes, returning
// os.ErrDeadlineExceeded. A write given up before the writer took it is
// never made; one in progress is completed in full by the writer. A failed
// write marks the session dead; the reader then ends it.
func (s *session) write(b []byte, frames int, abort, deadline <-chan struct{}) error {
	if s.dead.Load() {
		return ErrPortLost
	}
	req := &writeReq{b: bytes.Clone(b), frames: frames, res: make(chan error, 1)}
	var err error
	select {
	case s.wq <- req:
		select {
		case err := <-req.res:
			return err
		case <-abort:
			err = errWriteAborted
		case <-s.stop:
			err = errWriteAborted
		case <-deadline:
			err = os.ErrDeadlineExceeded
		}
	case <-abort:
		return errWriteAborted
	case <-s.stop:
		return errWriteAborted
	case <-deadline:
		return os.ErrDeadlineExceeded
	}
	if req.state.CompareAndSwap(reqQueued, reqCancelled) {
		req.b = nil // the writer skips it; free the copy now
		return err
	}
	// The writer has it: it may just have finished.
	select {
	case werr := <-req.res:
		return werr
	default:
		return err
	}
}

// writer makes the session's port writes, one request at a time in queue
// order, until close; then it closes the port. A write blocked in the
// driver keeps it (and the open device) until the driver returns.
func (s *session) writer() {
	defer s.closePort()
	for {
		select {
		case <-s.stop:
			return
		case req := <-s.wq:
			if !req.state.CompareAndSwap(reqQueued, reqTaken) {
				continue // its caller gave up
			}
			err := ErrPortLost
			if !s.dead.Load() {
				err = s.writePort(req.b, req.frames)
				if err == nil && req.reset {
					s.l.st.resetsSent.Add(1)
				}
			}
			if req.res != nil {
				req.res <- err
			}
		}
	}
}

// writePort writes b, which holds frames whole frames, to the port.
func (s *session) writePort(b []byte, frames int) error {
	s.busy.Store(true)
	defer s.busy.Store(false)
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

// closePort closes the port, once, from the writer.
func (s *session) closePort() {
	s.fdmu.Lock()
	s.port.Close()
	s.portClosed = true
	s.fdmu.Unlock()
	close(s.exited)
	s.l.removeWriter(s)
}
