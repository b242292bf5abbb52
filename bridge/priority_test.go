package bridge_test

import (
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edged/edged/bridge"
	"github.com/edged/edged/internal/testutil"
)

// TestPriorityDuringBacklog: with a backlog of normal messages draining, a
// priority: high message published now goes upstream behind at most the
// window already in flight, not behind the backlog. The figures are
// logged; BenchmarkPriorityLatency measures them with 100,000 messages.
func TestPriorityDuringBacklog(t *testing.T) {
	r := runPriority(t, 10_000)
	t.Logf("backlog %d: high message arrived after %s (one window drains in %s at %.0f msgs/s); %d normal messages ahead of it, bound %d",
		r.backlog, r.latency, r.windowTime, r.rate, r.ahead, r.bound)
}

// BenchmarkPriorityLatency is TestPriorityDuringBacklog with a backlog of
// 100,000 messages:
//
//	go test -run '^$' -bench BenchmarkPriorityLatency -benchtime 1x ./bridge
func BenchmarkPriorityLatency(b *testing.B) {
	for range b.N {
		r := runPriority(b, 100_000)
		b.ReportMetric(float64(r.latency.Microseconds())/1000, "high-ms")
		b.ReportMetric(float64(r.windowTime.Microseconds())/1000, "window-ms")
		b.ReportMetric(float64(r.ahead), "normal-ahead")
	}
}

type priorityResult struct {
	backlog      int
	latency      time.Duration // from the high message's PUBACK to its arrival upstream
	windowTime   time.Duration // Window messages at the drain rate
	rate         float64       // drain rate, msgs/s
	ahead, bound int           // normal messages upstream before it, and the most allowed
}

func runPriority(tb testing.TB, backlog int) priorityResult {
	m := testutil.StartMosquitto(tb, testutil.MosquittoOptions{MaxInflight: 1000})
	px := testutil.StartProxy(tb, m.Addr)
	px.SetDown(true)

	var (
		mu       sync.Mutex
		normals  int
		highAt   time.Time
		ahead    = -1
		firstAt  time.Time
		lastAt   time.Time
		received = make(chan struct{}, 1)
	)
	o := mqtt.NewClientOptions().AddBroker("tcp://" + m.Addr).SetClientID("cloud-sub").SetCleanSession(true).SetOrderMatters(true)
	o.SetDefaultPublishHandler(func(_ mqtt.Client, msg mqtt.Message) {
		mu.Lock()
		defer mu.Unlock()
		now := time.Now()
		switch {
		case len(msg.Topic()) > 12 && msg.Topic()[:12] == "site1/alarm/":
			highAt, ahead = now, normals
		case len(msg.Topic()) > 8 && msg.Topic()[:8] == "site1/s/":
			if normals == 0 {
				firstAt = now
			}
			normals++
			lastAt = now
			if normals == backlog {
				select {
				case received <- struct{}{}:
				default:
				}
			}
		}
	})
	c := mqtt.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		tb.Fatal(tok.Error())
	}
	defer c.Disconnect(0)
	if tok := c.Subscribe("site1/#", 1, nil); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		tb.Fatal(tok.Error())
	}

	cfg := bcfg("cloud", px.Addr(),
		bridge.Rule{Pattern: "s/#", Direction: bridge.Out, QoS: 1, RemotePrefix: "site1/"},
		bridge.Rule{Pattern: "alarm/#", Direction: bridge.Out, QoS: 1, RemotePrefix: "site1/", Priority: bridge.PriorityHigh})
	cfg.NotificationTopic = "-"
	cfg.SysInterval = -1
	l := startLocal(tb, tb.TempDir(), cfg)
	br := l.bridges[0]

	var wg sync.WaitGroup
	wg.Add(backlog)
	payload := []byte(`{"t":21.5,"h":40.1,"ts":1700000000,"id":"sensor-0001-abcdef"}`)
	for i := range backlog {
		l.srv.Publish("s/"+strconv.Itoa(i%16), payload, 1, false, func(error) { wg.Done() })
	}
	wg.Wait()
	if st := l.stats("cloud"); st.Len != int64(backlog) {
		tb.Fatalf("backlog %d, want %d", st.Len, backlog)
	}
	px.SetDown(false)
	// Publish the high message once a tenth of the backlog went up.
	testutil.WaitFor(tb, 60*time.Second, func() error {
		if s := br.Sent(); s < uint64(backlog/10) {
			return fmt.Errorf("sent %d", s)
		}
		return nil
	})
	done := make(chan error, 1)
	l.srv.Publish("alarm/fire", []byte("now"), 1, false, func(err error) { done <- err })
	if err := <-done; err != nil {
		tb.Fatal(err)
	}
	pubAt := time.Now()
	sentAt := int(br.Sent())
	select {
	case <-received:
	case <-time.After(120 * time.Second):
		tb.Fatal("backlog did not drain")
	}
	testutil.WaitFor(tb, 10*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if ahead < 0 {
			return fmt.Errorf("high message not received")
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	r := priorityResult{backlog: backlog, latency: highAt.Sub(pubAt), ahead: ahead}
	r.rate = float64(normals-1) / lastAt.Sub(firstAt).Seconds()
	r.windowTime = time.Duration(float64(64) / r.rate * float64(time.Second))
	// At the PUBACK of the high message the forwarder had retired
	// sentAt; at most a window more, and the one being published, can be
	// ahead of it.
	r.bound = sentAt + 64 + 1
	if ahead > r.bound {
		tb.Errorf("%d normal messages went upstream before the high one; at most %d (sent %d + window 64 + 1) may", ahead, r.bound, sentAt)
	}
	if ahead >= backlog {
		tb.Errorf("the high message arrived after the whole backlog")
	}
	return r
}
