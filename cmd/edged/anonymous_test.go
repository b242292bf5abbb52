package main

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoopbackAddress(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:1883":       true,
		"127.1.2.3:1883":       true,
		"[::1]:1883":           true,
		"localhost:1883":       true,
		"LocalHost:1883":       true,
		"[::ffff:127.0.0.1]:1": true,
		"[fe80::1%lo]:1883":    false,
		":1883":                false,
		"0.0.0.0:1883":         false,
		"[::]:1883":            false,
		"192.168.1.1:1883":     false,
		"10.0.0.1:1883":        false,
		"[fd00::1]:1883":       false,
		"router.lan:1883":      false,
		"localhost.evil:1883":  false,
		"127.0.0.1":            false, // no port: not a listener address
		"":                     false,
	} {
		if got := loopbackAddress(addr); got != want {
			t.Errorf("loopbackAddress(%q) = %v, want %v", addr, got, want)
		}
	}
}

// A listener on a network address refuses anonymous clients unless
// allow_anonymous: true is written for it; loopback listeners and serial
// ports keep allowing them; what is written wins.
func TestAllowAnonymousDefault(t *testing.T) {
	cfg, err := parseConfig("f.yaml", []byte(`
listeners:
  - {name: lo4, address: "127.0.0.1:1883"}
  - {name: lo6, address: "[::1]:1884"}
  - {name: host, address: "localhost:1885"}
  - {name: all, address: ":1886"}
  - {name: any4, address: "0.0.0.0:1887"}
  - {name: any6, address: "[::]:1888"}
  - {name: lan, address: "192.168.1.1:1889"}
  - {name: named, address: "edge.lan:1890"}
  - {name: ws, address: "0.0.0.0:8080", websocket: {path: /mqtt}}
  - {name: open, address: "0.0.0.0:1891", allow_anonymous: true}
  - {name: closed, address: "127.0.0.1:1892", allow_anonymous: false}
serial:
  - {name: uart0, device: /dev/ttyUSB0, baud: 115200}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"lo4": true, "lo6": true, "host": true, "all": false, "any4": false, "any6": false,
		"lan": false, "named": false, "ws": false, "open": true, "closed": false}
	for _, l := range cfg.Listeners {
		if *l.AllowAnonymous != want[l.Name] {
			t.Errorf("listener %s (%s): allow_anonymous %v, want %v", l.Name, l.Address, *l.AllowAnonymous, want[l.Name])
		}
	}
	if !*cfg.Serial[0].AllowAnonymous {
		t.Error("serial port: allow_anonymous false, want true")
	}
	def, err := loadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	if l := def.Listeners; len(l) != 1 || !loopbackAddress(l[0].Address) || !*l[0].AllowAnonymous {
		t.Errorf("embedded default: %+v, want one loopback listener allowing anonymous clients", l)
	}
}

// edged warns at start about each listener open to anonymous clients from
// the network, and each no client can log in to; loopback listeners and
// ones requiring a login are quiet.
func TestListenerAccessWarnings(t *testing.T) {
	warnings := func(yaml string) string {
		t.Helper()
		cfg, err := parseConfig("f.yaml", []byte(yaml))
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		warnListenerAccess(cfg, slog.New(slog.NewTextHandler(&buf, nil)))
		return buf.String()
	}
	got := warnings(`
listeners:
  - {name: local, address: "127.0.0.1:1883"}
  - {name: open, address: "0.0.0.0:1884", allow_anonymous: true}
  - {name: shut, address: "0.0.0.0:1885"}
`)
	lines := strings.Split(strings.TrimSpace(got), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "level=WARN") || !strings.Contains(lines[0], "listener=open") ||
		!strings.Contains(lines[0], "anonymous clients from the network") ||
		!strings.Contains(lines[1], "listener=shut") || !strings.Contains(lines[1], "refuses every client") {
		t.Errorf("warnings:\n%s", got)
	}
	pw := filepath.Join(t.TempDir(), "passwd")
	if err := writeEmptyFile(pw); err != nil {
		t.Fatal(err)
	}
	if got := warnings(fmt.Sprintf("listeners: [{name: lan, address: '0.0.0.0:1883'}]\nauth: {password_file: %q}\n", pw)); got != "" {
		t.Errorf("a network listener requiring a login warns:\n%s", got)
	}
}

func writeEmptyFile(path string) error { return os.WriteFile(path, nil, 0o600) }
