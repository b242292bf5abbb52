package auth_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/edged/edged/broker"
	"github.com/edged/edged/broker/auth"
	"github.com/edged/edged/broker/packet"
	"github.com/edged/edged/internal/testutil"
)

// freePort returns a 127.0.0.1 port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// mosquittoPub runs mosquitto_pub against addr and returns its error.
func mosquittoPub(t *testing.T, tool, host string, port int, username, password string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, tool, "-h", host, "-p", strconv.Itoa(port),
		"-i", "interop", "-u", username, "-P", password, "-t", "t", "-m", "x").CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

// TestMosquittoAcceptsOurHashes runs a real Mosquitto broker with a
// password file written by WritePasswordEntry and connects to it with
// mosquitto_pub.
func TestMosquittoAcceptsOurHashes(t *testing.T) {
	pubTool := needTool(t, "mosquitto_pub")
	server, err := exec.LookPath("mosquitto")
	if err != nil {
		server = needTool(t, "/usr/sbin/mosquitto")
	}
	dir := t.TempDir()
	pwPath := filepath.Join(dir, "passwd")
	for _, u := range []struct {
		name, password string
		iterations     int
	}{{"ours", "s3cret", auth.DefaultIterations}, {"mosq-default", "other", 101}} {
		h, err := auth.HashPasswordIterations([]byte(u.password), u.iterations)
		if err != nil {
			t.Fatal(err)
		}
		if err := auth.WritePasswordEntry(pwPath, u.name, h); err != nil {
			t.Fatal(err)
		}
	}
	port := freePort(t)
	conf := filepath.Join(dir, "mosquitto.conf")
	os.WriteFile(conf, fmt.Appendf(nil, "listener %d 127.0.0.1\nallow_anonymous false\n"+
		"password_file %s\npersistence false\nuser root\nlog_dest stderr\n", port, pwPath), 0o600)
	var log bytes.Buffer
	cmd := exec.Command(server, "-c", conf)
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("mosquitto log:\n%s", log.String())
		}
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for deadline := time.Now().Add(5 * time.Second); ; {
		nc, err := net.Dial("tcp", addr)
		if err == nil {
			nc.Close()
			break
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("mosquitto exited: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("mosquitto is not listening on %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}

	for _, tc := range []struct {
		name, user, password string
		ok                   bool
	}{
		{"our default hash", "ours", "s3cret", true},
		{"our 101-round hash", "mosq-default", "other", true},
		{"wrong password", "ours", "other", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := mosquittoPub(t, pubTool, "127.0.0.1", port, tc.user, tc.password)
			if (err == nil) != tc.ok {
				t.Errorf("mosquitto_pub -u %s: %v, want success %v", tc.user, err, tc.ok)
			}
		})
	}
}

// TestMosquittoClientsAgainstEdged connects mosquitto_pub to edged with a
// password file written by mosquitto_passwd.
func TestMosquittoClientsAgainstEdged(t *testing.T) {
	pubTool := needTool(t, "mosquitto_pub")
	passwdTool := needTool(t, "mosquitto_passwd")
	pwPath := filepath.Join(t.TempDir(), "passwd")
	if out, err := exec.Command(passwdTool, "-c", "-b", pwPath, "dev", "pa55").CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd: %v\n%s", err, out)
	}
	pw, err := auth.LoadPasswords(pwPath)
	if err != nil {
		t.Fatal(err)
	}
	addr := startBroker(t, broker.Config{Auth: pw}, broker.AllowAnonymous(false))
	host, portStr, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portStr)
	if err := mosquittoPub(t, pubTool, host, port, "dev", "pa55"); err != nil {
		t.Errorf("right password: %v", err)
	}
	if err := mosquittoPub(t, pubTool, host, port, "dev", "nope"); err == nil {
		t.Error("wrong password accepted")
	}
}

// received subscribes anonymously to "#" and "$SYS/spoof/#" on addr,
// publishes each topic at QoS 1 as user "writer" (password "writer-pw"),
// and returns the topics the subscriber received, in order, up to the
// marker "public/end".
func received(t *testing.T, addr string, topics []string) []string {
	t.Helper()
	sub := login(t, addr, "sub", nil, true, false)
	sub.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{
		{Filter: "#", QoS: 0}, {Filter: "$SYS/spoof/#", QoS: 0}}})
	sub.expect(&packet.Suback{PacketID: 1, Reasons: []packet.Reason{0, 0}})
	pub := login(t, addr, "pub", str("writer"), true, false)
	for i, topic := range topics {
		pub.publish(topic, "x", false, uint16(i+1))
	}
	// A spoofed bridge state, although the ACL lets writer write $SYS/#.
	// QoS 0 on a connection of its own: Mosquitto 2.0.11 disconnects the
	// client (edged acknowledges and drops it, as any refused PUBLISH). The
	// PINGREQ round trip makes sure it was handled before the marker.
	spoof := login(t, addr, "spoof", str("writer"), true, false)
	spoof.send(&packet.Publish{Topic: "$SYS/spoof/state", Payload: []byte("1"), Retain: true})
	spoof.send(&packet.Pingreq{})
	spoof.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	packet.Read(spoof.br, 0, packet.V311) // PINGRESP, or EOF from Mosquitto
	pub.publish("public/end", "x", false, uint16(len(topics)+1))
	var got []string
	for {
		sub.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		p, err := packet.Read(sub.br, 0, packet.V311)
		if err != nil {
			t.Fatalf("reading after %q: %v", got, err)
		}
		if pp, ok := p.(*packet.Publish); ok {
			if pp.Topic == "public/end" {
				return got
			}
			got = append(got, pp.Topic)
		}
	}
}

// TestACLDeliveryLikeMosquitto runs one ACL file in a real Mosquitto and in
// edged: an anonymous "#" subscriber receives the same messages from both
// (read rules, and deny rules exact and with wildcards, applied at
// delivery), and a client's publish to $SYS reaches neither, though the
// ACL grants it.
func TestACLDeliveryLikeMosquitto(t *testing.T) {
	dir := t.TempDir()
	aclPath, pwPath := filepath.Join(dir, "acl"), filepath.Join(dir, "passwd")
	if err := os.WriteFile(aclPath, []byte(`topic read public/#
topic deny public/nosubscribe
topic deny public/sec/#
topic deny +/+/hidden
topic read $SYS/#
user writer
topic write #
topic write $SYS/#
`), 0o644); err != nil {
		t.Fatal(err)
	}
	h, err := auth.HashPassword([]byte("writer-pw"))
	if err != nil {
		t.Fatal(err)
	}
	if err := auth.WritePasswordEntry(pwPath, "writer", h); err != nil {
		t.Fatal(err)
	}
	os.Chmod(pwPath, 0o644) // mosquitto may read it as another user
	acl, err := auth.LoadACL(aclPath)
	if err != nil {
		t.Fatal(err)
	}
	pw, err := auth.LoadPasswords(pwPath)
	if err != nil {
		t.Fatal(err)
	}
	topics := []string{"public/a", "public/nosubscribe", "public/nosubscribe/x", "public/sec", "public/sec/x",
		"public/a/hidden", "public/a/b/hidden", "other/x", "public/b"}
	m := testutil.StartMosquitto(t, testutil.MosquittoOptions{ACLFile: aclPath, PasswordFile: pwPath})
	want := received(t, m.Addr, topics)
	got := received(t, startBroker(t, broker.Config{ACL: acl, Auth: pw}), topics)
	if !slices.Equal(got, want) {
		t.Errorf("edged delivered %q, Mosquitto %q", got, want)
	}
	t.Logf("delivered through #: %q", got)
}
