package main

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// TestBridgeNotificationWill runs the real edged binary bridged to a real
// mosquitto: the retained notification topic reads "1" while the bridge is
// connected, "0" after edged is killed with SIGKILL (mosquitto publishes
// the bridge's will), "1" again after a restart and "0" after SIGTERM (the
// clean stop publishes it).
func TestBridgeNotificationWill(t *testing.T) {
	up := brMosquitto(t)
	dir := t.TempDir()
	config := fmt.Sprintf(`data_dir: %s
listeners:
  - {name: local, address: "127.0.0.1:0"}
bridges:
  - name: cloud
    address: tcp://%s
    client_id: edged-will
    keepalive: 1s
    backoff: {min: 20ms, max: 200ms}
    topics:
      - {pattern: "sensors/#", direction: out, qos: 1, remote_prefix: "site1/"}
      - {pattern: "cmd/#", direction: in, qos: 1, remote_prefix: "site1/"}
`, dir, up)
	const topic = "site1/edged/edged-will/state"

	ed := startEdged(t, dir, config)
	willWaitRetained(t, up, topic, "1", 10*time.Second)
	ed.kill()
	start := time.Now()
	willWaitRetained(t, up, topic, "0", 5*time.Second)
	t.Logf("will read %s after SIGKILL", time.Since(start).Round(time.Millisecond))

	ed = startEdged(t, dir, config)
	willWaitRetained(t, up, topic, "1", 10*time.Second)
	ed.stop(t)
	willWaitRetained(t, up, topic, "0", 5*time.Second)
}

var willReaderSeq atomic.Int64

// willReadRetained returns the retained payload of topic on addr as a fresh
// subscriber sees it, "" if none arrives within a second.
func willReadRetained(t *testing.T, addr, topic string) string {
	t.Helper()
	got := make(chan string, 1)
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetCleanSession(true).
		SetAutoReconnect(false).SetClientID(fmt.Sprintf("will-reader-%d", willReaderSeq.Add(1))))
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connecting retained reader: %v", tok.Error())
	}
	defer c.Disconnect(0)
	tok := c.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) {
		if m.Retained() {
			select {
			case got <- string(m.Payload()):
			default:
			}
		}
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribing retained reader: %v", tok.Error())
	}
	select {
	case p := <-got:
		return p
	case <-time.After(time.Second):
		return ""
	}
}

// willWaitRetained polls until a fresh subscriber reads want on topic.
func willWaitRetained(t *testing.T, addr, topic, want string, timeout time.Duration) {
	t.Helper()
	waitForT(t, timeout, func() error {
		if got := willReadRetained(t, addr, topic); got != want {
			return fmt.Errorf("retained %s = %q, want %q", topic, got, want)
		}
		return nil
	})
}
