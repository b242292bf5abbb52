package broker_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/edged/edged/broker"
	"github.com/edged/edged/broker/packet"
)

// Shared subscriptions "$share/group/filter", for 3.1.1 clients: each
// message goes to one member of each group, round-robin when every member
// has room; an ordinary subscription and another group on the same filter
// each get their own copy. $SYS counts each membership as a subscription.
func TestSharedSubscriptionRoundRobin(t *testing.T) {
	s, addr := startBroker(t, broker.Config{})
	var members []*rawClient
	for i := range 3 {
		c := dialConnect(t, addr, fmt.Sprint("g", i), true)
		c.sub("$share/g/s/#", 1)
		members = append(members, c)
	}
	plain := dialConnect(t, addr, "plain", true)
	plain.sub("s/#", 1)
	other := dialConnect(t, addr, "other", true)
	other.sub("$share/h/s/#", 1)
	if got := s.Stats().Subscriptions; got != 5 {
		t.Fatalf("%d subscriptions counted, want 5", got)
	}
	pub := dialConnect(t, addr, "pub", true)
	const n = 9
	for i := range n {
		pub.pub(fmt.Sprint("s/", i), "m", 1, false, uint16(i+1))
	}
	for i, c := range members {
		got := c.collect(n / 3)
		for _, p := range got {
			if p.Retain || p.QoS != 1 {
				t.Fatalf("member %d got %s", i, describe(p))
			}
		}
		c.expectNothing(20 * time.Millisecond)
	}
	if got := plain.collect(n); len(got) != n {
		t.Fatal("plain subscriber")
	}
	other.collect(n)
	other.expectNothing(20 * time.Millisecond)
}

// Invalid shared subscriptions get SUBACK 0x80, the valid filters of the
// same SUBSCRIBE are granted [MQTT-4.8.2-1] [MQTT-4.8.2-2]; "$sharex/..."
// and "$share" alone are ordinary filters.
func TestSharedSubscriptionInvalid(t *testing.T) {
	_, addr := startBroker(t, broker.Config{})
	c := dialConnect(t, addr, "c", true)
	filters := []struct {
		f  string
		ok bool
	}{
		{"$share/", false}, {"$share/a+/x", false}, {"$share/g", false}, {"$share/g/", false},
		{"$share/+/x", false}, {"$share/#/x", false}, {"$share//x", false}, {"$share/g/a#", false},
		{"$share/g/x", true}, {"$share/g/+/#", true}, {"$sharex/g", true}, {"$share", true},
	}
	var subs []packet.Subscription
	var want []packet.Reason
	for _, f := range filters {
		subs = append(subs, packet.Subscription{Filter: f.f, QoS: 1})
		if f.ok {
			want = append(want, 1)
		} else {
			want = append(want, packet.UnspecifiedError)
		}
	}
	c.send(&packet.Subscribe{PacketID: 4, Subscriptions: subs})
	c.expect(&packet.Suback{PacketID: 4, Reasons: want})
}

// A shared subscription gets no retained messages (MQTT 5.0 4.8.2), while
// an ordinary one on the same filter does; live retained messages reach one
// member.
func TestSharedSubscriptionNoRetained(t *testing.T) {
	_, addr := startBroker(t, broker.Config{})
	pub := dialConnect(t, addr, "pub", true)
	pub.pub("r/1", "kept", 1, true, 1)
	c := dialConnect(t, addr, "c", true)
	c.sub("$share/g/r/#", 1)
	c.expectNothing(100 * time.Millisecond)
	c.sub("r/#", 1)
	c.expectPublish("r/1", "kept", 1, true, false)
}

// The ACL decides on the filter without the "$share/group/" prefix: the
// group name cannot be used to get round a rule, and a group named like a
// refused prefix is fine.
func TestSharedSubscriptionACL(t *testing.T) {
	_, addr := startBroker(t, broker.Config{ACL: testACL{}})
	c := dialConnect(t, addr, "c", true)
	c.send(&packet.Subscribe{PacketID: 2, Subscriptions: []packet.Subscription{
		{Filter: "$share/g/secret/x", QoS: 1}, {Filter: "$share/secret/x", QoS: 1}}})
	c.expect(&packet.Suback{PacketID: 2, Reasons: []packet.Reason{packet.UnspecifiedError, 1}})
}

// UNSUBSCRIBE takes the full "$share/group/filter" name; the bare filter
// does not end the shared subscription.
func TestSharedSubscriptionUnsubscribe(t *testing.T) {
	s, addr := startBroker(t, broker.Config{})
	c := dialConnect(t, addr, "c", true)
	c.sub("$share/g/u", 1)
	pub := dialConnect(t, addr, "pub", true)
	c.send(&packet.Unsubscribe{PacketID: 3, Filters: []string{"u", "$share/h/u"}})
	c.expect(&packet.Unsuback{PacketID: 3})
	pub.pub("u", "still", 1, false, 1)
	c.recvExpect("u", "still", 1)
	c.send(&packet.Unsubscribe{PacketID: 4, Filters: []string{"$share/g/u"}})
	c.expect(&packet.Unsuback{PacketID: 4})
	if got := s.Stats().Subscriptions; got != 0 {
		t.Fatalf("%d subscriptions left", got)
	}
	pub.pub("u", "gone", 1, false, 2)
	c.expectNothing(100 * time.Millisecond)
}

// Offline persistent members: an online member gets every message; when
// every member is offline, a QoS 1 message is queued for one of them
// (round-robin) and arrives when it comes back, and a QoS 0 message is
// dropped as for any offline session. Memberships are stored with the
// session as "$share/..." filters and survive a restart (bbolt).
func TestSharedSubscriptionOfflineAndRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "edged.db")
	db := openDB(t, path)
	s1, addr := startBroker(t, broker.Config{Store: db})
	for _, id := range []string{"p1", "p2"} {
		c := dialConnect(t, addr, id, false)
		c.sub("$share/g/o/#", 1)
		c.send(&packet.Disconnect{})
		c.expectClosed()
	}
	online := dialConnect(t, addr, "on", true)
	online.sub("$share/g/o/#", 1)
	pub := dialConnect(t, addr, "pub", true)
	for i := range 4 {
		pub.pub("o/a", fmt.Sprint("online", i), 1, false, uint16(i+1))
		online.recvExpect("o/a", fmt.Sprint("online", i), 1)
	}
	online.send(&packet.Disconnect{})
	online.expectClosed()
	waitConnected(t, s1, 1)
	pub.pub("o/a", "q0", 0, false, 0)
	pub.pub("o/a", "x", 1, false, 10)
	pub.pub("o/a", "y", 1, false, 11)
	shutdown(t, s1)
	db.Close()

	db = openDB(t, path)
	t.Cleanup(func() { db.Close() })
	_, addr = startBroker(t, broker.Config{Store: db})
	got := map[string]int{}
	for _, id := range []string{"p1", "p2"} {
		c := dialRaw(t, addr)
		c.connect(&packet.Connect{ClientID: id}, true, packet.Success)
		p := c.nextPublish()
		c.ackIncoming(p)
		got[string(p.Payload)]++
		c.expectNothing(50 * time.Millisecond)
	}
	if got["x"] != 1 || got["y"] != 1 {
		t.Fatalf("offline members got %v, want x and y once each", got)
	}
}

// A member that never reads must not stall its group: once its inflight
// window is full, the other members get the messages (QoS 0 uses the same
// choice with the write queue). Nothing is lost: what the stuck member holds
// stays in its session.
func TestSharedSubscriptionStuckMember(t *testing.T) {
	t.Run("QoS 1", func(t *testing.T) {
		const window, n = 4, 200
		s, addr := startBroker(t, broker.Config{Limits: broker.Limits{MaxInflight: window}})
		stuck := dialSmallRecvBuf(t, addr)
		stuck.connect(&packet.Connect{ClientID: "stuck", CleanSession: true}, false, packet.Success)
		stuck.sub("$share/g/k", 1)
		ok := dialConnect(t, addr, "ok", true)
		ok.sub("$share/g/k", 1)
		pub := dialConnect(t, addr, "pub", true)
		done := make(chan int)
		go func() {
			// Acknowledge everything; count until the test says stop.
			got := 0
			for {
				p, err := ok.read(500 * time.Millisecond)
				if err != nil {
					done <- got
					return
				}
				if pp, isPub := p.(*packet.Publish); isPub {
					got++
					ok.nc.Write((&packet.Puback{PacketID: pp.PacketID}).AppendTo(nil, packet.V311))
				}
			}
		}()
		for i := range n {
			pub.pub("k", "m", 1, false, uint16(i+1))
		}
		got := <-done
		held := s.Stats().QueuedMessages
		stuck.drop()
		if int64(got)+held != n {
			t.Fatalf("healthy member got %d, stuck member holds %d: %d lost", got, held, int64(n)-int64(got)-held)
		}
		// The stuck member holds about what the healthy one has waiting
		// at worst (the least loaded member gets the message when none
		// has room), not half of everything.
		t.Logf("healthy member got %d of %d, the stuck one holds %d", got, n, held)
		// Observed 146-184 of 200 depending on scheduling; a stuck member
		// taking its round-robin half would leave about 100.
		if got < n*3/5 {
			t.Fatalf("healthy member got only %d of %d", got, n)
		}
	})
}
