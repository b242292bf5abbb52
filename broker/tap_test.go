package broker_test

import (
	"path/filepath"
	"testing"

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
