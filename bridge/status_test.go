package bridge_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/edged/edged/bridge"
	"github.com/edged/edged/broker"
	"github.com/edged/edged/internal/testutil"
)

// Status reports a bridge's state and backlog; Purge deletes the backlog
// durably (the queue's stats say so) and counts it; the state is also
// published on Mosquitto's $SYS/broker/connection/<client id>/state.
func TestStatusAndPurge(t *testing.T) {
	t.Parallel()
	up := startMochi(t, nil)
	px := testutil.StartProxy(t, up)
	px.SetDown(true)
	cfg := bcfg("cloud", px.Addr(), bridge.Rule{Pattern: "sensors/#", Direction: bridge.Out, QoS: 1})
	l := startLocal(t, t.TempDir(), cfg)
	br := l.bridges[0]

	var mu sync.Mutex
	states := map[string]string{}
	stop, err := l.srv.Watch("$SYS/broker/connection/#", nil, func(m broker.WatchedMessage) {
		mu.Lock()
		states[m.Topic] = string(m.Payload)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	state := func() string {
		mu.Lock()
		defer mu.Unlock()
		return states["$SYS/broker/connection/edged-test-cloud/state"]
	}

	for i := range 50 {
		l.publish(t, fmt.Sprintf("sensors/%d", i), []byte("0123456789"), 1, false)
	}
	st := br.Status()
	if st.Connected || st.Name != "cloud" || st.ClientID != "edged-test-cloud" || st.Address != "tcp://"+px.Addr() ||
		st.Queue.Len != 50 || st.Queue.Bytes == 0 || st.Queue.Oldest.IsZero() {
		t.Fatalf("status while down: %+v", st)
	}
	testutil.WaitFor(t, 5*time.Second, func() error {
		if s := state(); s != "0" {
			return fmt.Errorf("connection state %q, want 0", s)
		}
		return nil
	})

	n, err := br.Purge(context.Background())
	if err != nil || n != 50 {
		t.Fatalf("Purge = %d, %v; want 50", n, err)
	}
	if q := l.stats("cloud"); q.Len != 0 || q.Bytes != 0 {
		t.Fatalf("queue after purge: %+v", q)
	}
	if st := br.Status(); st.Purged != 50 || st.Queue.Len != 0 {
		t.Fatalf("status after purge: %+v", st)
	}
	// An empty queue purges nothing; a cancelled purge stops.
	if n, err := br.Purge(context.Background()); n != 0 || err != nil {
		t.Fatalf("second Purge = %d, %v", n, err)
	}

	// Up: the state follows, and a message published after the purge is
	// forwarded (the purge left the queue usable).
	s := subscribe(t, up, "cloud-sub", true, "sensors/#", 1)
	px.SetDown(false)
	testutil.WaitFor(t, 10*time.Second, func() error {
		if !br.Status().Connected || state() != "1" {
			return fmt.Errorf("connected %v, state %q", br.Status().Connected, state())
		}
		return nil
	})
	if since := br.Status().Since; since.IsZero() || time.Since(since) > time.Minute {
		t.Errorf("Since = %v", since)
	}
	l.publish(t, "sensors/after", []byte("x"), 1, false)
	s.waitDistinct(t, 1, 10*time.Second)
	if got := s.snapshot(); len(got) != 1 {
		t.Fatalf("upstream got %d messages, want only the one after the purge", len(got))
	}
}
