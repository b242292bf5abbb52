package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/edged/edged/broker/packet"
	"github.com/edged/edged/internal/ptytest"
	"github.com/edged/edged/internal/testutil"
	"github.com/edged/edged/serialio"
)

// corrupter spoils exactly one frame in every `every` that it relays, the
// way a bad line does: a flipped bit, a dropped byte or a burst of garbage
// inside the frame. It works frame by frame on the clean stream, never
// touches a 0x00 delimiter, and checks that each spoilt frame is invalid, so
// that every frame it spoils is exactly one frame the receiver drops.
type corrupter struct {
	every int
	rng   *rand.Rand

	mu                    sync.Mutex
	frames, corrupted     int
	flips, drops, garbage int
	channels              map[int]int // spoilt frames by claimed channel
}

func newCorrupter(every int, seed uint64) *corrupter {
	return &corrupter{every: every, rng: rand.New(rand.NewPCG(seed, 0x5e71a1)), channels: map[int]int{}}
}

func validWireFrame(enc []byte) bool {
	dec, err := serialio.DecodeCOBS(nil, enc)
	if err != nil {
		return false
	}
	_, err = serialio.ParseFrame(dec)
	return err == nil
}

// mutate returns a spoilt copy of enc (a COBS-encoded frame, no delimiters).
func (c *corrupter) mutate(enc []byte) []byte {
	out, kind := testutil.SpoilFrame(c.rng, enc, 16, validWireFrame)
	switch kind {
	case testutil.FlippedBit:
		c.flips++
	case testutil.DroppedByte:
		c.drops++
	case testutil.GarbageBurst:
		c.garbage++
	}
	return out
}

// frame returns what goes on the line for one encoded frame.
func (c *corrupter) frame(enc []byte) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.frames++
	if c.frames%c.every == 0 {
		if dec, err := serialio.DecodeCOBS(nil, enc); err == nil && len(dec) > 0 {
			c.channels[int(dec[0])]++
		}
		enc = c.mutate(enc)
		c.corrupted++
	}
	return append(append([]byte{0}, enc...), 0)
}

func (c *corrupter) counts() (frames, corrupted int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.frames, c.corrupted
}

func (c *corrupter) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Sprintf("%d frames, %d corrupted (%d bit flips, %d dropped bytes, %d garbage bursts; by channel %v)",
		c.frames, c.corrupted, c.flips, c.drops, c.garbage, c.channels)
}

// noisyMsg is one message the sensor must get through.
type noisyMsg struct {
	pub   *packet.Publish
	state int // 0 unsent, 1 awaiting PUBACK/PUBREC, 2 awaiting PUBCOMP, 3 done
	sent  time.Time
}

// sensorResult reports what the lossy sensor did.
type sensorResult struct {
	connects, resets, timeouts, resends int
}

// runLossySensor publishes msgs on channel 0 with the rule of serialio/WIRE.md
// §3: when an acknowledgement does not arrive within ackTimeout, or a
// RESET arrives, CONNECT again (clean session 0, same client id) and resend
// the unacknowledged PUBLISH packets with DUP set (and PUBREL for QoS 2
// messages already PUBRECed). It runs on its own goroutine and returns an
// error instead of failing the test.
func runLossySensor(ctx context.Context, s *sensor, id string, msgs []*noisyMsg, window int, ackTimeout time.Duration) (sensorResult, error) {
	var res sensorResult
	byID := map[uint16]*noisyMsg{}
	for _, m := range msgs {
		byID[m.pub.PacketID] = m
	}
	connected, connectSent := false, time.Time{}
	next, done := 0, 0
	send := func(ps ...packet.Packet) error { return s.sendErr(0, ps...) }
	connect := func() error {
		connected, connectSent = false, time.Now()
		res.connects++
		return send(&packet.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: id, KeepAlive: 60})
	}
	if err := connect(); err != nil {
		return res, err
	}
	tick := time.NewTicker(ackTimeout / 4)
	defer tick.Stop()
	for done < len(msgs) {
		if connected {
			// Fill the window.
			inflight := 0
			for _, m := range msgs[:next] {
				if m.state == 1 || m.state == 2 {
					inflight++
				}
			}
			for ; inflight < window && next < len(msgs); next++ {
				m := msgs[next]
				m.state, m.sent = 1, time.Now()
				if err := send(m.pub); err != nil {
					return res, err
				}
				inflight++
			}
		}
		select {
		case <-ctx.Done():
			return res, fmt.Errorf("sensor: %d of %d messages done, %d sent; %+v: %w", done, len(msgs), next, res, ctx.Err())
		case err := <-s.errc:
			return res, err
		case f := <-s.in:
			if f.ch != 0 {
				return res, fmt.Errorf("frame for channel %d", f.ch)
			}
			if f.reset {
				res.resets++
				if err := connect(); err != nil {
					return res, err
				}
				continue
			}
			switch p := f.pkt.(type) {
			case *packet.Connack:
				if p.Reason != packet.Success {
					return res, fmt.Errorf("CONNACK %v", p.Reason)
				}
				if connected {
					continue // a late CONNACK from a replaced connection
				}
				if res.connects > 1 && !p.SessionPresent {
					return res, fmt.Errorf("session not present after reconnect %d", res.connects)
				}
				connected = true
				// Resend everything unacknowledged.
				for _, m := range msgs[:next] {
					switch m.state {
					case 1:
						m.pub.Dup, m.sent = true, time.Now()
						res.resends++
						if err := send(m.pub); err != nil {
							return res, err
						}
					case 2:
						m.sent = time.Now()
						if err := send(&packet.Pubrel{PacketID: m.pub.PacketID}); err != nil {
							return res, err
						}
					}
				}
			case *packet.Puback:
				if m := byID[p.PacketID]; m != nil && m.state == 1 && m.pub.QoS == 1 {
					m.state = 3
					done++
				}
			case *packet.Pubrec:
				m := byID[p.PacketID]
				if m == nil || m.pub.QoS != 2 {
					return res, fmt.Errorf("PUBREC for unknown packet %d", p.PacketID)
				}
				if m.state == 1 {
					m.state, m.sent = 2, time.Now()
				}
				if m.state == 2 {
					if err := send(&packet.Pubrel{PacketID: p.PacketID}); err != nil {
						return res, err
					}
				}
			case *packet.Pubcomp:
				if m := byID[p.PacketID]; m != nil && m.state == 2 {
					m.state = 3
					done++
				}
			default:
				return res, fmt.Errorf("unexpected %#v", p)
			}
		case <-tick.C:
			stale := !connected && time.Since(connectSent) > ackTimeout
			for _, m := range msgs[:next] {
				if connected && (m.state == 1 || m.state == 2) && time.Since(m.sent) > ackTimeout {
					stale = true
					break
				}
			}
			if stale {
				res.timeouts++
				if err := connect(); err != nil {
					return res, err
				}
			}
		}
	}
	return res, send(&packet.Disconnect{})
}

// TestSerialNoise runs a lossy sensor against the real broker through a
// relay that corrupts exactly one frame in 100 in each direction. The
// sensor recovers by the serialio/WIRE.md rule alone; a persistent QoS 2 TCP
// subscriber gets every QoS 1 message at least once and every QoS 2 message
// exactly once; the port's counters (and $SYS/broker/serial/...) account
// for every frame the relay spoilt towards edged, the sensor's decoder for
// every frame spoilt towards the sensor; nothing leaks after shutdown.
func TestSerialNoise(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() { // runs last
		testutil.WaitFor(t, 10*time.Second, func() error {
			if n := runtime.NumGoroutine(); n > before {
				buf := make([]byte, 1<<16)
				return fmt.Errorf("%d goroutines, %d before the test:\n%s", n, before, buf[:runtime.Stack(buf, true)])
			}
			return nil
		})
	})
	const (
		nQoS1, nQoS2 = 500, 200
		every        = 100
		seed         = 4
	)
	sb := startSerialBroker(t)

	// sensor ── PTY A ── corrupting relay ── PTY B ── Listener ── broker.
	mA, slaveA := ptytest.Open(t)
	port := sb.addPort(t, "noisy", serialio.Config{ReopenMin: 10 * time.Millisecond})
	ln, mB := port.ln, port.master

	sA := ptytest.OpenSlave(t, slaveA)
	toEdged, toSensor := newCorrupter(every, seed), newCorrupter(every, seed+1)
	relayErr := make(chan error, 2)
	var relays sync.WaitGroup
	relays.Add(2)
	go func() { defer relays.Done(); relayErr <- ptytest.CopyFrames(mB, sA, toEdged.frame) }()
	go func() { defer relays.Done(); relayErr <- ptytest.CopyFrames(sA, mB, toSensor.frame) }()
	t.Cleanup(func() {
		sA.Close()
		mB.Close()
		relays.Wait()
	})
	s := newSensor(t, mA, func(serialio.Frame, error) {}) // counted by its decoder

	// $SYS/broker/serial/noisy/... as main publishes it.
	sysCtx, sysStop := context.WithCancel(context.Background())
	var sysDone sync.WaitGroup
	sysDone.Add(1)
	go func() {
		defer sysDone.Done()
		publishSerialStats(sysCtx, sb.b, &Config{SysInterval: 50 * time.Millisecond, Serial: []SerialConfig{{Config: serialio.Config{Name: "noisy"}}}},
			[]*serialio.Listener{ln})
	}()
	t.Cleanup(func() { sysStop(); sysDone.Wait() })

	sub := dialObserver(t, sb.addr, "noise-sub", false)
	sub.subscribe(t, "noise/#", 2)

	var msgs []*noisyMsg
	for i := range nQoS1 + nQoS2 {
		qos, payload := byte(1), fmt.Sprintf("q1/%d", i)
		if i%7 == 1 || i%7 == 4 { // 200 of 700

			qos, payload = 2, fmt.Sprintf("q2/%d", i)
		}
		msgs = append(msgs, &noisyMsg{pub: &packet.Publish{QoS: qos, PacketID: uint16(i + 1),
			Topic: "noise/" + strconv.Itoa(i%5), Payload: []byte(payload + " " + string(bytes.Repeat([]byte{0}, i%9)))}})
	}
	want := map[string]byte{}
	for _, m := range msgs {
		want[string(m.pub.Payload)] = m.pub.QoS
	}
	if n := len(want); n != nQoS1+nQoS2 {
		t.Fatalf("%d distinct payloads", n)
	}
	if q2 := countQoS(want, 2); q2 != nQoS2 {
		t.Fatalf("%d QoS 2 messages, want %d", q2, nQoS2)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	type result struct {
		res sensorResult
		err error
	}
	sensorDone := make(chan result, 1)
	go func() {
		res, err := runLossySensor(ctx, s, "noisy-sensor", msgs, 16, 300*time.Millisecond)
		sensorDone <- result{res, err}
	}()

	got := map[string]int{}
	var sres sensorResult
	finished := false
	for !finished || len(got) < len(want) {
		select {
		case r := <-sensorDone:
			if r.err != nil {
				t.Fatal(r.err)
			}
			sres, finished = r.res, true
		case p := <-sub.msgs:
			q, ok := want[string(p.Payload)]
			if !ok {
				t.Fatalf("unexpected message %q %q", p.Topic, p.Payload)
			}
			got[string(p.Payload)]++
			if q == 2 && got[string(p.Payload)] > 1 {
				t.Fatalf("QoS 2 message %q delivered twice", p.Payload)
			}
		case err := <-relayErr:
			t.Fatalf("relay stopped: %v", err)
		case <-ctx.Done():
			t.Fatalf("subscriber got %d of %d distinct messages; sensor finished: %v", len(got), len(want), finished)
		}
	}
	// Late duplicates of QoS 2 messages would show up now.
	quiet := time.After(300 * time.Millisecond)
	for wait := true; wait; {
		select {
		case p := <-sub.msgs:
			got[string(p.Payload)]++
			if want[string(p.Payload)] == 2 && got[string(p.Payload)] > 1 {
				t.Fatalf("QoS 2 message %q delivered twice", p.Payload)
			}
		case <-quiet:
			wait = false
		}
	}
	dups := 0
	for _, n := range got {
		dups += n - 1
	}

	// Every spoilt frame is accounted for: towards edged by the port's
	// counters, towards the sensor by its decoder.
	var st serialio.Stats
	testutil.WaitFor(t, 5*time.Second, func() error {
		st = ln.Stats()
		ds := s.decoderStats()
		fE, cE := toEdged.counts()
		fS, cS := toSensor.counts()
		if int(st.FramesIn) != fE-cE || int(st.Dropped()) != cE {
			return fmt.Errorf("towards edged: relay %d frames, %d corrupted; port stats %+v", fE, cE, st)
		}
		if int(ds.Frames) != fS-cS || int(ds.Dropped()) != cS {
			return fmt.Errorf("towards sensor: relay %d frames, %d corrupted; decoder %+v", fS, cS, ds)
		}
		if int(st.FramesOut) != fS {
			return fmt.Errorf("edged sent %d frames, relay saw %d", st.FramesOut, fS)
		}
		return nil
	})
	_, cE := toEdged.counts()
	_, cS := toSensor.counts()
	if cE < 5 || cS < 5 {
		t.Fatalf("too little noise: %d and %d frames corrupted", cE, cS)
	}
	// The same counter on $SYS.
	sys := dialObserver(t, sb.addr, "sys", true)
	sys.subscribe(t, "$SYS/broker/serial/noisy/frames/dropped", 0)
	testutil.WaitFor(t, 5*time.Second, func() error {
		select {
		case p := <-sys.msgs:
			if string(p.Payload) != strconv.Itoa(cE) {
				return fmt.Errorf("$SYS frames/dropped %s, want %d", p.Payload, cE)
			}
			return nil
		default:
			return fmt.Errorf("no $SYS frames/dropped yet")
		}
	})
	t.Logf("towards edged: %v; port stats %+v", toEdged, st)
	t.Logf("towards sensor: %v; sensor decoder %+v", toSensor, s.decoderStats())
	t.Logf("sensor: %+v; subscriber: %d messages, %d QoS 1 duplicates", sres, len(got), dups)
	if sres.connects < 2 || sres.resends == 0 {
		t.Fatalf("the noise never made the sensor reconnect: %+v", sres)
	}
}

func countQoS(m map[string]byte, q byte) int {
	n := 0
	for _, v := range m {
		if v == q {
			n++
		}
	}
	return n
}
