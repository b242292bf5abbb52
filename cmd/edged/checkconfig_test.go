package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runEdged runs the command line in this process and returns the exit
// status and what it wrote.
func runEdged(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(args, nil, &out, &errOut)
	return code, out.String(), errOut.String()
}

// checkGolden compares got with testdata file golden, or rewrites it with
// -update.
func checkGolden(t *testing.T, golden string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update ./cmd/edged)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("got\n%s\nwant (%s)\n%s", got, golden, want)
	}
}

// TestCheckConfigGolden runs `edged check-config` on each file in
// testdata/checkconfig (one kind of mistake each: certificate and key
// files missing, swapped or not matching, CA files, listeners on one
// address, malformed addresses, plain-text passwords, a mosquitto.conf)
// and compares the exit status and output with NAME.golden. Run with
// -update to rewrite them.
func TestCheckConfigGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/checkconfig/*.yaml")
	confs, _ := filepath.Glob("testdata/checkconfig/*.conf")
	files = append(files, confs...)
	if len(files) < 8 {
		t.Fatalf("only %d cases in testdata/checkconfig", len(files))
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), filepath.Ext(f))
		t.Run(name, func(t *testing.T) {
			code, stdout, stderr := runEdged("check-config", "-c", f)
			if code == 0 {
				t.Errorf("check-config accepted %s", f)
			}
			checkGolden(t, filepath.Join("testdata/checkconfig", name+".golden"),
				fmt.Appendf(nil, "exit %d\n%s%s", code, stdout, stderr))
			// Every problem is located: file and line.
			for _, l := range strings.Split(stderr, "\n") {
				if strings.HasPrefix(l, "  ") && !strings.HasPrefix(l, "  "+f+":") {
					t.Errorf("problem without file and line: %q", l)
				}
			}
		})
	}
}

// TestCheckConfigSortedByLine: problems found by decoding, validation and
// file checks come out in line order.
func TestCheckConfigSortedByLine(t *testing.T) {
	_, _, stderr := runEdged("check-config", "-c", "testdata/checkconfig/sorted.yaml")
	last := 0
	n := 0
	for _, l := range strings.Split(stderr, "\n") {
		rest, ok := strings.CutPrefix(l, "  testdata/checkconfig/sorted.yaml:")
		if !ok {
			continue
		}
		var line int
		fmt.Sscanf(rest, "%d:", &line)
		if line < last {
			t.Errorf("line %d listed after line %d:\n%s", line, last, stderr)
		}
		last = line
		n++
	}
	if n < 5 {
		t.Errorf("want at least 5 problems, got %d:\n%s", n, stderr)
	}
}

// TestCheckConfigGoodTLS: the same files the right way round pass, so the
// errors above come from the mistakes and not from the fixtures.
func TestCheckConfigGoodTLS(t *testing.T) {
	path := filepath.Join(t.TempDir(), "good.yaml")
	os.WriteFile(path, []byte(`listeners:
  - name: tls
    address: 127.0.0.1:8883
    tls: {cert_file: testdata/certs/server.crt, key_file: testdata/certs/server.key,
          client_ca_file: testdata/certs/ca.crt}
  - name: ws
    address: 127.0.0.1:8080
    websocket: {}
  - {name: v4only, address: "0.0.0.0:1886"}
  - {name: v6ok, address: "[::1]:1886"}
bridges:
  - name: cloud
    address: tls://cloud.example.com:8883
    tls: {ca_file: testdata/certs/ca.crt, cert_file: testdata/certs/server.crt, key_file: testdata/certs/server.key}
    topics: [{pattern: "sensors/#", direction: out, qos: 1}]
`), 0o600)
	if code, stdout, stderr := runEdged("check-config", "-c", path); code != 0 {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	// -skip-files reads none of them.
	os.WriteFile(path, []byte("listeners:\n  - {address: '127.0.0.1:1', tls: {cert_file: /nope.crt, key_file: /nope.key}}\n"), 0o600)
	if code, _, stderr := runEdged("check-config", "-skip-files", "-c", path); code != 0 {
		t.Fatalf("-skip-files: exit %d\n%s", code, stderr)
	}
	if code, _, _ := runEdged("check-config", "-c", path); code != 1 {
		t.Fatalf("without -skip-files: exit %d, want 1", code)
	}
}
