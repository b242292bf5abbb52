package bridge_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edged/edged/bridge"
	"github.com/edged/edged/internal/testutil"
)

// TestOfflineQoS0 cuts the link and publishes QoS 0 messages under rules
// with offline_qos0 drop, queue and latest (and QoS 1 ones under a latest
// rule, which it does not touch): after the link is back, drop sent
// nothing of the outage, queue everything in order, latest the newest
// message of each topic only. Once the link is up QoS 0 messages are
// queued again under every policy.
func TestOfflineQoS0(t *testing.T) {
	m := testutil.StartMosquitto(t, testutil.MosquittoOptions{})
	px := testutil.StartProxy(t, m.Addr)
	us := subscribe(t, m.Addr, "cloud-sub", true, "site1/#", 1)
	cfg := bcfg("cloud", px.Addr(),
		bridge.Rule{Pattern: "d/#", Direction: bridge.Out, QoS: 0, RemotePrefix: "site1/", OfflineQoS0: bridge.OfflineDrop},
		bridge.Rule{Pattern: "q/#", Direction: bridge.Out, QoS: 0, RemotePrefix: "site1/", OfflineQoS0: bridge.OfflineQueue},
		bridge.Rule{Pattern: "l/#", Direction: bridge.Out, QoS: 0, RemotePrefix: "site1/", OfflineQoS0: bridge.OfflineLatest},
		bridge.Rule{Pattern: "k/#", Direction: bridge.Out, QoS: 1, RemotePrefix: "site1/", OfflineQoS0: bridge.OfflineLatest},
		bridge.Rule{Pattern: "h/#", Direction: bridge.Out, QoS: 0, RemotePrefix: "site1/", OfflineQoS0: bridge.OfflineLatest, Priority: bridge.PriorityHigh},
	)
	cfg.NotificationTopic = "-"
	l := startLocal(t, t.TempDir(), cfg)
	br := l.bridges[0]
	waitConnected(t, br, true)
	px.SetDown(true)
	waitConnected(t, br, false)

	const n = 500
	for i := range n {
		p := []byte(strconv.Itoa(i))
		l.publish(t, "d/x", p, 0, false)
		l.publish(t, "q/x", p, 0, false)
		l.publish(t, "l/a", p, 0, false)
		l.publish(t, "l/b", p, 1, false) // QoS 1 on a QoS 0 rule: QoS 0 upstream
		l.publish(t, "h/x", p, 0, false)
		if i%50 == 0 {
			l.publish(t, "k/x", p, 1, false)
		}
	}
	st := l.stats("cloud")
	t.Logf("after %d messages on each of five topics offline: queue holds %d (%d bytes); drop kept 0, queue %d, latest 1 per topic",
		n, st.Len, st.Bytes, n)
	if want := int64(n + n/50); st.Len != want {
		t.Errorf("queue holds %d, want %d (queue's and the QoS 1 ones)", st.Len, want)
	}
	px.SetDown(false)
	waitConnected(t, br, true)
	l.publish(t, "d/x", []byte("live"), 0, false)
	l.publish(t, "l/a", []byte("live"), 0, false)
	testutil.WaitFor(t, 10*time.Second, func() error {
		got := count(us.snapshot())
		if got["site1/q/x"] < n || got["site1/d/x"] < 1 || got["site1/l/a"] < 2 || got["site1/k/x"] < n/50 || got["site1/h/x"] < 1 || got["site1/l/b"] < 1 {
			return fmt.Errorf("upstream got %v", got)
		}
		return nil
	})
	time.Sleep(100 * time.Millisecond) // nothing more is on its way
	msgs := us.snapshot()
	if _, err := checkOrder(msgs); err != nil {
		t.Error(err)
	}
	var got []string
	for _, m := range msgs {
		switch m.topic {
		case "site1/d/x", "site1/l/a", "site1/l/b", "site1/h/x":
			got = append(got, m.topic[len("site1/"):]+"="+m.payload)
		}
	}
	if want := fmt.Sprintf("l/a=%d l/b=%d h/x=%d d/x=live l/a=live", n-1, n-1, n-1); !sameSet(got, want) {
		t.Errorf("upstream got %s, want %s", strings.Join(got, " "), want)
	}
	if c := count(msgs); c["site1/q/x"] != n || c["site1/k/x"] != n/50 {
		t.Errorf("queue policy and QoS 1: upstream got %v", c)
	}
}

func count(msgs []rmsg) map[string]int {
	c := map[string]int{}
	for _, m := range msgs {
		c[m.topic]++
	}
	return c
}

// sameSet compares got with the space-separated want, ignoring the order
// across topics (the latest messages are queued in first-arrival order,
// the live ones after them).
func sameSet(got []string, want string) bool {
	w := strings.Fields(want)
	if len(got) != len(w) {
		return false
	}
	m := map[string]int{}
	for _, s := range w {
		m[s]++
	}
	for _, s := range got {
		m[s]--
	}
	for _, v := range m {
		if v != 0 {
			return false
		}
	}
	return true
}
