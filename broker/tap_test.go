package broker_test

import (
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/edged/edged/broker"
	"github.com/edged/edged/broker/brokertest"
	"github.com/edged/edged/broker/packet"
	"github.com/edged/edged/persist"
)

// A tap queues what matches its filters and its accept function, in the
// commit before the PUBACK, and never what came from its own origin.
func TestTap(t *testing.T) {
	db, err := persist.Open(persist.Options{Path: filepath.Join(t.TempDir(), "edged.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s, err := broker.New(broker.Config{Store: db, SysInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	notified := make(chan struct{}, 100)
	accept := func(m *persist.Message) bool { return m.Topic != "a" }
	q := db.Queue("bridge/up", persist.QueueLimits{})
	if err := s.AddTap("up", q, []string{"a/#"}, accept, func() { notified <- struct{}{} }); err != nil {
		t.Fatal(err)
	}
	if err := s.AddTap("bad", db.Queue("bridge/bad", persist.QueueLimits{}), []string{"a/#/b"}, nil, func() {}); err == nil {
		t.Fatal("invalid filter accepted")
	}
	ln := brokertest.Listen(t, s)
	pub := dialRaw(t, ln)
	pub.connect(&packet.Connect{ClientID: "p", CleanSession: true}, false, packet.Success)
	for i, topic := range []string{"a", "a/x", "b/x", "a/y/z"} {
		pub.send(&packet.Publish{QoS: 1, Topic: topic, PacketID: uint16(i + 1), Payload: []byte(topic)})
		pub.expect(&packet.Puback{PacketID: uint16(i + 1)})
	}
	done := make(chan error, 1)
	s.PublishFrom("up", "a/from-upstream", []byte("x"), 1, false, func(err error) { done <- err })
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	es, err := q.Read(0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range es {
		got = append(got, e.Msg.Topic)
	}
	if len(got) != 2 || got[0] != "a/x" || got[1] != "a/y/z" {
		t.Fatalf("queued %v, want [a/x a/y/z]", got)
	}
	if len(notified) == 0 {
		t.Fatal("tap not notified")
	}
}

// PublishFrom5 (what a bridge uses for a message that came down over 5.0)
// delivers the properties and the remaining expiry to a 5.0 subscriber
// and the bare message to a 3.1.1 one, never feeds it back to the tap of
// its origin, and ignores the upstream connection's own properties. The
// hostile half: a property block that does not decode costs the
// properties, not the message; a message that expired on the way is
// acknowledged and neither delivered nor retained.
func TestPublishFrom5(t *testing.T) {
	db := openStore(t, filepath.Join(t.TempDir(), "edged.db"))
	s, err := broker.New(broker.Config{Store: db, SysInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	q := db.Queue("bridge/up", persist.QueueLimits{})
	if err := s.AddTap("up", q, []string{"d/#"}, nil, func() {}); err != nil {
		t.Fatal(err)
	}
	addr := brokertest.Listen(t, s)
	v5, _ := dialOpts5(t, addr, "v5", true, nil)
	v5.sub5(1, 0, packet.Subscription{Filter: "d/#", QoS: 1})
	v3 := dialConnect(t, addr, "v3", true)
	v3.sub("d/#", 1)

	publish := func(topic string, retain bool, props []byte, expiry time.Time) {
		t.Helper()
		done := make(chan error, 1)
		s.PublishFrom5("up", topic, []byte("p"), 1, retain, props, expiry, func(err error) { done <- err })
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	alias := uint16(3)
	sent := &packet.Properties{ContentType: "text/plain", MessageExpiry: u32p(5), TopicAlias: &alias,
		SubscriptionIDs: []uint32{9}, User: []packet.UserProperty{{Key: "b", Value: "2"}, {Key: "a", Value: "1"}}}
	publish("d/1", false, packet.AppendProperties(nil, sent), time.Now().Add(100*time.Second))
	p := v5.nextPublish()
	if p.Topic != "d/1" || p.Properties == nil || p.Properties.ContentType != "text/plain" || p.Properties.TopicAlias != nil ||
		len(p.Properties.SubscriptionIDs) != 0 || !slices.Equal(p.Properties.User, sent.User) ||
		p.Properties.MessageExpiry == nil || *p.Properties.MessageExpiry < 99 || *p.Properties.MessageExpiry > 100 {
		t.Fatalf("5.0 subscriber got %+v", p.Properties)
	}
	v5.send(&packet.Puback{PacketID: p.PacketID})
	v3.expectPublish("d/1", "p", 1, false, false)

	publish("d/2", false, []byte{0xff, 0x01}, time.Time{})
	if p := v5.nextPublish(); p.Topic != "d/2" || p.Properties != nil {
		t.Fatalf("garbage properties: got %s %+v", p.Topic, p.Properties)
	}
	v3.expectPublish("d/2", "p", 1, false, false)

	publish("d/3", true, nil, time.Now().Add(-time.Second))
	v5.expectNothing(200 * time.Millisecond)
	v3.expectNothing(0)
	late := dialConnect(t, addr, "late", true)
	late.sub("d/#", 1)
	late.expectNothing(200 * time.Millisecond)

	if st := q.Stats(); st.Len != 0 {
		t.Fatalf("the tap of the origin queued %d messages", st.Len)
	}
}
