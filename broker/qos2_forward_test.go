package broker_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edged/edged/broker"
	"github.com/edged/edged/broker/brokertest"
	"github.com/edged/edged/broker/packet"
	"github.com/edged/edged/persist"
)

// shutdown shuts s down before the test ends (a crash or a restart);
// the cleanup's Shutdown is then a no-op.
func shutdown(t *testing.T, s *broker.Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

func openDB(t *testing.T, path string) *persist.DB {
	t.Helper()
	db, err := persist.Open(persist.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// A client's QoS 2 PUBLISH is forwarded only after its PUBREC: a client
// subscribed to its own topic reads PUBREC first, then the message, with or
// without a store, for a clean or persistent session and at every granted
// QoS. (edged used to forward it first.)
func TestQoS2PubrecBeforeForward(t *testing.T) {
	for _, store := range []string{"none", "bbolt"} {
		for _, clean := range []bool{true, false} {
			for granted := byte(0); granted <= 2; granted++ {
				name := fmt.Sprintf("store=%s/clean=%v/granted=%d", store, clean, granted)
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					cfg := broker.Config{}
					if store == "bbolt" {
						db := openDB(t, filepath.Join(t.TempDir(), "edged.db"))
						t.Cleanup(func() { db.Close() })
						cfg.Store = db
					}
					_, addr := startBroker(t, cfg)
					c := dialConnect(t, addr, "self", clean)
					c.sub("self/#", granted)
					for id := uint16(1); id <= 3; id++ {
						payload := fmt.Sprint("m", id)
						c.send(&packet.Publish{QoS: 2, Topic: "self/a", PacketID: id, Payload: []byte(payload)})
						c.expect(&packet.Pubrec{PacketID: id})
						p := c.expectPublish("self/a", payload, granted, false, false)
						c.ackIncoming(&packet.Publish{QoS: granted, PacketID: p})
						c.send(&packet.Pubrel{PacketID: id})
						c.expect(&packet.Pubcomp{PacketID: id})
					}
				})
			}
		}
	}
}

// Forwarding a QoS 2 message waits for the commit that makes it durable:
// while the store holds the commit, neither a clean nor a persistent
// subscriber gets anything, at QoS 0 or 2, and the publisher no PUBREC. A
// QoS 1 message published after it does not overtake it at QoS 1 or 2.
// Once the commit is done: PUBREC, then the messages.
func TestQoS2ForwardWaitsForCommit(t *testing.T) {
	store := &gatedStore{Memory: persist.NewMemory()}
	t.Cleanup(func() { store.Close() })
	_, addr := startBroker(t, broker.Config{Store: store})
	subs := map[string]*rawClient{}
	for _, s := range []struct {
		id    string
		clean bool
		qos   byte
	}{{"clean0", true, 0}, {"clean2", true, 2}, {"pers2", false, 2}} {
		c := dialConnect(t, addr, s.id, s.clean)
		c.sub("fw/#", s.qos)
		subs[s.id] = c
	}
	pub := dialConnect(t, addr, "pub", true)

	store.setClosed(true)
	pub.send(&packet.Publish{QoS: 2, Topic: "fw/a", PacketID: 1, Payload: []byte("first")})
	for _, c := range subs {
		c.expectNothing(50 * time.Millisecond)
	}
	pub.expectNothing(10 * time.Millisecond)
	// Routed to clean sessions only (clean0 and clean2 get it, pers2 too
	// but behind the commit anyway), acknowledged at once.
	pub.send(&packet.Publish{QoS: 1, Topic: "fw/b", PacketID: 2, Payload: []byte("second")})
	subs["clean2"].expectNothing(50 * time.Millisecond)
	store.setClosed(false)
	pub.expect(&packet.Pubrec{PacketID: 1})
	pub.expect(&packet.Puback{PacketID: 2})
	// At QoS 0 the QoS 1 message may come first: ordering holds per QoS
	// of the publisher's messages [MQTT-4.6.0-6]; QoS 0 is never held
	// behind another message (see doc.go).
	a, b := subs["clean0"].nextPublish(), subs["clean0"].nextPublish()
	if got := string(a.Payload) + "," + string(b.Payload); got != "first,second" && got != "second,first" {
		t.Fatalf("clean0 got %s", got)
	}
	for _, id := range []string{"clean2", "pers2"} {
		got := subs[id].collect(2)
		if string(got[0].Payload) != "first" || string(got[1].Payload) != "second" {
			t.Fatalf("%s got %s then %s, want first then second", id, describe(got[0]), describe(got[1]))
		}
	}
	pub.send(&packet.Pubrel{PacketID: 1})
	pub.expect(&packet.Pubcomp{PacketID: 1})
}

// crashStore passes commits to a real store until crash is set; then it
// drops them, and their done callbacks never run: the process died before
// they reached the disk.
type crashStore struct {
	broker.Store
	crashed atomic.Bool
}

func (c *crashStore) Commit(ops []persist.Op, done func(error)) {
	if c.crashed.Load() {
		return
	}
	c.Store.Commit(ops, done)
}

// A crash between a QoS 2 PUBLISH and the commit of its state cannot hand
// an exactly-once subscriber a duplicate: nothing was forwarded before the
// commit, so the copy the publisher sends again after the restart is the
// only one any subscriber gets, clean or persistent (bbolt file, broker
// restarted on it).
func TestQoS2CrashBeforeCommitNoDuplicate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "edged.db")
	db := openDB(t, path)
	cs := &crashStore{Store: db}
	s1, err := broker.New(broker.Config{Store: cs, SysInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	addr := brokertest.Listen(t, s1)
	clean := dialConnect(t, addr, "clean", true)
	clean.sub("x/#", 2)
	pers := dialConnect(t, addr, "pers", false)
	pers.sub("x/#", 2)
	pub := dialConnect(t, addr, "pub", false)
	// CONNACK does not wait for the session record's commit (a session
	// with nothing in it holds nothing acknowledged); a SUBACK follows the
	// commit of its subscription and, commits being applied in order, of
	// the session record before it. Without this the crash could take the
	// record, and the restarted broker rightly report no session.
	pub.sub("barrier/#", 0)

	cs.crashed.Store(true)
	msg := &packet.Publish{QoS: 2, Topic: "x/1", PacketID: 7, Payload: []byte("once")}
	pub.send(msg)
	clean.expectNothing(100 * time.Millisecond)
	pers.expectNothing(10 * time.Millisecond)
	pub.expectNothing(10 * time.Millisecond)
	shutdown(t, s1)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = openDB(t, path)
	t.Cleanup(func() { db.Close() })
	_, addr = startBroker(t, broker.Config{Store: db})
	clean = dialConnect(t, addr, "clean", true)
	clean.sub("x/#", 2)
	pers = dialRaw(t, addr)
	pers.connect(&packet.Connect{ClientID: "pers"}, true, packet.Success)
	pub = dialRaw(t, addr)
	pub.connect(&packet.Connect{ClientID: "pub"}, true, packet.Success)
	dup := *msg
	dup.Dup = true
	pub.send(&dup)
	pub.expect(&packet.Pubrec{PacketID: 7})
	pub.send(&packet.Pubrel{PacketID: 7})
	pub.expect(&packet.Pubcomp{PacketID: 7})
	clean.recvExpect("x/1", "once", 2)
	pers.recvExpect("x/1", "once", 2)
	clean.expectNothing(100 * time.Millisecond)
	pers.expectNothing(10 * time.Millisecond)
}
