package serialio_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/edged/edged/internal/ptytest"
	"github.com/edged/edged/internal/testutil"
	"github.com/edged/edged/serialio"
)

// openPTY opens a kernel pseudo-terminal pair in raw mode and returns the
// master (the test's end: the sensor) and the slave's path (the UART that
// the Listener opens).
func openPTY(t testing.TB) (*os.File, string) {
	t.Helper()
	return ptytest.Open(t)
}

// linkPTY points the symlink dev at a new PTY's slave.
func linkPTY(t testing.TB, dev string) *os.File {
	t.Helper()
	return ptytest.Link(t, dev)
}

// sensor is the device end of a PTY: it writes frames and decodes the
// frames edged sends back.
type sensor struct {
	f      io.ReadWriteCloser
	frames chan serialio.Frame
	raw    chan []byte
	done   chan struct{}
}

// newSensor starts a reader on f; it stops when f is closed. With raw set
// it passes bytes through instead of decoding frames.
func newSensor(t testing.TB, f io.ReadWriteCloser, raw bool) *sensor {
	s := &sensor{f: f, frames: make(chan serialio.Frame, 4096), raw: make(chan []byte, 4096), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		d := serialio.NewDecoder(1 << 16)
		buf := make([]byte, 4096)
		for {
			n, err := f.Read(buf)
			if raw && n > 0 {
				s.raw <- bytes.Clone(buf[:n])
			} else if n > 0 {
				d.Feed(buf[:n], func(fr serialio.Frame, err error) {
					if err == nil {
						s.frames <- serialio.Frame{Channel: fr.Channel, Body: bytes.Clone(fr.Body)}
					}
				})
			}
			if errors.Is(err, syscall.EIO) {
				// The slave is not open (the Listener is between opens).
				time.Sleep(2 * time.Millisecond)
				continue
			}
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		f.Close()
		<-s.done
	})
	return s
}

func (s *sensor) send(t testing.TB, ch byte, body []byte) {
	t.Helper()
	if _, err := s.f.Write(serialio.AppendFrame(nil, ch, body)); err != nil {
		t.Fatalf("sensor write: %v", err)
	}
}

// next returns the next frame edged sent, skipping link-control frames
// unless control is set.
func (s *sensor) next(t testing.TB, control bool) serialio.Frame {
	t.Helper()
	timer := time.NewTimer(5 * time.Second)
	defer timer.Stop()
	for {
		select {
		case f := <-s.frames:
			if f.Channel == serialio.ControlChannel && !control {
				continue
			}
			return f
		case <-timer.C:
			t.Fatal("sensor: no frame from edged within 5s")
		}
	}
}

// startListener starts a Listener on a fresh PTY (through a symlink named
// ttyTEST) and waits until the device is open.
func startListener(t testing.TB, cfg serialio.Config) (*serialio.Listener, *sensor, string) {
	t.Helper()
	dir := t.TempDir()
	dev := filepath.Join(dir, "ttyTEST")
	m := linkPTY(t, dev)
	cfg.Device = dev
	if cfg.Name == "" {
		cfg.Name = "uart0"
	}
	if cfg.ReopenMin == 0 {
		cfg.ReopenMin, cfg.ReopenMax = 10*time.Millisecond, 100*time.Millisecond
	}
	l, err := serialio.Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	waitOpen(t, l, 1)
	return l, newSensor(t, m, cfg.Framing == serialio.FramingRaw), dev
}

func waitOpen(t testing.TB, l *serialio.Listener, opens uint64) {
	t.Helper()
	testutil.WaitFor(t, 5*time.Second, func() error {
		if s := l.Stats(); !s.Open || s.PortOpens < opens {
			return fmt.Errorf("port not open: %+v", s)
		}
		return nil
	})
}

// acceptor runs Accept in a goroutine until the Listener closes.
func acceptor(t testing.TB, l net.Listener) <-chan net.Conn {
	ch := make(chan net.Conn, 64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			ch <- c
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
	})
	return ch
}

func accept(t testing.TB, ch <-chan net.Conn) net.Conn {
	t.Helper()
	select {
	case c := <-ch:
		t.Cleanup(func() { c.Close() })
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no conn accepted within 5s")
		return nil
	}
}

// readPacket reads one MQTT packet from r.
func readPacket(r io.Reader) ([]byte, error) {
	hdr := make([]byte, 1, 5)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return nil, err
	}
	n, mul := 0, 1
	for i := 0; ; i++ {
		var b [1]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return nil, err
		}
		hdr = append(hdr, b[0])
		n += int(b[0]&0x7F) * mul
		mul <<= 7
		if b[0]&0x80 == 0 {
			break
		}
		if i == 3 {
			return nil, errors.New("malformed remaining length")
		}
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, err
	}
	return append(hdr, body...), nil
}

func mustReadPacket(t testing.TB, c net.Conn) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	p, err := readPacket(c)
	if err != nil {
		t.Fatalf("reading packet from %v: %v", c.RemoteAddr(), err)
	}
	return p
}

// readErr reads c until an error and returns it.
func readErr(t testing.TB, c net.Conn) error {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 512)
	for {
		if _, err := c.Read(buf); err != nil {
			return err
		}
	}
}

// checkNoLeak registers a cleanup, to run after all later-registered ones,
// that waits for the goroutine count to return to where it was.
func checkNoLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		testutil.WaitFor(t, 5*time.Second, func() error {
			if n := runtime.NumGoroutine(); n > before {
				return fmt.Errorf("%d goroutines, %d before the test", n, before)
			}
			return nil
		})
	})
}
