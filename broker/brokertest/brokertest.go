// Package brokertest serves a real broker on 127.0.0.1 for tests, as
// net/http/httptest serves an http.Handler. It is imported only by tests and
// never ships in the binary.
package brokertest

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/edged/edged/broker"
)

// Serve serves s on ln until the test ends; t.Cleanup shuts s down, waits
// for Serve to return and reports an error from either.
func Serve(t testing.TB, s *broker.Server, ln net.Listener, opts ...broker.ServeOption) {
	t.Helper()
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(context.Background(), ln, opts...) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-errc; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
}

// Listen serves s on a new listener on 127.0.0.1:0 until the test ends and
// returns its address.
func Listen(t testing.TB, s *broker.Server, opts ...broker.ServeOption) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	Serve(t, s, ln, opts...)
	return ln.Addr().String()
}

// Start creates a broker with cfg and serves it on 127.0.0.1:0 until the
// test ends. $SYS is off unless cfg.SysInterval asks for it.
func Start(t testing.TB, cfg broker.Config, opts ...broker.ServeOption) (*broker.Server, string) {
	t.Helper()
	if cfg.SysInterval == 0 {
		cfg.SysInterval = -1
	}
	s, err := broker.New(cfg)
	if err != nil {
		t.Fatalf("broker.New: %v", err)
	}
	return s, Listen(t, s, opts...)
}
