package broker_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edged/edged/broker"
	"github.com/edged/edged/broker/packet"
	"github.com/edged/edged/broker/packet/packettest"
)

// The first packet from a client must be CONNECT; anything else closes the
// connection without a CONNACK [MQTT-3.1.0-1].
func TestConnectFirstPacketMustBeConnect_MQTT_3_1_0_1(t *testing.T) {
	_, addr := startBroker(t, broker.Config{})
	for _, p := range []packet.Packet{
		&packet.Publish{Topic: "a", Payload: []byte("x")},
		&packet.Publish{Topic: "a", QoS: 1, PacketID: 1},
		&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "#"}}},
		&packet.Unsubscribe{PacketID: 1, Filters: []string{"#"}},
		&packet.Pingreq{},
		&packet.Puback{PacketID: 1},
		&packet.Pubrel{PacketID: 1},
		&packet.Disconnect{},
		&packet.Connack{},
	} {
		t.Run(p.Type().String(), func(t *testing.T) {
			c := dialRaw(t, addr)
			c.send(p)
			c.expectClosed()
		})
	}
}

// A second CONNECT is a protocol violation: the connection is closed
// [MQTT-3.1.0-2].
func TestConnectSecondConnectCloses_MQTT_3_1_0_2(t *testing.T) {
	_, addr := startBroker(t, broker.Config{})
	c := dialConnect(t, addr, "twice", true)
	c.send(&packet.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: "twice", CleanSession: true})
	c.expectClosed()

	// The id is free again: a new connection with it works.
	c2 := dialConnect(t, addr, "twice", true)
	c2.sync()
}

// Every CONNECT the codec refuses, sent as the first packet: an unsupported
// protocol level gets CONNACK 0x01 and then the connection is closed
// [MQTT-3.1.2-2]; an unknown protocol name [MQTT-3.1.2-1], a reserved flag
// [MQTT-3.1.2-3] and every other malformed packet close the connection
// without a CONNACK [MQTT-4.8.0-1].
func TestConnectRefusedFirstPackets(t *testing.T) {
	_, addr := startBroker(t, broker.Config{})
	n := 0
	for _, tc := range packettest.Invalid {
		t.Run(tc.Name, func(t *testing.T) {
			c := dialRaw(t, addr)
			c.write(tc.Raw)
			if tc.Reason == packet.UnsupportedProtocolVersion {
				c.expect(&packet.Connack{Reason: packet.UnsupportedProtocolVersion})
			}
			c.expectClosed()
		})
		if strings.Contains(tc.Name, "level") && tc.Reason == packet.UnsupportedProtocolVersion {
			n++
		}
	}
	// The fixtures must include MQTT level 3 and 5 and MQIsdp level 4,
	// or this test proves less than it claims.
	for _, name := range []string{"CONNECT MQTT level 3", "CONNECT MQTT level 6", "CONNECT MQIsdp level 4",
		"CONNECT protocol name HTTP", "CONNECT reserved flag"} {
		found := false
		for _, tc := range packettest.Invalid {
			found = found || tc.Name == name
		}
		if !found {
			t.Errorf("packettest.Invalid lacks %q", name)
		}
	}
	if n < 3 {
		t.Errorf("only %d unsupported-level fixtures", n)
	}
}

// Until the broker serves MQTT 5.0, a 5.0 CONNECT (properties included) is
// refused with a 5.0 CONNACK 0x84, which a 5.0 client can read, and the
// connection is closed [MQTT-3.1.2-2]. A 3.1.1 CONNACK (20 02 00 01) would
// not decode at 5.0: it has no property length.
func TestConnectV5RefusedUntilServed(t *testing.T) {
	_, addr := startBroker(t, broker.Config{})
	c := dialRaw(t, addr)
	exp := uint32(60)
	ca := c.connect5(&packet.Connect{ClientID: "v5", CleanSession: true, KeepAlive: 30,
		Properties: &packet.Properties{SessionExpiry: &exp, User: []packet.UserProperty{{Key: "k", Value: "v"}}}})
	if !reflect.DeepEqual(ca, &packet.Connack{Reason: packet.UnsupportedProtocolVersion}) {
		t.Fatalf("got %s, want a 5.0 CONNACK 0x84 without properties", describe(ca))
	}
	c.expectClosed()

	// The same bytes by hand, so the test does not lean on the encoder.
	c = dialRaw(t, addr)
	c.write(packettest.Valid5[0].Raw)
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(c.br)
	if err != nil {
		t.Fatal(err)
	}
	if want := "\x20\x03\x00\x84\x00"; string(got) != want {
		t.Fatalf("broker answered % x, want % x", got, want)
	}
}

// MQTT 3.1 clients ("MQIsdp", level 3) are accepted and served.
func TestConnectMQTT31Accepted(t *testing.T) {
	_, addr := startBroker(t, broker.Config{})
	c := dialRaw(t, addr)
	c.connect(&packet.Connect{ProtocolName: "MQIsdp", ProtocolLevel: 3, ClientID: "old31", CleanSession: true},
		false, packet.Success)
	c.sub("t", 1)
	c.pub("u", "ignored", 1, false, 5)
	p := dialConnect(t, addr, "pub", true)
	p.pub("t", "hello", 1, false, 5)
	c.recvExpect("t", "hello", 1)
}

// A zero-length client id with clean session 1 gets a unique id assigned
// by the server [MQTT-3.1.3-6] [MQTT-3.1.3-7]; with clean session 0 it is
// refused with CONNACK 0x02 and the connection closed [MQTT-3.1.3-8].
func TestConnectEmptyClientID_MQTT_3_1_3_8(t *testing.T) {
	_, addr := startBroker(t, broker.Config{})
	t.Run("clean session 1 accepted", func(t *testing.T) {
		// Two such clients must get different ids: if they collided, the
		// second would take over the first and close it.
		a := dialConnect(t, addr, "", true)
		b := dialConnect(t, addr, "", true)
		a.sub("e/a", 0)
		b.sub("e/b", 0)
		b.pub("e/a", "to-a", 0, false, 0)
		a.expectPublish("e/a", "to-a", 0, false, false)
		a.sync()
		b.sync()
	})
	t.Run("clean session 0 refused 0x02", func(t *testing.T) {
		c := dialRaw(t, addr)
		c.connect(&packet.Connect{ClientID: "", CleanSession: false}, false, packet.ClientIdentifierNotValid)
		c.expectClosed()
	})
}

// A CONNECT with the client id of a connected client closes the existing
// connection [MQTT-3.1.4-2]; the old connection did not DISCONNECT, so its
// will is published [MQTT-3.1.2-8]; the new connection works.
func TestConnectTakeover_MQTT_3_1_4_2(t *testing.T) {
	_, addr := startBroker(t, broker.Config{})
	watcher := dialConnect(t, addr, "watcher", true)
	watcher.sub("will/#", 1)

	old := dialRaw(t, addr)
	old.connect(&packet.Connect{ClientID: "dev", CleanSession: false,
		Will: &packet.Will{Topic: "will/dev", Payload: []byte("old gone"), QoS: 1}}, false, packet.Success)
	old.sub("cmd/dev", 1)

	nu := dialRaw(t, addr)
	nu.connect(&packet.Connect{ClientID: "dev", CleanSession: false}, true, packet.Success)
	old.expectClosed()
	watcher.recvExpect("will/dev", "old gone", 1)

	// The resumed session kept the subscription; the new connection gets
	// the message.
	watcher.pub("cmd/dev", "reboot", 1, false, 9)
	nu.expectPublish("cmd/dev", "reboot", 1, false, false)
}

// recvExpect reads a PUBLISH, checks topic, payload and QoS (retain 0, no
// DUP) and acknowledges it.
func (c *rawClient) recvExpect(topic, payload string, qos byte) {
	c.t.Helper()
	p := c.nextPublish()
	if p.Topic != topic || string(p.Payload) != payload || p.QoS != qos || p.Retain || p.Dup {
		c.t.Fatalf("got %s, want topic=%q payload=%q qos=%d", describe(p), topic, payload, qos)
	}
	c.ackIncoming(p)
}

// The session present flag: 0 for a clean session [MQTT-3.2.2-1], 1 when a
// persistent session is resumed [MQTT-3.2.2-2], 0 when none existed
// [MQTT-3.2.2-3].
func TestConnectSessionPresent_MQTT_3_2_2_1(t *testing.T) {
	_, addr := startBroker(t, broker.Config{})
	steps := []struct {
		name    string
		id      string
		clean   bool
		present bool
	}{
		{"clean new", "sp1", true, false},
		{"clean again", "sp1", true, false},
		{"persistent new", "sp2", false, false},
		{"persistent resumed", "sp2", false, true},
		{"persistent resumed twice", "sp2", false, true},
		{"clean discards persistent", "sp2", true, false},
		{"persistent after clean is new", "sp2", false, false},
		{"persistent after clean resumed", "sp2", false, true},
	}
	for _, st := range steps {
		// Sequential steps: each depends on the previous ones.
		c := dialRaw(t, addr)
		c.connect(&packet.Connect{ClientID: st.id, CleanSession: st.clean}, st.present, packet.Success)
		c.send(&packet.Disconnect{})
		c.expectClosed()
	}
}

// Limits.MaxConnections: a CONNECT over the limit gets CONNACK 0x03 and is
// closed; once a client leaves, a new one is accepted.
func TestConnectMaxConnections(t *testing.T) {
	s, addr := startBroker(t, broker.Config{Limits: broker.Limits{MaxConnections: 2}})
	a := dialConnect(t, addr, "a", true)
	dialConnect(t, addr, "b", true)
	c := dialRaw(t, addr)
	c.connect(&packet.Connect{ClientID: "c", CleanSession: true}, false, packet.ServerUnavailable)
	c.expectClosed()

	a.send(&packet.Disconnect{})
	a.expectClosed()
	waitFor(t, 5*time.Second, func() error {
		if n := s.Stats().ClientsConnected; n != 1 {
			return fmt.Errorf("%d clients connected, want 1", n)
		}
		return nil
	})
	d := dialConnect(t, addr, "d", true)
	d.sync()
}

// testAuth accepts user "alice" with password "secret" and refuses other
// credentials with 0x04, and clients without a user name with 0x05.
type testAuth struct{}

func (testAuth) Authenticate(c *broker.ClientInfo, password []byte) packet.Reason {
	switch {
	case !c.HasUsername:
		return packet.NotAuthorized
	case c.Username == "alice" && string(password) == "secret":
		return packet.Success
	}
	return packet.BadUserNameOrPassword
}

func strp(s string) *string { return &s }

// Authentication: the CONNACK return code of an Authenticator, and a
// listener without anonymous access and without an Authenticator refusing
// everyone with 0x05.
func TestConnectAuthentication(t *testing.T) {
	startWith := func(t *testing.T, auth broker.Authenticator, anonymous bool) string {
		cfg := broker.Config{}
		if auth != nil {
			cfg.Auth = auth
		}
		_, addr := startBroker(t, cfg, broker.AllowAnonymous(anonymous))
		return addr
	}
	tests := []struct {
		name      string
		auth      broker.Authenticator
		anonymous bool
		user      *string
		password  []byte
		want      packet.Reason
	}{
		{"no auth, anonymous listener", nil, true, nil, nil, packet.Success},
		{"no auth, closed listener, anonymous client", nil, false, nil, nil, packet.NotAuthorized},
		{"no auth, closed listener, with credentials", nil, false, strp("alice"), []byte("secret"), packet.NotAuthorized},
		{"auth, good password", testAuth{}, false, strp("alice"), []byte("secret"), packet.Success},
		{"auth, bad password", testAuth{}, false, strp("alice"), []byte("wrong"), packet.BadUserNameOrPassword},
		{"auth, no password", testAuth{}, false, strp("alice"), nil, packet.BadUserNameOrPassword},
		{"auth, unknown user", testAuth{}, false, strp("mallory"), []byte("secret"), packet.BadUserNameOrPassword},
		{"auth, anonymous client on closed listener", testAuth{}, false, nil, nil, packet.NotAuthorized},
		{"auth, anonymous client on anonymous listener", testAuth{}, true, nil, nil, packet.Success},
		{"auth, bad password on anonymous listener", testAuth{}, true, strp("alice"), []byte("wrong"), packet.BadUserNameOrPassword},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			addr := startWith(t, tc.auth, tc.anonymous)
			c := dialRaw(t, addr)
			c.connect(&packet.Connect{ClientID: "c", CleanSession: true, Username: tc.user, Password: tc.password},
				false, tc.want)
			if tc.want != packet.Success {
				// [MQTT-3.2.2-5]
				c.expectClosed()
				return
			}
			c.sync()
		})
	}
}

// testACL refuses subscriptions to filters under "secret" and publishes to
// topics under "ro/".
type testACL struct{}

func (testACL) Allow(c *broker.ClientInfo, a broker.Access, topic string) bool {
	switch a {
	case broker.Subscribe:
		return !strings.HasPrefix(topic, "secret")
	case broker.Publish:
		return !strings.HasPrefix(topic, "ro/")
	}
	return false
}

// Authorization: a refused filter gets SUBACK 0x80 while the others in the
// same SUBSCRIBE are granted [MQTT-3.9.3-1]; a refused PUBLISH is
// acknowledged but not delivered.
func TestACL(t *testing.T) {
	_, addr := startBroker(t, broker.Config{ACL: testACL{}})
	sub := dialConnect(t, addr, "sub", true)
	sub.send(&packet.Subscribe{PacketID: 3, Subscriptions: []packet.Subscription{
		{Filter: "secret/#", QoS: 1}, {Filter: "ro/#", QoS: 2}, {Filter: "ok/#", QoS: 1},
	}})
	sub.expect(&packet.Suback{PacketID: 3, Reasons: []packet.Reason{packet.UnspecifiedError, 2, 1}})

	pub := dialConnect(t, addr, "pub", true)
	pub.pub("secret/x", "not subscribed", 1, false, 1)
	pub.pub("ro/x", "refused q0", 0, false, 0)
	pub.pub("ro/x", "refused q1", 1, false, 2)
	pub.pub("ro/x", "refused q2", 2, false, 3)
	pub.pub("ok/x", "allowed", 1, false, 4)
	// Deliveries follow publish order, so had any refused message been
	// delivered it would come before this one.
	sub.recvExpect("ok/x", "allowed", 1)
	sub.expectNothing(50 * time.Millisecond)
}

// barrierAuth accepts everyone, but holds each Authenticate call until n
// clients are inside it (or 5 s pass), so their CONNECTs reach the
// broker's later checks at the same moment.
type barrierAuth struct {
	n       int
	mu      sync.Mutex
	arrived int
	all     chan struct{}
}

func (b *barrierAuth) Authenticate(*broker.ClientInfo, []byte) packet.Reason {
	b.mu.Lock()
	b.arrived++
	if b.arrived == b.n {
		close(b.all)
	}
	b.mu.Unlock()
	select {
	case <-b.all:
	case <-time.After(5 * time.Second):
	}
	return packet.Success
}

// Limits.MaxConnections holds under concurrent CONNECTs: of many clients
// connecting at once, exactly the limit are accepted, and the rest get
// CONNACK 0x03. A race shows only sometimes, so the test runs several
// rounds with more OS threads than this machine may have cores.
func TestConnectMaxConnectionsConcurrent(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(max(8, runtime.GOMAXPROCS(0))))
	for round := range 10 {
		t.Run(fmt.Sprint("round ", round), testMaxConnectionsConcurrent)
	}
}

func testMaxConnectionsConcurrent(t *testing.T) {
	const limit, n = 2, 16
	auth := &barrierAuth{n: n, all: make(chan struct{})}
	s, addr := startBroker(t, broker.Config{Auth: auth, Limits: broker.Limits{MaxConnections: limit}})
	type result struct {
		code packet.Reason
		err  error
	}
	results := make(chan result, n)
	for i := range n {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		go func() {
			nc.SetDeadline(time.Now().Add(10 * time.Second))
			b := (&packet.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: fmt.Sprint("c", i),
				CleanSession: true, Username: strp("u")}).AppendTo(nil, packet.V311)
			if _, err := nc.Write(b); err != nil {
				results <- result{err: err}
				return
			}
			p, err := packet.Read(bufio.NewReader(nc), 0, packet.V311)
			if err != nil {
				results <- result{err: err}
				return
			}
			ca, ok := p.(*packet.Connack)
			if !ok {
				results <- result{err: fmt.Errorf("got %s", describe(p))}
				return
			}
			results <- result{code: ca.Reason}
		}()
	}
	accepted := 0
	for range n {
		r := <-results
		switch {
		case r.err != nil:
			t.Fatal(r.err)
		case r.code == packet.Success:
			accepted++
		case r.code != packet.ServerUnavailable:
			t.Fatalf("CONNACK %#x, want 0 or 3", r.code)
		}
	}
	if accepted != limit {
		t.Errorf("%d of %d concurrent clients accepted with MaxConnections %d (Stats: %d connected)",
			accepted, n, limit, s.Stats().ClientsConnected)
	}
}

// A client reconnecting with the id of a connection the broker still
// holds (a half-open TCP connection after a network fault) takes it over
// [MQTT-3.1.4-2] even at Limits.MaxConnections: the takeover does not add
// a connection.
func TestConnectTakeoverAtMaxConnections_MQTT_3_1_4_2(t *testing.T) {
	s, addr := startBroker(t, broker.Config{Limits: broker.Limits{MaxConnections: 2}})
	dialConnect(t, addr, "a", true)
	stale := dialConnect(t, addr, "dev", false)
	c := dialRaw(t, addr)
	c.connect(&packet.Connect{ClientID: "dev", CleanSession: false}, true, packet.Success)
	stale.expectClosed()
	c.sync()
	waitConnected(t, s, 2)
}
