package broker_test

import (
	"fmt"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/edged/edged/broker"
)

// $SYS/broker/... topics are published every SysInterval as retained
// messages: a new subscriber gets them with retain 1, and the counters
// follow what the broker does.
func TestSys(t *testing.T) {
	t.Parallel()
	s, addr := startBroker(t, broker.Config{SysInterval: 100 * time.Millisecond, Version: "9.9.9-test"})
	// Every $SYS topic edged documents.
	want := []string{"version", "uptime", "clients/connected", "clients/total", "clients/disconnected",
		"messages/received", "messages/sent", "messages/dropped", "messages/queued", "bytes/received",
		"bytes/sent", "subscriptions/count", "retained messages/count", "store/errors",
		"clients/slow_consumers"}
	waitFor(t, 5*time.Second, func() error {
		if n := s.Stats().Retained; n < int64(len(want)) {
			return fmt.Errorf("%d retained messages, want the $SYS topics", n)
		}
		return nil
	})

	// Every $SYS topic is retained: all of them come on subscribe.
	sub := dialConnect(t, addr, "sys", true)
	sub.sub("$SYS/broker/#", 0)
	// The retained copies follow SUBACK, in no particular order (more
	// $SYS topics than want exist, and some appear only after a while);
	// periodic live updates (retain 0) may come before them.
	retained := map[string]string{}
	missing := func() bool {
		for _, topic := range want {
			if _, ok := retained["$SYS/broker/"+topic]; !ok {
				return true
			}
		}
		return false
	}
	for deadline := time.Now().Add(5 * time.Second); missing() && time.Now().Before(deadline); {
		if p := sub.nextPublish(); p.Retain {
			retained[p.Topic] = string(p.Payload)
		}
	}
	for _, topic := range want {
		if _, ok := retained["$SYS/broker/"+topic]; !ok {
			t.Errorf("no retained $SYS/broker/%s on subscribe; got %v", topic, retained)
		}
	}
	if v := retained["$SYS/broker/version"]; v != "edged 9.9.9-test" {
		t.Errorf("version = %q", v)
	}
	if v := retained["$SYS/broker/uptime"]; !regexp.MustCompile(`^\d+ seconds$`).MatchString(v) {
		t.Errorf("uptime = %q", v)
	}

	// Publish some messages and connect a second client: the live
	// updates must show it.
	pub := dialConnect(t, addr, "pub", true)
	for i := range 5 {
		pub.pub("sys/test", "x", 1, false, uint16(i+1))
	}
	deadline := time.Now().Add(5 * time.Second)
	var received, connected int
	for received < 5 || connected < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("counters did not move: messages/received=%d clients/connected=%d", received, connected)
		}
		p := sub.nextPublish()
		if p.Retain {
			// A retained copy of a topic not read yet may still follow
			// the subscription; one of a topic already read is a live
			// update with the wrong flag.
			if _, seen := retained[p.Topic]; !seen {
				retained[p.Topic] = string(p.Payload)
				continue
			}
			t.Fatalf("got %s: a live $SYS update must have retain 0 [MQTT-3.3.1-9]", describe(p))
		}
		n, err := strconv.Atoi(string(p.Payload))
		switch p.Topic {
		case "$SYS/broker/messages/received":
			if err != nil {
				t.Fatalf("messages/received = %q", p.Payload)
			}
			received = n
		case "$SYS/broker/clients/connected":
			if err != nil {
				t.Fatalf("clients/connected = %q", p.Payload)
			}
			connected = n
		}
	}

	// A "#" subscriber does not get $SYS topics [MQTT-4.7.2-1].
	hash := dialConnect(t, addr, "all", true)
	hash.sub("#", 0)
	pub.pub("marker", "m", 0, false, 0)
	hash.expectPublish("marker", "m", 0, false, false)
}
