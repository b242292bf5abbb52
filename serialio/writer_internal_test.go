package serialio

import (
	"errors"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"go.bug.st/serial"
)

// stuckPort is a serial.Port whose Write blocks until release is closed. It
// fails the test on a Write after Close or a Close during a Write.
type stuckPort struct {
	t        *testing.T
	release  chan struct{}
	writing  atomic.Bool
	closed   atomic.Bool
	writes   atomic.Int32
	flushes  atomic.Int32
	closedCh chan struct{}
}

func (p *stuckPort) Write(b []byte) (int, error) {
	if p.closed.Load() {
		p.t.Error("Write after Close")
	}
	p.writes.Add(1)
	p.writing.Store(true)
	<-p.release
	p.writing.Store(false)
	return len(b), nil
}

func (p *stuckPort) Close() error {
	if p.writing.Load() {
		p.t.Error("Close during a Write")
	}
	if p.closed.Swap(true) {
		p.t.Error("Close called twice")
	}
	close(p.closedCh)
	return nil
}

func (p *stuckPort) ResetOutputBuffer() error { p.flushes.Add(1); return nil }

func (p *stuckPort) Read(b []byte) (int, error)         { time.Sleep(pollInterval); return 0, nil }
func (p *stuckPort) SetMode(*serial.Mode) error         { return nil }
func (p *stuckPort) Drain() error                       { return nil }
func (p *stuckPort) ResetInputBuffer() error            { return nil }
func (p *stuckPort) SetDTR(bool) error                  { return nil }
func (p *stuckPort) SetRTS(bool) error                  { return nil }
func (p *stuckPort) SetReadTimeout(time.Duration) error { return nil }
func (p *stuckPort) Break(time.Duration) error          { return nil }
func (p *stuckPort) GetModemStatusBits() (*serial.ModemStatusBits, error) {
	return &serial.ModemStatusBits{}, nil
}

func within(t *testing.T, d time.Duration, what string, f func()) {
	t.Helper()
	start := time.Now()
	f()
	if e := time.Since(start); e > d {
		t.Errorf("%s took %s, want under %s", what, e, d)
	}
}

// A session whose port write is stuck in the driver: close, sendReset,
// Write with a deadline and Listener's wait for writers are all bounded, and
// the writer closes the port only after the write returns, and writes no
// more.
func TestStuckWriterSession(t *testing.T) {
	cfg := Config{Device: "/dev/null"}.withDefaults()
	l := &Listener{cfg: cfg, log: cfg.Logger, done: make(chan struct{}), notify: make(chan struct{}, 1)}
	p := &stuckPort{t: t, release: make(chan struct{}), closedCh: make(chan struct{})}
	s := newSession(l, p)
	c := newConn(s, 3)
	s.conns[3] = c

	errc := make(chan error, 1)
	go func() {
		_, err := c.Write([]byte{0xC0, 0x00})
		errc <- err
	}()
	for !p.writing.Load() {
		time.Sleep(time.Millisecond)
	}

	// A second Write waits in the queue, and gives up at its deadline.
	c2 := newConn(s, 4)
	c2.SetWriteDeadline(time.Now().Add(20 * time.Millisecond))
	within(t, time.Second, "Write with a deadline", func() {
		if _, err := c2.Write([]byte{0xC0, 0x00}); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("Write behind a stuck write: %v", err)
		}
	})

	// RESETs fill the queue (c2's cancelled request still holds a slot);
	// then one more gives up after resetWait.
	within(t, 100*time.Millisecond, "queueing RESETs", func() {
		for i := range writeQueue - 1 {
			s.sendReset(byte(i))
		}
	})
	within(t, resetWait+time.Second, "RESET with a full queue", func() { s.sendReset(9) })

	within(t, 100*time.Millisecond, "session.close", func() { s.close(ErrPortLost) })
	select {
	case err := <-errc:
		if !errors.Is(err, ErrPortLost) {
			t.Errorf("stuck Write after close: %v, want ErrPortLost", err)
		}
	case <-time.After(time.Second):
		t.Fatal("stuck Write not ended by session.close")
	}
	within(t, 100*time.Millisecond, "RESET on a dead session", func() { s.sendReset(1) })
	within(t, 300*time.Millisecond, "waitWriters", func() { l.waitWriters(50 * time.Millisecond) })
	if p.closed.Load() {
		t.Fatal("port closed under a write in progress")
	}
	deadline := time.Now().Add(time.Second)
	for p.flushes.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if p.flushes.Load() == 0 {
		t.Error("output not flushed with a write stuck at close")
	}

	close(p.release) // the driver returns the write
	select {
	case <-p.closedCh:
	case <-time.After(time.Second):
		t.Fatal("port not closed after the stuck write returned")
	}
	<-s.exited
	if n := p.writes.Load(); n != 1 {
		t.Errorf("%d port writes, want 1", n)
	}
	l.wmu.Lock()
	n := len(l.writers)
	l.wmu.Unlock()
	if n != 0 {
		t.Errorf("%d writers still recorded", n)
	}
}
