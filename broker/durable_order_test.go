package broker_test

import (
	"testing"
	"time"

	"github.com/edged/edged/broker"
	"github.com/edged/edged/broker/packet"
	"github.com/edged/edged/persist"
)

// PUBCOMP must not go out before the DeleteInbound of a persistent session
// is durable: otherwise, after a crash, the stale inbound id swallows the
// client's next QoS 2 message that reuses the packet id (PUBREC sent, message
// never routed).
func TestPubcompAfterInboundReleaseIsDurable(t *testing.T) {
	mem := persist.NewMemory()
	t.Cleanup(func() { mem.Close() })
	store := &gatedStore{Memory: mem}
	_, addr1 := startBroker(t, broker.Config{Store: store})

	sub := dialConnect(t, addr1, "sub", false)
	sub.sub("t", 1)
	sub.send(&packet.Disconnect{})
	sub.expectClosed()

	pub := dialConnect(t, addr1, "pub", false)
	pub.send(&packet.Publish{QoS: 2, Topic: "t", PacketID: 7, Payload: []byte("A")})
	pub.expect(&packet.Pubrec{PacketID: 7})
	store.setClosed(true) // the disk stalls from here on; then the power fails
	pub.send(&packet.Pubrel{PacketID: 7})
	p, err := pub.read(300 * time.Millisecond)
	gotPubcomp := err == nil
	if gotPubcomp {
		t.Errorf("got %s while DeleteInbound is not durable", describe(p))
	}
	pub.drop()

	// "Restart" on what was durable.
	_, addr2 := startBroker(t, broker.Config{Store: mem})
	pub2 := dialRaw(t, addr2)
	pub2.connect(&packet.Connect{ClientID: "pub"}, true, packet.Success)
	if !gotPubcomp { // a correct client completes the flow first
		pub2.send(&packet.Pubrel{PacketID: 7})
		pub2.expect(&packet.Pubcomp{PacketID: 7})
	}
	pub2.pub("t", "B", 2, false, 7) // a new message reusing id 7: acknowledged

	sub2 := dialRaw(t, addr2)
	sub2.connect(&packet.Connect{ClientID: "sub"}, true, packet.Success)
	got := map[string]bool{}
	for range 2 {
		p, err := sub2.read(time.Second)
		if err != nil {
			break
		}
		if pp, ok := p.(*packet.Publish); ok {
			got[string(pp.Payload)] = true
			sub2.ackIncoming(pp)
		}
	}
	if !got["B"] {
		t.Fatalf("acknowledged QoS 2 message B lost; subscriber got %v", got)
	}
}

// A retained message older than a live message on the same topic must not
// be delivered after it.
func TestNoStaleRetainedAfterLive(t *testing.T) {
	store := &gatedStore{Memory: persist.NewMemory()}
	t.Cleanup(func() { store.Close() })
	_, addr := startBroker(t, broker.Config{Store: store})

	pub := dialConnect(t, addr, "pub", true)
	pub.pub("t", "old", 1, true, 1)

	sub := dialConnect(t, addr, "sub", false)
	store.setClosed(true) // SUBACK's PutSession waits for a slow fsync
	sub.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "t", QoS: 0}}})
	time.Sleep(50 * time.Millisecond) // PINGRESP would queue behind SUBACK
	pub.pub("t", "new", 0, false, 0)
	time.Sleep(50 * time.Millisecond)
	store.setClosed(false)
	// The subscription takes effect with its SUBACK, so "new" (published
	// before) may or may not be delivered; "old" must never follow it.
	var order []string
	for {
		p, err := sub.read(300 * time.Millisecond)
		if err != nil {
			break
		}
		if pp, ok := p.(*packet.Publish); ok {
			order = append(order, string(pp.Payload))
		} else {
			order = append(order, p.Type().String())
		}
	}
	t.Logf("order: %v", order)
	if len(order) == 0 || order[0] != "SUBACK" {
		t.Fatalf("SUBACK is not first: %v", order)
	}
	if order[len(order)-1] == "old" && len(order) > 2 {
		t.Fatalf("stale retained value delivered after the live one: %v", order)
	}
}

// PUBREL goes out only once SetInflight{Pubrel} is durable: otherwise, after
// a crash, the broker would re-send the PUBLISH it already released
// [MQTT-4.3.3-1] and a receiver that completed the flow would deliver it a
// second time.
func TestPubrelAfterPubrecIsDurable(t *testing.T) {
	mem := persist.NewMemory()
	t.Cleanup(func() { mem.Close() })
	store := &gatedStore{Memory: mem}
	_, addr1 := startBroker(t, broker.Config{Store: store})

	sub := dialConnect(t, addr1, "sub", false)
	sub.sub("t", 2)
	pub := dialConnect(t, addr1, "pub", true)
	pub.pub("t", "once", 2, false, 1)
	p := sub.nextPublish()
	store.setClosed(true) // disk stalls, then the power fails
	sub.send(&packet.Pubrec{PacketID: p.PacketID})
	got, err := sub.read(300 * time.Millisecond)
	sawPubrel := err == nil
	if sawPubrel {
		sub.send(&packet.Pubcomp{PacketID: p.PacketID}) // receiver forgets the id
		t.Errorf("PUBREL sent before its state is durable: %s", describe(got))
	}
	sub.drop()

	_, addr2 := startBroker(t, broker.Config{Store: mem})
	sub2 := dialRaw(t, addr2)
	sub2.connect(&packet.Connect{ClientID: "sub"}, true, packet.Success)
	// Without a PUBREL the receiver has not completed the flow: the PUBLISH
	// comes again with DUP and its id, which the receiver recognises.
	got, err = sub2.read(time.Second)
	if pp, ok := got.(*packet.Publish); err == nil && ok {
		if sawPubrel {
			t.Fatalf("PUBLISH re-sent after PUBREL was sent: %s", describe(pp))
		}
		if !pp.Dup || pp.PacketID != p.PacketID {
			t.Fatalf("re-sent without DUP or under a new id: %s", describe(pp))
		}
	}
}
