package main

import (
	"fmt"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// brSub is a persistent paho subscriber that records every message.
type brSub struct {
	mu   sync.Mutex
	msgs [][2]string // topic, payload
	seen map[[2]string]bool
}

func startBrSub(t *testing.T, addr, id, filter string) *brSub {
	t.Helper()
	s := &brSub{seen: map[[2]string]bool{}}
	o := mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).SetCleanSession(false).
		SetOrderMatters(true).SetAutoReconnect(true).SetMaxReconnectInterval(200 * time.Millisecond)
	o.SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) {
		k := [2]string{m.Topic(), string(m.Payload())}
		s.mu.Lock()
		s.msgs = append(s.msgs, k)
		s.seen[k] = true
		s.mu.Unlock()
	})
	c := mqtt.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connecting upstream subscriber: %v", tok.Error())
	}
	if tok := c.Subscribe(filter, 1, nil); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribing upstream: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return s
}

func (s *brSub) distinct() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.seen)
}

// check returns the duplicate count and the first per-topic order
// violation among first arrivals of payloads "<n>".
func (s *brSub) check() (dups int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	last := map[string]int{}
	seen := map[[2]string]bool{}
	for _, k := range s.msgs {
		if seen[k] {
			dups++
			continue
		}
		seen[k] = true
		var n int
		if _, e := fmt.Sscanf(k[1], "%d", &n); e != nil {
			continue
		}
		if p, ok := last[k[0]]; ok && n < p && err == nil {
			err = fmt.Errorf("topic %s: %d arrived after %d", k[0], n, p)
		}
		last[k[0]] = n
	}
	return dups, err
}
