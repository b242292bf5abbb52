package broker_test

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/edged/edged/broker"
	"github.com/edged/edged/broker/packet"
	"github.com/edged/edged/persist"
)

// When the store cannot commit (here: the file reached max_db_size), the
// publisher is not acknowledged and its connection is closed, so it sends
// the message again after it reconnects; $SYS counts the error. The broker
// does not pretend.
func TestStoreFullWithholdsAck(t *testing.T) {
	db, err := persist.Open(persist.Options{Path: filepath.Join(t.TempDir(), "edged.db"), MaxSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s, addr := startBroker(t, broker.Config{Store: db, Limits: broker.Limits{MaxQueuedBytes: 1 << 30}})

	sub := dialRaw(t, addr)
	sub.connect(&packet.Connect{ClientID: "offline"}, false, packet.Success)
	sub.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "big/#", QoS: 1}}})
	sub.expect(&packet.Suback{PacketID: 1, Reasons: []packet.Reason{1}})
	sub.send(&packet.Disconnect{})
	sub.expectClosed()

	pub := dialRaw(t, addr)
	pub.connect(&packet.Connect{ClientID: "pub", CleanSession: true}, false, packet.Success)
	payload := make([]byte, 100<<10)
	acked := 0
	for id := uint16(1); ; id++ {
		if id > 40 {
			t.Fatalf("4 MiB accepted into a 1 MiB store")
		}
		pub.send(&packet.Publish{QoS: 1, Topic: "big/x", PacketID: id, Payload: payload})
		p, err := pub.read(5 * time.Second)
		if err != nil {
			// Closed without PUBACK: the commit failed.
			break
		}
		if pa, ok := p.(*packet.Puback); !ok || pa.PacketID != id {
			t.Fatalf("got %s, want PUBACK %d", describe(p), id)
		}
		acked++
	}
	if acked == 0 {
		t.Fatal("nothing fitted in the store")
	}
	waitFor(t, 5*time.Second, func() error {
		if s.Stats().StoreErrors == 0 {
			return errors.New("store error not counted")
		}
		return nil
	})
	// Every acknowledged message is delivered.
	sub = dialRaw(t, addr)
	sub.connect(&packet.Connect{ClientID: "offline"}, true, packet.Success)
	for i := 1; i <= acked; i++ {
		p, err := sub.read(5 * time.Second)
		if err != nil {
			t.Fatalf("message %d of %d acknowledged: %v", i, acked, err)
		}
		pp, ok := p.(*packet.Publish)
		if !ok {
			t.Fatalf("got %s", describe(p))
		}
		sub.send(&packet.Puback{PacketID: pp.PacketID})
	}
}

// limits.session_expiry removes a persistent session whose client stayed
// away longer.
func TestSessionExpiry(t *testing.T) {
	store := persist.NewMemory()
	t.Cleanup(func() { store.Close() })
	_, addr := startBroker(t, broker.Config{Store: store, Limits: broker.Limits{SessionExpiry: time.Second}})
	c := dialRaw(t, addr)
	c.connect(&packet.Connect{ClientID: "ghost"}, false, packet.Success)
	c.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "x", QoS: 1}}})
	c.expect(&packet.Suback{PacketID: 1, Reasons: []packet.Reason{1}})
	c.send(&packet.Disconnect{})
	c.expectClosed()
	// Still there right away.
	c = dialRaw(t, addr)
	c.connect(&packet.Connect{ClientID: "ghost"}, true, packet.Success)
	c.send(&packet.Disconnect{})
	c.expectClosed()
	// Gone after the expiry: the broker checks every second.
	waitFor(t, 5*time.Second, func() error {
		snap, err := store.Load()
		if err != nil {
			return err
		}
		if len(snap.Sessions) != 0 {
			return errors.New("session still stored")
		}
		return nil
	})
	c = dialRaw(t, addr)
	c.connect(&packet.Connect{ClientID: "ghost"}, false, packet.Success)
}
