package broker_test

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edged/edged/broker"
	"github.com/edged/edged/broker/packet"
	"github.com/edged/edged/persist"
)

// logBuffer is an io.Writer for a slog handler that tests read while the
// broker writes.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines returns the logged lines containing msg.
func (b *logBuffer) lines(msg string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for l := range strings.SplitSeq(b.buf.String(), "\n") {
		if strings.Contains(l, msg) {
			out = append(out, l)
		}
	}
	return out
}

// An operator sees who was refused what: a denied PUBLISH, will or
// SUBSCRIBE is logged with client id, user and topic, rate-limited so a
// client cannot flood the log; connect and refuse lines name the user.
func TestAccessLogging(t *testing.T) {
	logs := &logBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	_, addr := startBroker(t, broker.Config{ACL: testACL{}, Auth: testAuth{}, Logger: log}, broker.AllowAnonymous(true))

	c := dialRaw(t, addr)
	c.connect(&packet.Connect{ClientID: "dev-1", CleanSession: true, Username: strp("alice"), Password: []byte("secret")},
		false, packet.Success)
	for i := range uint16(20) {
		c.pub("ro/x", "refused", 1, false, i+1)
	}
	c.send(&packet.Subscribe{PacketID: 30, Subscriptions: []packet.Subscription{{Filter: "secret/#", QoS: 0}}})
	c.expect(&packet.Suback{PacketID: 30, Reasons: []packet.Reason{packet.UnspecifiedError}})
	c.pub("$SYS/broker/x", "spoof", 1, false, 31)
	c.sync()

	denied := append(logs.lines("publish denied"), logs.lines("subscription denied")...)
	if len(denied) == 0 || len(denied) > 10 {
		t.Fatalf("%d denial lines for 22 denials within the rate limit's interval, want 1 to 10:\n%s",
			len(denied), strings.Join(denied, "\n"))
	}
	for _, want := range []string{"level=WARN", "client_id=dev-1", "user=alice", "topic=ro/x"} {
		if !strings.Contains(denied[0], want) {
			t.Errorf("denial line %q lacks %s", denied[0], want)
		}
	}
	if l := logs.lines("client connected"); len(l) != 1 || !strings.Contains(l[0], "user=alice") {
		t.Errorf("connect lines %q, want one with user=alice", l)
	}

	bad := dialRaw(t, addr)
	bad.connect(&packet.Connect{ClientID: "dev-2", CleanSession: true, Username: strp("mallory"), Password: []byte("x")},
		false, packet.BadUserNameOrPassword)
	bad.expectClosed()
	if l := logs.lines("connection refused"); len(l) != 1 || !strings.Contains(l[0], "user=mallory") ||
		!strings.Contains(l[0], "client_id=dev-2") {
		t.Errorf("refuse lines %q, want one with user=mallory and client_id=dev-2", l)
	}
}

// A session stored by an edged that did not record owners is resumed by
// the first client that connects with its id (nothing acknowledged is lost
// on upgrade), which becomes its owner: another identity then starts clean.
func TestLegacySessionAdopted(t *testing.T) {
	mem := persist.NewMemory()
	t.Cleanup(func() { mem.Close() })
	done := make(chan error, 1)
	mem.Commit([]persist.Op{
		persist.PutSession{ClientID: "old", LastSeen: 1},
		persist.PutSubscription{ClientID: "old", Sub: persist.Subscription{Seq: 1, Filter: "t/#", QoS: 1}},
		persist.PutMessage{ID: 1, Msg: persist.Message{Topic: "t/a", Payload: []byte("kept"), QoS: 1}},
		persist.Enqueue{ClientID: "old", MsgID: 1, QoS: 1},
	}, func(err error) { done <- err })
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	_, addr := startBroker(t, broker.Config{Store: mem, Auth: testAuth{}}, broker.AllowAnonymous(true))
	c := dialRaw(t, addr)
	c.connect(&packet.Connect{ClientID: "old", Username: strp("alice"), Password: []byte("secret")}, true, packet.Success)
	c.ackIncoming(c.nextPublish())
	c.send(&packet.Disconnect{})
	c.expectClosed()
	waitFor(t, 5*time.Second, func() error {
		snap, err := mem.Load()
		if err != nil {
			return err
		}
		for _, s := range snap.Sessions {
			if s.ClientID == "old" && s.Owner != nil && s.Owner.Username == "alice" && s.Owner.HasUsername {
				return nil
			}
		}
		return errors.New("owner alice not stored")
	})
	anon := dialRaw(t, addr)
	anon.connect(&packet.Connect{ClientID: "old"}, false, packet.Success)
}
