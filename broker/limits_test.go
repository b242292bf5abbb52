package broker_test

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/edged/edged/broker"
	"github.com/edged/edged/broker/packet"
	"github.com/edged/edged/broker/packet/packettest"
)

// Limits.MaxPacketSize: a packet whose remaining length is over the limit
// closes the connection (publishing the will), and the broker decides from
// the fixed header without waiting for the body.
func TestMaxPacketSize(t *testing.T) {
	_, addr := startBroker(t, broker.Config{Limits: broker.Limits{MaxPacketSize: 1024}})
	watcher := dialConnect(t, addr, "watcher", true)
	watcher.sub("big/#", 0)
	watcher.sub("will/#", 0)

	t.Run("fits", func(t *testing.T) {
		c := dialConnect(t, addr, "fits", true)
		payload := bytes.Repeat([]byte("x"), 1000)
		c.pub("big/ok", string(payload), 1, false, 1)
		watcher.expectPublish("big/ok", string(payload), 0, false, false)
	})
	t.Run("2000-byte payload", func(t *testing.T) {
		c := dialRaw(t, addr)
		c.connect(&packet.Connect{ClientID: "big", CleanSession: true,
			Will: &packet.Will{Topic: "will/big", Payload: []byte("gone")}}, false, packet.Success)
		c.send(&packet.Publish{Topic: "big/no", Payload: bytes.Repeat([]byte("y"), 2000)})
		c.expectClosed()
		watcher.expectPublish("will/big", "gone", 0, false, false) // not big/no
	})
	for _, tc := range []struct {
		name    string
		connect bool
		header  string
	}{
		{"huge PUBLISH header, no body", true, "\x30\xff\xff\xff\x7f"},
		{"just over the limit, no body", true, "\x30\x81\x08"}, // 1025
		{"huge CONNECT header before CONNECT, no body", false, "\x10\xff\xff\xff\x7f"},
		{"huge SUBSCRIBE header, no body", true, "\x82\x80\x80\x04"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, addr)
			if tc.connect {
				c.connect(&packet.Connect{ClientID: "huge", CleanSession: true}, false, packet.Success)
			}
			c.write([]byte(tc.header))
			// ConnectTimeout and keepalive are long: only the size check
			// can close the connection this soon.
			c.closedWithin(2 * time.Second)
		})
	}
	watcher.sync()
}

// A client that never sends CONNECT is closed after Config.ConnectTimeout.
func TestConnectTimeout(t *testing.T) {
	_, addr := startBroker(t, broker.Config{ConnectTimeout: 200 * time.Millisecond})
	c := dialRaw(t, addr)
	start := time.Now()
	c.closedWithin(3 * time.Second)
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Fatalf("closed after %s, want ConnectTimeout 200ms", d)
	}
}

// A subscriber that stops reading must not block publishers: with a small
// Limits.MaxWriteQueue its QoS 0 messages are dropped and counted, or it is
// disconnected as a slow consumer.
func TestSlowConsumer(t *testing.T) {
	t.Parallel()
	s, addr := startBroker(t, broker.Config{Limits: broker.Limits{MaxWriteQueue: 8}})
	slow := dialSmallRecvBuf(t, addr)
	slow.connect(&packet.Connect{ClientID: "slow", CleanSession: true}, false, packet.Success)
	slow.sub("flood", 0)
	// slow never reads again.

	fast := dialConnect(t, addr, "fast", true)
	fast.sub("flood/fast", 0)

	pub := dialConnect(t, addr, "pub", true)
	payload := bytes.Repeat([]byte("z"), 900)
	var batch []byte
	for range 50 {
		batch = (&packet.Publish{Topic: "flood", Payload: payload}).AppendTo(batch, packet.V311)
	}
	start := time.Now()
	for range 100 { // 5000 messages, about 4.5 MB
		pub.write(batch) // fails after 5s if the broker stops reading us
	}
	pub.sync()
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("publishing took %s: the publisher was held back by the slow subscriber", d)
	}
	// Other subscribers are still served.
	pub.pub("flood/fast", "ok", 0, false, 0)
	fast.expectPublish("flood/fast", "ok", 0, false, false)

	st := s.Stats()
	if st.MsgsDropped == 0 && st.SlowConsumers == 0 {
		t.Fatalf("MsgsDropped = 0 and SlowConsumers = 0 after 5000 messages to a stalled subscriber (sent %d)", st.MsgsSent)
	}
	t.Logf("dropped %d, slow consumers %d, sent %d", st.MsgsDropped, st.SlowConsumers, st.MsgsSent)
}

// A malformed packet, or a packet only a server may send, closes the
// connection that sent it [MQTT-4.8.0-1] [MQTT-2.2.2-2] and nothing else:
// another client keeps working.
func TestMalformedClosesOnlyThatConnection(t *testing.T) {
	_, addr := startBroker(t, broker.Config{})
	bystander := dialConnect(t, addr, "bystander", true)
	bystander.sub("alive", 0)
	pub := dialConnect(t, addr, "pub", true)

	type badCase struct {
		name string
		raw  []byte
	}
	var cases []badCase
	for _, tc := range packettest.Invalid {
		cases = append(cases, badCase{tc.Name, tc.Raw})
	}
	for _, tc := range packettest.Valid {
		switch tc.Packet.(type) {
		case *packet.Connack, *packet.Suback, *packet.Unsuback, *packet.Pingresp, *packet.Connect:
			cases = append(cases, badCase{"client sends " + tc.Name, tc.Raw})
		}
	}
	// Rules of the packet body, with the statement each breaks.
	cases = append(cases, []badCase{
		{"SUBSCRIBE requested QoS 3 [MQTT-3.8.3-4]", []byte("\x82\x06\x00\x01\x00\x01a\x03")},
		{"SUBSCRIBE reserved bits in QoS byte [MQTT-3.8.3-4]", []byte("\x82\x06\x00\x01\x00\x01a\x81")},
		{"SUBSCRIBE without filters [MQTT-3.8.3-3]", []byte("\x82\x02\x00\x01")},
		{"UNSUBSCRIBE without filters [MQTT-3.10.3-2]", []byte("\xa2\x02\x00\x01")},
		{"PUBLISH QoS 3 [MQTT-3.3.1-4]", []byte("\x36\x05\x00\x01t\x00\x01")},
		{"PUBLISH QoS 0 with DUP [MQTT-3.3.1-2]", []byte("\x38\x03\x00\x01t")},
		{"PUBLISH topic with U+0000 [MQTT-4.7.3-2]", []byte("\x30\x05\x00\x03a\x00b")},
		{"PUBLISH topic not UTF-8 [MQTT-1.5.3-1]", []byte("\x30\x03\x00\x01\xff")},
		{"SUBSCRIBE filter not UTF-8 [MQTT-1.5.3-1]", []byte("\x82\x06\x00\x01\x00\x01\xff\x00")},
	}...)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dialConnect(t, addr, fmt.Sprint("bad", i), true)
			c.write(tc.raw)
			c.expectClosed()
			pub.pub("alive", tc.name, 0, false, 0)
			bystander.expectPublish("alive", tc.name, 0, false, false)
		})
	}
}
