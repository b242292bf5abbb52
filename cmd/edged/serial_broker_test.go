package main

import (
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/edged/edged/broker/packet"
	"github.com/edged/edged/internal/ptytest"
	"github.com/edged/edged/internal/testutil"
	"github.com/edged/edged/serialio"
)

// Sensors on a serial line are ordinary MQTT clients of the broker (issue
// 4): each test runs the real broker in-process with a TCP listener and a
// serialio Listener on a kernel PTY, opened by go.bug.st/serial as a UART;
// the sensor is simulated on the PTY's master end with cobs-crc16 frames.

// A sensor connects with a persistent session, subscribes, publishes QoS 0,
// 1 (PUBACK) and 2 (PUBREC/PUBREL/PUBCOMP) and a retained message, which a
// TCP subscriber sees; a TCP publisher's message reaches the sensor's
// subscription; DISCONNECT ends the channel without a RESET.
func TestSerialSensorPubSub(t *testing.T) {
	sb := startSerialBroker(t)
	port := sb.addPort(t, "uart0", serialio.Config{})
	s := newSensor(t, port.master, nil)
	obs := dialObserver(t, sb.addr, "observer", true)
	obs.subscribe(t, "s1/#", 2)

	if s.connect(t, 0, &packet.Connect{ClientID: "s1", KeepAlive: 30}) {
		t.Fatal("session present on first connect")
	}
	s.subscribe(t, 0, 1, "cmd/s1", 1)

	s.send(t, 0, &packet.Publish{Topic: "s1/q0", Payload: []byte("zero")})
	obs.expect(t, 5*time.Second, "s1/q0", "zero")

	s.send(t, 0, &packet.Publish{QoS: 1, PacketID: 2, Topic: "s1/q1", Payload: []byte("one")})
	if p, ok := s.nextPacket(t, 0).(*packet.Puback); !ok || p.PacketID != 2 {
		t.Fatalf("want PUBACK 2, got %#v", p)
	}
	if p := obs.expect(t, 5*time.Second, "s1/q1", "one"); p.QoS != 1 {
		t.Fatalf("QoS %d, want 1", p.QoS)
	}

	s.send(t, 0, &packet.Publish{QoS: 2, PacketID: 3, Topic: "s1/q2", Payload: []byte("two")})
	if p, ok := s.nextPacket(t, 0).(*packet.Pubrec); !ok || p.PacketID != 3 {
		t.Fatalf("want PUBREC 3, got %#v", p)
	}
	s.send(t, 0, &packet.Pubrel{PacketID: 3})
	if p, ok := s.nextPacket(t, 0).(*packet.Pubcomp); !ok || p.PacketID != 3 {
		t.Fatalf("want PUBCOMP 3, got %#v", p)
	}
	if p := obs.expect(t, 5*time.Second, "s1/q2", "two"); p.QoS != 2 {
		t.Fatalf("QoS %d, want 2", p.QoS)
	}

	s.send(t, 0, &packet.Publish{QoS: 1, PacketID: 4, Retain: true, Topic: "s1/state", Payload: []byte("on")})
	if p, ok := s.nextPacket(t, 0).(*packet.Puback); !ok || p.PacketID != 4 {
		t.Fatalf("want PUBACK 4, got %#v", p)
	}
	if p := obs.expect(t, 5*time.Second, "s1/state", "on"); p.Retain {
		t.Fatal("live delivery of a retained message has retain set")
	}
	late := dialObserver(t, sb.addr, "late", true)
	late.subscribe(t, "s1/state", 1)
	if p := late.expect(t, 5*time.Second, "s1/state", "on"); !p.Retain {
		t.Fatal("retained message delivered to a later subscriber without retain")
	}

	// TCP to sensor.
	pub := dialObserver(t, sb.addr, "pub", true)
	pub.publish(t, &packet.Publish{QoS: 1, PacketID: 9, Topic: "cmd/s1", Payload: []byte("open valve")})
	p, ok := s.nextPacket(t, 0).(*packet.Publish)
	if !ok || p.Topic != "cmd/s1" || string(p.Payload) != "open valve" || p.QoS != 1 || p.Dup {
		t.Fatalf("sensor got %#v", p)
	}
	s.send(t, 0, &packet.Puback{PacketID: p.PacketID})

	s.send(t, 0, &packet.Pingreq{})
	if _, ok := s.nextPacket(t, 0).(*packet.Pingresp); !ok {
		t.Fatal("want PINGRESP")
	}
	s.send(t, 0, &packet.Disconnect{})
	s.expectNothing(t, 0, 300*time.Millisecond) // no RESET after DISCONNECT
	obs.expectNone(t, 0)                        // QoS 2 arrived exactly once
	st := port.ln.Stats()
	if st.ResetsSent != 0 || st.Dropped() != 0 || st.ConnsOpened != 1 || st.FramesIn != 10 {
		t.Fatalf("stats %+v", st)
	}
}

// Two channels on one port are two clients, each with its own client id,
// subscriptions, will and session.
func TestSerialTwoChannels(t *testing.T) {
	sb := startSerialBroker(t)
	port := sb.addPort(t, "hub", serialio.Config{})
	s := newSensor(t, port.master, nil)
	obs := dialObserver(t, sb.addr, "observer", true)
	obs.subscribe(t, "wills/#", 1)

	for ch, id := range []string{"hubA", "hubB"} {
		s.connect(t, byte(ch), &packet.Connect{ClientID: id, KeepAlive: 30,
			Will: &packet.Will{Topic: "wills/" + id, Payload: []byte("gone"), QoS: 1}})
		s.subscribe(t, byte(ch), 1, "to/"+id, 1)
	}
	pub := dialObserver(t, sb.addr, "pub", true)
	for _, id := range []string{"hubB", "hubA"} {
		pub.publish(t, &packet.Publish{QoS: 1, PacketID: 1, Topic: "to/" + id, Payload: []byte("for " + id)})
	}
	for ch, id := range []string{"hubA", "hubB"} {
		p, ok := s.nextPacket(t, byte(ch)).(*packet.Publish)
		if !ok || p.Topic != "to/"+id || string(p.Payload) != "for "+id {
			t.Fatalf("channel %d got %#v", ch, p)
		}
		s.send(t, byte(ch), &packet.Puback{PacketID: p.PacketID})
	}

	// hubB leaves cleanly (no will); hubA is unaffected.
	s.send(t, 1, &packet.Disconnect{})
	obs.expectNone(t, 300*time.Millisecond)
	pub.publish(t, &packet.Publish{QoS: 1, PacketID: 2, Topic: "to/hubA", Payload: []byte("still here")})
	if p, ok := s.nextPacket(t, 0).(*packet.Publish); !ok || string(p.Payload) != "still here" {
		t.Fatalf("channel 0 got %#v", p)
	} else {
		s.send(t, 0, &packet.Puback{PacketID: p.PacketID})
	}
	// hubB's session, with its subscription, survived on the broker: a
	// message queued while it was away is delivered when it comes back.
	pub.publish(t, &packet.Publish{QoS: 1, PacketID: 3, Topic: "to/hubB", Payload: []byte("queued")})
	if !s.connect(t, 1, &packet.Connect{ClientID: "hubB", KeepAlive: 30}) {
		t.Fatal("hubB: session not present on reconnect")
	}
	if p, ok := s.nextPacket(t, 1).(*packet.Publish); !ok || string(p.Payload) != "queued" {
		t.Fatalf("channel 1 got %#v", p)
	}
	s.expectNothing(t, 0, 100*time.Millisecond)
	if st := port.ln.Stats(); st.ConnsOpened != 3 {
		t.Fatalf("%d conns opened, want 3", st.ConnsOpened)
	}
}

// When the port goes away, every sensor on it loses its connection as a
// network loss: the broker publishes their wills. An unplugged adapter
// that comes back (the by-id link points to a new tty) is reopened and the
// sensor finds its session.
func TestSerialWillOnPortLoss(t *testing.T) {
	tests := []struct {
		name   string
		unplug func(t *testing.T, port *serialPort)
		replug bool
	}{
		{"line hangs up", func(t *testing.T, port *serialPort) { port.master.Close() }, false},
		{"adapter unplugged and replugged", func(t *testing.T, port *serialPort) {
			if err := os.Remove(port.dev); err != nil {
				t.Fatal(err)
			}
			port.master.Close()
		}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sb := startSerialBroker(t)
			port := sb.addPort(t, "usb0", serialio.Config{})
			s := newSensor(t, port.master, nil)
			obs := dialObserver(t, sb.addr, "observer", true)
			obs.subscribe(t, "wills/#", 1)
			for ch, id := range []string{"a", "b"} {
				s.connect(t, byte(ch), &packet.Connect{ClientID: id, KeepAlive: 60,
					Will: &packet.Will{Topic: "wills/" + id, Payload: []byte("lost"), QoS: 1}})
			}
			tc.unplug(t, port)
			got := map[string]bool{}
			for range 2 {
				select {
				case p := <-obs.msgs:
					got[p.Topic] = true
				case <-time.After(5 * time.Second):
					t.Fatalf("wills published: %v, want both", got)
				}
			}
			if !got["wills/a"] || !got["wills/b"] {
				t.Fatalf("wills published: %v", got)
			}
			testutil.WaitFor(t, 5*time.Second, func() error {
				if st := port.ln.Stats(); st.Open || st.PortLosses != 1 {
					return fmt.Errorf("stats %+v", st)
				}
				return nil
			})
			if !tc.replug {
				return
			}
			m := ptytest.Link(t, port.dev)
			waitPortOpen(t, port.ln, 2)
			s2 := newSensor(t, m, nil)
			if !s2.connect(t, 0, &packet.Connect{ClientID: "a", KeepAlive: 60}) {
				t.Fatal("session lost across the replug")
			}
			s2.send(t, 0, &packet.Publish{Topic: "wills/a", Payload: []byte("back")})
			obs.expect(t, 5*time.Second, "wills/a", "back")
		})
	}
}

// Keepalive is enforced through the serial conn's read deadline: a sensor
// with keepalive 1 that goes quiet is dropped after 1.5 s, its will is
// published, and it is told with a RESET.
func TestSerialKeepAlive(t *testing.T) {
	sb := startSerialBroker(t)
	port := sb.addPort(t, "uart0", serialio.Config{})
	s := newSensor(t, port.master, nil)
	obs := dialObserver(t, sb.addr, "observer", true)
	obs.subscribe(t, "wills/#", 1)
	s.connect(t, 0, &packet.Connect{ClientID: "sleepy", KeepAlive: 1,
		Will: &packet.Will{Topic: "wills/sleepy", Payload: []byte("timed out"), QoS: 1}})
	start := time.Now()
	obs.expect(t, 3*time.Second, "wills/sleepy", "timed out")
	if d := time.Since(start); d < time.Second {
		t.Fatalf("dropped after %s, before the keepalive", d)
	}
	if f := s.next(t, 0); !f.reset {
		t.Fatalf("want RESET 0, got %v", f)
	}
	if d := time.Since(start); d > 2500*time.Millisecond {
		t.Fatalf("dropped after %s; want about 1.5s", d)
	}
	if st := port.ln.Stats(); st.ResetsSent != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// A CONNECT on an open channel ends the old logical connection as a network
// loss (the will is published) and starts a new one on the same persistent
// session: the broker resends its unacknowledged QoS 1 message with DUP,
// and the sensor's own resend with DUP is acknowledged.
func TestSerialConnectReplacesChannel(t *testing.T) {
	sb := startSerialBroker(t)
	port := sb.addPort(t, "uart0", serialio.Config{})
	s := newSensor(t, port.master, nil)
	obs := dialObserver(t, sb.addr, "observer", true)
	obs.subscribe(t, "rep/#", 1)
	obs.subscribe(t, "wills/#", 1)
	connect := &packet.Connect{ClientID: "rep", KeepAlive: 30,
		Will: &packet.Will{Topic: "wills/rep", Payload: []byte("lost"), QoS: 1}}
	s.connect(t, 0, connect)
	s.subscribe(t, 0, 1, "to/rep", 1)

	pub := dialObserver(t, sb.addr, "pub", true)
	pub.publish(t, &packet.Publish{QoS: 1, PacketID: 1, Topic: "to/rep", Payload: []byte("cmd")})
	first, ok := s.nextPacket(t, 0).(*packet.Publish)
	if !ok || string(first.Payload) != "cmd" || first.Dup {
		t.Fatalf("sensor got %#v", first)
	}
	// The sensor does not acknowledge it, publishes QoS 1, and (as if the
	// PUBACK were lost on the line) connects again at once.
	data := &packet.Publish{QoS: 1, PacketID: 10, Topic: "rep/data", Payload: []byte("21.5")}
	s.send(t, 0, data, connect)

	// The old conn's PUBACK 10 may or may not have gone out before the
	// new CONNACK; everything else is ordered on the new conn.
	var sessionPresent, redelivered bool
	for !redelivered {
		switch p := s.nextPacket(t, 0).(type) {
		case *packet.Puback:
			if p.PacketID != 10 || sessionPresent {
				t.Fatalf("unexpected %#v", p)
			}
		case *packet.Connack:
			if p.Reason != packet.Success || !p.SessionPresent {
				t.Fatalf("second CONNACK %#v", p)
			}
			sessionPresent = true
		case *packet.Publish:
			if !sessionPresent || !p.Dup || p.PacketID != first.PacketID || string(p.Payload) != "cmd" {
				t.Fatalf("want the unacknowledged PUBLISH resent with DUP after CONNACK, got %#v", p)
			}
			redelivered = true
		default:
			t.Fatalf("unexpected %#v", p)
		}
	}
	s.send(t, 0, &packet.Puback{PacketID: first.PacketID})
	data.Dup = true
	s.send(t, 0, data)
	if p, ok := s.nextPacket(t, 0).(*packet.Puback); !ok || p.PacketID != 10 {
		t.Fatalf("want PUBACK 10 for the resend, got %#v", p)
	}
	got := map[string]int{}
	for got["wills/rep"] == 0 || got["rep/data"] == 0 {
		select {
		case p := <-obs.msgs:
			got[p.Topic]++
		case <-time.After(5 * time.Second):
			t.Fatalf("observer got %v; want the data and the will of the replaced connection", got)
		}
	}
	s.expectNothing(t, 0, 200*time.Millisecond)
	if st := port.ln.Stats(); st.ConnsOpened != 2 || st.ResetsSent != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// MQTT 5.0 over a serial line: the frame does not care what it carries. A
// 5.0 sensor's properties reach a 5.0 TCP subscriber and a 3.1.1 one gets
// the bare message; a command with properties and a subscription
// identifier comes down to the sensor; a property-borne protocol error
// (a topic alias the broker never allowed) ends only that channel, with
// DISCONNECT 0x94, as on TCP.
func TestSerialMQTT5(t *testing.T) {
	sb := startSerialBroker(t)
	port := sb.addPort(t, "uart0", serialio.Config{})
	s := newSensor(t, port.master, nil)
	obs := dialObserver(t, sb.addr, "observer", true)
	obs.subscribe(t, "s5/#", 1)
	v5, _ := dial5(t, sb.addr, "v5-app")
	v5.send(t, &packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "s5/#", QoS: 1}}})
	if sa, ok := v5.read(t, 5*time.Second).(*packet.Suback); !ok || len(sa.Reasons) != 1 || sa.Reasons[0] != packet.GrantedQoS1 {
		t.Fatalf("SUBACK %+v", sa)
	}

	hour := uint32(3600)
	s.connect(t, 0, &packet.Connect{ProtocolLevel: 5, ClientID: "s5", KeepAlive: 30,
		Properties: &packet.Properties{SessionExpiry: &hour}})
	s.send(t, 0, &packet.Subscribe{PacketID: 1, Properties: &packet.Properties{SubscriptionIDs: []uint32{7}},
		Subscriptions: []packet.Subscription{{Filter: "cmd/s5", QoS: 1}}})
	if sa, ok := s.nextPacket(t, 0).(*packet.Suback); !ok || len(sa.Reasons) != 1 || sa.Reasons[0] != packet.GrantedQoS1 {
		t.Fatalf("sensor SUBACK %#v", sa)
	}

	user := []packet.UserProperty{{Key: "unit", Value: "C"}, {Key: "fw", Value: "1.2"}}
	s.send(t, 0, &packet.Publish{QoS: 1, PacketID: 2, Topic: "s5/temp", Payload: []byte("21.5"),
		Properties: &packet.Properties{ContentType: "text/plain", User: user}})
	if p, ok := s.nextPacket(t, 0).(*packet.Puback); !ok || p.PacketID != 2 {
		t.Fatalf("want PUBACK 2, got %#v", p)
	}
	p, ok := v5.read(t, 5*time.Second).(*packet.Publish)
	if !ok || p.Topic != "s5/temp" || p.Properties == nil || p.Properties.ContentType != "text/plain" ||
		!slices.Equal(p.Properties.User, user) {
		t.Fatalf("5.0 subscriber got %#v", p)
	}
	v5.send(t, &packet.Puback{PacketID: p.PacketID})
	if p := obs.expect(t, 5*time.Second, "s5/temp", "21.5"); p.Properties != nil {
		t.Fatalf("3.1.1 subscriber got properties %+v", p.Properties)
	}

	corr := []byte("req-1")
	v5.send(t, &packet.Publish{QoS: 1, PacketID: 9, Topic: "cmd/s5", Payload: []byte("on"),
		Properties: &packet.Properties{ResponseTopic: "s5/reply", CorrelationData: corr}})
	cmd, ok := s.nextPacket(t, 0).(*packet.Publish)
	if !ok || cmd.Topic != "cmd/s5" || cmd.Properties == nil || cmd.Properties.ResponseTopic != "s5/reply" ||
		string(cmd.Properties.CorrelationData) != "req-1" || !slices.Equal(cmd.Properties.SubscriptionIDs, []uint32{7}) {
		t.Fatalf("sensor got %#v", cmd)
	}
	s.send(t, 0, &packet.Puback{PacketID: cmd.PacketID})

	// Hostile: a topic alias over the maximum (limits.topic_alias_maximum).
	bad := uint16(60000)
	s.send(t, 0, &packet.Publish{Topic: "s5/x", Properties: &packet.Properties{TopicAlias: &bad}})
	if d, ok := s.nextPacket(t, 0).(*packet.Disconnect); !ok || d.Reason != packet.TopicAliasInvalid {
		t.Fatalf("want DISCONNECT 0x94, got %#v", d)
	}
	// The channel is reset, as for any close the sensor did not ask for;
	// the port and the TCP clients are unaffected, and the sensor
	// reconnects.
	if f := s.next(t, 0); !f.reset {
		t.Fatalf("want RESET for channel 0, got %v", f)
	}
	s.connect(t, 0, &packet.Connect{ProtocolLevel: 5, ClientID: "s5", KeepAlive: 30,
		Properties: &packet.Properties{SessionExpiry: &hour}})
	s.send(t, 0, &packet.Publish{Topic: "s5/back", Payload: []byte("1")})
	obs.expect(t, 5*time.Second, "s5/back", "1")
}
