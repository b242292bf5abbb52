package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestImportMosquittoGolden converts each testdata/mosquitto/*.conf
// (realistic files, accepted by Mosquitto 2.0: Debian's default with
// include_dir, TLS and WebSocket listeners, bridges with topic lines and
// prefixes, per_listener_settings, a file of plugins) and compares the
// output with NAME.yaml (-update rewrites them). Each output must itself
// pass check-config with its files read, and every directive not carried
// over must be listed on stderr.
func TestImportMosquittoGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/mosquitto/*.conf")
	if len(files) < 5 {
		t.Fatalf("only %d mosquitto.conf files", len(files))
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".conf")
		t.Run(name, func(t *testing.T) {
			code, stdout, stderr := runEdged("import-mosquitto", f)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			checkGolden(t, filepath.Join("testdata/mosquitto", name+".yaml"), []byte(stdout))
			// What is not carried over is listed on stderr and in the
			// output's header, the same lines.
			for _, l := range strings.Split(strings.TrimSpace(stderr), "\n")[1:] {
				if !strings.Contains(stdout, "#   "+strings.TrimSpace(l)+"\n") {
					t.Errorf("stderr line %q not in the output's header", l)
				}
			}
			out := filepath.Join(t.TempDir(), "edged.yaml")
			if err := os.WriteFile(out, []byte(stdout), 0o600); err != nil {
				t.Fatal(err)
			}
			if code, _, stderr := runEdged("check-config", "-c", out); code != 0 {
				t.Fatalf("the imported configuration fails check-config:\n%s\n%s", stderr, stdout)
			}
		})
	}
}

// TestImportMosquittoValues checks the conversions one by one, each against
// what Mosquitto's documentation says the directive means.
func TestImportMosquittoValues(t *testing.T) {
	dir := t.TempDir()
	conv := func(conf string) (*Config, []string) {
		t.Helper()
		path := filepath.Join(dir, "m.conf")
		os.WriteFile(path, []byte(conf), 0o600)
		ds, err := readMosquittoConf(path, 0)
		if err != nil {
			t.Fatal(err)
		}
		return importMosquitto(ds)
	}
	cfg, notes := conv("listener 1883\npersistent_client_expiration 2w\nmax_keepalive 60\n" +
		"connection up\naddress broker.lan\ntopic a/# both 2 l/ r/\ntopic b/#\n")
	if len(notes) != 1 || !strings.Contains(notes[0], "notification topic") {
		t.Errorf("notes %q", notes)
	}
	l := cfg.Listeners[0]
	if l.Address != ":1883" || l.AllowAnonymous == nil || *l.AllowAnonymous {
		t.Errorf("listener 1883: %+v (Mosquitto 2: every interface, no anonymous clients)", l)
	}
	if cfg.Limits.SessionExpiry != 14*24*3600e9 || cfg.Limits.MaxKeepalive != 60e9 {
		t.Errorf("limits %+v", cfg.Limits)
	}
	b := cfg.Bridges[0]
	if b.Address != "tcp://broker.lan:1883" || len(b.Topics) != 2 ||
		b.Topics[0].Direction != "both" || b.Topics[0].QoS != 2 || b.Topics[0].LocalPrefix != "l/" || b.Topics[0].RemotePrefix != "r/" ||
		b.Topics[1].Direction != "out" || b.Topics[1].QoS != 0 {
		t.Errorf("bridge %+v", b)
	}
	// Hostile: bad values are listed, never guessed.
	_, notes = conv("listener\nmax_inflight_messages many\ntopic x\nconnection\npersistent_client_expiration 3x\n" +
		"connection c\ntopic a/# sideways\ntopic a/# in 7\ntopic a/# in 1 onlylocal/\n")
	if len(notes) != 10 {
		t.Errorf("want 10 notes, got %d:\n%s", len(notes), strings.Join(notes, "\n"))
	}
	if _, err := readMosquittoConf(filepath.Join(dir, "missing.conf"), 0); err == nil {
		t.Error("a missing file is no error")
	}
}

// FuzzImportMosquitto holds the mosquitto.conf reader and converter to
// their contract on arbitrary input: no panic, and the YAML written always
// decodes as an edged configuration (no unknown key, no value of the wrong
// type); whether its values pass validation is for check-config to say,
// and the command says it.
func FuzzImportMosquitto(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/mosquitto/*.conf")
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("listener 1883 ::1\nconnection a\naddress [::1]:1\ntopic \"\" both 2 a/b c/b\n"))
	f.Add([]byte("port 99999\nbind_address :::\nlistener x\nmax_packet_size 70000\nrestart_timeout 1 2 3\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 4096 || bytes.Contains(data, []byte("include_dir")) {
			return // include_dir would read any directory of this machine
		}
		path := filepath.Join(dir, "m.conf")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		ds, err := readMosquittoConf(path, 0)
		if err != nil {
			return // a line longer than the scanner takes
		}
		cfg, notes := importMosquitto(ds)
		out, err := mosquittoYAML("m.conf", cfg, notes)
		if err != nil {
			t.Fatalf("writing YAML: %v", err)
		}
		var c Config
		if _, err := decodeYAML("out.yaml", out, &c); err != nil {
			t.Fatalf("the output does not decode: %v\n%s", err, out)
		}
	})
}

// TestImportMosquittoInvalidResult: when the converted configuration cannot
// be valid (a bridge without topic lines, a port that is no number), the
// command says so on stderr with the key and line in its output.
func TestImportMosquittoInvalidResult(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.conf")
	os.WriteFile(path, []byte("listener 18x3\nconnection up\naddress h\n"), 0o600)
	code, stdout, stderr := runEdged("import-mosquitto", path)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"needs editing", "listeners[0].address", "bridges[0].topics"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if !strings.Contains(stdout, "listeners:") {
		t.Errorf("no YAML on stdout:\n%s", stdout)
	}
}
