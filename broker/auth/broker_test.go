package auth_test

import (
	"bufio"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/edged/edged/broker"
	"github.com/edged/edged/broker/auth"
	"github.com/edged/edged/broker/brokertest"
	"github.com/edged/edged/broker/packet"
)

// startBroker serves a broker with cfg on 127.0.0.1:0 and shuts it down in
// t.Cleanup.
func startBroker(t *testing.T, cfg broker.Config, opts ...broker.ServeOption) string {
	t.Helper()
	_, addr := brokertest.Start(t, cfg, opts...)
	return addr
}

type mqttConn struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

func dial(t *testing.T, addr string) *mqttConn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &mqttConn{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (c *mqttConn) send(p packet.Packet) {
	c.t.Helper()
	c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.nc.Write(packet.Encode(p, packet.V311)); err != nil {
		c.t.Fatal(err)
	}
}

func (c *mqttConn) expect(want packet.Packet) {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := packet.Read(c.br, 0, packet.V311)
	if err != nil {
		c.t.Fatalf("reading, want %T %+v: %v", want, want, err)
	}
	if !reflect.DeepEqual(got, want) {
		c.t.Fatalf("got %T %+v, want %T %+v", got, got, want, want)
	}
}

// expectAll reads len(want) packets and fails unless they are want in
// any order.
func (c *mqttConn) expectAll(want ...packet.Packet) {
	c.t.Helper()
	left := append([]packet.Packet(nil), want...)
	for range want {
		c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		got, err := packet.Read(c.br, 0, packet.V311)
		if err != nil {
			c.t.Fatalf("reading, want %d more packets: %v", len(left), err)
		}
		i := 0
		for i < len(left) && !reflect.DeepEqual(got, left[i]) {
			i++
		}
		if i == len(left) {
			c.t.Fatalf("got unexpected %T %+v", got, got)
		}
		left = append(left[:i], left[i+1:]...)
	}
}

// connect dials and sends CONNECT; a nil username sends none.
func connect(t *testing.T, addr, id string, username *string, password string, want packet.Reason) *mqttConn {
	t.Helper()
	c := dial(t, addr)
	p := &packet.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, CleanSession: true, KeepAlive: 30,
		ClientID: id, Username: username}
	if password != "" {
		p.Password = []byte(password)
	}
	c.send(p)
	c.expect(&packet.Connack{Reason: want})
	return c
}

func str(s string) *string { return &s }

func TestBrokerIntegration(t *testing.T) {
	dir := t.TempDir()
	pwPath, aclPath := filepath.Join(dir, "passwd"), filepath.Join(dir, "acl")
	for _, u := range []struct{ name, pw string }{{"alice", "alice-pw"}, {"bob", "bob-pw"}} {
		h, err := auth.HashPassword([]byte(u.pw))
		if err != nil {
			t.Fatal(err)
		}
		if err := auth.WritePasswordEntry(pwPath, u.name, h); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(aclPath, []byte(`
user alice
topic readwrite a/#
topic deny a/secret
user bob
topic read a/#
`), 0o600)
	pw, err := auth.LoadPasswords(pwPath)
	if err != nil {
		t.Fatal(err)
	}
	acl, err := auth.LoadACL(aclPath)
	if err != nil {
		t.Fatal(err)
	}
	addr := startBroker(t, broker.Config{Auth: pw, ACL: acl}, broker.AllowAnonymous(false))

	t.Run("connect", func(t *testing.T) {
		for _, tc := range []struct {
			name     string
			username *string
			password string
			want     packet.Reason
		}{
			{"anonymous", nil, "", packet.NotAuthorized},
			{"wrong password", str("alice"), "bob-pw", packet.BadUserNameOrPassword},
			{"no password", str("alice"), "", packet.BadUserNameOrPassword},
			{"unknown user", str("mallory"), "alice-pw", packet.BadUserNameOrPassword},
			{"right password", str("alice"), "alice-pw", packet.Success},
		} {
			t.Run(tc.name, func(t *testing.T) {
				connect(t, addr, "c-"+tc.name, tc.username, tc.password, tc.want)
			})
		}
	})

	t.Run("acl", func(t *testing.T) {
		bob := connect(t, addr, "bob-1", str("bob"), "bob-pw", packet.Success)
		alice := connect(t, addr, "alice-1", str("alice"), "alice-pw", packet.Success)

		// bob may read a/# but not b/#; alice may subscribe to a/#, but
		// a/secret, denied to her, is filtered at delivery.
		bob.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{
			{Filter: "a/#", QoS: 1}, {Filter: "b/#", QoS: 0}}})
		bob.expect(&packet.Suback{PacketID: 1, Reasons: []packet.Reason{1, packet.UnspecifiedError}})
		alice.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{
			{Filter: "a/#", QoS: 1}, {Filter: "a/ok", QoS: 1}}})
		alice.expect(&packet.Suback{PacketID: 1, Reasons: []packet.Reason{1, 1}})

		// Refused publishes are acknowledged and dropped: bob may not
		// write at all, alice not to a/secret.
		bob.send(&packet.Publish{QoS: 1, PacketID: 2, Topic: "a/ok", Payload: []byte("from bob")})
		bob.expect(&packet.Puback{PacketID: 2})
		alice.send(&packet.Publish{QoS: 1, PacketID: 2, Topic: "a/secret", Payload: []byte("secret")})
		alice.expect(&packet.Puback{PacketID: 2})
		alice.send(&packet.Publish{QoS: 1, PacketID: 3, Topic: "a/ok", Payload: []byte("from alice")})

		// The first message either of them receives is alice's a/ok.
		delivered := &packet.Publish{QoS: 1, PacketID: 1, Topic: "a/ok", Payload: []byte("from alice")}
		alice.expectAll(&packet.Puback{PacketID: 3}, delivered)
		bob.expect(delivered)
	})
}
