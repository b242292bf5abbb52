package broker_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edged/edged/broker"
	"github.com/edged/edged/broker/packet"
	"github.com/edged/edged/persist"
)

// A QoS 1 retained PUBLISH to a 40,002-byte topic and a persistent
// session with a 40,001-byte client id are acknowledged, so they must
// survive a restart of a broker on a real store file. bbolt keys stop at
// 32 KiB; before the store keyed long names by hash, it skipped both after
// the broker had acknowledged them.
func TestLongNamesSurviveRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "edged.db")
	open := func() *persist.DB {
		db, err := persist.Open(persist.Options{Path: path})
		if err != nil {
			t.Fatal(err)
		}
		return db
	}
	id := "id/" + strings.Repeat("i", 40001-3)
	topic := "long/" + strings.Repeat("t", 40002-5)

	db := open()
	s1, addr := startBroker(t, broker.Config{Store: db})
	c := dialConnect(t, addr, id, false)
	c.sub("long/#", 1)
	c.disconnect()
	pub := dialConnect(t, addr, "pub", true)
	pub.pub(topic, "retained", 1, true, 1)
	pub.pub(topic, "queued", 1, false, 2)
	pub.disconnect()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s1.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := persist.Check(path); err != nil {
		t.Fatalf("Check: %v", err)
	}

	db = open()
	t.Cleanup(func() { db.Close() })
	_, addr = startBroker(t, broker.Config{Store: db})
	c = reconnect(t, addr, id, true)
	for _, want := range []string{"retained", "queued"} {
		p := c.nextPublish()
		if p.Topic != topic || string(p.Payload) != want {
			t.Fatalf("got %.80s, want %q on the long topic", describe(p), want)
		}
		c.ackIncoming(p)
	}
	c.disconnect()
	late := dialConnect(t, addr, "late", true)
	late.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "long/#", QoS: 1}}})
	late.expect(&packet.Suback{PacketID: 1, Reasons: []packet.Reason{1}})
	late.expectPublish(topic, "retained", 1, true, false)
}
