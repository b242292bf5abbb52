package broker_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edged/edged/broker"
	"github.com/edged/edged/broker/packet"
	"github.com/edged/edged/persist"
)

// TestOfflineQueueStaysOnDisk queues 20,000 QoS 1 messages over TCP to an
// offline persistent session with a bbolt store, restarts the broker, and
// has the subscriber drain them while 2,000 more arrive: it gets all of
// them, in order, exactly once, and the session never holds more than
// SessionWindow queued messages in memory (before the restart, after it,
// while draining).
func TestOfflineQueueStaysOnDisk(t *testing.T) {
	const queued, live = 20000, 2000
	path := filepath.Join(t.TempDir(), "edged.db")
	open := func() *persist.DB {
		db, err := persist.Open(persist.Options{Path: path})
		if err != nil {
			t.Fatal(err)
		}
		return db
	}
	limits := broker.Limits{MaxQueuedMessages: queued + live, MaxQueuedBytes: 64 << 20}
	db := open()
	s, addr := startBroker(t, broker.Config{Store: db, Limits: limits})
	sub := dialConnect(t, addr, "sub", false)
	sub.sub("q/#", 1)
	sub.disconnect()

	// maxPending watches the session's window from the side.
	var maxPending atomic.Int64
	watch := func(s *broker.Server) (stop func()) {
		done := make(chan struct{})
		finished := make(chan struct{})
		go func() {
			defer close(finished)
			for {
				if p, _, ok := s.SessionQueue("sub"); ok && int64(p) > maxPending.Load() {
					maxPending.Store(int64(p))
				}
				select {
				case <-done:
					return
				case <-time.After(time.Millisecond):
				}
			}
		}()
		var once sync.Once
		return func() { once.Do(func() { close(done); <-finished }) }
	}
	stop := watch(s)
	publish(t, addr, "pub1", 0, queued)
	stop()
	if p, sp, _ := s.SessionQueue("sub"); p+sp != queued || p > broker.SessionWindow {
		t.Fatalf("before the restart: %d in memory, %d on disk only; want %d in all, at most %d in memory", p, sp, queued, broker.SessionWindow)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = open()
	t.Cleanup(func() { db.Close() })
	s, addr = startBroker(t, broker.Config{Store: db, Limits: limits})
	if p, sp, _ := s.SessionQueue("sub"); p != 0 || sp != queued {
		t.Fatalf("after the restart: %d in memory, %d on disk only; want 0, %d", p, sp, queued)
	}
	stop = watch(s)
	defer stop()

	sub = reconnect(t, addr, "sub", true)
	// More messages arrive while the backlog drains: they queue behind it,
	// on disk, and some are read back before their commit is done.
	pubErr := make(chan error, 1)
	go func() { pubErr <- publishErr(addr, "pub2", queued, live) }()
	for i := range queued + live {
		p := sub.nextPublish()
		if want := strconv.Itoa(i); string(p.Payload) != want || p.Dup {
			t.Fatalf("message %d: got %s, want payload %s", i, describe(p), want)
		}
		sub.send(&packet.Puback{PacketID: p.PacketID})
	}
	if err := <-pubErr; err != nil {
		t.Fatal(err)
	}
	sub.expectNothing(100 * time.Millisecond)
	stop()
	if m := maxPending.Load(); m > broker.SessionWindow || m == 0 {
		t.Errorf("the session held up to %d queued messages in memory; window %d", m, broker.SessionWindow)
	}
	if p, sp, _ := s.SessionQueue("sub"); p != 0 || sp != 0 {
		t.Errorf("after draining: %d in memory, %d on disk", p, sp)
	}
	t.Logf("%d queued + %d live delivered in order; at most %d in memory", queued, live, maxPending.Load())
}

// publish sends QoS 1 messages with payloads from..from+n-1 on topic q/t,
// pipelined, and waits for every PUBACK.
func publish(t *testing.T, addr, id string, from, n int) {
	t.Helper()
	if err := publishErr(addr, id, from, n); err != nil {
		t.Fatal(err)
	}
}

func publishErr(addr, id string, from, n int) error {
	p, err := dialPublisher(addr, id)
	if err != nil {
		return err
	}
	defer p.nc.Close()
	errc := make(chan error, 1)
	go func() {
		for range n {
			pk, err := p.read()
			if err != nil {
				errc <- err
				return
			}
			if _, ok := pk.(*packet.Puback); !ok {
				errc <- fmt.Errorf("publisher got %s", describe(pk))
				return
			}
		}
		errc <- nil
	}()
	var b []byte
	for i := range n {
		b = (&packet.Publish{Topic: "q/t", Payload: []byte(strconv.Itoa(from + i)), QoS: 1, PacketID: uint16(i%65535 + 1)}).AppendTo(b, packet.V311)
		if len(b) > 32<<10 || i == n-1 {
			if _, err := p.nc.Write(b); err != nil {
				return err
			}
			b = b[:0]
		}
	}
	return <-errc
}

// Messages spilled to disk whose commit is still pending when the window
// drains are not read yet: the session waits for that commit and then
// delivers them in order, never skipping one.
func TestSpilledMessagesWaitForTheirCommit(t *testing.T) {
	store := &gatedStore{Memory: persist.NewMemory()}
	t.Cleanup(func() { store.Close() })
	s, addr := startBroker(t, broker.Config{Store: store, Limits: broker.Limits{MaxInflight: 2}})
	sub := dialConnect(t, addr, "sub", false)
	sub.sub("q/#", 1)
	committed := 2 + broker.SessionWindow + 10 // in flight, in memory, on disk
	publish(t, addr, "pub1", 0, committed)
	if p, sp, _ := s.SessionQueue("sub"); p != broker.SessionWindow || sp != 10 {
		t.Fatalf("%d in memory, %d on disk only; want %d, 10", p, sp, broker.SessionWindow)
	}

	store.setClosed(true) // the disk stalls: 5 more are spilled, not committed
	pub, err := dialPublisher(addr, "pub2")
	if err != nil {
		t.Fatal(err)
	}
	defer pub.nc.Close()
	for i := range 5 {
		if err := pub.write(&packet.Publish{Topic: "q/t", Payload: []byte(strconv.Itoa(committed + i)), QoS: 1, PacketID: uint16(i + 1)}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, func() error {
		if _, sp, _ := s.SessionQueue("sub"); sp != 15 {
			return fmt.Errorf("%d spilled", sp)
		}
		return nil
	})
	for i := range committed {
		p := sub.nextPublish()
		if string(p.Payload) != strconv.Itoa(i) {
			t.Fatalf("message %d: got %s", i, describe(p))
		}
		sub.send(&packet.Puback{PacketID: p.PacketID})
	}
	sub.expectNothing(200 * time.Millisecond)
	store.setClosed(false)
	for i := committed; i < committed+5; i++ {
		p := sub.nextPublish()
		if string(p.Payload) != strconv.Itoa(i) {
			t.Fatalf("message %d: got %s", i, describe(p))
		}
		sub.send(&packet.Puback{PacketID: p.PacketID})
	}
	sub.expectNothing(100 * time.Millisecond)
}

// Retained messages for a new subscription wait behind messages on disk
// (the retained cursor sends only into an open window with nothing queued),
// take no room in the queue, and arrive after them with their retain flag.
func TestRetainedBehindSpilledQueue(t *testing.T) {
	store := persist.NewMemory()
	t.Cleanup(func() { store.Close() })
	s, addr := startBroker(t, broker.Config{Store: store, Limits: broker.Limits{MaxInflight: 2}})
	pub := dialConnect(t, addr, "pub", true)
	for i := range 3 {
		pub.pub(fmt.Sprintf("r/%d", i), "kept", 1, true, uint16(i+1))
	}
	sub := dialConnect(t, addr, "sub", false)
	sub.sub("q/#", 1)
	n := 2 + broker.SessionWindow + 5
	publish(t, addr, "pub1", 0, n)
	sub.send(&packet.Subscribe{PacketID: 9, Subscriptions: []packet.Subscription{{Filter: "r/#", QoS: 1}}})
	// The two in flight come first, then SUBACK.
	for i := range 2 {
		if p := sub.nextPublish(); string(p.Payload) != strconv.Itoa(i) {
			t.Fatalf("got %s", describe(p))
		}
	}
	sub.expect(&packet.Suback{PacketID: 9, Reasons: []packet.Reason{1}})
	if p, sp, _ := s.SessionQueue("sub"); p != broker.SessionWindow || sp != 5 {
		t.Fatalf("%d in memory, %d on disk only; want %d, 5", p, sp, broker.SessionWindow)
	}
	sub.send(&packet.Puback{PacketID: 1}, &packet.Puback{PacketID: 2})
	for i := 2; i < n; i++ {
		p := sub.nextPublish()
		if string(p.Payload) != strconv.Itoa(i) || p.Retain {
			t.Fatalf("message %d: got %s", i, describe(p))
		}
		sub.send(&packet.Puback{PacketID: p.PacketID})
	}
	got := map[string]bool{}
	for range 3 {
		p := sub.nextPublish()
		if !p.Retain || string(p.Payload) != "kept" || got[p.Topic] {
			t.Fatalf("retained: got %s", describe(p))
		}
		got[p.Topic] = true
		sub.send(&packet.Puback{PacketID: p.PacketID})
	}
	sub.expectNothing(100 * time.Millisecond)
}
