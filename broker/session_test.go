package broker_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/edged/edged/broker"
	"github.com/edged/edged/broker/packet"
	"github.com/edged/edged/persist"
)

// stores are the Store configurations persistent-session tests run with:
// none (sessions live in memory, acknowledgements are immediate) and
// persist.Memory (the same code paths as bbolt: acknowledgements wait for
// asynchronous commits).
var stores = []struct {
	name string
	new  func(t *testing.T) broker.Store
}{
	{"no store", func(*testing.T) broker.Store { return nil }},
	{"persist.Memory", func(t *testing.T) broker.Store {
		m := persist.NewMemory()
		// Registered before startBroker, so it runs after Shutdown.
		t.Cleanup(func() { m.Close() })
		return m
	}},
}

// forStores runs fn once per store configuration, in parallel.
func forStores(t *testing.T, cfg broker.Config, fn func(t *testing.T, s *broker.Server, addr string)) {
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			t.Parallel()
			c := cfg
			if store := st.new(t); store != nil {
				c.Store = store
			}
			s, addr := startBroker(t, c)
			fn(t, s, addr)
		})
	}
}

// reconnect connects client id with clean session 0 and expects the given
// session present flag.
func reconnect(t *testing.T, addr, id string, present bool) *rawClient {
	t.Helper()
	c := dialRaw(t, addr)
	c.connect(&packet.Connect{ClientID: id, CleanSession: false}, present, packet.Success)
	return c
}

// disconnect sends DISCONNECT and waits for the broker to close.
func (c *rawClient) disconnect() {
	c.t.Helper()
	c.send(&packet.Disconnect{})
	c.expectClosed()
}

// waitConnected waits until Stats().ClientsConnected is n: closed
// connections have been detached from their sessions.
func waitConnected(t *testing.T, s *broker.Server, n int64) {
	t.Helper()
	waitFor(t, 5*time.Second, func() error {
		if got := s.Stats().ClientsConnected; got != n {
			return fmt.Errorf("%d clients connected, want %d", got, n)
		}
		return nil
	})
}

// A persistent session keeps its subscriptions across connections
// [MQTT-3.1.2-4] [MQTT-3.1.2-5].
func TestPersistentSessionKeepsSubscriptions_MQTT_3_1_2_4(t *testing.T) {
	forStores(t, broker.Config{}, func(t *testing.T, s *broker.Server, addr string) {
		c := dialConnect(t, addr, "p", false)
		c.sub("s/#", 1)
		c.disconnect()
		c = reconnect(t, addr, "p", true)
		pub := dialConnect(t, addr, "pub", true)
		pub.pub("s/x", "kept", 1, false, 1)
		c.recvExpect("s/x", "kept", 1)
	})
}

// QoS 1 and 2 messages published while a persistent session's client is
// offline are kept and delivered in order on reconnect; QoS 0 messages are
// not kept [MQTT-3.1.2-5].
func TestPersistentSessionQueuesOffline_MQTT_3_1_2_5(t *testing.T) {
	forStores(t, broker.Config{}, func(t *testing.T, s *broker.Server, addr string) {
		c := dialConnect(t, addr, "p", false)
		c.sub("q/#", 2)
		c.disconnect()
		waitConnected(t, s, 0)

		pub := dialConnect(t, addr, "pub", true)
		want := []struct {
			payload string
			qos     byte
		}{{"1", 1}, {"zero", 0}, {"2", 2}, {"3", 1}, {"4", 2}}
		for i, m := range want {
			pub.pub("q/a", m.payload, m.qos, false, uint16(i+1))
		}
		c = reconnect(t, addr, "p", true)
		got := c.collect(4)
		c.sync() // a queued QoS 0 message would arrive before PINGRESP
		i := 0
		for _, m := range want {
			if m.qos == 0 {
				continue
			}
			if p := got[i]; string(p.Payload) != m.payload || p.QoS != m.qos || p.Dup {
				t.Errorf("message %d: got %s, want payload %q QoS %d", i, describe(p), m.payload, m.qos)
			}
			i++
		}
	})
}

// On reconnect the broker re-sends unacknowledged PUBLISHes with DUP set
// and their original packet ids, and PUBRELs for QoS 2 messages already
// PUBREC'd, in their original order [MQTT-4.4.0-1] [MQTT-3.3.1-1].
func TestPersistentSessionResendsInflight_MQTT_4_4_0_1(t *testing.T) {
	for _, how := range []string{"disconnect", "network loss"} {
		t.Run(how, func(t *testing.T) {
			forStores(t, broker.Config{}, func(t *testing.T, s *broker.Server, addr string) {
				c := dialConnect(t, addr, "p", false)
				c.sub("r", 2)
				pub := dialConnect(t, addr, "pub", true)
				pub.pub("r", "q1", 1, false, 1)
				pub.pub("r", "q2", 2, false, 2)
				pub.pub("r", "q2-rec", 2, false, 3)
				id1 := c.expectPublish("r", "q1", 1, false, false)
				id2 := c.expectPublish("r", "q2", 2, false, false)
				id3 := c.expectPublish("r", "q2-rec", 2, false, false)
				c.send(&packet.Pubrec{PacketID: id3})
				c.expect(&packet.Pubrel{PacketID: id3})
				if how == "disconnect" {
					c.disconnect()
				} else {
					c.drop()
				}
				waitConnected(t, s, 1)

				c = reconnect(t, addr, "p", true)
				c.expect(&packet.Publish{Topic: "r", Payload: []byte("q1"), QoS: 1, Dup: true, PacketID: id1})
				c.expect(&packet.Publish{Topic: "r", Payload: []byte("q2"), QoS: 2, Dup: true, PacketID: id2})
				c.expect(&packet.Pubrel{PacketID: id3})
				c.send(&packet.Puback{PacketID: id1})
				c.send(&packet.Pubrec{PacketID: id2})
				c.expect(&packet.Pubrel{PacketID: id2})
				c.send(&packet.Pubcomp{PacketID: id2})
				c.send(&packet.Pubcomp{PacketID: id3})
				waitQueued(t, s, 0)
				c.disconnect()

				// Nothing is re-sent once everything is acknowledged.
				c = reconnect(t, addr, "p", true)
				c.sync()
			})
		})
	}
}

// A clean session discards the previous session: no session present, no
// queued messages, no subscriptions [MQTT-3.1.2-6].
func TestCleanSessionDiscardsOld_MQTT_3_1_2_6(t *testing.T) {
	forStores(t, broker.Config{}, func(t *testing.T, s *broker.Server, addr string) {
		c := dialConnect(t, addr, "p", false)
		c.sub("old", 1)
		c.disconnect()
		pub := dialConnect(t, addr, "pub", true)
		pub.pub("old", "queued", 1, false, 1)
		waitQueued(t, s, 1)

		c = dialConnect(t, addr, "p", true) // session present 0
		c.sync()                            // and nothing queued arrives
		waitQueued(t, s, 0)
		c.disconnect()

		c = dialConnect(t, addr, "p", false) // still nothing to resume
		c.sub("marker", 0)
		pub.pub("old", "after", 1, false, 2)
		pub.pub("marker", "m", 0, false, 0)
		// Had the "old" subscription survived, "after" would come first.
		c.expectPublish("marker", "m", 0, false, false)
	})
}

// Limits.MaxQueuedMessages bounds an offline session's queue: the excess
// is dropped and counted in Stats().MsgsDropped.
func TestSessionQueueLimit(t *testing.T) {
	forStores(t, broker.Config{Limits: broker.Limits{MaxQueuedMessages: 5}}, func(t *testing.T, s *broker.Server, addr string) {
		c := dialConnect(t, addr, "p", false)
		c.sub("ql", 1)
		c.disconnect()
		waitConnected(t, s, 0)
		pub := dialConnect(t, addr, "pub", true)
		for i := range 8 {
			pub.pub("ql", strconv.Itoa(i), 1, false, uint16(i+1))
		}
		if d := s.Stats().MsgsDropped; d != 3 {
			t.Errorf("MsgsDropped = %d, want 3", d)
		}
		c = reconnect(t, addr, "p", true)
		got := c.collect(5)
		c.sync() // a sixth would arrive before PINGRESP
		for i, p := range got {
			if string(p.Payload) != strconv.Itoa(i) {
				t.Errorf("message %d: got %s, want the oldest five in order", i, describe(p))
			}
		}
	})
}

// Limits.MaxInflight: at most that many QoS 1 and 2 messages are sent and
// unacknowledged at a time; the rest follow as acknowledgements arrive, in
// order.
func TestMaxInflight(t *testing.T) {
	forStores(t, broker.Config{Limits: broker.Limits{MaxInflight: 2}}, func(t *testing.T, s *broker.Server, addr string) {
		c := dialConnect(t, addr, "p", true)
		c.sub("mi", 1)
		pub := dialConnect(t, addr, "pub", true)
		const n = 7
		for i := range n {
			pub.pub("mi", strconv.Itoa(i), 1, false, uint16(i+1))
		}
		var window []*packet.Publish
		next := 0
		for next < n {
			for len(window) < 2 && next+len(window) < n {
				window = append(window, c.nextPublish())
			}
			c.expectNothing(30 * time.Millisecond) // no third in flight
			p := window[0]
			if string(p.Payload) != strconv.Itoa(next) {
				t.Fatalf("got %s, want payload %d", describe(p), next)
			}
			c.send(&packet.Puback{PacketID: p.PacketID})
			window = window[1:]
			next++
		}
	})
}

// QoS 2 inbound state belongs to the session: a PUBLISH re-sent with DUP
// after reconnecting, before PUBREL, is not delivered again [MQTT-4.3.3-2]
// [MQTT-4.4.0-1].
func TestPersistentSessionInboundQoS2AcrossReconnect(t *testing.T) {
	forStores(t, broker.Config{}, func(t *testing.T, s *broker.Server, addr string) {
		sub := dialConnect(t, addr, "sub", true)
		sub.sub("x", 2)
		p := dialConnect(t, addr, "pub", false)
		p.send(&packet.Publish{Topic: "x", Payload: []byte("once"), QoS: 2, PacketID: 5})
		p.expect(&packet.Pubrec{PacketID: 5})
		p.drop()
		waitConnected(t, s, 1)

		p = reconnect(t, addr, "pub", true)
		p.send(&packet.Publish{Topic: "x", Payload: []byte("once"), QoS: 2, PacketID: 5, Dup: true})
		p.expect(&packet.Pubrec{PacketID: 5})
		p.send(&packet.Pubrel{PacketID: 5})
		p.expect(&packet.Pubcomp{PacketID: 5})
		p.pub("x", "marker", 0, false, 0)
		got := sub.collect(2)
		if string(got[0].Payload) != "once" || string(got[1].Payload) != "marker" {
			t.Fatalf("got %s, %s; want once, marker", describe(got[0]), describe(got[1]))
		}
	})
}

// With a Store, persistent sessions, their queued messages and retained
// messages survive a broker restart.
func TestRestartRestoresSessions(t *testing.T) {
	store := persist.NewMemory()
	t.Cleanup(func() { store.Close() })
	s1, addr := startBroker(t, broker.Config{Store: store})
	c := dialConnect(t, addr, "p", false)
	c.sub("rs/#", 2)
	c.disconnect()
	pub := dialConnect(t, addr, "pub", true)
	pub.pub("rs/a", "q1", 1, false, 1)
	pub.pub("rs/b", "q2", 2, false, 2)
	pub.pub("rs/ret", "kept", 1, true, 3)
	pub.disconnect()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s1.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	_, addr = startBroker(t, broker.Config{Store: store})
	c = reconnect(t, addr, "p", true)
	got := c.collect(3)
	want := []string{"q1", "q2", "kept"}
	for i, p := range got {
		if string(p.Payload) != want[i] {
			t.Errorf("message %d: got %s, want %q", i, describe(p), want[i])
		}
	}
	c2 := dialConnect(t, addr, "late", true)
	c2.sub("rs/ret", 1)
	c2.expectPublish("rs/ret", "kept", 1, true, false)
}
