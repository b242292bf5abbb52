package broker_test

import (
	"bytes"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/edged/edged/broker"
	"github.com/edged/edged/broker/packet"
	"github.com/edged/edged/persist"
)

// Tests of the MQTT 5.0 message layer over real TCP: properties, message
// expiry, topic aliases, subscription options and identifiers, reason codes.

func u8p(v byte) *byte      { return &v }
func u16p(v uint16) *uint16 { return &v }
func u32p(v uint32) *uint32 { return &v }

// dialOpts5 connects client id over 5.0 with clean start clean and the
// given CONNECT properties, expecting CONNACK Success. Without clean start
// the session outlives the connection: a Session Expiry Interval of an
// hour unless props set one (5.0 ends a session at disconnect by default
// [MQTT-3.1.2-23]).
func dialOpts5(t testing.TB, addr, id string, clean bool, props *packet.Properties) (*rawClient, *packet.Connack) {
	t.Helper()
	if !clean && (props == nil || props.SessionExpiry == nil) {
		var p packet.Properties
		if props != nil {
			p = *props
		}
		hour := uint32(3600)
		p.SessionExpiry = &hour
		props = &p
	}
	c := dialRaw(t, addr)
	ca := c.connect5(&packet.Connect{ClientID: id, CleanSession: clean, Properties: props})
	if ca.Reason != packet.Success {
		t.Fatalf("CONNACK %v", ca.Reason)
	}
	return c, ca
}

// sub5 subscribes with the given options and subscription identifier (0
// none) and expects every filter granted its QoS.
func (c *rawClient) sub5(pid uint16, id uint32, subs ...packet.Subscription) {
	c.t.Helper()
	p := &packet.Subscribe{PacketID: pid, Subscriptions: subs}
	if id != 0 {
		p.Properties = &packet.Properties{SubscriptionIDs: []uint32{id}}
	}
	c.send(p)
	want := make([]packet.Reason, len(subs))
	for i, s := range subs {
		want[i] = packet.Reason(s.QoS)
	}
	c.expect(&packet.Suback{PacketID: pid, Reasons: want})
}

// fullProps are the forwardable properties of a PUBLISH: every one edged
// passes on, user properties with a repeated name in a set order.
func fullProps(expiry uint32) *packet.Properties {
	return &packet.Properties{
		PayloadFormat:   u8p(1),
		MessageExpiry:   u32p(expiry),
		ContentType:     "application/json",
		ResponseTopic:   "reply/to/me",
		CorrelationData: []byte{0, 1, 2, 0xff},
		User:            []packet.UserProperty{{Key: "b", Value: "2"}, {Key: "a", Value: "1"}, {Key: "b", Value: "1"}, {Key: "", Value: ""}},
	}
}

// checkForwarded fails unless got carries want's properties with a
// message expiry of at most want's and more than want's minus slack.
func checkForwarded(t testing.TB, got, want *packet.Properties, slack uint32) {
	t.Helper()
	if got == nil {
		t.Fatalf("no properties forwarded, want %+v", want)
	}
	g, w := *got, *want
	if w.MessageExpiry != nil {
		if g.MessageExpiry == nil || *g.MessageExpiry > *w.MessageExpiry || *g.MessageExpiry+slack < *w.MessageExpiry {
			t.Fatalf("message expiry %v, want at most %d and at least %d", g.MessageExpiry, *w.MessageExpiry, *w.MessageExpiry-slack)
		}
		g.MessageExpiry, w.MessageExpiry = nil, nil
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("forwarded properties\n got %+v\nwant %+v", g, w)
	}
}

// A 5.0 PUBLISH's properties reach a 5.0 subscriber unaltered (user
// properties in order [MQTT-3.3.2-17] [MQTT-3.3.2-18], payload format and
// content type [MQTT-3.3.2-4] [MQTT-3.3.2-20], response topic and
// correlation data [MQTT-3.3.2-15] [MQTT-3.3.2-16]), with the remaining
// expiry; a 3.1.1 subscriber gets the 3.1.1 packet, byte for byte what a
// 3.1.1 publisher's message gives it; a 5.0 subscriber of a 3.1.1
// publisher gets no properties. At QoS 0, 1 and 2.
func TestV5PropertiesForwarded(t *testing.T) {
	_, addr := startBroker(t, broker.Config{})
	s5, _ := dialOpts5(t, addr, "s5", true, nil)
	s5.sub5(1, 0, packet.Subscription{Filter: "p/#", QoS: 2})
	s3 := dialConnect(t, addr, "s3", true)
	s3.sub("p/#", 2)
	pub5, _ := dialOpts5(t, addr, "pub5", true, nil)
	pub3 := dialConnect(t, addr, "pub3", true)

	for qos := range byte(3) {
		want := fullProps(600)
		pub5.send(&packet.Publish{Topic: "p/5", Payload: []byte(`{"q":1}`), QoS: qos, PacketID: 7, Properties: want})
		switch qos {
		case 1:
			pub5.expect(&packet.Puback{PacketID: 7})
		case 2:
			pub5.expect(&packet.Pubrec{PacketID: 7})
			pub5.send(&packet.Pubrel{PacketID: 7})
			pub5.expect(&packet.Pubcomp{PacketID: 7})
		}
		got := s5.nextPublish()
		if got.Topic != "p/5" || string(got.Payload) != `{"q":1}` || got.QoS != qos {
			t.Fatalf("5.0 subscriber got %s", describe(got))
		}
		checkForwarded(t, got.Properties, fullProps(600), 2)
		s5.ackIncoming(got)

		// The 3.1.1 subscriber's bytes are exactly a 3.1.1 PUBLISH.
		s3.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		g3, err := packet.Read(s3.br, 0, packet.V311)
		if err != nil {
			t.Fatal(err)
		}
		p3 := g3.(*packet.Publish)
		if p3.Topic != "p/5" || string(p3.Payload) != `{"q":1}` || p3.Properties != nil {
			t.Fatalf("3.1.1 subscriber got %s", describe(p3))
		}
		if n, want := p3.Size(packet.V311), len("p/5")+2+len(`{"q":1}`)+2+map[bool]int{true: 2}[qos > 0]; n != want {
			t.Fatalf("3.1.1 PUBLISH is %d bytes, want %d", n, want)
		}
		s3.ackIncoming(p3)

		pub3.pub("p/3", "plain", qos, false, 9)
		if got := s5.nextPublish(); got.Topic != "p/3" || got.Properties != nil {
			t.Fatalf("5.0 subscriber of a 3.1.1 publisher got %s with %+v", describe(got), got.Properties)
		} else {
			s5.ackIncoming(got)
		}
		s3.ackIncoming(s3.nextPublish())
	}
}

// openStore opens a bbolt store at path, closed when the test ends.
// openStore is openDB, closed when the test ends.
func openStore(t *testing.T, path string) *persist.DB {
	t.Helper()
	db := openDB(t, path)
	t.Cleanup(func() { db.Close() })
	return db
}

// Message expiry with a store and a restart: an offline persistent
// session's queued message past its expiry is dropped, not sent
// [MQTT-3.3.2-5]; one within it comes with its properties, subscription
// identifier and the remaining interval [MQTT-3.3.2-6], also after the
// queue went to disk and the broker restarted. A retained message expires
// too; an unexpired one is sent with its remaining interval.
func TestV5MessageExpiryQueuedAndRetained(t *testing.T) {
	path := filepath.Join(t.TempDir(), "edged.db")
	db := openStore(t, path)
	// Queue limits small enough for the window to spill to disk is not
	// needed: the restart reads the queue from disk anyway.
	s, addr := startBroker(t, broker.Config{Store: db})
	sub, _ := dialOpts5(t, addr, "sub", false, nil)
	sub.sub5(1, 42, packet.Subscription{Filter: "e/#", QoS: 1})
	sub.disconnect()

	pub, _ := dialOpts5(t, addr, "pub", true, nil)
	pubWith := func(topic string, retain bool, pid uint16, props *packet.Properties) {
		t.Helper()
		pub.send(&packet.Publish{Topic: topic, Payload: []byte(topic), QoS: 1, Retain: retain, PacketID: pid, Properties: props})
		pub.expect(&packet.Puback{PacketID: pid})
	}
	pubWith("e/short", false, 1, &packet.Properties{MessageExpiry: u32p(1)})
	pubWith("e/long", false, 2, fullProps(300))
	pubWith("r/short", true, 3, &packet.Properties{MessageExpiry: u32p(1)})
	pubWith("r/long", true, 4, &packet.Properties{MessageExpiry: u32p(300), ContentType: "text/plain"})
	time.Sleep(1100 * time.Millisecond)

	shutdown(t, s)
	db.Close()
	db = openStore(t, path)
	_, addr = startBroker(t, broker.Config{Store: db})

	sub = dialRaw(t, addr)
	ca := sub.connect5(&packet.Connect{ClientID: "sub"})
	if !ca.SessionPresent {
		t.Fatal("session not present after the restart")
	}
	got := sub.nextPublish()
	if got.Topic != "e/long" {
		t.Fatalf("got %s first, want e/long (e/short expired)", describe(got))
	}
	want := fullProps(300)
	want.SubscriptionIDs = []uint32{42}
	checkForwarded(t, got.Properties, want, 5)
	sub.ackIncoming(got)
	sub.expectNothing(200 * time.Millisecond)

	r, _ := dialOpts5(t, addr, "r", true, nil)
	r.sub5(1, 0, packet.Subscription{Filter: "r/#", QoS: 1})
	got = r.nextPublish()
	if got.Topic != "r/long" || !got.Retain {
		t.Fatalf("got %s, want the retained r/long (r/short expired)", describe(got))
	}
	checkForwarded(t, got.Properties, &packet.Properties{MessageExpiry: u32p(300), ContentType: "text/plain"}, 5)
	r.ackIncoming(got)
	r.expectNothing(200 * time.Millisecond)
}

// An expired message in a connected session's memory queue (behind a full
// inflight window) is dropped when its turn comes.
func TestV5MessageExpiryMemoryQueue(t *testing.T) {
	_, addr := startBroker(t, broker.Config{Limits: broker.Limits{MaxInflight: 1}})
	sub, _ := dialOpts5(t, addr, "sub", true, nil)
	sub.sub5(1, 0, packet.Subscription{Filter: "m/#", QoS: 1})
	pub, _ := dialOpts5(t, addr, "pub", true, nil)
	pub.send(&packet.Publish{Topic: "m/1", Payload: []byte("1"), QoS: 1, PacketID: 1})
	pub.expect(&packet.Puback{PacketID: 1})
	pub.send(&packet.Publish{Topic: "m/2", Payload: []byte("2"), QoS: 1, PacketID: 2, Properties: &packet.Properties{MessageExpiry: u32p(1)}})
	pub.expect(&packet.Puback{PacketID: 2})
	pub.send(&packet.Publish{Topic: "m/3", Payload: []byte("3"), QoS: 1, PacketID: 3})
	pub.expect(&packet.Puback{PacketID: 3})
	first := sub.nextPublish()
	if first.Topic != "m/1" {
		t.Fatalf("got %s", describe(first))
	}
	time.Sleep(1100 * time.Millisecond)
	sub.ackIncoming(first)
	if got := sub.nextPublish(); got.Topic != "m/3" {
		t.Fatalf("got %s, want m/3 (m/2 expired in the queue)", describe(got))
	}
}

// Inbound topic aliases: CONNACK advertises Topic Alias Maximum; an alias
// set with a topic resolves a later empty topic; an alias over the maximum
// gets DISCONNECT 0x94 [MQTT-3.3.2-9] [MQTT-3.3.2-10]; an unknown alias with
// an empty topic, and a subscription identifier from a client
// [MQTT-3.3.4-6], DISCONNECT 0x82; alias 0, a property given twice, a
// property a PUBLISH may not carry close the connection (malformed or
// protocol error, from raw bytes).
func TestV5TopicAliasInbound(t *testing.T) {
	_, addr := startBroker(t, broker.Config{Limits: broker.Limits{TopicAliasMaximum: 4}})
	sub, _ := dialOpts5(t, addr, "sub", true, nil)
	sub.sub5(1, 0, packet.Subscription{Filter: "a/#", QoS: 0})

	pub, ca := dialOpts5(t, addr, "pub", true, nil)
	if ca.Properties == nil || ca.Properties.TopicAliasMaximum == nil || *ca.Properties.TopicAliasMaximum != 4 {
		t.Fatalf("CONNACK properties %+v, want topic alias maximum 4", ca.Properties)
	}
	pub.send(&packet.Publish{Topic: "a/long/topic/name", Payload: []byte("1"), Properties: &packet.Properties{TopicAlias: u16p(4)}})
	pub.send(&packet.Publish{Payload: []byte("2"), Properties: &packet.Properties{TopicAlias: u16p(4)}})
	pub.send(&packet.Publish{Topic: "a/other", Payload: []byte("3"), Properties: &packet.Properties{TopicAlias: u16p(4)}})
	pub.send(&packet.Publish{Payload: []byte("4"), QoS: 1, PacketID: 5, Properties: &packet.Properties{TopicAlias: u16p(4)}})
	pub.expect(&packet.Puback{PacketID: 5})
	for _, want := range []struct{ topic, payload string }{{"a/long/topic/name", "1"}, {"a/long/topic/name", "2"}, {"a/other", "3"}, {"a/other", "4"}} {
		got := sub.nextPublish()
		if got.Topic != want.topic || string(got.Payload) != want.payload || got.Properties != nil {
			t.Fatalf("got %s %+v, want %s %q without properties", describe(got), got.Properties, want.topic, want.payload)
		}
	}

	// Each is told why with a reason string, also when it goes on sending
	// (64 KiB of PINGREQ behind the bad PUBLISH, which the broker never
	// answers). The broker half-closes and drains the socket as for every
	// DISCONNECT it sends, so the close is not a reset that could discard
	// the DISCONNECT in flight; on loopback nothing is in flight long
	// enough for this test to see that part.
	expectDisconnect := func(name string, send func(c *rawClient), reason packet.Reason, why string) {
		t.Helper()
		c, _ := dialOpts5(t, addr, name, true, nil)
		send(c)
		c.write(bytes.Repeat([]byte{0xC0, 0}, 32<<10))
		c.expect(&packet.Disconnect{Reason: reason, Properties: &packet.Properties{ReasonString: why}})
		c.expectClosed()
	}
	expectDisconnect("over", func(c *rawClient) {
		c.send(&packet.Publish{Topic: "a/x", Properties: &packet.Properties{TopicAlias: u16p(5)}})
	}, packet.TopicAliasInvalid, "topic alias over the maximum")
	expectDisconnect("unknown", func(c *rawClient) {
		c.send(&packet.Publish{Properties: &packet.Properties{TopicAlias: u16p(2)}})
	}, packet.ProtocolError, "unknown topic alias")
	expectDisconnect("subid", func(c *rawClient) {
		c.send(&packet.Publish{Topic: "a/x", Properties: &packet.Properties{SubscriptionIDs: []uint32{3}}})
	}, packet.ProtocolError, "PUBLISH with a subscription identifier")

	// Malformed on the wire: the codec would not write these.
	for name, body := range map[string][]byte{
		// topic "a/x", property length 3, topic alias 0
		"alias 0": {0, 3, 'a', '/', 'x', 3, 0x23, 0, 0},
		// content type twice
		"twice": {0, 3, 'a', '/', 'x', 8, 0x03, 0, 1, 'x', 0x03, 0, 1, 'y'},
		// session expiry interval, a CONNECT property
		"not allowed": {0, 3, 'a', '/', 'x', 5, 0x11, 0, 0, 0, 1},
	} {
		c, _ := dialOpts5(t, addr, "bad", true, nil)
		c.write(append([]byte{0x30, byte(len(body))}, body...))
		for {
			p, err := c.read(5 * time.Second)
			if err != nil {
				break
			}
			if d, ok := p.(*packet.Disconnect); !ok || d.Reason < 0x80 {
				t.Fatalf("%s: got %s, want the connection closed", name, describe(p))
			}
		}
	}
	// None of them reached the subscriber.
	sub.expectNothing(100 * time.Millisecond)
}

// Outbound topic aliases: a client that allows 2 gets the first PUBLISH of
// a topic with the topic and an alias, the later ones with an empty topic
// and the alias [MQTT-3.3.2-12]; a third topic takes over the oldest
// alias; topics shorter than an alias are sent as they are; a new
// connection of the same session starts without aliases [MQTT-3.3.2-7]; a
// client that allows none gets none.
func TestV5TopicAliasOutbound(t *testing.T) {
	_, addr := startBroker(t, broker.Config{})
	allow := &packet.Properties{TopicAliasMaximum: u16p(2)}
	sub, _ := dialOpts5(t, addr, "sub", false, allow)
	sub.sub5(1, 0, packet.Subscription{Filter: "#", QoS: 1})
	none, _ := dialOpts5(t, addr, "none", true, nil)
	none.sub5(1, 0, packet.Subscription{Filter: "#", QoS: 0})
	pub := dialConnect(t, addr, "pub", true)

	type out struct {
		topic string
		alias uint16 // 0: none
	}
	expect := func(c *rawClient, want out) {
		t.Helper()
		got := c.nextPublish()
		var alias uint16
		if got.Properties != nil && got.Properties.TopicAlias != nil {
			alias = *got.Properties.TopicAlias
		}
		if got.Topic != want.topic || alias != want.alias {
			t.Fatalf("got topic %q alias %d, want %q alias %d", got.Topic, alias, want.topic, want.alias)
		}
		c.ackIncoming(got)
	}
	steps := []struct {
		topic string
		want  out
	}{
		{"sensor/one", out{"sensor/one", 1}},
		{"sensor/one", out{"", 1}},
		{"sensor/two", out{"sensor/two", 2}},
		{"sensor/one", out{"", 1}},
		{"abc", out{"abc", 0}},
		{"sensor/three", out{"sensor/three", 1}}, // replaces sensor/one
		{"sensor/two", out{"", 2}},
		{"sensor/one", out{"sensor/one", 2}}, // replaces sensor/two
	}
	for i, st := range steps {
		pub.pub(st.topic, "x", 1, false, uint16(i+1))
		expect(sub, st.want)
		expect(none, out{st.topic, 0})
	}
	sub.disconnect()
	sub = dialRaw(t, addr)
	sub.connect5(&packet.Connect{ClientID: "sub", Properties: allow})
	pub.pub("sensor/one", "x", 1, false, 100)
	expect(sub, out{"sensor/one", 1})
	pub.pub("sensor/one", "x", 1, false, 101)
	expect(sub, out{"", 1})
}

// Subscription options: No Local keeps a client's own messages from its
// No Local subscription [MQTT-3.8.3-3] while an overlapping one without it
// still delivers; Retain As Published keeps the retain flag of a live
// message [MQTT-3.3.1-12], without it the flag is cleared
// [MQTT-3.3.1-13]; Retain Handling 0 sends retained messages on every
// SUBSCRIBE, 1 only for a new subscription, 2 never [MQTT-3.3.1-9]
// [MQTT-3.3.1-10] [MQTT-3.3.1-11]. The options survive a restart with the
// session.
func TestV5SubscriptionOptions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "edged.db")
	db := openStore(t, path)
	s, addr := startBroker(t, broker.Config{Store: db})

	me, _ := dialOpts5(t, addr, "me", false, nil)
	me.sub5(1, 0, packet.Subscription{Filter: "nl/#", QoS: 1, NoLocal: true})
	me.send(&packet.Publish{Topic: "nl/x", Payload: []byte("own"), QoS: 1, PacketID: 2})
	me.expect(&packet.Puback{PacketID: 2})
	me.expectNothing(200 * time.Millisecond)
	other := dialConnect(t, addr, "other", true)
	other.pub("nl/x", "theirs", 1, false, 1)
	if got := me.nextPublish(); string(got.Payload) != "theirs" {
		t.Fatalf("got %s", describe(got))
	} else {
		me.ackIncoming(got)
	}
	// An overlapping subscription without No Local delivers the own message.
	me.sub5(3, 0, packet.Subscription{Filter: "nl/+", QoS: 1})
	me.send(&packet.Publish{Topic: "nl/x", Payload: []byte("own2"), QoS: 1, PacketID: 4})
	var gotOwn bool
	for range 2 {
		switch p := me.next().(type) {
		case *packet.Puback:
		case *packet.Publish:
			gotOwn = string(p.Payload) == "own2"
			me.ackIncoming(p)
		}
	}
	if !gotOwn {
		t.Fatal("own message not delivered through a subscription without No Local")
	}

	// Retain As Published.
	rap, _ := dialOpts5(t, addr, "rap", true, nil)
	rap.sub5(1, 0, packet.Subscription{Filter: "rap/keep", QoS: 0, RetainAsPublished: true},
		packet.Subscription{Filter: "rap/clear", QoS: 0})
	other.pub("rap/keep", "k", 0, true, 0)
	other.pub("rap/clear", "c", 0, true, 0)
	if got := rap.nextPublish(); got.Topic != "rap/keep" || !got.Retain {
		t.Fatalf("got %s, want rap/keep with retain set", describe(got))
	}
	if got := rap.nextPublish(); got.Topic != "rap/clear" || got.Retain {
		t.Fatalf("got %s, want rap/clear with retain cleared", describe(got))
	}

	// Retain handling: rap/keep and rap/clear are retained now.
	rh, _ := dialOpts5(t, addr, "rh", false, nil)
	rh.sub5(1, 0, packet.Subscription{Filter: "rap/keep", QoS: 0, RetainHandling: 1})
	if got := rh.nextPublish(); got.Topic != "rap/keep" || !got.Retain {
		t.Fatalf("retain handling 1, new: got %s", describe(got))
	}
	rh.sub5(2, 0, packet.Subscription{Filter: "rap/keep", QoS: 0, RetainHandling: 1})
	rh.sub5(3, 0, packet.Subscription{Filter: "rap/clear", QoS: 0, RetainHandling: 2})
	rh.expectNothing(200 * time.Millisecond)
	rh.sub5(4, 0, packet.Subscription{Filter: "rap/keep", QoS: 0, RetainHandling: 0})
	if got := rh.nextPublish(); got.Topic != "rap/keep" {
		t.Fatalf("retain handling 0, existing: got %s", describe(got))
	}
	me.disconnect()

	// After a restart, me's No Local subscription still filters its own.
	shutdown(t, s)
	db.Close()
	db = openStore(t, path)
	_, addr = startBroker(t, broker.Config{Store: db})
	me = dialRaw(t, addr)
	if ca := me.connect5(&packet.Connect{ClientID: "me"}); !ca.SessionPresent {
		t.Fatal("session not present")
	}
	me.send(&packet.Unsubscribe{PacketID: 9, Filters: []string{"nl/+", "never"}})
	me.expect(&packet.Unsuback{PacketID: 9, Reasons: []packet.Reason{packet.Success, packet.NoSubscriptionExisted}})
	me.send(&packet.Publish{Topic: "nl/y", Payload: []byte("own3"), QoS: 1, PacketID: 10})
	me.expect(&packet.Puback{PacketID: 10})
	me.expectNothing(200 * time.Millisecond)
}

// Subscription identifiers: a message matching two subscriptions of one
// session arrives once with both identifiers [MQTT-3.3.4-3]
// [MQTT-3.3.4-5]; a retained message sent for a subscription carries its
// identifier; a subscription without one adds none; a 3.1.1 subscriber's
// packet has none. They survive a restart with a queued message.
func TestV5SubscriptionIdentifiers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "edged.db")
	db := openStore(t, path)
	s, addr := startBroker(t, broker.Config{Store: db})
	sub, _ := dialOpts5(t, addr, "sub", false, nil)
	sub.sub5(1, 7, packet.Subscription{Filter: "id/+", QoS: 1})
	sub.sub5(2, 300000, packet.Subscription{Filter: "id/#", QoS: 1})
	sub.sub5(3, 0, packet.Subscription{Filter: "#", QoS: 0})
	pub := dialConnect(t, addr, "pub", true)
	pub.pub("id/x", "x", 1, true, 1)
	got := sub.nextPublish()
	if got.Properties == nil {
		t.Fatalf("got %s without identifiers", describe(got))
	}
	ids := got.Properties.SubscriptionIDs
	if len(ids) != 2 || !(ids[0] == 7 && ids[1] == 300000 || ids[0] == 300000 && ids[1] == 7) {
		t.Fatalf("identifiers %v, want 7 and 300000", ids)
	}
	sub.ackIncoming(got)
	sub.expectNothing(200 * time.Millisecond)

	r, _ := dialOpts5(t, addr, "r", true, nil)
	r.sub5(1, 99, packet.Subscription{Filter: "id/x", QoS: 1})
	if got := r.nextPublish(); !got.Retain || got.Properties == nil || !reflect.DeepEqual(got.Properties.SubscriptionIDs, []uint32{99}) {
		t.Fatalf("retained got %s %+v, want identifier 99", describe(got), got.Properties)
	}

	sub.disconnect()
	pub.pub("id/y", "y", 1, false, 2)
	shutdown(t, s)
	db.Close()
	db = openStore(t, path)
	_, addr = startBroker(t, broker.Config{Store: db})
	sub = dialRaw(t, addr)
	sub.connect5(&packet.Connect{ClientID: "sub"})
	got = sub.nextPublish()
	if got.Topic != "id/y" || got.Properties == nil || len(got.Properties.SubscriptionIDs) != 2 {
		t.Fatalf("after the restart got %s %+v, want id/y with 2 identifiers", describe(got), got.Properties)
	}
}

// Reason codes of the message layer in 5.0: a refused QoS 1 PUBLISH gets
// PUBACK 0x87 and a refused QoS 2 one PUBREC 0x87 (no PUBREL follows, the
// id is free at once); a refused filter SUBACK 0x87, an invalid one 0x8F,
// one over max_subscriptions 0x97; a payload format 1 PUBLISH whose
// payload is not UTF-8 PUBACK 0x99 and is not delivered. A 3.1.1 client
// gets the plain acknowledgements and 0x80, as before.
func TestV5ReasonCodes(t *testing.T) {
	_, addr := startBroker(t, broker.Config{ACL: testACL{}, Limits: broker.Limits{MaxSubscriptions: 2}}, broker.AllowAnonymous(true))
	sub, _ := dialOpts5(t, addr, "sub", true, nil)
	sub.sub5(1, 0, packet.Subscription{Filter: "#", QoS: 0})
	c, _ := dialOpts5(t, addr, "c", true, nil)
	c.send(&packet.Publish{Topic: "ro/x", Payload: []byte("no"), QoS: 1, PacketID: 1})
	c.expect(&packet.Puback{PacketID: 1, Reason: packet.NotAuthorized})
	c.send(&packet.Publish{Topic: "ro/x", Payload: []byte("no"), QoS: 2, PacketID: 2})
	c.expect(&packet.Pubrec{PacketID: 2, Reason: packet.NotAuthorized})
	// The id is free: the same id carries an allowed message.
	c.send(&packet.Publish{Topic: "ok/x", Payload: []byte("yes"), QoS: 2, PacketID: 2})
	c.expect(&packet.Pubrec{PacketID: 2})
	c.send(&packet.Pubrel{PacketID: 2})
	c.expect(&packet.Pubcomp{PacketID: 2})
	c.send(&packet.Publish{Topic: "ok/bin", Payload: []byte{0xff, 0xfe}, QoS: 1, PacketID: 3,
		Properties: &packet.Properties{PayloadFormat: u8p(1)}})
	c.expect(&packet.Puback{PacketID: 3, Reason: packet.PayloadFormatInvalid})
	c.send(&packet.Publish{Topic: "ok/utf8", Payload: []byte("héllo"), QoS: 1, PacketID: 4,
		Properties: &packet.Properties{PayloadFormat: u8p(1)}})
	c.expect(&packet.Puback{PacketID: 4})
	if got := sub.nextPublish(); got.Topic != "ok/x" {
		t.Fatalf("got %s", describe(got))
	}
	if got := sub.nextPublish(); got.Topic != "ok/utf8" {
		t.Fatalf("got %s, want ok/utf8 (ok/bin refused)", describe(got))
	}
	c.send(&packet.Subscribe{PacketID: 5, Subscriptions: []packet.Subscription{
		{Filter: "secret/#"}, {Filter: "bad/#/x"}, {Filter: "a"}, {Filter: "b"}, {Filter: "c"}}})
	c.expect(&packet.Suback{PacketID: 5, Reasons: []packet.Reason{packet.NotAuthorized, packet.TopicFilterInvalid,
		packet.GrantedQoS0, packet.GrantedQoS0, packet.QuotaExceeded}})

	c3 := dialConnect(t, addr, "c3", true)
	c3.send(&packet.Publish{Topic: "ro/x", Payload: []byte("no"), QoS: 1, PacketID: 1})
	c3.expect(&packet.Puback{PacketID: 1})
	c3.send(&packet.Subscribe{PacketID: 2, Subscriptions: []packet.Subscription{{Filter: "secret/#"}, {Filter: "bad/#/x"}}})
	c3.expect(&packet.Suback{PacketID: 2, Reasons: []packet.Reason{packet.UnspecifiedError, packet.UnspecifiedError}})
}
