package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edged/edged/broker/packet"
	"github.com/edged/edged/internal/testutil"
)

// TestPasswdAndReload: `edged passwd` writes a password file, edged with
// allow_anonymous false accepts its users and refuses others, and SIGHUP
// picks up a user added while it runs.
func TestPasswdAndReload(t *testing.T) {
	pub := testutil.NeedTool(t, "mosquitto_pub")
	dir := t.TempDir()
	pw := filepath.Join(dir, "passwd")
	acl := filepath.Join(dir, "acl")
	if out, err := exec.Command(edgedBin, "passwd", "-b", pw, "alice", "s3cret").CombinedOutput(); err != nil {
		t.Fatalf("edged passwd: %v\n%s", err, out)
	}
	if err := os.WriteFile(acl, []byte("user alice\ntopic readwrite sensors/#\nuser bob\ntopic write sensors/bob/#\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf("data_dir: %s/data\nauth: {password_file: %s, acl_file: %s}\n"+
		"listeners:\n  - {name: lan, address: 127.0.0.1:0, allow_anonymous: false}\n", dir, pw, acl)
	p := startEdged(t, dir, cfg)
	try := func(user, pass string) error {
		args := []string{"-h", "127.0.0.1", "-p", p.port(), "-t", "sensors/" + user + "/t", "-m", "1", "-q", "1"}
		if user != "" {
			args = append(args, "-u", user, "-P", pass)
		}
		out, err := exec.Command(pub, args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	if err := try("alice", "s3cret"); err != nil {
		t.Fatalf("alice refused: %v", err)
	}
	if err := try("alice", "wrong"); err == nil {
		t.Fatal("wrong password accepted")
	}
	if err := try("", ""); err == nil {
		t.Fatal("anonymous client accepted on a listener with allow_anonymous: false")
	}
	if err := try("bob", "b0b"); err == nil {
		t.Fatal("unknown user accepted")
	}
	cmd := exec.Command(edgedBin, "passwd", pw, "bob")
	cmd.Stdin = strings.NewReader("b0b\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("edged passwd from stdin: %v\n%s", err, out)
	}
	p.cmd.Process.Signal(syscall.SIGHUP)
	testutil.WaitFor(t, 10*time.Second, func() error { return try("bob", "b0b") })
	p.stop(t)
}

// TestACLReloadRevokes: after SIGHUP re-reads the ACL file, a subscription
// the new rules no longer grant stops delivering, without the client
// reconnecting.
func TestACLReloadRevokes(t *testing.T) {
	dir := t.TempDir()
	acl := filepath.Join(dir, "acl")
	if err := os.WriteFile(acl, []byte("topic readwrite sensors/#\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf("data_dir: %s/data\nauth: {acl_file: %s}\nlisteners:\n  - {name: local, address: 127.0.0.1:0}\n", dir, acl)
	p := startEdged(t, dir, cfg)
	got := make(chan string, 16)
	sub, _, err := dialMQTT(p.addr, "sub", true, func(_ *tclient, pk packet.Packet) {
		if pp, ok := pk.(*packet.Publish); ok {
			got <- string(pp.Payload)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.close()
	pub, _, err := dialMQTT(p.addr, "pub", true, func(*tclient, packet.Packet) {})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.close()
	sub.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "sensors/#", QoS: 0}}})
	// Publish until the subscription is live (SUBACK is not awaited here).
	testutil.WaitFor(t, 5*time.Second, func() error {
		pub.send(&packet.Publish{Topic: "sensors/a", Payload: []byte("before")})
		select {
		case <-got:
			return nil
		case <-time.After(50 * time.Millisecond):
			return fmt.Errorf("nothing delivered before the reload")
		}
	})
	if err := os.WriteFile(acl, []byte("topic write sensors/#\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.logged(t, "subscriptions re-checked", func(r map[string]any) bool {
		return r["msg"] == "subscriptions re-checked" && r["revoked"] == float64(1)
	})
	pub.send(&packet.Publish{Topic: "sensors/a", Payload: []byte("after")})
	deadline := time.After(300 * time.Millisecond)
	for {
		select {
		case m := <-got:
			if m == "after" { // not a late "before"
				t.Fatal("delivered after the subscription was revoked")
			}
			continue
		case <-deadline:
		}
		break
	}
	p.stop(t)
}
