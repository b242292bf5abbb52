package main

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edged/edged/internal/testutil"
)

// TestBridgeAcceptance is issue 5's acceptance test with the real edged
// binary: 10,000 QoS 1 messages published locally during repeated uplink
// outages (resets, a blackhole, refusals) and one SIGKILL of edged while
// the link is down all reach a persistent subscriber of a real mosquitto,
// in publish order per topic, with at most a window of duplicates per
// outage. With priorities, one of the eight topics goes through the
// priority: high queue, under the same faults.
func TestBridgeAcceptance(t *testing.T) {
	t.Run("plain", func(t *testing.T) { t.Parallel(); testBridgeAcceptance(t, "") })
	t.Run("priorities", func(t *testing.T) {
		t.Parallel()
		testBridgeAcceptance(t, `      - {pattern: "sensors/0", direction: out, qos: 1, remote_prefix: "site1/", priority: high}
`)
	})
}

func testBridgeAcceptance(t *testing.T, highRule string) {
	const (
		total  = 10_000
		phases = 10
		topics = 8
		window = 64
	)
	up := testutil.StartMosquitto(t, testutil.MosquittoOptions{}).Addr
	px := testutil.StartProxy(t, up)
	us := startBrSub(t, up, "cloud-consumer", "site1/sensors/#")
	dir := t.TempDir()
	config := fmt.Sprintf(`data_dir: %s
listeners:
  - {name: local, address: "127.0.0.1:0"}
bridges:
  - name: cloud
    address: tcp://%s
    client_id: edged-acceptance
    keepalive: 1s
    backoff: {min: 20ms, max: 500ms}
    topics:
%s      - {pattern: "sensors/#", direction: out, qos: 1, local_prefix: "", remote_prefix: "site1/"}
    queue: {max_messages: 100000, overflow: drop-oldest}
`, dir, px.Addr(), highRule)
	ed := startEdged(t, dir, config)

	next := 0
	// publishPhase publishes the next total/phases messages to edged and
	// returns once edged acknowledged every one.
	publishPhase := func(addr string, during func()) {
		t.Helper()
		c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + addr).
			SetClientID("sensor-hub").SetCleanSession(true).SetAutoReconnect(false))
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("connecting publisher: %v", tok.Error())
		}
		defer c.Disconnect(0)
		var toks []mqtt.Token
		end := next + total/phases
		mid := next + total/(2*phases)
		for ; next < end; next++ {
			if next == mid && during != nil {
				during()
			}
			toks = append(toks, c.Publish(fmt.Sprintf("sensors/%d", next%topics), 1, false, strconv.Itoa(next)))
			if len(toks) >= 200 {
				for _, tok := range toks {
					if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
						t.Fatalf("publishing %d: %v", next, tok.Error())
					}
				}
				toks = toks[:0]
			}
		}
		for _, tok := range toks {
			if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
				t.Fatalf("publishing: %v", tok.Error())
			}
		}
	}
	outages := 0
	reset := func() { px.Reset(); outages++ }
	blackhole := func() {
		px.Blackhole(true)
		outages++
		go func() { time.Sleep(2 * time.Second); px.Blackhole(false) }()
	}
	down := func() {
		px.SetDown(true)
		outages++
		go func() { time.Sleep(500 * time.Millisecond); px.SetDown(false) }()
	}

	publishPhase(ed.addr, nil)
	publishPhase(ed.addr, reset)
	publishPhase(ed.addr, blackhole)
	time.Sleep(2100 * time.Millisecond)
	publishPhase(ed.addr, down)
	publishPhase(ed.addr, reset)
	// The link goes down; messages queue; edged is killed and restarted
	// while the link is still down.
	px.SetDown(true)
	outages++
	publishPhase(ed.addr, nil)
	ed.kill()
	ed = startEdged(t, dir, config)
	publishPhase(ed.addr, nil)
	px.SetDown(false)
	publishPhase(ed.addr, reset)
	publishPhase(ed.addr, nil)
	publishPhase(ed.addr, reset)
	if next != total {
		t.Fatalf("published %d", next)
	}

	deadline := time.Now().Add(60 * time.Second)
	for us.distinct() < total && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	got := us.distinct()
	if got < total {
		t.Fatalf("upstream received %d of %d distinct messages\n%s", got, total, ed.logText())
	}
	dups, err := us.check()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d messages, %d outages, 1 SIGKILL, %d duplicates (bound %d x %d = %d)",
		total, outages, dups, window, outages+1, window*(outages+1))
	if dups > window*(outages+1) {
		t.Errorf("%d duplicates exceed window x outages", dups)
	}
	ed.stop(t)
}
