package broker_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/edged/edged/broker"
	"github.com/edged/edged/broker/auth"
	"github.com/edged/edged/broker/packet"
	"github.com/edged/edged/persist"
)

// Sessions shows online and offline sessions with their owner, listener,
// subscriptions and queue; Disconnect closes a client as a network loss
// (its will goes out, its session stays); DeleteSession removes a session
// from memory and from the store, also one whose client is online.
func TestInspectSessionsAndActions(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "edged.db")
	db, err := persist.Open(persist.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	s, addr := startBroker(t, broker.Config{Store: db}, broker.WithName("lan"))
	t.Cleanup(func() { db.Close() })

	// An offline persistent session with a queue of 3 messages.
	off := dialConnect(t, addr, "sleeper", false)
	off.sub("q/#", 1)
	off.send(&packet.Disconnect{})
	off.expectClosed()
	// An online client with a will, and a watcher of the will.
	user := "alice"
	on := dialRaw(t, addr)
	on.connect(&packet.Connect{ClientID: "worker", CleanSession: true, Username: &user, KeepAlive: 30,
		Will: &packet.Will{Topic: "wills/worker", Payload: []byte("gone")}}, false, packet.Success)
	on.sub("a/b", 0)
	on.sub("c/+", 1)
	obs := dialConnect(t, addr, "observer", true)
	obs.sub("wills/#", 0)
	pub := dialConnect(t, addr, "pub", true)
	for i := range 3 {
		pub.pub("q/x", "payload-"+strconv.Itoa(i), 1, false, uint16(i+1))
	}

	var sl, wk broker.SessionInfo
	waitFor(t, 5*time.Second, func() error {
		for _, si := range s.Sessions() {
			switch si.ClientID {
			case "sleeper":
				sl = si
			case "worker":
				wk = si
			}
		}
		if sl.Queued != 3 {
			return fmt.Errorf("sleeper queued %d, want 3", sl.Queued)
		}
		return nil
	})
	if sl.Online || !sl.Persistent || sl.OfflineSince.IsZero() || sl.QueuedBytes != 3*int64(len("q/x")+len("payload-0")) ||
		len(sl.Subscriptions) != 1 || sl.Subscriptions[0] != (broker.Subscription{Filter: "q/#", QoS: 1}) || sl.Listener != "lan" {
		t.Errorf("sleeper: %+v", sl)
	}
	if !wk.Online || wk.Persistent || !wk.HasUsername || wk.Username != "alice" || wk.Listener != "lan" || wk.Remote == "" ||
		len(wk.Subscriptions) != 2 || wk.Subscriptions[0].Filter != "a/b" || wk.Subscriptions[1].Filter != "c/+" {
		t.Errorf("worker: %+v", wk)
	}

	// Hostile: unknown ids, and an offline client cannot be disconnected.
	if err := s.Disconnect("nobody"); !errors.Is(err, broker.ErrNoSession) {
		t.Errorf("Disconnect(nobody) = %v", err)
	}
	if err := s.Disconnect("sleeper"); !errors.Is(err, broker.ErrNotConnected) {
		t.Errorf("Disconnect(sleeper) = %v", err)
	}
	if err := s.DeleteSession("nobody"); !errors.Is(err, broker.ErrNoSession) {
		t.Errorf("DeleteSession(nobody) = %v", err)
	}

	if err := s.Disconnect("worker"); err != nil {
		t.Fatal(err)
	}
	on.expectClosed()
	obs.expectPublish("wills/worker", "gone", 0, false, false)

	if err := s.DeleteSession("sleeper"); err != nil {
		t.Fatal(err)
	}
	for _, si := range s.Sessions() {
		if si.ClientID == "sleeper" {
			t.Fatalf("sleeper still listed: %+v", si)
		}
	}
	// The store no longer has it: a resume finds no session.
	back := dialRaw(t, addr)
	back.connect(&packet.Connect{ClientID: "sleeper", KeepAlive: 30}, false, packet.Success)
	back.expectNothing(200 * time.Millisecond)
}

// Watch sees live messages of its filter, never $SYS through a wildcard,
// and as the ACL lets the given identity read; stop ends it.
func TestInspectWatch(t *testing.T) {
	t.Parallel()
	aclFile := filepath.Join(t.TempDir(), "acl")
	if err := os.WriteFile(aclFile, []byte("user alice\ntopic read sensors/public/#\ntopic readwrite own/#\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	acl, err := auth.LoadACL(aclFile)
	if err != nil {
		t.Fatal(err)
	}
	s, addr := startBroker(t, broker.Config{ACL: allowPublish{acl}, SysInterval: 50 * time.Millisecond})

	var mu sync.Mutex
	var all, alice []string
	stopAll, err := s.Watch("#", nil, func(m broker.WatchedMessage) {
		mu.Lock()
		all = append(all, m.Topic+"="+string(m.Payload))
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	ci := &broker.ClientInfo{ClientID: "edged-http", Username: "alice", HasUsername: true}
	stopAlice, err := s.Watch("sensors/#", ci, func(m broker.WatchedMessage) {
		mu.Lock()
		alice = append(alice, m.Topic)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stopAlice()
	if _, err := s.Watch("secret/#", ci, func(broker.WatchedMessage) {}); !errors.Is(err, broker.ErrWatchDenied) {
		t.Errorf("Watch(secret/#) as alice = %v, want ErrWatchDenied", err)
	}
	if _, err := s.Watch("bad/#/x", nil, func(broker.WatchedMessage) {}); err == nil {
		t.Error("Watch of an invalid filter succeeded")
	}

	pub := dialConnect(t, addr, "pub", true)
	pub.pub("sensors/public/t", "1", 0, false, 0)
	pub.pub("sensors/private/t", "2", 1, false, 1)
	pub.sync()
	time.Sleep(120 * time.Millisecond) // $SYS is published meanwhile
	stopAll()
	pub.pub("after/stop", "3", 1, false, 2)
	pub.sync()

	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(all) != "[sensors/public/t=1 sensors/private/t=2]" {
		t.Errorf("# watch saw %v", all)
	}
	if fmt.Sprint(alice) != "[sensors/public/t]" {
		t.Errorf("alice's watch saw %v, want only what her ACL reads", alice)
	}
}

// allowPublish lets the test's publisher publish anywhere and leaves
// reading to the ACL file.
type allowPublish struct{ *auth.ACL }

func (a allowPublish) Allow(c *broker.ClientInfo, acc broker.Access, topic string) bool {
	return acc == broker.Publish || a.ACL.Allow(c, acc, topic)
}

// $SYS/broker/load/... follows Mosquitto's moving averages, and
// clients/maximum, active, inactive and heap/current are published.
func TestSysLoadAndClients(t *testing.T) {
	t.Parallel()
	s, addr := startBroker(t, broker.Config{SysInterval: 100 * time.Millisecond})
	a := dialConnect(t, addr, "a", true)
	b := dialConnect(t, addr, "b", true)
	for i := range 20 {
		a.pub("load/x", "y", 1, false, uint16(i+1))
	}
	b.send(&packet.Disconnect{})
	b.expectClosed()
	waitFor(t, 5*time.Second, func() error {
		if l := s.LoadAverages()["messages/received"]; !(l[0] > l[1] && l[1] > l[2] && l[2] > 0) {
			return fmt.Errorf("messages/received load %v, want 1min > 5min > 15min > 0 after a burst", l)
		}
		return nil
	})
	sub := dialConnect(t, addr, "sys", true)
	sub.sub("$SYS/broker/#", 0)
	got := map[string]string{}
	want := []string{"clients/maximum", "clients/active", "clients/inactive", "heap/current",
		"load/messages/received/1min", "load/messages/received/5min", "load/messages/received/15min",
		"load/bytes/sent/15min", "load/connections/1min", "load/publish/dropped/5min"}
	deadline := time.Now().Add(5 * time.Second)
	for missing(got, want) && time.Now().Before(deadline) {
		p := sub.nextPublish()
		got[p.Topic[len("$SYS/broker/"):]] = string(p.Payload)
	}
	if m := missing(got, want); m {
		t.Fatalf("missing $SYS topics; got %v", got)
	}
	if got["clients/maximum"] != "3" && got["clients/maximum"] != "2" {
		t.Errorf("clients/maximum = %q, want the peak (2 or 3 with the $SYS subscriber)", got["clients/maximum"])
	}
	if n, err := strconv.ParseUint(got["heap/current"], 10, 64); err != nil || n == 0 {
		t.Errorf("heap/current = %q", got["heap/current"])
	}
	if _, err := strconv.ParseFloat(got["load/messages/received/1min"], 64); err != nil {
		t.Errorf("load/messages/received/1min = %q", got["load/messages/received/1min"])
	}
}

func missing(got map[string]string, want []string) bool {
	for _, w := range want {
		if _, ok := got[w]; !ok {
			return true
		}
	}
	return false
}
