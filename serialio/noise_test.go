package serialio_test

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/edged/edged/internal/ptytest"
	"github.com/edged/edged/internal/testutil"
	"github.com/edged/edged/serialio"
)

// noise corrupts a frame stream the way a bad line does. It works frame by
// frame on the clean stream, so it knows exactly how many frames it spoilt:
// it never touches a 0x00 delimiter, and every frame it spoils or injects
// is checked to be invalid.
type noise struct {
	mu                           sync.Mutex // guards the counts
	rng                          *rand.Rand
	pCorrupt, pGarbage           float64
	corrupted, garbage, passed   int
	flips, drops, inserts, empty int
}

func validFrame(enc []byte) bool {
	dec, err := serialio.DecodeCOBS(nil, enc)
	if err != nil {
		return false
	}
	_, err = serialio.ParseFrame(dec)
	return err == nil
}

func (n *noise) nonZero() byte { return byte(1 + n.rng.IntN(255)) }

// mutate spoils enc (a COBS-encoded frame without delimiters).
func (n *noise) mutate(enc []byte) []byte {
	out, kind := testutil.SpoilFrame(n.rng, enc, 8, validFrame)
	switch kind {
	case testutil.FlippedBit:
		n.flips++
	case testutil.DroppedByte:
		n.drops++
	case testutil.GarbageBurst:
		n.inserts++
	}
	return out
}

// counts returns the frames passed and spoilt, and the garbage injected.
func (n *noise) counts() (passed, corrupted, garbage int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.passed, n.corrupted, n.garbage
}

// frame returns what to send on the line for one encoded frame.
func (n *noise) frame(enc []byte) []byte {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []byte
	if n.rng.Float64() < n.pGarbage {
		for {
			g := make([]byte, 1+n.rng.IntN(40))
			for i := range g {
				g[i] = n.nonZero()
			}
			if !validFrame(g) {
				out = append(append(append(out, 0), g...), 0)
				n.garbage++
				break
			}
		}
	}
	if n.rng.Float64() < n.pGarbage {
		out = append(out, 0, 0, 0) // empty frames: ignored
		n.empty++
	}
	if n.rng.Float64() < n.pCorrupt {
		enc = n.mutate(enc)
		n.corrupted++
	} else {
		n.passed++
	}
	return append(append(append(out, 0), enc...), 0)
}

func TestNoiseRelay(t *testing.T) {
	checkNoLeak(t)
	const (
		channels  = 3
		perChan   = 300
		pCorrupt  = 0.2
		pGarbage  = 0.05
		noiseSeed = 1
	)
	// Sensor ── PTY A ── noisy relay ── PTY B ── Listener.
	mA, slaveA := openPTY(t)
	mB, slaveB := openPTY(t)
	dev := filepath.Join(t.TempDir(), "ttyNOISE")
	if err := os.Symlink(slaveB, dev); err != nil {
		t.Fatal(err)
	}
	l, err := serialio.Listen(serialio.Config{Name: "noisy", Device: dev, MaxFrame: 512})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	waitOpen(t, l, 1)

	sA := ptytest.OpenSlave(t, slaveA)
	n := &noise{rng: rand.New(rand.NewPCG(noiseSeed, 2)), pCorrupt: pCorrupt, pGarbage: pGarbage}
	var relays sync.WaitGroup
	relays.Add(2)
	go func() { defer relays.Done(); ptytest.CopyFrames(mB, sA, n.frame) }()
	go func() { // edged to sensor: clean (RESET frames)
		defer relays.Done()
		buf := make([]byte, 4096)
		for {
			k, err := mB.Read(buf)
			if k > 0 {
				sA.Write(buf[:k])
			}
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mB.Close()
		sA.Close()
		relays.Wait()
	})
	s := newSensor(t, mA, false)

	// The broker side: read every conn, collect packets.
	type got struct {
		ch  int
		pkt []byte
	}
	pkts := make(chan got, channels*perChan)
	var readers sync.WaitGroup
	var connsMu sync.Mutex
	var conns []net.Conn
	readers.Add(1)
	go func() {
		defer readers.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			connsMu.Lock()
			conns = append(conns, c)
			connsMu.Unlock()
			readers.Add(1)
			go func() {
				defer readers.Done()
				ch := c.RemoteAddr().(serialio.Addr).Channel
				for {
					p, err := readPacket(c)
					if err != nil {
						return
					}
					pkts <- got{ch, p}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		connsMu.Lock()
		for _, c := range conns {
			c.Close()
		}
		connsMu.Unlock()
		readers.Wait()
	})

	// The sensor sends numbered PUBLISH packets round-robin on the channels.
	rng := rand.New(rand.NewPCG(7, 8))
	want := map[string]int{}
	var stream []byte
	for i := range channels * perChan {
		payload := make([]byte, 8+rng.IntN(300))
		for j := range payload {
			payload[j] = byte(rng.IntN(4)) // plenty of zeros to stuff
		}
		binary.BigEndian.PutUint64(payload, uint64(i))
		p := publish(fmt.Sprintf("seq/%d", i), payload)
		ch := i % channels
		want[string(p)] = ch
		stream = serialio.AppendFrame(stream, byte(ch), p)
	}
	for len(stream) > 0 {
		k := min(len(stream), 1000)
		if _, err := s.f.Write(stream[:k]); err != nil {
			t.Fatal(err)
		}
		stream = stream[k:]
	}

	// Wait until every frame sent is accounted for.
	total := channels * perChan
	seen := map[string]bool{}
	deadline := time.After(20 * time.Second)
	for {
		st := l.Stats()
		passed, corrupted, garbage := n.counts()
		if passed+corrupted == total && int(st.FramesIn) == passed && int(st.Dropped()) == corrupted+garbage && len(seen) == passed {
			break
		}
		select {
		case g := <-pkts:
			ch, ok := want[string(g.pkt)]
			if !ok {
				t.Fatalf("corrupted packet delivered on channel %d: % x", g.ch, g.pkt)
			}
			if ch != g.ch {
				t.Fatalf("packet for channel %d delivered on %d", ch, g.ch)
			}
			if seen[string(g.pkt)] {
				t.Fatalf("packet delivered twice: % x", g.pkt[:12])
			}
			seen[string(g.pkt)] = true
		case <-deadline:
			t.Fatalf("not all frames accounted for: relay passed %d corrupted %d garbage %d; delivered %d; stats %+v",
				passed, corrupted, garbage, len(seen), st)
		case <-time.After(10 * time.Millisecond):
		}
	}
	st := l.Stats()
	n.mu.Lock()
	defer n.mu.Unlock()
	// Every RESET edged sent reached the sensor (the return path is clean).
	resets := 0
	for resets < int(st.ResetsSent) {
		if f := s.next(t, true); f.Channel == serialio.ControlChannel && f.Body[0] == serialio.OpReset {
			resets++
		}
	}
	t.Logf("relay: %d passed, %d corrupted (%d flips, %d drops, %d bursts), %d garbage frames, %d empty runs; stats %+v",
		n.passed, n.corrupted, n.flips, n.drops, n.inserts, n.garbage, n.empty, st)
	if n.corrupted == 0 || n.garbage == 0 || st.ResetsSent == 0 {
		t.Fatal("the noise did nothing")
	}
	if st.ConnsOpened < channels {
		t.Fatalf("only %d conns opened", st.ConnsOpened)
	}
}
