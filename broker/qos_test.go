package broker_test

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/edged/edged/broker"
	"github.com/edged/edged/broker/packet"
)

// collect reads packets until n PUBLISHes have arrived and every QoS 2 one
// among them is complete, answering as a well-behaved subscriber (PUBACK,
// PUBREC, PUBCOMP) however the broker interleaves its packets. It fails on
// any packet other than PUBLISH or a PUBREL for an outstanding id.
func (c *rawClient) collect(n int) []*packet.Publish {
	c.t.Helper()
	var got []*packet.Publish
	awaitRel := map[uint16]bool{}
	for len(got) < n || len(awaitRel) > 0 {
		switch p := c.next().(type) {
		case *packet.Publish:
			got = append(got, p)
			switch p.QoS {
			case 1:
				c.send(&packet.Puback{PacketID: p.PacketID})
			case 2:
				if awaitRel[p.PacketID] {
					c.t.Fatalf("got %s while its id is waiting for PUBREL", describe(p))
				}
				awaitRel[p.PacketID] = true
				c.send(&packet.Pubrec{PacketID: p.PacketID})
			}
		case *packet.Pubrel:
			if !awaitRel[p.PacketID] {
				c.t.Fatalf("PUBREL for id %d, which is not waiting for one", p.PacketID)
			}
			delete(awaitRel, p.PacketID)
			c.send(&packet.Pubcomp{PacketID: p.PacketID})
		default:
			c.t.Fatalf("got %s, want PUBLISH or PUBREL", describe(p))
		}
	}
	return got
}

// waitQueued waits until the broker holds exactly n unacknowledged or
// queued outbound messages over all sessions.
func waitQueued(t *testing.T, s *broker.Server, n int64) {
	t.Helper()
	waitFor(t, 5*time.Second, func() error {
		if q := s.Stats().QueuedMessages; q != n {
			return fmt.Errorf("%d messages queued or in flight, want %d", q, n)
		}
		return nil
	})
}

// The publisher side of each QoS: nothing back for QoS 0, PUBACK with the
// same id for QoS 1 [MQTT-4.3.2-2], PUBREC then PUBCOMP for QoS 2
// [MQTT-4.3.3-2]. The subscriber side: the message at that QoS with a
// non-zero id for QoS 1 and 2 [MQTT-2.3.1-1]; the broker forgets it once
// PUBACK, or PUBREC/PUBREL/PUBCOMP, complete [MQTT-4.3.2-1] [MQTT-4.3.3-1].
func TestQoSFlowsBothDirections(t *testing.T) {
	s, addr := startBroker(t, broker.Config{})
	sub := dialConnect(t, addr, "sub", true)
	sub.sub("q/#", 2)
	pub := dialConnect(t, addr, "pub", true)
	for _, qos := range []byte{0, 1, 2} {
		t.Run("QoS "+strconv.Itoa(int(qos)), func(t *testing.T) {
			topic := "q/" + strconv.Itoa(int(qos))
			pub.send(&packet.Publish{Topic: topic, Payload: []byte("m"), QoS: qos, PacketID: 0x1234 * uint16(min(qos, 1))})
			switch qos {
			case 0:
				pub.sync() // nothing but the PINGRESP comes back
			case 1:
				pub.expect(&packet.Puback{PacketID: 0x1234})
			case 2:
				pub.expect(&packet.Pubrec{PacketID: 0x1234})
				pub.send(&packet.Pubrel{PacketID: 0x1234})
				pub.expect(&packet.Pubcomp{PacketID: 0x1234})
			}

			id := sub.expectPublish(topic, "m", qos, false, false)
			switch qos {
			case 1:
				waitQueued(t, s, 1) // in flight until PUBACK
				sub.send(&packet.Puback{PacketID: id})
			case 2:
				waitQueued(t, s, 1)
				sub.send(&packet.Pubrec{PacketID: id})
				sub.expect(&packet.Pubrel{PacketID: id})
				// [MQTT-4.3.3-1]: still held until PUBCOMP.
				sub.expectNothing(50 * time.Millisecond)
				waitQueued(t, s, 1)
				sub.send(&packet.Pubcomp{PacketID: id})
			}
			waitQueued(t, s, 0)
			sub.sync()
		})
	}
}

// A PUBREC repeated by the subscriber gets its PUBREL again, and an ack for
// a QoS 2 message of the wrong kind (PUBACK) does not complete it.
func TestQoS2OutboundRepeatedPubrec(t *testing.T) {
	s, addr := startBroker(t, broker.Config{})
	sub := dialConnect(t, addr, "sub", true)
	sub.sub("x", 2)
	pub := dialConnect(t, addr, "pub", true)
	pub.pub("x", "m", 2, false, 1)
	id := sub.expectPublish("x", "m", 2, false, false)
	sub.send(&packet.Puback{PacketID: id})
	sub.sync()
	waitQueued(t, s, 1)
	sub.send(&packet.Pubrec{PacketID: id})
	sub.expect(&packet.Pubrel{PacketID: id})
	sub.send(&packet.Pubrec{PacketID: id})
	sub.expect(&packet.Pubrel{PacketID: id})
	sub.send(&packet.Pubcomp{PacketID: id})
	waitQueued(t, s, 0)
}

// The delivery QoS is the minimum of the published QoS and the granted QoS
// [MQTT-3.8.4-6]: QoS 2 to a QoS 1 subscription arrives as QoS 1, QoS 1 to
// a QoS 0 subscription as QoS 0.
func TestQoSDowngrade_MQTT_3_8_4_6(t *testing.T) {
	_, addr := startBroker(t, broker.Config{})
	pub := dialConnect(t, addr, "pub", true)
	for subQoS := byte(0); subQoS <= 2; subQoS++ {
		for pubQoS := byte(0); pubQoS <= 2; pubQoS++ {
			name := fmt.Sprintf("publish QoS %d to subscription QoS %d", pubQoS, subQoS)
			t.Run(name, func(t *testing.T) {
				topic := fmt.Sprintf("dg/%d/%d", pubQoS, subQoS)
				sub := dialConnect(t, addr, "sub"+topic, true)
				sub.sub(topic, subQoS)
				pub.pub(topic, name, pubQoS, false, 1)
				want := min(pubQoS, subQoS)
				p := sub.nextPublish()
				if p.QoS != want || string(p.Payload) != name {
					t.Fatalf("got %s, want QoS %d", describe(p), want)
				}
				sub.ackIncoming(p)
				sub.sync()
			})
		}
	}
}

// Packet ids of QoS 1 and 2 messages in flight to one client are non-zero
// and unique [MQTT-2.3.1-1] [MQTT-2.3.1-2], also as ids are freed and
// reused.
func TestPacketIDsUniqueInflight_MQTT_2_3_1_2(t *testing.T) {
	_, addr := startBroker(t, broker.Config{Limits: broker.Limits{MaxInflight: 16}})
	sub := dialConnect(t, addr, "sub", true)
	sub.sub("ids", 2)
	pub := dialConnect(t, addr, "pub", true)

	inflight := map[uint16]bool{}
	take := func(n int) []uint16 {
		t.Helper()
		var ids []uint16
		for range n {
			p := sub.nextPublish()
			if p.PacketID == 0 || inflight[p.PacketID] {
				t.Fatalf("got %s: id zero or already in flight (%v)", describe(p), inflight)
			}
			inflight[p.PacketID] = true
			ids = append(ids, p.PacketID)
		}
		return ids
	}
	for i := range 100 {
		pub.pub("ids", strconv.Itoa(i), byte(1+i%2), false, uint16(i+1))
	}
	got := 0
	ids := take(16)
	got += 16
	sub.expectNothing(50 * time.Millisecond) // the window is full
	for got < 100 {
		// Complete every other message in flight; as many new ones come
		// in, and their ids must not collide with those still in flight.
		n := 0
		for i, id := range ids {
			if i%2 == 1 {
				continue
			}
			sub.send(&packet.Puback{PacketID: id})
			sub.send(&packet.Pubrec{PacketID: id})
			delete(inflight, id)
			n++
		}
		// PUBREL for the QoS 2 ones among them; PUBACK went to QoS 1 ones,
		// the wrong-kind ack is ignored either way.
		var fresh []uint16
		for len(fresh) < min(n, 100-got) {
			switch p := sub.next().(type) {
			case *packet.Pubrel:
				sub.send(&packet.Pubcomp{PacketID: p.PacketID})
			case *packet.Publish:
				if p.PacketID == 0 || inflight[p.PacketID] {
					t.Fatalf("got %s: id zero or already in flight", describe(p))
				}
				inflight[p.PacketID] = true
				fresh = append(fresh, p.PacketID)
			default:
				t.Fatalf("got %s", describe(p))
			}
		}
		got += len(fresh)
		var keep []uint16
		for i, id := range ids {
			if i%2 == 1 {
				keep = append(keep, id)
			}
		}
		ids = append(keep, fresh...)
	}
}

// Messages on one topic from one publisher reach a subscriber in the order
// they were published [MQTT-4.6.0-5], and the publisher's acknowledgements
// come back in the order of its PUBLISHes [MQTT-4.6.0-2] [MQTT-4.6.0-3].
func TestInOrderDelivery_MQTT_4_6_0_5(t *testing.T) {
	const n = 100
	for _, qos := range []byte{0, 1, 2} {
		t.Run("QoS "+strconv.Itoa(int(qos)), func(t *testing.T) {
			t.Parallel()
			_, addr := startBroker(t, broker.Config{})
			sub := dialConnect(t, addr, "sub", true)
			sub.sub("seq", qos)
			pub := dialConnect(t, addr, "pub", true)
			var b []byte
			for i := range n {
				id := uint16(0)
				if qos > 0 {
					id = uint16(i + 1)
				}
				b = (&packet.Publish{Topic: "seq", Payload: []byte(strconv.Itoa(i)), QoS: qos, PacketID: id}).AppendTo(b, packet.V311)
			}
			pub.write(b) // pipelined: the broker reads them back to back
			switch qos {
			case 1:
				for i := range n {
					pub.expect(&packet.Puback{PacketID: uint16(i + 1)})
				}
			case 2:
				for i := range n {
					pub.expect(&packet.Pubrec{PacketID: uint16(i + 1)})
				}
				for i := range n {
					pub.send(&packet.Pubrel{PacketID: uint16(i + 1)})
				}
				for i := range n {
					pub.expect(&packet.Pubcomp{PacketID: uint16(i + 1)})
				}
			}
			got := sub.collect(n)
			for i, p := range got {
				if string(p.Payload) != strconv.Itoa(i) || p.QoS != qos {
					t.Fatalf("message %d: got %s, want payload %d at QoS %d", i, describe(p), i, qos)
				}
			}
		})
	}
}

// A QoS 2 PUBLISH re-sent (DUP) before PUBREL is acknowledged with PUBREC
// again but delivered only once [MQTT-4.3.3-2].
func TestQoS2InboundExactlyOnce_MQTT_4_3_3_2(t *testing.T) {
	_, addr := startBroker(t, broker.Config{})
	sub := dialConnect(t, addr, "sub", true)
	sub.sub("once", 2)
	pub := dialConnect(t, addr, "pub", true)
	p := &packet.Publish{Topic: "once", Payload: []byte("x"), QoS: 2, PacketID: 42}
	pub.send(p)
	pub.expect(&packet.Pubrec{PacketID: 42})
	dup := *p
	dup.Dup = true
	pub.send(&dup)
	pub.expect(&packet.Pubrec{PacketID: 42})
	pub.send(&dup)
	pub.expect(&packet.Pubrec{PacketID: 42})
	pub.send(&packet.Pubrel{PacketID: 42})
	pub.expect(&packet.Pubcomp{PacketID: 42})
	pub.pub("once", "marker", 0, false, 0)

	got := sub.collect(2)
	if string(got[0].Payload) != "x" || string(got[1].Payload) != "marker" {
		t.Fatalf("got %s then %s, want x once then marker", describe(got[0]), describe(got[1]))
	}

	// After PUBREL the id is free: the same id carries a new message.
	pub.pub("once", "again", 2, false, 42)
	if got := sub.collect(1); string(got[0].Payload) != "again" {
		t.Fatalf("got %s, want again", describe(got[0]))
	}
}

// PUBREL for an id the broker does not know still gets PUBCOMP
// [MQTT-4.3.3-2]: the client may be finishing a flow the server completed.
func TestPubrelUnknownID(t *testing.T) {
	_, addr := startBroker(t, broker.Config{})
	c := dialConnect(t, addr, "c", true)
	for _, id := range []uint16{1, 99, 65535} {
		c.send(&packet.Pubrel{PacketID: id})
		c.expect(&packet.Pubcomp{PacketID: id})
	}
}
