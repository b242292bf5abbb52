package serialio_test

import (
	"bytes"
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/edged/edged/internal/testutil"
	"github.com/edged/edged/serialio"
)

func TestConnPerChannel(t *testing.T) {
	checkNoLeak(t)
	l, s, _ := startListener(t, serialio.Config{})
	conns := acceptor(t, l)

	s.send(t, 3, connect("s3"))
	c := accept(t, conns)
	if got, want := c.RemoteAddr().String(), "uart0/ttyTEST#3"; got != want {
		t.Errorf("RemoteAddr = %q, want %q", got, want)
	}
	if c.RemoteAddr().Network() != "serial" || c.LocalAddr().String() != "uart0/ttyTEST" {
		t.Errorf("addrs %v %v", c.LocalAddr(), c.RemoteAddr())
	}
	if p := mustReadPacket(t, c); !bytes.Equal(p, connect("s3")) {
		t.Fatalf("read % x", p)
	}
	connack := []byte{0x20, 0x02, 0x00, 0x00}
	if _, err := c.Write(connack); err != nil {
		t.Fatal(err)
	}
	if f := s.next(t, false); f.Channel != 3 || !bytes.Equal(f.Body, connack) {
		t.Fatalf("sensor got ch %d % x", f.Channel, f.Body)
	}
	st := l.Stats()
	if st.FramesIn != 1 || st.FramesOut != 1 || st.ConnsOpened != 1 || st.BytesIn == 0 || st.BytesOut == 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestTwoChannelsOnePort(t *testing.T) {
	l, s, _ := startListener(t, serialio.Config{})
	conns := acceptor(t, l)
	s.send(t, 0, connect("a"))
	a := accept(t, conns)
	s.send(t, 1, connect("b"))
	b := accept(t, conns)
	mustReadPacket(t, a)
	mustReadPacket(t, b)

	s.send(t, 1, publish("to/b", []byte("B")))
	s.send(t, 0, publish("to/a", []byte("A")))
	if p := mustReadPacket(t, a); !bytes.Equal(p, publish("to/a", []byte("A"))) {
		t.Fatalf("a read % x", p)
	}
	if p := mustReadPacket(t, b); !bytes.Equal(p, publish("to/b", []byte("B"))) {
		t.Fatalf("b read % x", p)
	}

	// Concurrent writers: every frame arrives whole on its own channel.
	const n = 200
	errc := make(chan error, 2)
	for _, c := range []net.Conn{a, b} {
		go func() {
			for i := range n {
				if _, err := c.Write(publish("x", []byte{byte(i)})); err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
	}
	for range 2 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	next := map[byte]int{}
	for range 2 * n {
		f := s.next(t, false)
		if f.Channel > 1 || !bytes.Equal(f.Body, publish("x", []byte{byte(next[f.Channel])})) {
			t.Fatalf("frame ch %d % x, want seq %d", f.Channel, f.Body, next[f.Channel])
		}
		next[f.Channel]++
	}
}

func TestWriteSplitAndCoalesced(t *testing.T) {
	l, s, _ := startListener(t, serialio.Config{})
	conns := acceptor(t, l)
	s.send(t, 2, connect("c"))
	c := accept(t, conns)
	mustReadPacket(t, c)

	big := publish("big", bytes.Repeat([]byte{0}, 300)) // two-byte remaining length
	pkts := [][]byte{pingreq, publish("a", []byte("1")), big, {0x90, 0x03, 0x00, 0x01, 0x00}}
	stream := bytes.Join(pkts, nil)
	// Coalesced: all packets in one Write; split: one byte per Write; and
	// pieces cut mid-header.
	for _, sizes := range [][]int{{len(stream)}, {1}, {3, 7, 1, 250}} {
		for off, i := 0, 0; off < len(stream); i++ {
			n := min(sizes[i%len(sizes)], len(stream)-off)
			if w, err := c.Write(stream[off : off+n]); err != nil || w != n {
				t.Fatalf("Write = %d, %v", w, err)
			}
			off += n
		}
		for _, want := range pkts {
			if f := s.next(t, false); f.Channel != 2 || !bytes.Equal(f.Body, want) {
				t.Fatalf("sizes %v: frame ch %d % x, want % x", sizes, f.Channel, f.Body, want)
			}
		}
	}

	// Inbound: several frames in one device write read back as a stream,
	// through a small buffer.
	var wire []byte
	for _, p := range pkts {
		wire = serialio.AppendFrame(wire, 2, p)
	}
	if _, err := s.f.Write(wire); err != nil {
		t.Fatal(err)
	}
	var got []byte
	buf := make([]byte, 5)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for len(got) < len(stream) {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, buf[:n]...)
	}
	if !bytes.Equal(got, stream) {
		t.Fatalf("read stream % x, want % x", got, stream)
	}
}

func TestWriteErrors(t *testing.T) {
	l, s, _ := startListener(t, serialio.Config{MaxFrame: 64})
	conns := acceptor(t, l)
	s.send(t, 0, connect("c"))
	c := accept(t, conns)
	mustReadPacket(t, c)
	if _, err := c.Write(publish("t", make([]byte, 100))); !errors.Is(err, serialio.ErrFrameTooLarge) {
		t.Errorf("oversize packet: err = %v", err)
	}
	if _, err := c.Write([]byte{0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01}); !errors.Is(err, serialio.ErrMalformedPacket) {
		t.Errorf("malformed length: err = %v", err)
	}
	c.Close()
	if _, err := c.Write(pingreq); !errors.Is(err, net.ErrClosed) {
		t.Errorf("write after close: err = %v", err)
	}
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("read after close: err = %v", err)
	}
}

func TestReadDeadline(t *testing.T) {
	l, s, _ := startListener(t, serialio.Config{})
	conns := acceptor(t, l)
	s.send(t, 0, connect("c"))
	c := accept(t, conns)
	mustReadPacket(t, c)

	c.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
	_, err := c.Read(make([]byte, 10))
	var ne net.Error
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Read after deadline: %v", err)
	}

	// A deadline set while Read blocks wakes it.
	errc := make(chan error, 1)
	c.SetReadDeadline(time.Time{})
	go func() {
		_, err := c.Read(make([]byte, 10))
		errc <- err
	}()
	c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	select {
	case err := <-errc:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("blocked Read: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("blocked Read not woken by SetReadDeadline")
	}

	// The conn still works after a timeout, and SetDeadline covers reads.
	c.SetDeadline(time.Now().Add(5 * time.Second))
	s.send(t, 0, pingreq)
	if p := mustReadPacket(t, c); !bytes.Equal(p, pingreq) {
		t.Fatalf("read % x", p)
	}
}

func TestConnectReplacesConn(t *testing.T) {
	l, s, _ := startListener(t, serialio.Config{})
	conns := acceptor(t, l)
	s.send(t, 4, connect("s"))
	old := accept(t, conns)
	mustReadPacket(t, old)

	s.send(t, 4, publish("t", []byte("1"))) // not a CONNECT: same conn
	if p := mustReadPacket(t, old); p[0] != 0x30 {
		t.Fatalf("read % x", p)
	}
	s.send(t, 4, connect("s"))
	c := accept(t, conns)
	if err := readErr(t, old); !errors.Is(err, serialio.ErrChannelReplaced) {
		t.Fatalf("old conn read error %v, want ErrChannelReplaced", err)
	}
	if p := mustReadPacket(t, c); !bytes.Equal(p, connect("s")) {
		t.Fatalf("new conn read % x", p)
	}
	if _, err := old.Write(pingreq); err == nil {
		t.Fatal("write on replaced conn succeeded")
	}
	if st := l.Stats(); st.ConnsOpened != 2 || st.ResetsSent != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestCRCErrorResetsChannel(t *testing.T) {
	l, s, _ := startListener(t, serialio.Config{})
	conns := acceptor(t, l)
	s.send(t, 5, connect("s"))
	c := accept(t, conns)
	mustReadPacket(t, c)

	bad := serialio.AppendFrame(nil, 5, publish("t", []byte("payload")))
	bad[len(bad)-4] ^= 0x10
	if _, err := s.f.Write(bad); err != nil {
		t.Fatal(err)
	}
	if err := readErr(t, c); !errors.Is(err, serialio.ErrChannelReset) {
		t.Fatalf("read error %v, want ErrChannelReset", err)
	}
	f := s.next(t, true)
	if f.Channel != serialio.ControlChannel || !bytes.Equal(f.Body, []byte{serialio.OpReset, 5}) {
		t.Fatalf("sensor got ch %d % x, want RESET 5", f.Channel, f.Body)
	}
	// A CRC error naming a channel with no conn resets nothing.
	bad = serialio.AppendFrame(nil, 9, pingreq)
	bad[len(bad)-2] ^= 0x01
	s.f.Write(bad)
	testutil.WaitFor(t, 5*time.Second, func() error {
		if st := l.Stats(); st.CRCErrors != 2 {
			return errors.New("second CRC error not counted")
		}
		return nil
	})
	// The sensor reconnects on the same channel.
	s.send(t, 5, connect("s"))
	c2 := accept(t, conns)
	mustReadPacket(t, c2)
	if st := l.Stats(); st.ResetsSent != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestBrokerCloseSendsReset(t *testing.T) {
	l, s, _ := startListener(t, serialio.Config{})
	conns := acceptor(t, l)
	s.send(t, 6, connect("s"))
	c := accept(t, conns)
	mustReadPacket(t, c)
	c.Close() // e.g. keepalive timeout
	if f := s.next(t, true); f.Channel != serialio.ControlChannel || !bytes.Equal(f.Body, []byte{serialio.OpReset, 6}) {
		t.Fatalf("sensor got ch %d % x, want RESET 6", f.Channel, f.Body)
	}

	// After the sensor's DISCONNECT, the broker's close sends no RESET.
	s.send(t, 6, connect("s"))
	c = accept(t, conns)
	mustReadPacket(t, c)
	s.send(t, 6, disconnect)
	mustReadPacket(t, c)
	c.Close()
	s.send(t, 7, connect("t"))
	c7 := accept(t, conns)
	mustReadPacket(t, c7)
	c7.Write(pingreq)
	if f := s.next(t, true); f.Channel != 7 {
		t.Fatalf("sensor got ch %d % x, want only the frame on ch 7", f.Channel, f.Body)
	}
	if st := l.Stats(); st.ResetsSent != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestDropsCounted(t *testing.T) {
	l, s, _ := startListener(t, serialio.Config{MaxFrame: 64})
	conns := acceptor(t, l)
	for _, in := range [][]byte{
		{0, 0x05, 0x11, 0x22, 0},                                                            // invalid COBS
		rawFrame([]byte{1, 2, 3}),                                                           // too short
		serialio.AppendFrame(nil, 1, publish("t", make([]byte, 100))),                       // oversize
		rawFrame(withCRC([]byte{1, 0x30, 5, 0, 1, 't'})),                                    // length mismatch
		func() []byte { b := serialio.AppendFrame(nil, 1, pingreq); b[2] ^= 4; return b }(), // CRC
		{0, 0, 0, 0}, // empty frames: ignored
	} {
		if _, err := s.f.Write(in); err != nil {
			t.Fatal(err)
		}
	}
	s.send(t, 1, connect("after"))
	c := accept(t, conns)
	if p := mustReadPacket(t, c); !bytes.Equal(p, connect("after")) {
		t.Fatalf("read % x", p)
	}
	st := l.Stats()
	if st.FormatErrors != 2 || st.Oversize != 1 || st.LengthMismatch != 1 || st.CRCErrors != 1 || st.FramesIn != 1 || st.Dropped() != 5 {
		t.Fatalf("stats %+v", st)
	}
}

func TestRawFraming(t *testing.T) {
	checkNoLeak(t)
	l, s, _ := startListener(t, serialio.Config{Framing: serialio.FramingRaw})
	conns := acceptor(t, l)
	if _, err := s.f.Write(connect("raw")); err != nil {
		t.Fatal(err)
	}
	c := accept(t, conns)
	if got := c.RemoteAddr().String(); got != "uart0/ttyTEST" {
		t.Errorf("RemoteAddr %q", got)
	}
	if p := mustReadPacket(t, c); !bytes.Equal(p, connect("raw")) {
		t.Fatalf("read % x", p)
	}
	connack := []byte{0x20, 0x02, 0x00, 0x00}
	c.Write(connack[:1])
	c.Write(connack[1:])
	var got []byte
	for len(got) < len(connack) {
		select {
		case b := <-s.raw:
			got = append(got, b...)
		case <-time.After(5 * time.Second):
			t.Fatal("no bytes at the sensor")
		}
	}
	if !bytes.Equal(got, connack) {
		t.Fatalf("sensor got % x", got)
	}
	c.Close()
	s.f.Write(connect("raw2"))
	c2 := accept(t, conns)
	if p := mustReadPacket(t, c2); !bytes.Equal(p, connect("raw2")) {
		t.Fatalf("second conn read % x", p)
	}
	if st := l.Stats(); st.ConnsOpened != 2 || st.FramesIn != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestDeviceLossAndReopen(t *testing.T) {
	checkNoLeak(t)
	l, s, dev := startListener(t, serialio.Config{})
	conns := acceptor(t, l)
	s.send(t, 0, connect("a"))
	a := accept(t, conns)
	s.send(t, 1, connect("b"))
	b := accept(t, conns)

	// Unplug: the device goes away, its path too.
	s.f.Close()
	os.Remove(dev)
	for _, c := range []net.Conn{a, b} {
		if err := readErr(t, c); !errors.Is(err, serialio.ErrPortLost) {
			t.Fatalf("%v: read error %v, want ErrPortLost", c.RemoteAddr(), err)
		}
		if _, err := c.Write(pingreq); err == nil {
			t.Fatal("write on a lost port succeeded")
		}
	}
	testutil.WaitFor(t, 5*time.Second, func() error {
		if st := l.Stats(); st.Open || st.PortLosses != 1 {
			return errors.New("loss not recorded")
		}
		return nil
	})

	// Plug back in: a new PTY behind the same path.
	s2 := newSensor(t, linkPTY(t, dev), false)
	waitOpen(t, l, 2)
	s2.send(t, 0, connect("a"))
	c := accept(t, conns)
	if p := mustReadPacket(t, c); !bytes.Equal(p, connect("a")) {
		t.Fatalf("read % x", p)
	}
	c.Write([]byte{0x20, 0x02, 0x00, 0x00})
	if f := s2.next(t, false); f.Channel != 0 || f.Body[0] != 0x20 {
		t.Fatalf("sensor got ch %d % x", f.Channel, f.Body)
	}
}

func TestMissingDeviceAtStart(t *testing.T) {
	dev := t.TempDir() + "/ttyLATER"
	l, err := serialio.Listen(serialio.Config{Device: dev, ReopenMin: 5 * time.Millisecond, ReopenMax: 20 * time.Millisecond})
	if err != nil {
		t.Fatalf("Listen with a missing device: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	conns := acceptor(t, l)
	if st := l.Stats(); st.Open {
		t.Fatal("open without a device")
	}
	s := newSensor(t, linkPTY(t, dev), false)
	waitOpen(t, l, 1)
	s.send(t, 0, connect("late"))
	accept(t, conns)
}

func TestCloseStopsAccept(t *testing.T) {
	checkNoLeak(t)
	l, s, _ := startListener(t, serialio.Config{})
	s.send(t, 0, connect("a"))
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := l.Accept()
		errc <- err
	}()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v", err)
	}
	if err := readErr(t, c); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("conn read after listener Close: %v", err)
	}
	l.Close() // idempotent
	c.Close()
}
