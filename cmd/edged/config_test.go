package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestConfigsGolden decodes every example in configs/ (and the embedded
// default) and compares the normalized result, defaults applied, with
// testdata/<name>.golden. Run with -update to rewrite the golden files.
func TestConfigsGolden(t *testing.T) {
	files, err := filepath.Glob("../../configs/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no configs found: %v", err)
	}
	files = append(files, "default.yaml")
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		t.Run(name, func(t *testing.T) {
			// The examples name certificates on the device, not here.
			cfg, err := loadConfigFiles(f, false)
			if err != nil {
				t.Fatalf("%s does not load:\n%v", f, err)
			}
			got, err := marshalConfig(cfg)
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", name+".golden")
			if *update {
				if err := os.MkdirAll("testdata", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -run TestConfigsGolden -update ./cmd/edged)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s normalizes to\n%s\nwant (%s)\n%s", f, got, golden, want)
			}
		})
	}
}

// TestCheckConfig runs `edged check-config` on every example and on the
// configurations the Debian and OpenWrt packages install, as a user would
// before deploying them (with -skip-files: the certificates they name are
// on the device).
func TestCheckConfig(t *testing.T) {
	files, _ := filepath.Glob("../../configs/*.yaml")
	files = append(files, "../../build/edged.yaml", "../../build/openwrt/edged.yaml")
	for _, f := range files {
		out, err := exec.Command(edgedBin, "check-config", "-skip-files", "-c", f).CombinedOutput()
		if err != nil {
			t.Errorf("edged check-config -c %s: %v\n%s", f, err, out)
		}
	}
}

// TestConfigErrors checks that every kind of mistake is reported with the
// file, the line and the key, and that all of them are reported at once.
func TestConfigErrors(t *testing.T) {
	cases := []struct {
		name string
		yaml string
		want []string // substrings, each on its own error line
	}{
		{"unknown top-level key", "bogus: 1\nlisteners: [{address: '127.0.0.1:1'}]\n",
			[]string{"f.yaml:1: bogus: unknown key"}},
		{"unknown nested key and bad values together",
			"listeners:\n  - name: a\n    adress: x\n    address: nope\nlimits:\n  max_inflight: -3\n  max_queued_bytes: 12XB\n  session_expiry: 5\n",
			[]string{
				"f.yaml:3: listeners[0].adress: unknown key",
				"f.yaml:4: listeners[0].address: want host:port",
				"f.yaml:6: limits.max_inflight: must be between",
				"f.yaml:7: limits.max_queued_bytes: invalid size \"12XB\"",
				"f.yaml:8: limits.session_expiry: invalid duration \"5\"",
			}},
		{"enums", "log: {level: loud, format: xml}\npersistence: {sync: sometimes}\nlisteners: [{address: '127.0.0.1:1'}]\n",
			[]string{"f.yaml:1: log.level: must be debug", "f.yaml:1: log.format: must be text or json",
				"f.yaml:2: persistence.sync: must be batch, always or off"}},
		{"types", "listeners:\n  - address: 127.0.0.1:1\n    allow_anonymous: maybe\nlimits: {max_connections: many}\n",
			[]string{"f.yaml:3: listeners[0].allow_anonymous: invalid boolean", "f.yaml:4: limits.max_connections: invalid integer"}},
		{"duplicate listener", "listeners:\n  - {name: a, address: '127.0.0.1:1'}\n  - {name: a, address: '127.0.0.1:2'}\n",
			[]string{"f.yaml:3: listeners[1].name: duplicate"}},
		{"tls without key", "listeners:\n  - address: 127.0.0.1:1\n    tls: {cert_file: c.pem}\n",
			[]string{"listeners[0].tls.key_file: is required"}},
		{"no listener", "data_dir: x\n", []string{"listeners: at least one listener"}},
		{"serial", "serial:\n  - name: uart0\n    device: /dev/ttyUSB0\n    parity: weird\n",
			[]string{"f.yaml:4: serial[0].parity: \"weird\" is not none, even or odd"}},
		{"syntax", "listeners: [\n", []string{"f.yaml: yaml: line"}},
		{"key twice", "data_dir: a\ndata_dir: b\nlisteners: [{address: '127.0.0.1:1'}]\n",
			[]string{"data_dir"}},
		// The status page on the network needs logins; users need the
		// password file.
		{"status page open to the network", "listeners: [{address: '127.0.0.1:1'}]\nhttp:\n  address: 0.0.0.0:8080\n",
			[]string{"f.yaml:2: http.users: 0.0.0.0:8080 is not a loopback address"}},
		{"status page users", "listeners: [{address: '127.0.0.1:1'}]\nhttp:\n  address: 192.168.1.2:80\n  users: [admin]\n  tls: {cert_file: c.pem}\n",
			[]string{"f.yaml:4: http.users[0]: user \"admin\" needs auth.password_file", "f.yaml:5: http.tls.key_file: is required"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseConfig("f.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatal("accepted")
			}
			errs := flatten(err)
			for _, w := range tc.want {
				found := false
				for _, e := range errs {
					if strings.Contains(e.Error(), w) {
						found = true
					}
				}
				if !found {
					t.Errorf("no error contains %q; got:\n%v", w, err)
				}
			}
		})
	}
}

// TestCheckConfigExitCode runs the binary on a bad file: exit status 1 and
// the problem on stderr.
func TestCheckConfigExitCode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(path, []byte("listeners:\n  - address: 127.0.0.1:1\n    colour: blue\n"), 0o600)
	var stderr bytes.Buffer
	cmd := exec.Command(edgedBin, "check-config", "-c", path)
	cmd.Stderr = &stderr
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("exit: %v, want status 1", err)
	}
	if want := path + ":3: listeners[0].colour: unknown key"; !strings.Contains(stderr.String(), want) {
		t.Fatalf("stderr %q does not contain %q", stderr.String(), want)
	}
	// A missing file too.
	err = exec.Command(edgedBin, "-c", filepath.Join(t.TempDir(), "nope.yaml")).Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("missing file: %v, want status 1", err)
	}
}

// TestSubcommands covers version, unknown commands and the embedded
// default.
func TestSubcommands(t *testing.T) {
	out, err := exec.Command(edgedBin, "version").Output()
	if err != nil || !strings.HasPrefix(string(out), "edged ") {
		t.Fatalf("edged version: %q, %v", out, err)
	}
	out, err = exec.Command(edgedBin, "check-config").Output()
	if err != nil || !strings.Contains(string(out), "embedded default: configuration OK") {
		t.Fatalf("edged check-config: %q, %v", out, err)
	}
	// serial-ports lists what the machine has (possibly nothing) and
	// succeeds; a PTY is not listed, as go.bug.st/serial does not report
	// /dev/pts.
	if out, err := exec.Command(edgedBin, "serial-ports").CombinedOutput(); err != nil {
		t.Fatalf("edged serial-ports: %v\n%s", err, out)
	}
	err = exec.Command(edgedBin, "frobnicate").Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
		t.Fatalf("unknown command: %v, want status 2", err)
	}
}

// TestBridgeTuningKeys: edged's bridge keys beyond the basic bridge keys reach
// bridge.Config, and a bad one is reported with its line.
func TestBridgeTuningKeys(t *testing.T) {
	base := "listeners: [{address: '127.0.0.1:1'}]\nbridges:\n  - name: cloud\n    address: tcp://up:1883\n" +
		"    topics: [{pattern: 's/#', direction: out, qos: 1}]\n"
	cfg, err := parseConfig("f.yaml", []byte(base+"    window: 8\n    connect_timeout: 3s\n    ping_timeout: 2s\n"+
		"    stable_after: 1m\n    notification_topic: '-'\n"))
	if err != nil {
		t.Fatal(err)
	}
	bc := cfg.Bridges[0]
	if bc.Window != 8 || bc.ConnectTimeout != 3*time.Second || bc.PingTimeout != 2*time.Second ||
		bc.StableAfter != time.Minute || bc.NotificationTopic != "-" {
		t.Fatalf("bridge.Config %+v does not carry the keys", bc)
	}
	_, err = parseConfig("f.yaml", []byte(base+"    window: 70000\n"))
	if err == nil || !strings.Contains(err.Error(), "f.yaml:6: bridges[0].window: must be between 1 and 65535") {
		t.Fatalf("window 70000: %v", err)
	}
}
