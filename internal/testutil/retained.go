package testutil

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

var retainedReaders atomic.Int64

// ReadRetained returns the retained payload of topic on the MQTT broker at
// addr (host:port) as a fresh clean-session subscriber sees it, or "" if
// none arrives within a second.
func ReadRetained(t testing.TB, addr, topic string) string {
	t.Helper()
	got := make(chan string, 1)
	o := mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetCleanSession(true).SetAutoReconnect(false).
		SetClientID(fmt.Sprintf("retained-reader-%d", retainedReaders.Add(1)))
	c := mqtt.NewClient(o)
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

// WaitRetained polls until a fresh subscriber reads want as the retained
// payload of topic, failing t after timeout.
func WaitRetained(t testing.TB, addr, topic, want string, timeout time.Duration) {
	t.Helper()
	WaitFor(t, timeout, func() error {
		if got := ReadRetained(t, addr, topic); got != want {
			return fmt.Errorf("retained %s = %q, want %q", topic, got, want)
		}
		return nil
	})
}
