package broker_test

import (
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/edged/edged/broker"
	"github.com/edged/edged/broker/packet"
)

// End to end with a real client library: a paho publisher and a paho
// subscriber at QoS 0, 1 and 2; messages arrive in order at the subscribed
// QoS.
func TestPahoPubSub(t *testing.T) {
	_, addr := startBroker(t, broker.Config{})
	for _, qos := range []byte{0, 1, 2} {
		t.Run("QoS "+strconv.Itoa(int(qos)), func(t *testing.T) {
			msgs := make(chan pahoMsg, 100)
			topic := "paho/" + strconv.Itoa(int(qos))
			sub := pahoConnect(t, pahoOpts(addr, "psub"+topic, true, msgs))
			wait(t, sub.Subscribe(topic, qos, nil))
			pub := pahoConnect(t, pahoOpts(addr, "ppub"+topic, true, nil))
			const n = 20
			for i := range n {
				wait(t, pub.Publish(topic, qos, false, strconv.Itoa(i)))
			}
			for i := range n {
				m := recvPaho(t, msgs)
				if m.topic != topic || m.payload != strconv.Itoa(i) || m.qos != qos || m.retained || m.duplicate {
					t.Fatalf("message %d: got %+v", i, m)
				}
			}
			noPaho(t, msgs, 50*time.Millisecond)
		})
	}
}

// A paho client with CleanSession(false) receives, after reconnecting, the
// QoS 1 and 2 messages published while it was away.
func TestPahoPersistentSession(t *testing.T) {
	s, addr := startBroker(t, broker.Config{})
	msgs := make(chan pahoMsg, 100)
	sub := pahoConnect(t, pahoOpts(addr, "persistent", false, msgs))
	wait(t, sub.Subscribe("ps/#", 2, nil))
	sub.Disconnect(100)
	waitConnected(t, s, 0)

	pub := pahoConnect(t, pahoOpts(addr, "pub", true, nil))
	wait(t, pub.Publish("ps/a", 1, false, "one"))
	wait(t, pub.Publish("ps/b", 2, false, "two"))
	wait(t, pub.Publish("ps/c", 0, false, "zero: not kept"))
	wait(t, pub.Publish("ps/d", 1, false, "three"))

	pahoConnect(t, pahoOpts(addr, "persistent", false, msgs))
	for _, want := range []pahoMsg{{topic: "ps/a", payload: "one", qos: 1}, {topic: "ps/b", payload: "two", qos: 2},
		{topic: "ps/d", payload: "three", qos: 1}} {
		if m := recvPaho(t, msgs); m != want {
			t.Fatalf("got %+v, want %+v", m, want)
		}
	}
	// The session's subscription is still there for live messages.
	wait(t, pub.Publish("ps/e", 1, false, "live"))
	if m := recvPaho(t, msgs); m.payload != "live" {
		t.Fatalf("got %+v, want live", m)
	}
	noPaho(t, msgs, 50*time.Millisecond)
}

// Retained messages through paho: a later paho subscriber sees the
// retained flag; the live subscriber does not.
func TestPahoRetained(t *testing.T) {
	_, addr := startBroker(t, broker.Config{})
	live := make(chan pahoMsg, 10)
	liveSub := pahoConnect(t, pahoOpts(addr, "live", true, live))
	wait(t, liveSub.Subscribe("pr/#", 1, nil))
	pub := pahoConnect(t, pahoOpts(addr, "pub", true, nil))
	wait(t, pub.Publish("pr/state", 1, true, "on"))
	if m := recvPaho(t, live); m != (pahoMsg{topic: "pr/state", payload: "on", qos: 1}) {
		t.Fatalf("live: got %+v", m)
	}
	late := make(chan pahoMsg, 10)
	lateSub := pahoConnect(t, pahoOpts(addr, "late", true, late))
	wait(t, lateSub.Subscribe("pr/+", 2, nil))
	if m := recvPaho(t, late); m != (pahoMsg{topic: "pr/state", payload: "on", qos: 1, retained: true}) {
		t.Fatalf("late: got %+v", m)
	}
}

// A paho client's will (SetWill) is published when its TCP connection is
// cut; a raw client's will reaches a paho subscriber the same way.
func TestPahoWill(t *testing.T) {
	s, addr := startBroker(t, broker.Config{})
	msgs := make(chan pahoMsg, 10)
	sub := pahoConnect(t, pahoOpts(addr, "watcher", true, msgs))
	wait(t, sub.Subscribe("will/#", 2, nil))

	t.Run("paho owner", func(t *testing.T) {
		conns := make(chan net.Conn, 1)
		o := pahoOpts(addr, "paho-owner", true, nil).
			SetWill("will/paho", "paho gone", 1, false).
			SetCustomOpenConnectionFn(capturingDialer(conns))
		pahoConnect(t, o)
		(<-conns).Close() // network loss, no DISCONNECT
		if m := recvPaho(t, msgs); m != (pahoMsg{topic: "will/paho", payload: "paho gone", qos: 1}) {
			t.Fatalf("got %+v", m)
		}
	})
	t.Run("raw owner", func(t *testing.T) {
		owner := dialRaw(t, addr)
		owner.connect(&packet.Connect{ClientID: "raw-owner", CleanSession: true,
			Will: &packet.Will{Topic: "will/raw", Payload: []byte("raw gone"), QoS: 2, Retain: true}}, false, packet.Success)
		owner.drop()
		if m := recvPaho(t, msgs); m != (pahoMsg{topic: "will/raw", payload: "raw gone", qos: 2}) {
			t.Fatalf("got %+v", m)
		}
	})
	t.Run("paho owner disconnects cleanly", func(t *testing.T) {
		o := pahoOpts(addr, "polite", true, nil).SetWill("will/polite", "must not appear", 1, false)
		c := pahoConnect(t, o)
		c.Disconnect(100)
		// The broker routes a will before it counts its client gone, so
		// a will would reach the watcher before the marker.
		waitConnected(t, s, 1)
		pub := pahoConnect(t, pahoOpts(addr, "marker", true, nil))
		wait(t, pub.Publish("will/marker", 1, false, "m"))
		if m := recvPaho(t, msgs); m.topic != "will/marker" {
			t.Fatalf("got %+v, want only the marker", m)
		}
		noPaho(t, msgs, 50*time.Millisecond)
	})
}
