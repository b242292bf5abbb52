package serialio_test

import (
	"encoding/binary"
	"errors"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edged/edged/internal/ptytest"
	"github.com/edged/edged/serialio"
)

// stuckSetup starts a Listener on a PTY whose master (the sensor) sends a
// CONNECT on channel 0 and then reads nothing, and returns the accepted conn.
func stuckSetup(t *testing.T) (*serialio.Listener, net.Conn, *os.File) {
	t.Helper()
	dev := filepath.Join(t.TempDir(), "ttyTEST")
	m := ptytest.Link(t, dev)
	l, err := serialio.Listen(serialio.Config{Device: dev, Name: "u", ReopenMin: 10 * time.Millisecond, ReopenMax: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	waitOpen(t, l, 1)
	if _, err := m.Write(serialio.AppendFrame(nil, 0, connect("stuck"))); err != nil {
		t.Fatal(err)
	}
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	mustReadPacket(t, c)
	return l, c, m
}

// seqPublish is a QoS 0 PUBLISH of about 1 KiB whose payload starts with seq.
func seqPublish(seq uint32) []byte {
	payload := make([]byte, 1000)
	binary.BigEndian.PutUint32(payload, seq)
	return publish("t", payload)
}

// A write deadline ends a Write whose port write is blocked in the driver;
// the link recovers once the far end reads again, with every frame whole,
// in order, and none that Write reported sent missing.
func TestWriteDeadlineWithStuckWrite(t *testing.T) {
	_, c, m := stuckSetup(t)

	var sent []uint32 // Writes that succeeded
	seq := uint32(0)
	for ; ; seq++ {
		if seq > 10000 {
			t.Fatal("port writes never blocked")
		}
		c.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
		start := time.Now()
		_, err := c.Write(seqPublish(seq))
		if err == nil {
			sent = append(sent, seq)
			continue
		}
		var ne net.Error
		if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("Write of a blocked port: %v, want a timeout", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("Write returned %s after its 200ms deadline", d)
		}
		break
	}
	seq++
	// A Write queued behind the stuck one times out too.
	c.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := c.Write(seqPublish(seq)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("queued Write: %v, want a timeout", err)
	}
	seq++
	// A deadline set while Write waits wakes it.
	c.SetWriteDeadline(time.Time{})
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(seqPublish(seq))
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	c.SetWriteDeadline(time.Now().Add(20 * time.Millisecond))
	select {
	case err := <-errc:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("waiting Write: %v, want a timeout", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("waiting Write not woken by SetWriteDeadline")
	}
	seq++

	// The sensor reads again.
	type rx struct {
		f   serialio.Frame
		err error
	}
	frames := make(chan rx, 4096)
	go func() {
		d := serialio.NewDecoder(1 << 16)
		buf := make([]byte, 4096)
		for {
			n, err := m.Read(buf)
			d.Feed(buf[:n], func(f serialio.Frame, err error) {
				frames <- rx{serialio.Frame{Channel: f.Channel, Body: append([]byte(nil), f.Body...)}, err}
			})
			if err != nil {
				close(frames)
				return
			}
		}
	}()
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(seqPublish(seq)); err != nil {
		t.Fatalf("Write after the sensor read again: %v", err)
	}
	last := seq
	var got []uint32
	timeout := time.After(10 * time.Second)
	for {
		var r rx
		select {
		case r = <-frames:
		case <-timeout:
			t.Fatalf("frame %d not received; got %v", last, got)
		}
		if r.err != nil {
			t.Fatalf("sensor decoded a broken frame: %v", r.err)
		}
		if r.f.Channel != 0 {
			t.Fatalf("unexpected frame on channel %d", r.f.Channel)
		}
		p := r.f.Body
		s := binary.BigEndian.Uint32(p[len(p)-1000:])
		if len(got) > 0 && s <= got[len(got)-1] {
			t.Fatalf("frame %d after %d", s, got[len(got)-1])
		}
		got = append(got, s)
		if s == last {
			break
		}
	}
	// Every successful Write arrived; of the timed-out ones at most the one
	// the writer had already taken.
	i := 0
	for _, s := range got {
		if i < len(sent) && s == sent[i] {
			i++
		}
	}
	if i != len(sent) {
		t.Fatalf("successful writes missing: sent %d, matched %d", len(sent), i)
	}
	if extra := len(got) - len(sent) - 1; extra > 1 {
		t.Fatalf("%d timed-out writes were sent, want at most 1", extra)
	}
}

// With no write deadline, a Write blocked on the port returns when its conn
// is closed, conn.Close does not block, Listener.Close returns within its
// bound, and the port's writer ends once the driver returns the write.
func TestCloseWithStuckWriteNoDeadline(t *testing.T) {
	checkNoLeak(t)
	l, c, _ := stuckSetup(t)

	var writes atomic.Int64
	errc := make(chan error, 1)
	go func() {
		for seq := uint32(0); ; seq++ {
			if _, err := c.Write(seqPublish(seq)); err != nil {
				errc <- err
				return
			}
			writes.Add(1)
		}
	}()
	// Wait until Write makes no progress for 500ms.
	for last, deadline := int64(-1), time.Now().Add(10*time.Second); ; {
		n := writes.Load()
		if n == last {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("port writes never blocked")
		}
		last = n
		time.Sleep(500 * time.Millisecond)
	}
	select {
	case err := <-errc:
		t.Fatalf("Write failed: %v", err)
	default:
	}

	start := time.Now()
	c.Close()
	if d := time.Since(start); d > time.Second {
		t.Errorf("conn.Close took %s with a port write blocked", d)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("blocked Write after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(time.Second):
		t.Fatal("blocked Write not ended by conn.Close")
	}

	start = time.Now()
	closed := make(chan struct{})
	go func() { l.Close(); close(closed) }()
	select {
	case <-closed:
		t.Logf("Listener.Close took %s with a port write blocked", time.Since(start))
	case <-time.After(3 * time.Second):
		t.Fatal("Listener.Close did not return within 3s with a port write blocked")
	}
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v", err)
	}
	// The master's cleanup, which runs before checkNoLeak's, fails the
	// blocked port write with EIO; the writer then closes the device and
	// ends.
}
