package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edged/edged/broker"
	"github.com/edged/edged/broker/packet"
	"github.com/edged/edged/internal/ptytest"
	"github.com/edged/edged/internal/testutil"
	"github.com/edged/edged/serialio"
)

// Helpers for the serial tests: an in-process broker serving a TCP listener
// and serial ports (as serve in main.go wires them), a simulated sensor on
// the master end of a kernel PTY speaking cobs-crc16 frames, and a TCP
// observer.

// serialBroker is an in-process broker with a TCP listener on 127.0.0.1:0.
type serialBroker struct {
	b      *broker.Server
	addr   string
	ctx    context.Context
	serves sync.WaitGroup
	errc   chan error // Serve results
	mu     sync.Mutex
	ports  []*serialio.Listener // closed after Shutdown
}

// startSerialBroker starts a broker without a store (sessions in memory);
// cleanup shuts it down and checks that every Serve returned nil.
func startSerialBroker(tb testing.TB) *serialBroker {
	tb.Helper()
	b, err := broker.New(broker.Config{SysInterval: -1})
	if err != nil {
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	sb := &serialBroker{b: b, addr: ln.Addr().String(), ctx: ctx, errc: make(chan error, 16)}
	sb.serve(ln, "tcp")
	tb.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		if err := b.Shutdown(sctx); err != nil {
			tb.Errorf("shutdown: %v", err)
		}
		cancel()
		sb.serves.Wait()
		sb.mu.Lock()
		for _, ln := range sb.ports {
			ln.Close()
		}
		sb.mu.Unlock()
		close(sb.errc)
		for err := range sb.errc {
			if err != nil && !errors.Is(err, broker.ErrServerClosed) {
				tb.Errorf("Serve: %v", err)
			}
		}
	})
	return sb
}

func (sb *serialBroker) serve(ln net.Listener, name string) {
	sb.serves.Add(1)
	go func() {
		defer sb.serves.Done()
		sb.errc <- sb.b.Serve(sb.ctx, ln, broker.WithName(name), broker.AllowAnonymous(true))
	}()
}

// serialPort is a serialio Listener on a PTY whose slave is reached through
// a symlink, as /dev/serial/by-id/... would be.
type serialPort struct {
	ln     *serialio.Listener
	dev    string   // the symlink the Listener opens
	master *os.File // the sensor's end
}

// addPort opens a PTY, starts a serialio Listener on it (with short reopen
// backoff) served by the broker, and waits until the device is open.
func (sb *serialBroker) addPort(tb testing.TB, name string, cfg serialio.Config) *serialPort {
	tb.Helper()
	dev := filepath.Join(tb.TempDir(), "tty"+name)
	m := ptytest.Link(tb, dev)
	cfg.Name, cfg.Device = name, dev
	if cfg.ReopenMin == 0 {
		cfg.ReopenMin, cfg.ReopenMax = 10*time.Millisecond, 100*time.Millisecond
	}
	ln, err := serialio.Listen(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	// Closed by the broker's cleanup after Shutdown: closing it first would
	// end Serve with an error, as it would in main.
	sb.mu.Lock()
	sb.ports = append(sb.ports, ln)
	sb.mu.Unlock()
	waitPortOpen(tb, ln, 1)
	sb.serve(ln, name)
	return &serialPort{ln: ln, dev: dev, master: m}
}

func waitPortOpen(tb testing.TB, ln *serialio.Listener, opens uint64) {
	tb.Helper()
	testutil.WaitFor(tb, 5*time.Second, func() error {
		if st := ln.Stats(); !st.Open || st.PortOpens < opens {
			return fmt.Errorf("port not open: %+v", st)
		}
		return nil
	})
}

// sensorFrame is one frame the sensor received: an MQTT packet on a
// channel, or a link-control RESET.
type sensorFrame struct {
	ch    byte
	pkt   packet.Packet // nil for RESET
	reset bool          // link-control RESET for channel ch
}

func (f sensorFrame) String() string {
	if f.reset {
		return fmt.Sprintf("RESET %d", f.ch)
	}
	return fmt.Sprintf("ch %d: %#v", f.ch, f.pkt)
}

// sensor simulates an MCU on the master end of a PTY: it sends MQTT packets
// in frames and decodes what edged sends back. Its reader goroutine passes
// frames on in order; a frame that fails to decode is an error.
type sensor struct {
	f       *os.File
	in      chan sensorFrame
	errc    chan error // reader failures
	done    chan struct{}
	wmu     sync.Mutex
	queued  map[byte][]sensorFrame // test side: frames read ahead, by channel
	dropped func(serialio.Frame, error)
	// v5 is set once the sensor connects with MQTT 5.0: its packets are
	// written and read at that version (3.1.1 otherwise).
	v5 atomic.Bool

	mu    sync.Mutex
	stats serialio.DecoderStats
}

func (s *sensor) version() packet.Version {
	if s.v5.Load() {
		return packet.V5
	}
	return packet.V311
}

// newSensor starts the reader on f. onDrop, if not nil, is called (on the
// reader goroutine) for each frame the sensor's decoder drops; without it a
// dropped frame is an error, as the line from edged is clean.
func newSensor(tb testing.TB, f *os.File, onDrop func(serialio.Frame, error)) *sensor {
	s := &sensor{f: f, in: make(chan sensorFrame, 4096), errc: make(chan error, 1), done: make(chan struct{}),
		queued: map[byte][]sensorFrame{}, dropped: onDrop}
	go s.read()
	tb.Cleanup(func() {
		f.Close()
		<-s.done
	})
	return s
}

func (s *sensor) fail(err error) {
	select {
	case s.errc <- err:
	default:
	}
}

func (s *sensor) read() {
	defer close(s.done)
	d := serialio.NewDecoder(1 << 16)
	buf := make([]byte, 4096)
	emit := func(fr serialio.Frame, err error) {
		if err != nil {
			if s.dropped == nil {
				s.fail(fmt.Errorf("sensor dropped a frame from edged: %w", err))
			} else {
				s.dropped(fr, err)
			}
			return
		}
		if fr.Channel == serialio.ControlChannel {
			if len(fr.Body) == 2 && fr.Body[0] == serialio.OpReset {
				s.in <- sensorFrame{ch: fr.Body[1], reset: true}
			} else {
				s.fail(fmt.Errorf("unknown link-control frame % x", fr.Body))
			}
			return
		}
		p, err := packet.Read(bytes.NewReader(bytes.Clone(fr.Body)), 0, s.version())
		if err != nil {
			s.fail(fmt.Errorf("channel %d: bad MQTT packet % x: %w", fr.Channel, fr.Body, err))
			return
		}
		s.in <- sensorFrame{ch: fr.Channel, pkt: p}
	}
	for {
		n, err := s.f.Read(buf)
		if n > 0 {
			d.Feed(buf[:n], emit)
			s.mu.Lock()
			s.stats = d.Stats()
			s.mu.Unlock()
		}
		if ptytest.IsHangup(err) {
			// The slave is not open: the Listener is between opens.
			time.Sleep(2 * time.Millisecond)
			continue
		}
		if err != nil {
			return
		}
	}
}

// decoderStats returns what the sensor's decoder counted.
func (s *sensor) decoderStats() serialio.DecoderStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// write sends raw bytes to the line.
func (s *sensor) write(b []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_, err := s.f.Write(b)
	return err
}

// sendErr sends each packet in its own frame on channel ch.
func (s *sensor) sendErr(ch byte, ps ...packet.Packet) error {
	var b []byte
	for _, p := range ps {
		b = serialio.AppendFrame(b, ch, p.AppendTo(nil, s.version()))
	}
	return s.write(b)
}

func (s *sensor) send(tb testing.TB, ch byte, ps ...packet.Packet) {
	tb.Helper()
	if err := s.sendErr(ch, ps...); err != nil {
		tb.Fatalf("sensor write: %v", err)
	}
}

// next returns the next frame for channel ch (a packet on ch, or RESET for
// ch), keeping frames for other channels for later. Test goroutine only.
func (s *sensor) next(tb testing.TB, ch byte) sensorFrame {
	tb.Helper()
	if q := s.queued[ch]; len(q) > 0 {
		s.queued[ch] = q[1:]
		return q[0]
	}
	timer := time.NewTimer(5 * time.Second)
	defer timer.Stop()
	for {
		select {
		case f := <-s.in:
			if f.ch == ch {
				return f
			}
			s.queued[f.ch] = append(s.queued[f.ch], f)
		case err := <-s.errc:
			tb.Fatal(err)
		case <-timer.C:
			tb.Fatalf("sensor: nothing on channel %d within 5s", ch)
		}
	}
}

// nextPacket returns the next MQTT packet on ch; a RESET fails the test.
func (s *sensor) nextPacket(tb testing.TB, ch byte) packet.Packet {
	tb.Helper()
	f := s.next(tb, ch)
	if f.reset {
		tb.Fatalf("unexpected RESET for channel %d", ch)
	}
	return f.pkt
}

// expectNothing checks that no frame arrives for ch within d.
func (s *sensor) expectNothing(tb testing.TB, ch byte, d time.Duration) {
	tb.Helper()
	if q := s.queued[ch]; len(q) > 0 {
		tb.Fatalf("unexpected %v", q[0])
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case f := <-s.in:
			if f.ch == ch {
				tb.Fatalf("unexpected %v", f)
			}
			s.queued[f.ch] = append(s.queued[f.ch], f)
		case err := <-s.errc:
			tb.Fatal(err)
		case <-timer.C:
			return
		}
	}
}

// connect sends CONNECT on ch and expects an accepted CONNACK; it returns
// the session-present flag.
func (s *sensor) connect(tb testing.TB, ch byte, c *packet.Connect) bool {
	tb.Helper()
	if c.ProtocolLevel == 0 {
		c.ProtocolLevel = 4
	}
	c.ProtocolName = "MQTT"
	s.v5.Store(c.ProtocolLevel == 5)
	s.send(tb, ch, c)
	ca, ok := s.nextPacket(tb, ch).(*packet.Connack)
	if !ok || ca.Reason != packet.Success {
		tb.Fatalf("channel %d: want CONNACK accepted, got %#v", ch, ca)
	}
	return ca.SessionPresent
}

// subscribe subscribes on ch and checks the granted QoS.
func (s *sensor) subscribe(tb testing.TB, ch byte, id uint16, filter string, qos byte) {
	tb.Helper()
	s.send(tb, ch, &packet.Subscribe{PacketID: id, Subscriptions: []packet.Subscription{{Filter: filter, QoS: qos}}})
	sa, ok := s.nextPacket(tb, ch).(*packet.Suback)
	if !ok || sa.PacketID != id || len(sa.Reasons) != 1 || sa.Reasons[0] != packet.Reason(qos) {
		tb.Fatalf("channel %d: want SUBACK %d granting %d, got %#v", ch, id, qos, sa)
	}
}

// observer is a TCP client that subscribes and acknowledges everything; the
// PUBLISH packets it receives arrive on msgs.
type observer struct {
	c    *tclient
	msgs chan *packet.Publish
	acks chan packet.Packet // SUBACK, PUBACK, PUBREC, PUBCOMP
}

func dialObserver(tb testing.TB, addr, id string, clean bool) *observer {
	tb.Helper()
	o := &observer{msgs: make(chan *packet.Publish, 4096), acks: make(chan packet.Packet, 64)}
	c, _, err := dialMQTT(addr, id, clean, func(c *tclient, pk packet.Packet) {
		switch p := pk.(type) {
		case *packet.Publish:
			switch p.QoS {
			case 1:
				c.send(&packet.Puback{PacketID: p.PacketID})
			case 2:
				c.send(&packet.Pubrec{PacketID: p.PacketID})
			}
			o.msgs <- p
		case *packet.Pubrel:
			c.send(&packet.Pubcomp{PacketID: p.PacketID})
		case *packet.Pubrec:
			c.send(&packet.Pubrel{PacketID: p.PacketID})
			o.acks <- p
		default:
			o.acks <- p
		}
	})
	if err != nil {
		tb.Fatal(err)
	}
	o.c = c
	tb.Cleanup(c.close)
	return o
}

// subscribe subscribes and waits for the SUBACK.
func (o *observer) subscribe(tb testing.TB, filter string, qos byte) {
	tb.Helper()
	if err := o.c.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: filter, QoS: qos}}}); err != nil {
		tb.Fatal(err)
	}
	if _, ok := o.ack(tb).(*packet.Suback); !ok {
		tb.Fatal("want SUBACK")
	}
}

func (o *observer) ack(tb testing.TB) packet.Packet {
	tb.Helper()
	select {
	case p := <-o.acks:
		return p
	case <-time.After(5 * time.Second):
		tb.Fatal("observer: no acknowledgement within 5s")
		return nil
	}
}

// publish publishes and waits for the PUBACK or PUBCOMP.
func (o *observer) publish(tb testing.TB, p *packet.Publish) {
	tb.Helper()
	if err := o.c.send(p); err != nil {
		tb.Fatal(err)
	}
	switch p.QoS {
	case 1:
		if _, ok := o.ack(tb).(*packet.Puback); !ok {
			tb.Fatal("want PUBACK")
		}
	case 2:
		if _, ok := o.ack(tb).(*packet.Pubrec); !ok {
			tb.Fatal("want PUBREC")
		}
		if _, ok := o.ack(tb).(*packet.Pubcomp); !ok {
			tb.Fatal("want PUBCOMP")
		}
	}
}

// expect waits up to timeout for the next message and checks its topic and
// payload.
func (o *observer) expect(tb testing.TB, timeout time.Duration, topic, payload string) *packet.Publish {
	tb.Helper()
	select {
	case p := <-o.msgs:
		if p.Topic != topic || string(p.Payload) != payload {
			tb.Fatalf("observer: got %q %q, want %q %q", p.Topic, p.Payload, topic, payload)
		}
		return p
	case <-time.After(timeout):
		tb.Fatalf("observer: no message %q %q within %s", topic, payload, timeout)
		return nil
	}
}

// expectNone checks that no message arrives within d.
func (o *observer) expectNone(tb testing.TB, d time.Duration) {
	tb.Helper()
	select {
	case p := <-o.msgs:
		tb.Fatalf("observer: unexpected message %q %q", p.Topic, p.Payload)
	case <-time.After(d):
	}
}
