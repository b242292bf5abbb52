package broker_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/edged/edged/broker"
	"github.com/edged/edged/broker/packet"
	"github.com/edged/edged/persist"
)

// TestSubscribeWritesOnlyWhatChanged sends one-filter SUBSCRIBEs, each
// waiting for its SUBACK (one commit each), on a persistent session with a
// bbolt store, and measures the bytes the store writes per SUBSCRIBE early
// and late. A SUBSCRIBE that rewrote the session's whole list wrote ~2.7
// times more per SUBSCRIBE at the end of 2,000 than after the first few
// hundred (1.2 GB for 10,000); each now writes one record, the same pages
// every time. EDGED_TEST_SUBSCRIBES=10000 measures 10,000.
func TestSubscribeWritesOnlyWhatChanged(t *testing.T) {
	db, err := persist.Open(persist.Options{Path: filepath.Join(t.TempDir(), "edged.db"), Sync: persist.SyncOff})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	_, addr := startBroker(t, broker.Config{Store: db, Limits: broker.Limits{MaxSubscriptions: -1}})
	c := dialConnect(t, addr, "many", false)
	n := 2000
	if v, err := strconv.Atoi(os.Getenv("EDGED_TEST_SUBSCRIBES")); err == nil && v > 1000 {
		n = v
	}
	// Bytes written over SUBSCRIBEs [200, 500) and over the last 300.
	var at [4]int64
	marks := [4]int{200, 500, n - 300, n}
	start, begin := db.Stats().Written, time.Now()
	for i := range n + 1 {
		for k, m := range marks {
			if i == m {
				at[k] = db.Stats().Written
			}
		}
		if i == n {
			break
		}
		pid := uint16(i%65535 + 1)
		c.send(&packet.Subscribe{PacketID: pid, Subscriptions: []packet.Subscription{{Filter: fmt.Sprintf("sensors/%d/temp", i), QoS: 1}}})
		c.expect(&packet.Suback{PacketID: pid, Reasons: []packet.Reason{1}})
	}
	elapsed := time.Since(begin)
	total := db.Stats().Written - start
	early, late := float64(at[1]-at[0])/300, float64(at[3]-at[2])/300
	t.Logf("%d SUBSCRIBEs: %d bytes written, %.0f per SUBSCRIBE; %.0f each after 200, %.0f each at the end; store file %d bytes; %v",
		n, total, float64(total)/float64(n), early, late, db.Stats().FileSize, elapsed.Round(time.Millisecond))
	if late > 1.5*early {
		t.Errorf("a SUBSCRIBE writes %.0f bytes after %d subscriptions, %.0f after 200: the cost grows with the subscriptions held", late, n-300, early)
	}

	// One UNSUBSCRIBE deletes one record, and the rest survive a restart.
	c.send(&packet.Unsubscribe{PacketID: 1, Filters: []string{"sensors/0/temp"}})
	c.expect(&packet.Unsuback{PacketID: 1})
	c.disconnect()
	snap, err := db.Load()
	if err != nil {
		t.Fatal(err)
	}
	if got := len(snap.Sessions[0].Subs); got != n-1 {
		t.Errorf("%d subscriptions stored, want %d", got, n-1)
	}
}

// A subscription flood from one client is cut at max_subscriptions (new
// filters get 0x80, a filter it already has may change QoS) while a normal
// client keeps being served, and the limit holds across a restart.
func TestSubscriptionFloodCutAtMax(t *testing.T) {
	path := filepath.Join(t.TempDir(), "edged.db")
	db, err := persist.Open(persist.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	const max = 500
	s, addr := startBroker(t, broker.Config{Store: db, Limits: broker.Limits{MaxSubscriptions: max}})

	normal := dialConnect(t, addr, "normal", true)
	normal.sub("normal/#", 1)
	pub := dialConnect(t, addr, "pub", true)

	flood := dialConnect(t, addr, "flood", false)
	// 20,000 one-filter SUBSCRIBEs, up to 512 of them unanswered at a time
	// (a flooder that does not read its SUBACKs at all is closed as a slow
	// consumer instead).
	const n = 20000
	type result struct{ granted, refused int }
	done := make(chan result, 1)
	errc := make(chan error, 2)
	window := make(chan struct{}, 512)
	go func() {
		var r result
		for range n {
			p, err := flood.read(20 * time.Second)
			if err != nil {
				errc <- err
				return
			}
			sa, ok := p.(*packet.Suback)
			if !ok || len(sa.Reasons) != 1 {
				errc <- fmt.Errorf("flood got %s", describe(p))
				return
			}
			if sa.Reasons[0] == packet.UnspecifiedError {
				r.refused++
			} else {
				r.granted++
			}
			<-window
		}
		done <- r
	}()
	go func() {
		var b []byte
		for i := range n {
			window <- struct{}{}
			sub := &packet.Subscribe{PacketID: uint16(i%65535 + 1), Subscriptions: []packet.Subscription{{Filter: fmt.Sprintf("flood/%d/#", i), QoS: 1}}}
			b = sub.AppendTo(b[:0], packet.V311)
			flood.nc.SetWriteDeadline(time.Now().Add(20 * time.Second))
			if _, err := flood.nc.Write(b); err != nil {
				errc <- err
				return
			}
		}
	}()
	// The normal client is served while the flood goes on.
	for i := range 20 {
		pub.pub("normal/x", fmt.Sprint(i), 1, false, uint16(i+1))
		normal.ackIncoming(&packet.Publish{QoS: 1, PacketID: normal.expectPublish("normal/x", fmt.Sprint(i), 1, false, false)})
	}
	var r result
	select {
	case r = <-done:
	case err := <-errc:
		t.Fatal(err)
	}
	t.Logf("%d SUBSCRIBEs: %d granted, %d refused", n, r.granted, r.refused)
	if r.granted != max || r.refused != n-max {
		t.Fatalf("granted %d, refused %d; want %d, %d", r.granted, r.refused, max, n-max)
	}
	// At the limit, a filter the session has may still change its QoS.
	flood.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "flood/0/#", QoS: 2}, {Filter: "more", QoS: 0}}})
	flood.expect(&packet.Suback{PacketID: 1, Reasons: []packet.Reason{2, packet.UnspecifiedError}})
	flood.disconnect()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err = persist.Open(persist.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	_, addr = startBroker(t, broker.Config{Store: db, Limits: broker.Limits{MaxSubscriptions: max}})
	flood = reconnect(t, addr, "flood", true)
	flood.send(&packet.Subscribe{PacketID: 2, Subscriptions: []packet.Subscription{{Filter: "more", QoS: 0}}})
	flood.expect(&packet.Suback{PacketID: 2, Reasons: []packet.Reason{packet.UnspecifiedError}})
	flood.send(&packet.Unsubscribe{PacketID: 3, Filters: []string{"flood/0/#"}})
	flood.expect(&packet.Unsuback{PacketID: 3})
	flood.send(&packet.Subscribe{PacketID: 4, Subscriptions: []packet.Subscription{{Filter: "more", QoS: 0}}})
	flood.expect(&packet.Suback{PacketID: 4, Reasons: []packet.Reason{0}})
}

// BenchmarkSubscribeMany measures b.N one-filter SUBSCRIBEs from one clean
// session, pipelined, with distinct filters. The cost per SUBSCRIBE must
// not grow with the subscriptions the session holds:
//
//	go test -run '^$' -bench SubscribeMany -benchtime 10000x ./broker
//	go test -run '^$' -bench SubscribeMany -benchtime 50000x ./broker
func BenchmarkSubscribeMany(b *testing.B) {
	_, addr := startBroker(b, broker.Config{Limits: broker.Limits{MaxSubscriptions: -1}})
	c := dialConnect(b, addr, "many", true)
	errc := make(chan error, 1)
	// At most 256 SUBSCRIBEs unacknowledged, as a client would pipeline.
	window := make(chan struct{}, 256)
	b.ResetTimer()
	go func() {
		var buf []byte
		for i := range b.N {
			window <- struct{}{}
			buf = (&packet.Subscribe{PacketID: uint16(i%65535 + 1), Subscriptions: []packet.Subscription{{Filter: fmt.Sprintf("sensors/%d/temp", i), QoS: 1}}}).AppendTo(buf[:0], packet.V311)
			if _, err := c.nc.Write(buf); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	for i := range b.N {
		if p, err := c.read(30 * time.Second); err != nil {
			b.Fatalf("after %d of %d SUBACKs: %v", i, b.N, err)
		} else if _, ok := p.(*packet.Suback); !ok {
			b.Fatalf("got %s", describe(p))
		}
		<-window
	}
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
}
