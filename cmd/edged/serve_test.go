package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edged/edged/broker/packet"
	"github.com/edged/edged/internal/testutil"
)

// openFDs lists this process's open file descriptors with what they
// point to, or nil where /proc is not available.
func openFDs(t *testing.T) map[string]string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return nil
	}
	fds := map[string]string{}
	for _, e := range ents {
		target, _ := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		fds[e.Name()] = target
	}
	return fds
}

// leakedFDs reports descriptors open now that were not open before.
func leakedFDs(before, after map[string]string) []string {
	var leaked []string
	for fd, target := range after {
		if before[fd] != target {
			leaked = append(leaked, fd+" -> "+target)
		}
	}
	return leaked
}

// freeAddr returns a loopback address with a port that was free a moment
// ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestFailedStartClosesEverything starts edged in this process with a
// configuration that fails at a late step, after the store, the broker
// and a first listener are open: a second listener's address in use, or a
// bridge whose CA file is gone. The failed build must leave no descriptor
// behind (store file, lock, sockets), the first listener's port must be
// free again, and a second start in the same process on the same data_dir
// must succeed and serve a client.
func TestFailedStartClosesEverything(t *testing.T) {
	cases := []struct {
		name    string
		breakIt func(t *testing.T, cfg *Config)
		want    string
	}{
		{"listener address in use", func(t *testing.T, cfg *Config) {
			busy, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { busy.Close() })
			cfg.Listeners[1].Address = busy.Addr().String()
		}, "listener b: listen tcp"},
		{"status page address in use", func(t *testing.T, cfg *Config) {
			busy, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { busy.Close() })
			cfg.HTTP.Address = busy.Addr().String()
			cfg.Bridges = nil // the last step fails: everything else is open
		}, "http: listen tcp"},
		{"bridge CA file gone", func(t *testing.T, cfg *Config) {
			cfg.Bridges[0].TLS.CAFile = filepath.Join(t.TempDir(), "gone.crt")
		}, `setting up bridge "up"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			first := freeAddr(t)
			caFile := filepath.Join(dir, "ca.crt")
			if err := os.WriteFile(caFile, testutil.NewTestCA(t, "ca", testutil.ECDSA).CertPEM(), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := parseConfig("t.yaml", []byte(fmt.Sprintf(`data_dir: %s
listeners:
  - {name: a, address: '%s'}
  - {name: b, address: '127.0.0.1:0'}
bridges:
  - name: up
    address: tls://127.0.0.1:1
    tls: {ca_file: %s}
    topics: [{pattern: 'x/#', direction: out, qos: 1}]
`, dir, first, caFile)))
			if err != nil {
				t.Fatal(err)
			}
			good := *cfg
			good.Listeners = append([]ListenerConfig(nil), cfg.Listeners...)
			good.Bridges = nil
			tc.breakIt(t, cfg)

			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, nil))
			before := openFDs(t)
			if _, err := build(cfg, log); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("build: %v, want an error containing %q", err, tc.want)
			}
			if leaked := leakedFDs(before, openFDs(t)); len(leaked) > 0 {
				t.Fatalf("a failed start left descriptors open:\n%s", strings.Join(leaked, "\n"))
			}
			if ln, err := net.Listen("tcp", first); err != nil {
				t.Fatalf("the first listener's port is still bound: %v", err)
			} else {
				ln.Close()
			}

			e, err := build(&good, log)
			if err != nil {
				t.Fatalf("a second start in the same process: %v\n%s", err, logs.String())
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- e.run(ctx) }()
			c, _, err := dialMQTT(first, "after-failed-start", true, func(*tclient, packet.Packet) {})
			if err != nil {
				cancel()
				t.Fatalf("the second start serves no client: %v", err)
			}
			c.close()
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("run: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("run did not return after its context was cancelled")
			}
			if leaked := leakedFDs(before, openFDs(t)); len(leaked) > 0 {
				t.Fatalf("a stopped instance left descriptors open:\n%s", strings.Join(leaked, "\n"))
			}
		})
	}
}
