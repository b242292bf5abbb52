package broker_test

import (
	"strconv"
	"testing"

	"github.com/edged/edged/broker"
	"github.com/edged/edged/broker/packet"
)

// Topic filter matching: '+' matches one level, '#' any number including
// the parent level [MQTT-4.7.1-2] [MQTT-4.7.1-3]; filters starting with a
// wildcard do not match topics starting with '$' [MQTT-4.7.2-1]; matching
// is exact and case sensitive [MQTT-4.7.3-4].
func TestWildcardMatching_MQTT_4_7(t *testing.T) {
	_, addr := startBroker(t, broker.Config{})
	pub := dialConnect(t, addr, "pub", true)
	tests := []struct {
		filter, topic string
		match         bool
	}{
		{"a/b", "a/b", true},
		{"a/b", "A/b", false},
		{"a/b", "a/b/c", false},
		{"a/+", "a/b", true},
		{"a/+", "a/b/c", false},
		{"a/+", "a", false},
		{"a/+", "a/", true},
		{"a/+/c", "a/b/c", true},
		{"a/+/c", "a/b/d", false},
		{"+/+", "a/b", true},
		{"+", "a", true},
		{"+", "/a", false},
		{"+/a", "/a", true},
		{"a/#", "a", true},
		{"a/#", "a/b/c", true},
		{"a/#", "ab", false},
		{"a/#", "b/a", false},
		{"+/#", "a", true},
		{"#", "a/b/c", true},
		{"#", "/", true},
		{"#", "$app/x", false},
		{"+/x", "$app/x", false},
		{"+/#", "$app/x", false},
		{"$app/#", "$app/x", true},
		{"$app/+", "$app/x", true},
		{"$app/#", "$app", true},
		{"$app/x", "$app/x", true},
	}
	for i, tc := range tests {
		t.Run(tc.filter+" vs "+tc.topic, func(t *testing.T) {
			sub := dialConnect(t, addr, "sub"+strconv.Itoa(i), true)
			sub.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{
				{Filter: tc.filter, QoS: 0}, {Filter: "zz/marker", QoS: 0}}})
			sub.expect(&packet.Suback{PacketID: 1, Reasons: []packet.Reason{0, 0}})
			pub.pub(tc.topic, "t", 0, false, 0)
			pub.pub("zz/marker", "m", 0, false, 0)
			if tc.match {
				sub.expectPublish(tc.topic, "t", 0, false, false)
			}
			sub.expectPublish("zz/marker", "m", 0, false, false)
		})
	}
}

// A message matching several subscriptions of one client is delivered
// once, at the highest granted QoS [MQTT-3.3.5-1].
func TestOverlappingSubscriptions_MQTT_3_3_5_1(t *testing.T) {
	_, addr := startBroker(t, broker.Config{})
	sub := dialConnect(t, addr, "sub", true)
	sub.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{
		{Filter: "a/#", QoS: 0}, {Filter: "a/b", QoS: 1}, {Filter: "+/b", QoS: 0}}})
	sub.expect(&packet.Suback{PacketID: 1, Reasons: []packet.Reason{0, 1, 0}})
	pub := dialConnect(t, addr, "pub", true)
	pub.pub("a/b", "once", 2, false, 1)
	pub.pub("a/c", "marker", 0, false, 0)
	sub.recvExpect("a/b", "once", 1)
	sub.expectPublish("a/c", "marker", 0, false, false)
}

// Invalid filters get return code 0x80 while the valid ones in the same
// SUBSCRIBE are granted [MQTT-3.9.3-1] [MQTT-4.7.1-1] [MQTT-4.7.1-2]
// [MQTT-4.7.1-3] [MQTT-4.7.3-1].
func TestInvalidFilters_MQTT_4_7_1(t *testing.T) {
	_, addr := startBroker(t, broker.Config{})
	sub := dialConnect(t, addr, "sub", true)
	subs := []packet.Subscription{
		{Filter: "a/#/b", QoS: 1},
		{Filter: "ok/1", QoS: 1},
		{Filter: "a+", QoS: 0},
		{Filter: "", QoS: 0},
		{Filter: "#/a", QoS: 1},
		{Filter: "a/b#", QoS: 0},
		{Filter: "+a/b", QoS: 0},
		{Filter: "ok/+", QoS: 2},
	}
	f := packet.UnspecifiedError
	sub.send(&packet.Subscribe{PacketID: 9, Subscriptions: subs})
	sub.expect(&packet.Suback{PacketID: 9, Reasons: []packet.Reason{f, 1, f, f, f, f, f, 2}})
	pub := dialConnect(t, addr, "pub", true)
	pub.pub("ok/1", "x", 2, false, 1)
	sub.recvExpect("ok/1", "x", 2)
}

// A PUBLISH whose topic contains a wildcard, or is empty, is a protocol
// violation: the connection is closed [MQTT-3.3.2-2] [MQTT-4.7.3-1].
func TestPublishInvalidTopicCloses_MQTT_3_3_2_2(t *testing.T) {
	_, addr := startBroker(t, broker.Config{})
	watcher := dialConnect(t, addr, "watcher", true)
	watcher.sub("#", 0)
	for _, tc := range []struct{ name, raw string }{
		{"plus", "\x30\x05\x00\x03a/+x"},
		{"hash", "\x30\x05\x00\x03a/#x"},
		{"plus QoS 1", "\x32\x07\x00\x03+/a\x00\x01x"},
		{"empty", "\x30\x03\x00\x00x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialConnect(t, addr, "bad", true)
			c.write([]byte(tc.raw))
			c.expectClosed()
		})
	}
	watcher.sync() // nothing was delivered
}

// A SUBSCRIBE for an existing filter replaces its QoS [MQTT-3.8.4-3]; the
// message is then delivered once at the new QoS.
func TestResubscribeReplacesQoS_MQTT_3_8_4_3(t *testing.T) {
	_, addr := startBroker(t, broker.Config{})
	sub := dialConnect(t, addr, "sub", true)
	pub := dialConnect(t, addr, "pub", true)
	for i, qos := range []byte{2, 0, 1, 2} {
		sub.sub("rs", qos)
		pub.pub("rs", strconv.Itoa(i), 2, false, uint16(i+1))
		sub.recvExpect("rs", strconv.Itoa(i), qos)
	}
	sub.sync()
}

// UNSUBSCRIBE removes exactly the filters named (compared character by
// character, not matched) [MQTT-3.10.4-1] and stops deliveries for them
// [MQTT-3.10.4-2]; UNSUBACK comes back even when nothing was removed
// [MQTT-3.10.4-4] [MQTT-3.10.4-5], once per UNSUBSCRIBE [MQTT-3.10.4-6].
func TestUnsubscribe_MQTT_3_10_4(t *testing.T) {
	_, addr := startBroker(t, broker.Config{})
	sub := dialConnect(t, addr, "sub", true)
	sub.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{
		{Filter: "u/b", QoS: 1}, {Filter: "u/marker", QoS: 0}}})
	sub.expect(&packet.Suback{PacketID: 1, Reasons: []packet.Reason{1, 0}})
	pub := dialConnect(t, addr, "pub", true)

	// "u/+" is not subscribed; it does not remove "u/b".
	sub.send(&packet.Unsubscribe{PacketID: 2, Filters: []string{"u/+"}})
	sub.expect(&packet.Unsuback{PacketID: 2})
	pub.pub("u/b", "still", 1, false, 1)
	sub.recvExpect("u/b", "still", 1)

	// Unknown filters, several in one packet: one UNSUBACK.
	sub.send(&packet.Unsubscribe{PacketID: 3, Filters: []string{"never", "u/#", "#"}})
	sub.expect(&packet.Unsuback{PacketID: 3})

	sub.send(&packet.Unsubscribe{PacketID: 4, Filters: []string{"u/b", "nope"}})
	sub.expect(&packet.Unsuback{PacketID: 4})
	pub.pub("u/b", "gone", 1, false, 2)
	pub.pub("u/marker", "m", 0, false, 0)
	sub.expectPublish("u/marker", "m", 0, false, false)

	// Unsubscribing again still gets UNSUBACK.
	sub.send(&packet.Unsubscribe{PacketID: 5, Filters: []string{"u/b"}})
	sub.expect(&packet.Unsuback{PacketID: 5})
}

// Retained messages: stored and sent to new subscribers with retain 1
// [MQTT-3.3.1-5] [MQTT-3.3.1-6] [MQTT-3.3.1-8]; replaced by a newer one
// [MQTT-3.3.1-5]; deleted by an empty retained payload [MQTT-3.3.1-10],
// which is itself not stored [MQTT-3.3.1-11]; live deliveries to existing
// subscribers carry retain 0 [MQTT-3.3.1-9]. A QoS 0 retained message
// replaces too [MQTT-3.3.1-7].
func TestRetained_MQTT_3_3_1(t *testing.T) {
	_, addr := startBroker(t, broker.Config{})
	pub := dialConnect(t, addr, "pub", true)
	live := dialConnect(t, addr, "live", true)
	live.sub("r/1", 1)
	fresh := func(t *testing.T) *rawClient {
		t.Helper()
		c := dialConnect(t, addr, "fresh", true)
		c.sub("r/1", 1)
		return c
	}

	pub.pub("r/1", "v1", 1, true, 1)
	live.recvExpect("r/1", "v1", 1) // retain 0 when live
	c := fresh(t)
	id := c.expectPublish("r/1", "v1", 1, true, false)
	c.send(&packet.Puback{PacketID: id})
	c.sync()

	pub.pub("r/1", "v2", 0, true, 0)
	live.expectPublish("r/1", "v2", 0, false, false)
	c = fresh(t)
	c.expectPublish("r/1", "v2", 0, true, false)
	c.sync() // only the newest

	// A non-retained publish does not replace it.
	pub.pub("r/1", "not retained", 1, false, 2)
	live.recvExpect("r/1", "not retained", 1)
	c = fresh(t)
	c.expectPublish("r/1", "v2", 0, true, false)

	pub.pub("r/1", "", 1, true, 3)
	live.recvExpect("r/1", "", 1) // delivered as normal
	c = fresh(t)
	c.sync() // nothing retained any more
}

// A retained message is sent on subscribe at the lower of its QoS and the
// granted QoS.
func TestRetainedQoS(t *testing.T) {
	_, addr := startBroker(t, broker.Config{})
	pub := dialConnect(t, addr, "pub", true)
	pub.pub("rq/2", "two", 2, true, 1)
	pub.pub("rq/0", "zero", 0, true, 0)
	pub.pub("rq/1", "one", 1, true, 2)
	tests := []struct {
		topic   string
		payload string
		subQoS  byte
		want    byte
	}{
		{"rq/2", "two", 1, 1},
		{"rq/2", "two", 2, 2},
		{"rq/2", "two", 0, 0},
		{"rq/0", "zero", 2, 0},
		{"rq/1", "one", 2, 1},
		{"rq/1", "one", 0, 0},
	}
	for i, tc := range tests {
		t.Run(tc.topic+" sub QoS "+strconv.Itoa(int(tc.subQoS)), func(t *testing.T) {
			c := dialConnect(t, addr, "c"+strconv.Itoa(i), true)
			c.sub(tc.topic, tc.subQoS)
			id := c.expectPublish(tc.topic, tc.payload, tc.want, true, false)
			c.ackIncoming(&packet.Publish{QoS: tc.want, PacketID: id})
			c.sync()
		})
	}
}

// Wildcard subscriptions receive every matching retained message, and only
// those; '$' topics only for filters that do not start with a wildcard
// [MQTT-4.7.2-1].
func TestRetainedWildcard(t *testing.T) {
	_, addr := startBroker(t, broker.Config{})
	pub := dialConnect(t, addr, "pub", true)
	for _, topic := range []string{"w/a", "w/b/c", "x/y", "$X/w"} {
		pub.pub(topic, topic, 0, true, 0)
	}
	tests := []struct {
		filter string
		want   []string
	}{
		{"w/#", []string{"w/a", "w/b/c"}},
		{"+/a", []string{"w/a"}},
		{"w/+", []string{"w/a"}},
		{"#", []string{"w/a", "w/b/c", "x/y"}},
		{"$X/#", []string{"$X/w"}},
		{"nothing/#", nil},
	}
	for i, tc := range tests {
		t.Run(tc.filter, func(t *testing.T) {
			c := dialConnect(t, addr, "c"+strconv.Itoa(i), true)
			c.sub(tc.filter, 0)
			got := map[string]bool{}
			for range tc.want {
				p := c.nextPublish()
				if !p.Retain || string(p.Payload) != p.Topic {
					t.Fatalf("got %s, want a retained message", describe(p))
				}
				got[p.Topic] = true
			}
			c.sync() // no more
			for _, w := range tc.want {
				if !got[w] {
					t.Errorf("missing %q in %v", w, got)
				}
			}
		})
	}
}
