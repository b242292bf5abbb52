package broker_test

import (
	"bytes"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edged/edged/broker"
	"github.com/edged/edged/broker/packet"
	"github.com/edged/edged/persist"
)

// Raw-packet tests of the MQTT 5.0 connection layer.

func p16(v uint16) *uint16 { return &v }
func p32(v uint32) *uint32 { return &v }
func p8(v byte) *byte      { return &v }

// dial5 connects a 5.0 client and expects CONNACK success with the given
// session present flag; it returns the CONNACK.
func dial5(t *testing.T, addr string, p *packet.Connect, present bool) (*rawClient, *packet.Connack) {
	t.Helper()
	c := dialRaw(t, addr)
	ca := c.connect5(p)
	if ca.Reason != packet.Success || ca.SessionPresent != present {
		t.Fatalf("got %s, want success with session present %v", describe(ca), present)
	}
	return c, ca
}

// expectDisconnect reads a DISCONNECT with reason r, then the end of the
// connection.
func (c *rawClient) expectDisconnect(r packet.Reason) {
	c.t.Helper()
	p := c.next()
	d, ok := p.(*packet.Disconnect)
	if !ok || d.Reason != r {
		c.t.Fatalf("got %s, want DISCONNECT %s", describe(p), r)
	}
	c.expectClosed()
}

// CONNACK advertises what edged supports and its limits [MQTT-3.2.2.3]:
// receive maximum (max_inflight by default, or limits.receive_maximum),
// maximum packet size (the total size of a max_packet_size packet), retain,
// wildcard subscriptions, subscription identifiers and shared
// subscriptions available, topic aliases up to limits.topic_alias_maximum;
// maximum QoS 2 is not sent. Nothing else unless asked.
func TestV5ConnackProperties(t *testing.T) {
	_, addr := startBroker(t, broker.Config{})
	_, ca := dial5(t, addr, &packet.Connect{ClientID: "p", CleanSession: true, KeepAlive: 30}, false)
	want := &packet.Properties{ReceiveMaximum: p16(broker.DefaultMaxInflight),
		MaximumPacketSize: p32(broker.DefaultMaxPacketSize + 1 + 3), RetainAvailable: p8(1),
		WildcardSubAvailable: p8(1), SharedSubAvailable: p8(1), SubIDAvailable: p8(1),
		TopicAliasMaximum: p16(broker.DefaultTopicAliasMaximum)}
	if !reflect.DeepEqual(ca.Properties, want) {
		t.Fatalf("CONNACK properties %+v, want %+v", ca.Properties, want)
	}

	_, addr = startBroker(t, broker.Config{Limits: broker.Limits{ReceiveMaximum: 7, MaxPacketSize: 100, TopicAliasMaximum: -1}})
	_, ca = dial5(t, addr, &packet.Connect{ClientID: "p", CleanSession: true}, false)
	if *ca.Properties.ReceiveMaximum != 7 || *ca.Properties.MaximumPacketSize != 102 || ca.Properties.TopicAliasMaximum != nil {
		t.Fatalf("got %+v, want receive maximum 7, maximum packet size 102, no topic aliases", ca.Properties)
	}
}

// limits.max_keepalive: a 5.0 client asking for more, or for none, is told
// the maximum in Server Keep Alive and held to it [MQTT-3.2.2-21]; one
// within it is told nothing. (A 3.1.1 client is refused: it cannot be
// told.)
func TestV5ServerKeepAlive(t *testing.T) {
	t.Parallel()
	_, addr := startBroker(t, broker.Config{Limits: broker.Limits{MaxKeepalive: time.Second}})
	for _, ka := range []uint16{0, 2, 600} {
		c, ca := dial5(t, addr, &packet.Connect{ClientID: fmt.Sprint("k", ka), CleanSession: true, KeepAlive: ka}, false)
		if ca.Properties.ServerKeepAlive == nil || *ca.Properties.ServerKeepAlive != 1 {
			t.Fatalf("keepalive %d: got %+v, want server keep alive 1", ka, ca.Properties)
		}
		// Held to 1 s: closed after 1.5 s of silence, with 0x8D.
		c.expectDisconnect(packet.KeepAliveTimeout)
	}
	_, ca := dial5(t, addr, &packet.Connect{ClientID: "ok", CleanSession: true, KeepAlive: 1}, false)
	if ca.Properties.ServerKeepAlive != nil {
		t.Fatalf("got server keep alive %d for a keepalive within the maximum", *ca.Properties.ServerKeepAlive)
	}
	c := dialRaw(t, addr)
	c.connect(&packet.Connect{ClientID: "old", CleanSession: true, KeepAlive: 0}, false, packet.ClientIdentifierNotValid)
}

// An empty 5.0 client id gets an id assigned and reported in CONNACK
// [MQTT-3.1.3-7] [MQTT-3.2.2-16], with clean start 0 too (3.1.1 refuses
// that); two such clients get different ids.
func TestV5AssignedClientID(t *testing.T) {
	_, addr := startBroker(t, broker.Config{})
	_, a := dial5(t, addr, &packet.Connect{CleanSession: true}, false)
	_, b := dial5(t, addr, &packet.Connect{CleanSession: false, Properties: &packet.Properties{SessionExpiry: p32(60)}}, false)
	ida, idb := a.Properties.AssignedClientID, b.Properties.AssignedClientID
	if ida == "" || idb == "" || ida == idb {
		t.Fatalf("assigned ids %q and %q", ida, idb)
	}
	_, ca := dial5(t, addr, &packet.Connect{ClientID: "given", CleanSession: true}, false)
	if ca.Properties.AssignedClientID != "" {
		t.Fatal("an id was assigned to a client that gave one")
	}
}

// Session expiry replaces clean session in 5.0 [MQTT-3.1.2-11]: 0 ends the
// session with the connection; a non-zero interval keeps it (messages
// queued while away arrive, session present 1); clean start discards it
// [MQTT-3.1.2-4]; limits.session_expiry caps the interval and CONNACK says
// so; an interval that passes removes the session.
func TestV5SessionExpiry(t *testing.T) {
	t.Parallel()
	_, addr := startBroker(t, broker.Config{Limits: broker.Limits{SessionExpiry: 2 * time.Second}})
	pub := dialConnect(t, addr, "pub", true)
	sub5 := func(id string, clean bool, expiry uint32, present bool) *rawClient {
		var props *packet.Properties
		if expiry > 0 {
			props = &packet.Properties{SessionExpiry: p32(expiry)}
		}
		c, _ := dial5(t, addr, &packet.Connect{ClientID: id, CleanSession: clean, Properties: props}, present)
		return c
	}
	leave := func(c *rawClient) {
		c.send(&packet.Disconnect{})
		c.expectClosed()
	}

	// Expiry 0: nothing survives.
	c := sub5("zero", false, 0, false)
	c.sub("z", 1)
	leave(c)
	leave(sub5("zero", false, 0, false))

	// Expiry 1: kept while away, queued messages arrive.
	c = sub5("one", true, 1, false)
	c.sub("o", 1)
	leave(c)
	pub.pub("o", "while away", 1, false, 1)
	c = sub5("one", false, 1, true)
	c.recvExpect("o", "while away", 1)
	leave(c)
	// Clean start discards it.
	leave(sub5("one", true, 1, false))

	// Capped at 2 s, and CONNACK says so.
	c, ca := dial5(t, addr, &packet.Connect{ClientID: "long", CleanSession: true,
		Properties: &packet.Properties{SessionExpiry: p32(3600)}}, false)
	if ca.Properties.SessionExpiry == nil || *ca.Properties.SessionExpiry != 2 {
		t.Fatalf("got %+v, want session expiry 2 in CONNACK", ca.Properties)
	}
	leave(c)
	// Gone once it has passed (checked every second).
	time.Sleep(3500 * time.Millisecond)
	leave(sub5("long", false, 60, false))
}

// A 5.0 session survives a restart with its expiry interval and last-seen
// time, and expires on schedule after it (bbolt file).
func TestV5SessionExpiryAfterRestart(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "edged.db")
	db := openDB(t, path)
	s1, addr := startBroker(t, broker.Config{Store: db})
	for _, id := range []string{"short", "long"} {
		e := uint32(1)
		if id == "long" {
			e = 3600
		}
		c, _ := dial5(t, addr, &packet.Connect{ClientID: id, CleanSession: true,
			Properties: &packet.Properties{SessionExpiry: p32(e)}}, false)
		c.sub("x", 1)
		c.send(&packet.Disconnect{})
		c.expectClosed()
	}
	waitConnected(t, s1, 0)
	shutdown(t, s1)
	db.Close()
	time.Sleep(1500 * time.Millisecond)
	db = openDB(t, path)
	t.Cleanup(func() { db.Close() })
	s2, addr := startBroker(t, broker.Config{Store: db})
	waitFor(t, 5*time.Second, func() error {
		if n := s2.Stats().ClientsTotal; n != 1 {
			return fmt.Errorf("%d sessions, want 1", n)
		}
		return nil
	})
	dial5(t, addr, &packet.Connect{ClientID: "long", Properties: &packet.Properties{SessionExpiry: p32(60)}}, true)
	dial5(t, addr, &packet.Connect{ClientID: "short", Properties: &packet.Properties{SessionExpiry: p32(60)}}, false)
}

// DISCONNECT may change the session expiry [MQTT-3.14.2-2]: to 0 ends the
// session; from a CONNECT's 0 to non-zero is a protocol error, answered by
// DISCONNECT 0x82 (and the will is published: the client did not leave
// normally).
func TestV5DisconnectSessionExpiry(t *testing.T) {
	_, addr := startBroker(t, broker.Config{})
	watcher := dialConnect(t, addr, "watcher", true)
	watcher.sub("will/#", 0)

	c, _ := dial5(t, addr, &packet.Connect{ClientID: "a", Properties: &packet.Properties{SessionExpiry: p32(60)}}, false)
	c.send(&packet.Disconnect{Properties: &packet.Properties{SessionExpiry: p32(0)}})
	c.expectClosed()
	dial5(t, addr, &packet.Connect{ClientID: "a", Properties: &packet.Properties{SessionExpiry: p32(60)}}, false)

	c, _ = dial5(t, addr, &packet.Connect{ClientID: "b", CleanSession: true,
		Will: &packet.Will{Topic: "will/b", Payload: []byte("gone")}}, false)
	c.send(&packet.Disconnect{Properties: &packet.Properties{SessionExpiry: p32(30)}})
	c.expectDisconnect(packet.ProtocolError)
	watcher.expectPublish("will/b", "gone", 0, false, false)
}

// Wills in 5.0: DISCONNECT 0x04 publishes the will, a normal DISCONNECT
// does not [MQTT-3.14.4-3]; a Will Delay Interval holds it back until the
// earlier of the delay and the end of the session [MQTT-3.1.3-9], and a
// reconnect within the delay cancels it.
func TestV5WillDelay(t *testing.T) {
	t.Parallel()
	_, addr := startBroker(t, broker.Config{})
	watcher := dialConnect(t, addr, "watcher", true)
	watcher.sub("will/#", 0)
	connect := func(id string, delay, expiry uint32) *rawClient {
		var wp, cp *packet.Properties
		if delay > 0 {
			wp = &packet.Properties{WillDelay: p32(delay)}
		}
		if expiry > 0 {
			cp = &packet.Properties{SessionExpiry: p32(expiry)}
		}
		c, _ := dial5(t, addr, &packet.Connect{ClientID: id, CleanSession: true, Properties: cp,
			Will: &packet.Will{Topic: "will/" + id, Payload: []byte(id), Properties: wp}}, false)
		return c
	}

	c := connect("normal", 0, 0)
	c.send(&packet.Disconnect{})
	c.expectClosed()
	c = connect("with-will", 0, 0)
	c.send(&packet.Disconnect{Reason: packet.DisconnectWithWill})
	c.expectClosed()
	watcher.expectPublish("will/with-will", "with-will", 0, false, false)

	// Delay 2 s, session 60 s: the will comes after about 2 s.
	c = connect("delayed", 2, 60)
	start := time.Now()
	c.drop()
	watcher.expectNothing(time.Second)
	watcher.expectPublish("will/delayed", "delayed", 0, false, false)
	if d := time.Since(start); d < 2*time.Second {
		t.Fatalf("delayed will after %s, want at least 2s", d)
	}

	// Delay 60 s, session 1 s: the session ends first, and the will with it.
	c = connect("session-ends", 60, 1)
	c.drop()
	watcher.expectPublish("will/session-ends", "session-ends", 0, false, false)

	// Back within the delay: no will.
	c = connect("back", 2, 60)
	c.drop()
	dial5(t, addr, &packet.Connect{ClientID: "back", Properties: &packet.Properties{SessionExpiry: p32(60)}}, true)
	watcher.expectNothing(3 * time.Second)
}

// Server-initiated DISCONNECT with a reason code, on 5.0 connections only
// [MQTT-4.13.1-1]: malformed packet 0x81, protocol error 0x82 (a second
// CONNECT, an AUTH packet: enhanced authentication is not supported),
// session taken over 0x8E, server shutting down 0x8B. A 3.1.1 client in
// the same situations is only closed.
func TestV5ServerDisconnect(t *testing.T) {
	s, addr := startBroker(t, broker.Config{})
	con := func(id string) *packet.Connect { return &packet.Connect{ClientID: id, CleanSession: true} }

	c, _ := dial5(t, addr, con("m"), false)
	c.write([]byte{0x30, 0x03, 0x00, 0x05, 'x'}) // topic length past the packet
	c.expectDisconnect(packet.MalformedPacket)

	c, _ = dial5(t, addr, con("p"), false)
	c.send(&packet.Connect{ProtocolName: "MQTT", ProtocolLevel: 5, ClientID: "p"})
	c.expectDisconnect(packet.ProtocolError)

	c, _ = dial5(t, addr, con("auth"), false)
	c.send(&packet.Auth{Reason: packet.ReAuthenticate, Properties: &packet.Properties{AuthMethod: "SCRAM"}})
	c.expectDisconnect(packet.ProtocolError)

	old, _ := dial5(t, addr, con("t"), false)
	dial5(t, addr, con("t"), false)
	old.expectDisconnect(packet.SessionTakenOver)

	old311 := dialConnect(t, addr, "t311", true)
	dialConnect(t, addr, "t311", true)
	old311.expectClosed() // nothing but the end

	last, _ := dial5(t, addr, con("last"), false)
	shutdown(t, s)
	last.expectDisconnect(packet.ServerShuttingDown)
}

// Receive maximum, broker side: a 5.0 client with more unacknowledged QoS 1
// PUBLISH packets than the broker's receive maximum gets DISCONNECT 0x93,
// which it can read (the broker half-closes and drains instead of
// resetting) [MQTT-3.3.4-9]. Up to the maximum is fine.
func TestV5ReceiveMaximumInbound(t *testing.T) {
	store := &gatedStore{Memory: persist.NewMemory()}
	t.Cleanup(func() { store.Close() })
	_, addr := startBroker(t, broker.Config{Store: store, Limits: broker.Limits{ReceiveMaximum: 2}})
	// A persistent subscriber, so a QoS 1 PUBLISH waits for the store.
	off := dialConnect(t, addr, "off", false)
	off.sub("rm/#", 1)
	store.setClosed(true)
	c, _ := dial5(t, addr, &packet.Connect{ClientID: "ok", CleanSession: true}, false)
	c.send(&packet.Publish{QoS: 1, Topic: "rm/a", PacketID: 1, Payload: []byte("1")},
		&packet.Publish{QoS: 1, Topic: "rm/a", PacketID: 2, Payload: []byte("2")})
	c.expectNothing(50 * time.Millisecond)
	store.setClosed(false)
	c.expect(&packet.Puback{PacketID: 1})
	c.expect(&packet.Puback{PacketID: 2})

	store.setClosed(true)
	c.send(&packet.Publish{QoS: 1, Topic: "rm/a", PacketID: 3, Payload: []byte("3")},
		&packet.Publish{QoS: 2, Topic: "rm/a", PacketID: 4, Payload: []byte("4")},
		&packet.Publish{QoS: 1, Topic: "rm/a", PacketID: 5, Payload: bytes.Repeat([]byte("x"), 64<<10)})
	c.expectDisconnect(packet.ReceiveMaximumExceeded)
	store.setClosed(false)
}

// Receive maximum, client side: the broker keeps no more QoS 1 and 2
// messages in flight to a 5.0 client than its Receive Maximum; the rest
// wait for acknowledgements [MQTT-3.3.4-9].
func TestV5ReceiveMaximumOutbound(t *testing.T) {
	_, addr := startBroker(t, broker.Config{})
	c, _ := dial5(t, addr, &packet.Connect{ClientID: "small", CleanSession: true,
		Properties: &packet.Properties{ReceiveMaximum: p16(2)}}, false)
	c.sub("w", 1)
	pub := dialConnect(t, addr, "pub", true)
	for i := range 5 {
		pub.pub("w", fmt.Sprint(i), 1, false, uint16(i+1))
	}
	var ids []uint16
	for i := range 2 {
		ids = append(ids, c.expectPublish("w", fmt.Sprint(i), 1, false, false))
	}
	c.expectNothing(100 * time.Millisecond)
	c.send(&packet.Puback{PacketID: ids[0]})
	c.expectPublish("w", "2", 1, false, false)
	c.expectNothing(100 * time.Millisecond)
}

// Maximum packet size both ways: a packet over the broker's maximum gets
// DISCONNECT 0x95 (readable: the rest of the packet is drained); a message
// larger than the client's Maximum Packet Size is not sent to it, but
// dropped for it and counted [MQTT-3.1.2-24] [MQTT-3.1.2-25], at QoS 0
// and 1, and the next one that fits arrives.
func TestV5MaximumPacketSize(t *testing.T) {
	s, addr := startBroker(t, broker.Config{Limits: broker.Limits{MaxPacketSize: 1024}})
	c, _ := dial5(t, addr, &packet.Connect{ClientID: "big", CleanSession: true}, false)
	c.send(&packet.Publish{QoS: 0, Topic: "x", Payload: make([]byte, 2000)})
	c.expectDisconnect(packet.PacketTooLarge)

	small, _ := dial5(t, addr, &packet.Connect{ClientID: "small", CleanSession: true,
		Properties: &packet.Properties{MaximumPacketSize: p32(64)}}, false)
	small.sub("mp/#", 1)
	pub := dialConnect(t, addr, "pub", true)
	before := s.Stats().MsgsDropped
	pub.pub("mp/a", strings.Repeat("q", 100), 0, false, 0)
	pub.pub("mp/a", strings.Repeat("r", 100), 1, false, 1)
	pub.pub("mp/a", "fits", 1, false, 2)
	small.expectPublish("mp/a", "fits", 1, false, false)
	if d := s.Stats().MsgsDropped - before; d != 2 {
		t.Fatalf("%d messages counted as dropped, want 2", d)
	}
}

// Refusals in 5.0 carry reason codes: CONNACK 0x86 (bad user name or
// password), 0x87 (not authorized), 0x8C (an authentication method:
// enhanced authentication is not supported); PUBACK and PUBREC 0x87 for a
// publish the ACL refuses (a refused QoS 2 flow ends there: its packet id
// is free at once); SUBACK 0x87 for a refused filter, 0x8F for an invalid
// one (a bad shared subscription too); UNSUBACK 0x11 for a filter that was
// not subscribed.
func TestV5RefusalReasons(t *testing.T) {
	_, addr := startBroker(t, broker.Config{Auth: testAuth{}}, broker.AllowAnonymous(false))
	for _, tc := range []struct {
		user *string
		pw   []byte
		want packet.Reason
	}{
		{strp("alice"), []byte("wrong"), packet.BadUserNameOrPassword},
		{nil, nil, packet.NotAuthorized},
	} {
		c := dialRaw(t, addr)
		if ca := c.connect5(&packet.Connect{ClientID: "r", CleanSession: true, Username: tc.user, Password: tc.pw}); ca.Reason != tc.want {
			t.Fatalf("got %s, want %s", describe(ca), tc.want)
		}
		c.expectClosed()
	}
	c := dialRaw(t, addr)
	if ca := c.connect5(&packet.Connect{ClientID: "r", CleanSession: true, Username: strp("alice"), Password: []byte("secret"),
		Properties: &packet.Properties{AuthMethod: "SCRAM-SHA-1"}}); ca.Reason != packet.BadAuthenticationMethod {
		t.Fatalf("got %s, want 0x8C", describe(ca))
	}
	c.expectClosed()

	_, addr = startBroker(t, broker.Config{ACL: testACL{}})
	c, _ = dial5(t, addr, &packet.Connect{ClientID: "acl", CleanSession: true}, false)
	c.send(&packet.Publish{QoS: 1, Topic: "ro/x", PacketID: 1, Payload: []byte("no")})
	c.expect(&packet.Puback{PacketID: 1, Reason: packet.NotAuthorized})
	c.send(&packet.Publish{QoS: 2, Topic: "ro/x", PacketID: 2, Payload: []byte("no")})
	c.expect(&packet.Pubrec{PacketID: 2, Reason: packet.NotAuthorized})
	c.send(&packet.Publish{QoS: 2, Topic: "ok/x", PacketID: 2, Payload: []byte("yes")})
	c.expect(&packet.Pubrec{PacketID: 2})
	c.send(&packet.Pubrel{PacketID: 2})
	c.expect(&packet.Pubcomp{PacketID: 2})
	c.send(&packet.Subscribe{PacketID: 3, Subscriptions: []packet.Subscription{
		{Filter: "secret/x", QoS: 1}, {Filter: "a/#/b", QoS: 1}, {Filter: "$share/g", QoS: 1}, {Filter: "ok/#", QoS: 1}}})
	c.expect(&packet.Suback{PacketID: 3, Reasons: []packet.Reason{packet.NotAuthorized, packet.TopicFilterInvalid,
		packet.TopicFilterInvalid, packet.GrantedQoS1}})
	c.send(&packet.Unsubscribe{PacketID: 4, Filters: []string{"ok/#", "never"}})
	c.expect(&packet.Unsuback{PacketID: 4, Reasons: []packet.Reason{packet.Success, packet.NoSubscriptionExisted}})
}

// 3.1.1, 3.1 and 5.0 clients talk to each other through one broker, and a
// shared subscription mixes them.
func TestV5MixedVersions(t *testing.T) {
	_, addr := startBroker(t, broker.Config{})
	v5, _ := dial5(t, addr, &packet.Connect{ClientID: "v5", CleanSession: true}, false)
	v5.sub("mix/a", 1)
	v31 := dialRaw(t, addr)
	v31.connect(&packet.Connect{ProtocolName: "MQIsdp", ProtocolLevel: 3, ClientID: "v31", CleanSession: true}, false, packet.Success)
	v31.sub("mix/#", 1)
	v311 := dialConnect(t, addr, "v311", true)
	v311.pub("mix/a", "from 3.1.1", 1, false, 1)
	v5.recvExpect("mix/a", "from 3.1.1", 1)
	v31.recvExpect("mix/a", "from 3.1.1", 1)
	v5.send(&packet.Publish{QoS: 1, Topic: "mix/b", PacketID: 9, Payload: []byte("from 5")})
	v5.expect(&packet.Puback{PacketID: 9})
	v31.recvExpect("mix/b", "from 5", 1)
}

// A 5.0 PUBREL for a packet id with no QoS 2 flow gets PUBCOMP 0x92
// (packet identifier not found), as in Mosquitto; a known one PUBCOMP
// success, and the same PUBREL again 0x92. A 3.1.1 client gets a plain
// PUBCOMP either way [MQTT-4.3.3-2].
func TestV5PubrelUnknownID(t *testing.T) {
	t.Parallel()
	_, addr := startBroker(t, broker.Config{})
	c, _ := dial5(t, addr, &packet.Connect{ClientID: "p5", CleanSession: true, KeepAlive: 30}, false)
	c.send(&packet.Pubrel{PacketID: 9})
	c.expect(&packet.Pubcomp{PacketID: 9, Reason: packet.PacketIdentifierNotFound})
	c.send(&packet.Publish{QoS: 2, PacketID: 3, Topic: "t", Payload: []byte("x")})
	c.expect(&packet.Pubrec{PacketID: 3})
	c.send(&packet.Pubrel{PacketID: 3})
	c.expect(&packet.Pubcomp{PacketID: 3})
	c.send(&packet.Pubrel{PacketID: 3})
	c.expect(&packet.Pubcomp{PacketID: 3, Reason: packet.PacketIdentifierNotFound})

	old := dialConnect(t, addr, "p311", true)
	old.send(&packet.Pubrel{PacketID: 9})
	old.expect(&packet.Pubcomp{PacketID: 9})
}

// A delayed will survives a restart: it is stored with its due time when
// its client goes, published after the restart once due (at once if it
// fell due while edged was down), and removed from the store when it is
// published or when its client comes back in time, so a later restart
// neither loses nor repeats it.
func TestV5WillDelayRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "edged.db")
	db := openDB(t, path)
	s, addr := startBroker(t, broker.Config{Store: db})
	watcher := dialConnect(t, addr, "watcher", false)
	watcher.sub("will/#", 1)
	watcher.send(&packet.Disconnect{})
	watcher.expectClosed()
	for id, delay := range map[string]uint32{"due": 1, "back": 30} {
		c, _ := dial5(t, addr, &packet.Connect{ClientID: id, Properties: &packet.Properties{SessionExpiry: p32(600)},
			Will: &packet.Will{Topic: "will/" + id, Payload: []byte(id), QoS: 1,
				Properties: &packet.Properties{WillDelay: p32(delay), User: []packet.UserProperty{{Key: "k", Value: id}}}}}, false)
		c.drop()
	}
	// Both wait in their sessions; edged stops before either is due.
	waitFor(t, 5*time.Second, func() error {
		for _, si := range s.Sessions() {
			if si.Online {
				return fmt.Errorf("%s still online", si.ClientID)
			}
		}
		return nil
	})
	shutdown(t, s)
	db.Close()
	time.Sleep(1200 * time.Millisecond) // "due" falls due while edged is down

	restart := func() (*broker.Server, string, *persist.DB) {
		db := openDB(t, path)
		s, addr := startBroker(t, broker.Config{Store: db})
		return s, addr, db
	}
	s, addr, db = restart()
	// "back" returns within its delay: its will is cancelled.
	dial5(t, addr, &packet.Connect{ClientID: "back", Properties: &packet.Properties{SessionExpiry: p32(600)}}, true)
	watcher = dialRaw(t, addr)
	watcher.connect(&packet.Connect{ClientID: "watcher", KeepAlive: 30}, true, packet.Success)
	id := watcher.expectPublish("will/due", "due", 1, false, false)
	watcher.send(&packet.Puback{PacketID: id})
	watcher.expectNothing(1500 * time.Millisecond)
	watcher.send(&packet.Disconnect{})
	watcher.expectClosed()
	shutdown(t, s)
	db.Close()

	// Neither will is published again after another restart.
	_, addr, db = restart()
	defer db.Close()
	watcher = dialRaw(t, addr)
	watcher.connect(&packet.Connect{ClientID: "watcher", KeepAlive: 30}, true, packet.Success)
	watcher.expectNothing(2 * time.Second)
}

// A CONNECT with Receive Maximum 0 is a protocol error (MQTT 5.0 section
// 3.1.2.11.3): from raw bytes, since the codec would not write it, the
// client is told so with CONNACK 0x82 and the connection is closed (the
// server MAY say why, MUST close [MQTT-4.13.1-1]), and the client id gets
// no session.
func TestV5ReceiveMaximumZero(t *testing.T) {
	t.Parallel()
	s, addr := startBroker(t, broker.Config{})
	c := dialRaw(t, addr)
	c.v = packet.V5
	c.write(rawConnect5([]byte{3, 0x21, 0, 0}, "r")) // receive maximum 0
	c.expect(&packet.Connack{Reason: packet.ProtocolError})
	c.expectClosed()
	for _, si := range s.Sessions() {
		if si.ClientID == "r" {
			t.Fatalf("session %+v", si)
		}
	}
	// The same CONNECT with receive maximum 1 is accepted.
	c = dialRaw(t, addr)
	c.v = packet.V5
	c.write(rawConnect5([]byte{3, 0x21, 0, 1}, "r"))
	p, err := c.read(5 * time.Second)
	if ca, ok := p.(*packet.Connack); err != nil || !ok || ca.Reason != packet.Success {
		t.Fatalf("got %v, %v; want CONNACK success", p, err)
	}
}

// A 5.0 will goes out with its properties (MQTT 5.0 section 3.1.3.2):
// user properties in order, content type, response topic and correlation
// data reach a 5.0 subscriber, the Will Delay Interval does not, and the
// Message Expiry Interval counts from publication, not from CONNECT: a 3 s
// expiry on a will delayed 2 s arrives with 3 s left. A 3.1.1 subscriber
// gets the bare will.
func TestV5WillProperties(t *testing.T) {
	t.Parallel()
	_, addr := startBroker(t, broker.Config{})
	w5, _ := dialOpts5(t, addr, "w5", true, nil)
	w5.sub5(1, 0, packet.Subscription{Filter: "will/#", QoS: 1})
	w3 := dialConnect(t, addr, "w3", true)
	w3.sub("will/#", 1)
	user := []packet.UserProperty{{Key: "b", Value: "2"}, {Key: "a", Value: "1"}}
	c, _ := dial5(t, addr, &packet.Connect{ClientID: "dev", CleanSession: true, KeepAlive: 30,
		Properties: &packet.Properties{SessionExpiry: p32(60)},
		Will: &packet.Will{Topic: "will/dev", Payload: []byte("gone"), QoS: 1, Properties: &packet.Properties{
			WillDelay: p32(2), MessageExpiry: p32(3), ContentType: "text/plain", ResponseTopic: "r/dev",
			CorrelationData: []byte("c"), User: user}}}, false)
	c.drop()
	p := w5.nextPublish()
	if p.Topic != "will/dev" || string(p.Payload) != "gone" || p.Properties == nil {
		t.Fatalf("got %s %+v", describe(p), p.Properties)
	}
	pp := p.Properties
	if pp.ContentType != "text/plain" || pp.ResponseTopic != "r/dev" || string(pp.CorrelationData) != "c" ||
		!slices.Equal(pp.User, user) || pp.WillDelay != nil || pp.MessageExpiry == nil || *pp.MessageExpiry != 3 {
		t.Fatalf("will properties %+v (message expiry %v)", pp, pp.MessageExpiry)
	}
	w3.expectPublish("will/dev", "gone", 1, false, false)
}

// A malformed 5.0 CONNECT is answered with a 5.0 CONNACK that says so
// before the close [MQTT-4.13.1-1]: a property the specification does not
// have is 0x81, the same property twice 0x82; the client id gets no
// session. A malformed 3.1.1 CONNECT is closed without a CONNACK
// (TestConnectRefusedFirstPackets): 3.1.1 has no code for it.
func TestV5MalformedConnectConnack(t *testing.T) {
	t.Parallel()
	s, addr := startBroker(t, broker.Config{})
	for _, tc := range []struct {
		name  string
		props []byte
		want  packet.Reason
	}{
		{"unknown property", []byte{2, 0x7f, 0}, packet.MalformedPacket},
		{"session expiry twice", []byte{10, 0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 2}, packet.ProtocolError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, addr)
			c.v = packet.V5
			c.write(rawConnect5(tc.props, "m"))
			c.expect(&packet.Connack{Reason: tc.want})
			c.expectClosed()
		})
	}
	for _, si := range s.Sessions() {
		if si.ClientID == "m" {
			t.Fatalf("session %+v", si)
		}
	}
}

// rawConnect5 is the bytes of a 5.0 CONNECT (clean start, keepalive 30)
// with the property block props as given, length byte included, so that
// tests can send what the codec would refuse to write. The whole packet
// must stay under 128 bytes.
func rawConnect5(props []byte, clientID string) []byte {
	raw := []byte{0x10, 0, 0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 30}
	raw = append(raw, props...)
	raw = append(raw, 0, byte(len(clientID)))
	raw = append(raw, clientID...)
	raw[1] = byte(len(raw) - 2)
	return raw
}
