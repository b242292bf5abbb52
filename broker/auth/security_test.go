package auth_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/edged/edged/broker"
	"github.com/edged/edged/broker/auth"
	"github.com/edged/edged/broker/brokertest"
	"github.com/edged/edged/broker/packet"
	"github.com/edged/edged/persist"
)

// securityACL is the ACL of the tests below: anonymous clients read
// public/#, bob reads sensors/#, alice writes everywhere, and dash is a
// dashboard reading # except two denied subtrees.
const securityACL = `
topic read public/#

user bob
topic read sensors/#

user alice
topic write #

user dash
topic read #
topic deny test/nosubscribe
topic deny sensors/private/#
`

// securityFiles writes a password file for alice, bob and dash (each with
// password "<name>-pw") and securityACL, and loads both.
func securityFiles(t *testing.T) (*auth.Passwords, *auth.ACL, string) {
	t.Helper()
	dir := t.TempDir()
	pwPath, aclPath := filepath.Join(dir, "passwd"), filepath.Join(dir, "acl")
	for _, u := range []string{"alice", "bob", "dash"} {
		h, err := auth.HashPasswordIterations([]byte(u+"-pw"), 1)
		if err != nil {
			t.Fatal(err)
		}
		if err := auth.WritePasswordEntry(pwPath, u, h); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(aclPath, []byte(securityACL), 0o600); err != nil {
		t.Fatal(err)
	}
	pw, err := auth.LoadPasswords(pwPath)
	if err != nil {
		t.Fatal(err)
	}
	acl, err := auth.LoadACL(aclPath)
	if err != nil {
		t.Fatal(err)
	}
	return pw, acl, aclPath
}

// node is a broker on a real bbolt file that a test can restart.
type node struct {
	t    *testing.T
	s    *broker.Server
	db   *persist.DB
	addr string
}

func startNode(t *testing.T, path string, pw *auth.Passwords, acl *auth.ACL) *node {
	t.Helper()
	db, err := persist.Open(persist.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() }) // after the broker's shutdown (LIFO)
	s, addr := brokertest.Start(t, broker.Config{Store: db, Auth: pw, ACL: acl})
	return &node{t: t, s: s, db: db, addr: addr}
}

// stop shuts the broker down and closes its store, as a restart does.
func (n *node) stop() {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.s.Shutdown(ctx); err != nil {
		n.t.Fatal(err)
	}
	if err := n.db.Close(); err != nil {
		n.t.Fatal(err)
	}
}

// login connects as user (nil: anonymous) with client id id, expecting the
// CONNACK present flag given.
func login(t *testing.T, addr, id string, user *string, clean, present bool) *mqttConn {
	t.Helper()
	c := dial(t, addr)
	p := &packet.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, CleanSession: clean, KeepAlive: 30,
		ClientID: id, Username: user}
	if user != nil {
		p.Password = []byte(*user + "-pw")
	}
	c.send(p)
	c.expect(&packet.Connack{SessionPresent: present})
	return c
}

// expectNothing fails if a packet arrives within d.
func (c *mqttConn) expectNothing(d time.Duration) {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(d))
	if p, err := packet.Read(c.br, 0, packet.V311); err == nil {
		c.t.Fatalf("got %T %+v, want nothing", p, p)
	}
}

// expectClosed fails unless the broker closes the connection.
func (c *mqttConn) expectClosed() {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, err := packet.Read(c.br, 0, packet.V311); err != nil {
			if ne, ok := err.(interface{ Timeout() bool }); ok && ne.Timeout() {
				c.t.Fatal("connection still open")
			}
			return
		}
	}
}

// publish publishes at QoS 1 and waits for PUBACK.
func (c *mqttConn) publish(topic, payload string, retain bool, pid uint16) {
	c.t.Helper()
	c.send(&packet.Publish{QoS: 1, PacketID: pid, Topic: topic, Payload: []byte(payload), Retain: retain})
	c.expect(&packet.Puback{PacketID: pid})
}

// receive reads a QoS 1 PUBLISH of topic and payload and acknowledges it.
func (c *mqttConn) receive(topic, payload string, retain bool) {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	p, err := packet.Read(c.br, 0, packet.V311)
	if err != nil {
		c.t.Fatalf("reading, want PUBLISH %s %q: %v", topic, payload, err)
	}
	pub, ok := p.(*packet.Publish)
	if !ok || pub.Topic != topic || string(pub.Payload) != payload || pub.Retain != retain || pub.QoS != 1 {
		c.t.Fatalf("got %T %+v, want QoS 1 PUBLISH %s %q retain=%v", p, p, topic, payload, retain)
	}
	c.send(&packet.Puback{PacketID: pub.PacketID})
}

// bobWithQueue gives bob a persistent session subscribed to
// sensors/private/# holding one queued message, "queued-1".
func bobWithQueue(t *testing.T, addr string) {
	t.Helper()
	bob := login(t, addr, "bob-dev", str("bob"), false, false)
	bob.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "sensors/private/#", QoS: 1}}})
	bob.expect(&packet.Suback{PacketID: 1, Reasons: []packet.Reason{1}})
	bob.send(&packet.Disconnect{})
	bob.expectClosed()
	alice := login(t, addr, "alice-1", str("alice"), true, false)
	alice.publish("sensors/private/a", "queued-1", false, 1)
}

// A client with another identity that connects with bob's client id and
// clean session 0 starts clean: it gets neither bob's queued messages nor
// live ones through bob's subscriptions, also after a restart on the same
// bbolt file. bob's own reconnect resumes his session.
func TestTakeoverAcrossUsers(t *testing.T) {
	pw, acl, _ := securityFiles(t)

	t.Run("owner resumes, across a restart", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "edged.db")
		n := startNode(t, path, pw, acl)
		bobWithQueue(t, n.addr)
		n.stop()
		n = startNode(t, path, pw, acl)
		bob := login(t, n.addr, "bob-dev", str("bob"), false, true)
		bob.receive("sensors/private/a", "queued-1", false)
	})

	intruders := []struct {
		name string
		user *string
	}{
		{"anonymous", nil},
		{"another user", str("dash")},
	}
	for _, in := range intruders {
		for _, restart := range []bool{false, true} {
			name := in.name
			if restart {
				name += " after restart"
			}
			t.Run(name, func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "edged.db")
				n := startNode(t, path, pw, acl)
				bobWithQueue(t, n.addr)
				if restart {
					n.stop()
					n = startNode(t, path, pw, acl)
				}
				evil := login(t, n.addr, "bob-dev", in.user, false, false)
				alice := login(t, n.addr, "alice-1", str("alice"), true, false)
				alice.publish("sensors/private/b", "live-1", false, 1)
				evil.expectNothing(200 * time.Millisecond)
				evil.send(&packet.Disconnect{})
				evil.expectClosed()

				// bob's session was discarded: he starts clean too, and the
				// intruder's session is not his either.
				bob := login(t, n.addr, "bob-dev", str("bob"), false, false)
				bob.expectNothing(100 * time.Millisecond)
			})
		}
	}

	t.Run("while connected", func(t *testing.T) {
		n := startNode(t, filepath.Join(t.TempDir(), "edged.db"), pw, acl)
		bob := login(t, n.addr, "bob-dev", str("bob"), false, false)
		bob.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "sensors/private/#", QoS: 1}}})
		bob.expect(&packet.Suback{PacketID: 1, Reasons: []packet.Reason{1}})
		evil := login(t, n.addr, "bob-dev", nil, false, false)
		bob.expectClosed() // [MQTT-3.1.4-2], as Mosquitto does
		alice := login(t, n.addr, "alice-1", str("alice"), true, false)
		alice.publish("sensors/private/c", "live-2", false, 1)
		evil.expectNothing(200 * time.Millisecond)
	})
}

// A dashboard subscribing to # is granted (SUBACK 0), and receives only
// what its ACL lets it read: denied topics are filtered from live, queued
// and retained deliveries alike. The exact denied filter is refused.
func TestACLHashFilteredAtDelivery(t *testing.T) {
	pw, acl, _ := securityFiles(t)
	n := startNode(t, filepath.Join(t.TempDir(), "edged.db"), pw, acl)
	alice := login(t, n.addr, "alice-1", str("alice"), true, false)
	// Retained before the dashboard subscribes.
	alice.publish("sensors/private/r", "secret-retained", true, 1)
	alice.publish("sensors/r", "retained", true, 2)

	dash := login(t, n.addr, "dash-1", str("dash"), false, false)
	dash.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{
		{Filter: "#", QoS: 1}, {Filter: "test/nosubscribe", QoS: 1}, {Filter: "sensors/private/#", QoS: 1}}})
	dash.expect(&packet.Suback{PacketID: 1, Reasons: []packet.Reason{1, packet.UnspecifiedError, packet.UnspecifiedError}})
	dash.receive("sensors/r", "retained", true)

	// Live.
	alice.publish("test/nosubscribe", "denied-1", false, 3)
	alice.publish("sensors/private/x", "denied-2", false, 4)
	alice.publish("sensors/x", "live", false, 5)
	dash.receive("sensors/x", "live", false)

	// Queued while the dashboard is offline.
	dash.send(&packet.Disconnect{})
	dash.expectClosed()
	alice.publish("sensors/private/q", "denied-3", false, 6)
	alice.publish("test/nosubscribe", "denied-4", false, 7)
	alice.publish("public/q", "queued", false, 8)
	dash = login(t, n.addr, "dash-1", str("dash"), false, true)
	dash.receive("public/q", "queued", false)
	dash.expectNothing(100 * time.Millisecond)
	if q := n.s.Stats().QueuedMessages; q != 0 {
		t.Errorf("%d messages queued, want 0: denied ones must not be queued", q)
	}
}

// Clients never publish to $SYS, even with an ACL rule granting it, and
// nothing is retained; their wills neither. The broker's own $SYS topics
// still reach subscribers.
func TestSysPublishRefused(t *testing.T) {
	dir := t.TempDir()
	aclPath := filepath.Join(dir, "acl")
	os.WriteFile(aclPath, []byte("topic readwrite #\ntopic readwrite $SYS/#\n"), 0o600)
	acl, err := auth.LoadACL(aclPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, cfg := range []struct {
		name string
		acl  broker.Authorizer
	}{{"no ACL", nil}, {"ACL granting $SYS", acl}} {
		t.Run(cfg.name, func(t *testing.T) {
			c := broker.Config{SysInterval: 50 * time.Millisecond}
			if cfg.acl != nil {
				c.ACL = cfg.acl
			}
			_, addr := brokertest.Start(t, c)
			sub := login(t, addr, "sub", nil, true, false)
			sub.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{
				{Filter: "$SYS/broker/connection/#", QoS: 1}, {Filter: "$SYS/broker/version", QoS: 0}}})
			sub.expect(&packet.Suback{PacketID: 1, Reasons: []packet.Reason{1, 0}})
			// The broker's own $SYS message arrives.
			sub.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
			if p, err := packet.Read(sub.br, 0, packet.V311); err != nil {
				t.Fatalf("no $SYS/broker/version from the broker: %v", err)
			} else if pp, ok := p.(*packet.Publish); !ok || pp.Topic != "$SYS/broker/version" {
				t.Fatalf("got %T %+v, want $SYS/broker/version", p, p)
			}
			sub.send(&packet.Unsubscribe{PacketID: 2, Filters: []string{"$SYS/broker/version"}})
			sub.expect(&packet.Unsuback{PacketID: 2})

			// A will to $SYS is not published either.
			w := dial(t, addr)
			w.send(&packet.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, CleanSession: true, ClientID: "w",
				Will: &packet.Will{Topic: "$SYS/broker/connection/w/state", Payload: []byte("0"), QoS: 1, Retain: true}})
			w.expect(&packet.Connack{})

			spoof := login(t, addr, "spoof", nil, true, false)
			spoof.publish("$SYS/broker/connection/up/state", "1", true, 1)
			spoof.send(&packet.Publish{QoS: 2, PacketID: 2, Topic: "$SYS/broker/connection/up/state", Payload: []byte("1"), Retain: true})
			spoof.expect(&packet.Pubrec{PacketID: 2})
			spoof.send(&packet.Pubrel{PacketID: 2})
			spoof.expect(&packet.Pubcomp{PacketID: 2})
			w.nc.Close()
			sub.expectNothing(300 * time.Millisecond)

			// Nothing was retained.
			late := login(t, addr, "late", nil, true, false)
			late.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "$SYS/broker/connection/#", QoS: 1}}})
			late.expect(&packet.Suback{PacketID: 1, Reasons: []packet.Reason{1}})
			late.expectNothing(100 * time.Millisecond)
		})
	}
}

// rewriteACL replaces the ACL file's bob block and reloads it.
func rewriteACL(t *testing.T, acl *auth.ACL, path, bobRules string) {
	t.Helper()
	text := "topic read public/#\nuser alice\ntopic write #\nuser bob\n" + bobRules + "\n"
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := acl.Reload(); err != nil {
		t.Fatal(err)
	}
}

// After the ACL is reloaded (SIGHUP), Reauthorize makes granted
// subscriptions follow the new rules: a filter now only partly readable is
// filtered at delivery, one no longer readable at all is removed.
func TestReauthorizeAfterReload(t *testing.T) {
	pw, acl, path := securityFiles(t)
	n := startNode(t, filepath.Join(t.TempDir(), "edged.db"), pw, acl)
	bob := login(t, n.addr, "bob-dev", str("bob"), true, false)
	bob.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "sensors/#", QoS: 1}}})
	bob.expect(&packet.Suback{PacketID: 1, Reasons: []packet.Reason{1}})
	alice := login(t, n.addr, "alice-1", str("alice"), true, false)
	alice.publish("sensors/private/x", "before", false, 1)
	bob.receive("sensors/private/x", "before", false)

	rewriteACL(t, acl, path, "topic read sensors/public/#")
	n.s.Reauthorize()
	alice.publish("sensors/private/x", "revoked", false, 2)
	alice.publish("sensors/public/x", "still", false, 3)
	bob.receive("sensors/public/x", "still", false)

	rewriteACL(t, acl, path, "topic read other/#")
	before := n.s.Stats().Subscriptions
	n.s.Reauthorize()
	if after := n.s.Stats().Subscriptions; after != before-1 {
		t.Errorf("%d subscriptions after Reauthorize, want %d: sensors/# is no longer readable", after, before-1)
	}
	alice.publish("sensors/public/x", "gone", false, 4)
	bob.expectNothing(200 * time.Millisecond)
}

// A resumed session's subscriptions are checked against the rules in use,
// also when they changed while the broker was down: what was queued after
// the change is what the owner may read, and a filter nothing of which is
// readable is gone when the client resumes.
func TestResumeRechecksSubscriptions(t *testing.T) {
	pw, acl, path := securityFiles(t)
	db := filepath.Join(t.TempDir(), "edged.db")
	n := startNode(t, db, pw, acl)
	bob := login(t, n.addr, "bob-dev", str("bob"), false, false)
	bob.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{
		{Filter: "sensors/#", QoS: 1}, {Filter: "sensors/private/#", QoS: 1}}})
	bob.expect(&packet.Suback{PacketID: 1, Reasons: []packet.Reason{1, 1}})
	bob.send(&packet.Disconnect{})
	bob.expectClosed()
	n.stop()

	rewriteACL(t, acl, path, "topic read sensors/public/#")
	n = startNode(t, db, pw, acl)
	alice := login(t, n.addr, "alice-1", str("alice"), true, false)
	alice.publish("sensors/private/x", "revoked", false, 1)
	alice.publish("sensors/public/x", "allowed", false, 2)
	bob = login(t, n.addr, "bob-dev", str("bob"), false, true)
	bob.receive("sensors/public/x", "allowed", false)
	bob.expectNothing(100 * time.Millisecond)
	if got := n.s.Stats().Subscriptions; got != 1 {
		t.Errorf("%d subscriptions after resume, want 1 (sensors/private/# revoked)", got)
	}
}
