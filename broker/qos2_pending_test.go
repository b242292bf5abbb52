package broker_test

import (
	"sync"
	"testing"
	"time"

	"github.com/edged/edged/broker"
	"github.com/edged/edged/broker/packet"
	"github.com/edged/edged/persist"
)

// gatedStore is a real persist.Memory whose commits wait at a gate while it
// is closed: a slow disk, made deterministic.
type gatedStore struct {
	*persist.Memory
	mu     sync.Mutex
	closed bool
	held   []func()
}

func (g *gatedStore) Commit(ops []persist.Op, done func(error)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		g.held = append(g.held, func() { g.Memory.Commit(ops, done) })
		return
	}
	g.Memory.Commit(ops, done)
}

func (g *gatedStore) setClosed(closed bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = closed
	if !closed {
		for _, f := range g.held {
			f()
		}
		g.held = nil
	}
}

// A QoS 2 PUBLISH re-sent on a new connection while the first copy is still
// being committed is not routed again, and its PUBREC arrives on the new
// connection once the first copy is durable [MQTT-4.3.3-2].
func TestQoS2ResendWhileCommitPending(t *testing.T) {
	store := &gatedStore{Memory: persist.NewMemory()}
	t.Cleanup(func() { store.Close() })
	_, addr := startBroker(t, broker.Config{Store: store})

	sub := dialRaw(t, addr)
	sub.connect(&packet.Connect{ClientID: "sub"}, false, packet.Success)
	sub.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "q2/#", QoS: 2}}})
	sub.expect(&packet.Suback{PacketID: 1, Reasons: []packet.Reason{2}})

	store.setClosed(true)
	pub := dialRaw(t, addr)
	pub.connect(&packet.Connect{ClientID: "pub"}, false, packet.Success)
	msg := &packet.Publish{QoS: 2, Topic: "q2/a", PacketID: 5, Payload: []byte("once")}
	pub.send(msg)
	pub.expectNothing(50 * time.Millisecond) // no PUBREC before the commit
	pub.nc.Close()

	pub2 := dialRaw(t, addr)
	pub2.connect(&packet.Connect{ClientID: "pub"}, true, packet.Success)
	dup := *msg
	dup.Dup = true
	pub2.send(&dup)
	pub2.expectNothing(50 * time.Millisecond) // the first copy is not durable yet
	store.setClosed(false)
	pub2.expect(&packet.Pubrec{PacketID: 5})
	pub2.send(&packet.Pubrel{PacketID: 5})
	pub2.expect(&packet.Pubcomp{PacketID: 5})

	sub.expect(&packet.Publish{QoS: 2, Topic: "q2/a", PacketID: 1, Payload: []byte("once")})
	sub.send(&packet.Pubrec{PacketID: 1})
	sub.expect(&packet.Pubrel{PacketID: 1})
	sub.send(&packet.Pubcomp{PacketID: 1})
	sub.expectNothing(100 * time.Millisecond)
}
