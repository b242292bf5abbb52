package broker_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/edged/edged/broker"
	"github.com/edged/edged/broker/packet"
)

// Shutdown with clients connected returns and closes their connections;
// Serve afterwards returns ErrServerClosed and closes its listener.
func TestShutdown(t *testing.T) {
	s, addr := startBroker(t, broker.Config{})
	a := dialConnect(t, addr, "a", true)
	b := dialConnect(t, addr, "b", false)
	b.sub("x", 1)
	idle := dialRaw(t, addr) // accepted, no CONNECT yet

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	a.expectClosed()
	b.expectClosed()
	idle.expectClosed()
	if n := s.Stats().ClientsConnected; n != 0 {
		t.Errorf("ClientsConnected = %d after Shutdown", n)
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Errorf("listener still accepts after Shutdown")
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(context.Background(), ln); !errors.Is(err, broker.ErrServerClosed) {
		t.Fatalf("Serve after Shutdown = %v, want ErrServerClosed", err)
	}
	if _, err := ln.Accept(); err == nil {
		t.Fatalf("Serve after Shutdown left its listener open")
	}
	// A second Shutdown is a no-op.
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
}

// Shutdown is safe to call concurrently; every call returns once the
// server has stopped.
func TestShutdownConcurrent(t *testing.T) {
	s, addr := startBroker(t, broker.Config{})
	var clients []*rawClient
	for _, id := range []string{"a", "b", "c"} {
		c := dialConnect(t, addr, id, true)
		c.sub("t", 1)
		clients = append(clients, c)
	}
	pub := dialConnect(t, addr, "pub", true)
	pub.send(&packet.Publish{Topic: "t", QoS: 1, PacketID: 1, Payload: []byte("in flight")})

	const n = 8
	errc := make(chan error, n)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for range n {
		go func() { errc <- s.Shutdown(ctx) }()
	}
	for range n {
		if err := <-errc; err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	}
	for _, c := range clients {
		// Anything queued may be flushed first; then the connection closes.
		for {
			p, err := c.read(5 * time.Second)
			if err != nil {
				if !isClosedErr(err) {
					t.Fatalf("connection not closed: %v", err)
				}
				break
			}
			if _, ok := p.(*packet.Publish); !ok {
				t.Fatalf("got %s during shutdown", describe(p))
			}
		}
	}
}

// Cancelling the context given to Serve stops that listener: Serve
// returns nil and the listener is closed, while the server keeps serving
// connections it already has.
func TestServeContextCancel(t *testing.T) {
	s, addr := startBroker(t, broker.Config{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(ctx, ln, broker.WithName("second")) }()
	second := dialConnect(t, ln.Addr().String(), "second", true)
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Serve after cancel = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after its context was cancelled")
	}
	if _, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		t.Errorf("listener still accepts after cancel")
	}
	first := dialConnect(t, addr, "first", true)
	first.sub("s", 0)
	second.pub("s", "still served", 0, false, 0)
	first.expectPublish("s", "still served", 0, false, false)
}
