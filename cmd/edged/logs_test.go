package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edged/edged/internal/testutil"
)

// logLineProblems returns what is wrong with one JSON log line: a key
// given twice in one object, or an error attribute that is nil.
func logLineProblems(line string) []string {
	dec := json.NewDecoder(strings.NewReader(line))
	var problems []string
	type obj struct{ seen map[string]bool }
	var stack []*obj
	expectKey := false
	lastKey := ""
	for {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{':
				stack = append(stack, &obj{seen: map[string]bool{}})
				expectKey = true
				continue
			case '}':
				stack = stack[:len(stack)-1]
			}
		case string:
			if expectKey && len(stack) > 0 {
				top := stack[len(stack)-1]
				if top.seen[v] {
					problems = append(problems, "duplicated attribute "+v)
				}
				top.seen[v] = true
				lastKey = v
				expectKey = false
				continue
			}
			if lastKey == "error" && (v == "<nil>" || v == "") {
				problems = append(problems, "error attribute "+fmt.Sprintf("%q", v))
			}
		case nil:
			if lastKey == "error" {
				problems = append(problems, "error attribute null")
			}
		}
		expectKey = len(stack) > 0
	}
	return problems
}

func TestLogLineProblems(t *testing.T) {
	for line, want := range map[string]int{
		`{"msg":"a","serial":"u","serial_port":"u"}`: 0,
		`{"msg":"a","k":1,"k":2}`:                    1,
		`{"msg":"a","error":null}`:                   1,
		`{"msg":"a","error":"<nil>"}`:                1,
		`{"msg":"a","g":{"k":1},"h":{"k":1}}`:        0,
	} {
		if got := len(logLineProblems(line)); got != want {
			t.Errorf("%s: %d problems, want %d", line, got, want)
		}
	}
}

// TestLogs runs edged with every kind of listener, a serial port whose
// device is missing and a bridge to a closed port, then changes both
// retry errors: the device appears as something that is no tty, the port
// opens and closes every connection at once. It checks the log lines:
// listener lines say tcp/tls/ws/serial, no attribute twice, no nil error,
// and a retry error that changes is logged again at Warn while the same
// one again is not.
func TestLogs(t *testing.T) {
	dir := t.TempDir()
	ca := testutil.NewTestCA(t, "ca", testutil.ECDSA)
	certFile, keyFile := ca.Issue(t, "127.0.0.1", "127.0.0.1").WriteFiles(t, dir, "server")
	upstream := freeAddr(t)
	device := filepath.Join(dir, "ttyLATER")
	p := startEdged(t, dir, fmt.Sprintf(`data_dir: %s
sys_interval: 1s
listeners:
  - {name: plain, address: 127.0.0.1:0}
  - {name: web, address: 127.0.0.1:0, websocket: {}}
  - {name: secure, address: 127.0.0.1:0, tls: {cert_file: %s, key_file: %s}}
serial:
  - {name: uart0, device: %s, reopen_min: 50ms, reopen_max: 100ms}
bridges:
  - name: up
    address: tcp://%s
    backoff: {min: 50ms, max: 100ms}
    topics: [{pattern: 'x/#', direction: out, qos: 1}]
`, dir, certFile, keyFile, device, upstream))

	for name, transport := range map[string]string{"plain": "tcp", "web": "ws", "secure": "tls", "uart0": "serial"} {
		p.logged(t, name+" listening with transport "+transport, func(r map[string]any) bool {
			return r["msg"] == "listening" && r["listener"] == name && r["transport"] == transport
		})
	}
	warnings := func(msg, errPart string) int {
		p.mu.Lock()
		defer p.mu.Unlock()
		n := 0
		for _, r := range p.logs {
			if e, _ := r["error"].(string); r["msg"] == msg && r["level"] == "WARN" && strings.Contains(e, errPart) {
				n++
			}
		}
		return n
	}
	const bridgeMsg, serialMsg = "connecting upstream failed; retrying with backoff", "opening serial port failed"
	p.logged(t, "the bridge's first failure", func(r map[string]any) bool { return r["msg"] == bridgeMsg })
	p.logged(t, "the serial port's first failure", func(r map[string]any) bool { return r["msg"] == serialMsg })
	// The same errors again and again: at Debug.
	time.Sleep(500 * time.Millisecond)
	if n := warnings(bridgeMsg, "refused"); n != 1 {
		t.Errorf("the same bridge error logged at Warn %d times, want once", n)
	}
	if n := warnings(serialMsg, "no such file"); n != 1 {
		t.Errorf("the same serial error logged at Warn %d times, want once", n)
	}

	// The errors change.
	ln, err := net.Listen("tcp", upstream)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	if err := os.WriteFile(device, []byte("not a tty"), 0o600); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, func() error {
		if b, s := warnings(bridgeMsg, ""), warnings(serialMsg, ""); b < 2 || s < 2 {
			return fmt.Errorf("changed retry errors not logged at Warn again: bridge %d, serial %d warnings", b, s)
		}
		return nil
	})
	p.stop(t)

	p.mu.Lock()
	defer p.mu.Unlock()
	for _, line := range p.raw {
		for _, problem := range logLineProblems(line) {
			t.Errorf("%s in %s", problem, line)
		}
	}
}

// TestFailedStartLogsCauseFirst: a start that fails (a listener's address
// in use) logs the cause once, at Error, before anything the cleanup logs,
// and exits 1.
func TestFailedStartLogsCauseFirst(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dir := t.TempDir()
	path := filepath.Join(dir, "edged.yaml")
	os.WriteFile(path, []byte(fmt.Sprintf("data_dir: %s\nlog: {format: json}\nlisteners:\n  - {name: a, address: '127.0.0.1:0'}\n  - {name: b, address: '%s'}\n",
		dir, busy.Addr())), 0o600)
	var stderr bytes.Buffer
	cmd := exec.Command(edgedBin, "-c", path)
	cmd.Stderr = &stderr
	err = cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("exit: %v, want status 1\n%s", err, stderr.String())
	}
	var errorsSeen, causeAt, cleanupAt int
	causeAt, cleanupAt = -1, -1
	for i, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		var r map[string]any
		if json.Unmarshal([]byte(line), &r) != nil {
			t.Fatalf("not a JSON log line: %q", line)
		}
		if r["level"] == "ERROR" {
			errorsSeen++
			if e, _ := r["error"].(string); strings.Contains(e, "listener b") && strings.Contains(e, "address already in use") {
				causeAt = i
			}
		}
		if r["msg"] == "shutting down" && cleanupAt < 0 {
			cleanupAt = i
		}
	}
	if causeAt < 0 || errorsSeen != 1 || (cleanupAt >= 0 && cleanupAt < causeAt) {
		t.Fatalf("cause at line %d, cleanup at %d, %d errors:\n%s", causeAt, cleanupAt, errorsSeen, stderr.String())
	}
}
