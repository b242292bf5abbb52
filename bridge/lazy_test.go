package bridge_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/edged/edged/bridge"
	"github.com/edged/edged/internal/testutil"
)

// TestLazyStart: a lazy bridge opens no connection while its queue holds
// fewer than lazy_threshold messages, connects when it reaches it, sends
// the queue, disconnects after idle_timeout, and connects at once for a
// priority: high message.
func TestLazyStart(t *testing.T) {
	m := testutil.StartMosquitto(t, testutil.MosquittoOptions{})
	px := testutil.StartProxy(t, m.Addr)
	us := subscribe(t, m.Addr, "cloud-sub", true, "site1/#", 1)
	cfg := bcfg("cloud", px.Addr(),
		bridge.Rule{Pattern: "s/#", Direction: bridge.Out, QoS: 1, RemotePrefix: "site1/"},
		bridge.Rule{Pattern: "alarm/#", Direction: bridge.Out, QoS: 1, RemotePrefix: "site1/", Priority: bridge.PriorityHigh})
	cfg.Start = bridge.StartLazy
	cfg.LazyThreshold = 50
	cfg.IdleTimeout = 300 * time.Millisecond
	cfg.NotificationTopic = "-"
	l := startLocal(t, t.TempDir(), cfg)
	br := l.bridges[0]

	for i := range 49 {
		l.publish(t, "s/x", []byte(strconv.Itoa(i)), 1, false)
	}
	time.Sleep(500 * time.Millisecond)
	if n := px.Accepted(); n != 0 || br.Connected() {
		t.Fatalf("below lazy_threshold: %d connections opened (connected %v), want none", n, br.Connected())
	}
	if st := l.stats("cloud"); st.Len != 49 {
		t.Fatalf("queue holds %d, want 49", st.Len)
	}
	l.publish(t, "s/x", []byte("49"), 1, false)
	us.waitDistinct(t, 50, 10*time.Second)
	start := time.Now()
	waitConnected(t, br, false)
	t.Logf("idle after the queue drained: disconnected %s later (idle_timeout %s)", time.Since(start).Round(time.Millisecond), cfg.IdleTimeout)
	if n := px.Accepted(); n != 1 {
		t.Errorf("%d connections opened, want 1", n)
	}
	// A high message does not wait for the threshold.
	l.publish(t, "alarm/fire", []byte("0"), 1, false)
	us.waitDistinct(t, 51, 10*time.Second)
	if n := px.Accepted(); n != 2 {
		t.Errorf("%d connections opened, want 2", n)
	}
	if _, err := checkOrder(us.snapshot()); err != nil {
		t.Error(err)
	}
	// Nor does a message once lazy_interval passed... which is an hour
	// here: a normal message now stays queued.
	waitConnected(t, br, false)
	l.publish(t, "s/x", []byte("50"), 1, false)
	time.Sleep(300 * time.Millisecond)
	if st := l.stats("cloud"); st.Len != 1 || br.Connected() {
		t.Errorf("queue holds %d (connected %v), want 1 waiting", st.Len, br.Connected())
	}
}

// A lazy bridge connects once lazy_interval passed, below the threshold.
func TestLazyInterval(t *testing.T) {
	m := testutil.StartMosquitto(t, testutil.MosquittoOptions{})
	us := subscribe(t, m.Addr, "cloud-sub", true, "site1/#", 1)
	cfg := bcfg("cloud", m.Addr, bridge.Rule{Pattern: "s/#", Direction: bridge.Out, QoS: 1, RemotePrefix: "site1/"})
	cfg.Start = bridge.StartLazy
	cfg.LazyThreshold = 1000
	cfg.LazyInterval = 400 * time.Millisecond
	cfg.IdleTimeout = time.Hour
	cfg.NotificationTopic = "-"
	start := time.Now()
	l := startLocal(t, t.TempDir(), cfg)
	l.publish(t, "s/x", []byte("0"), 1, false)
	us.waitDistinct(t, 1, 10*time.Second)
	if d := time.Since(start); d < cfg.LazyInterval {
		t.Errorf("sent after %s, before lazy_interval %s", d, cfg.LazyInterval)
	}
}
