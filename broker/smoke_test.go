package broker_test

import (
	"testing"
	"time"

	"github.com/edged/edged/broker"
	"github.com/edged/edged/broker/packet"
)

func TestSmokePubSub(t *testing.T) {
	_, addr := startBroker(t, broker.Config{})
	sub := dialRaw(t, addr)
	sub.connect(&packet.Connect{ClientID: "sub", CleanSession: true}, false, packet.Success)
	sub.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "a/+", QoS: 1}}})
	sub.expect(&packet.Suback{PacketID: 1, Reasons: []packet.Reason{1}})
	pub := dialRaw(t, addr)
	pub.connect(&packet.Connect{ClientID: "pub", CleanSession: true}, false, packet.Success)
	pub.send(&packet.Publish{Topic: "a/b", QoS: 1, PacketID: 7, Payload: []byte("x")})
	pub.expect(&packet.Puback{PacketID: 7})
	sub.expect(&packet.Publish{Topic: "a/b", QoS: 1, PacketID: 1, Payload: []byte("x")})
	sub.send(&packet.Puback{PacketID: 1})
	sub.send(&packet.Disconnect{})
	sub.expectClosed()
	pub.expectNothing(50 * time.Millisecond)
}
