package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edged/edged/broker/packet"
)

// TestDBCommands runs edged, stops it, then `edged db check` and
// `edged db compact` on its store; then damages the file and checks that
// edged refuses to start (never silently starting empty) and db check
// reports the damage.
func TestDBCommands(t *testing.T) {
	dir := t.TempDir()
	config := "data_dir: " + dir + "/data\nlisteners:\n  - {name: local, address: 127.0.0.1:0}\n"
	p := startEdged(t, dir, config)
	subscribeAndLeave(t, p.addr, "keeper", "a/#", 1)

	// While edged runs, the file is locked: a clear message, not "damaged".
	cfgPath := filepath.Join(dir, "edged.yaml")
	out, err := exec.Command(edgedBin, "db", "check", "-c", cfgPath).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "in use by a running edged") {
		t.Fatalf("db check on a running store: %v\n%s", err, out)
	}
	p.stop(t)

	out, err = exec.Command(edgedBin, "db", "check", "-c", cfgPath).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "OK") {
		t.Fatalf("db check: %v\n%s", err, out)
	}
	out, err = exec.Command(edgedBin, "db", "compact", "-c", cfgPath).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "compacted from") {
		t.Fatalf("db compact: %v\n%s", err, out)
	}
	// The session survived the compaction.
	p = startEdged(t, dir, config)
	c, present, err := dialMQTT(p.addr, "keeper", false, func(*tclient, packet.Packet) {})
	if err != nil || !present {
		t.Fatalf("session after compact: present=%v err=%v", present, err)
	}
	c.disconnect()
	p.stop(t)

	// Damage the file: garbage over the first pages.
	db := filepath.Join(dir, "data", "edged.db")
	f, err := os.OpenFile(db, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte(strings.Repeat("garbage!", 2048)), 0)
	f.Close()

	cmd := exec.Command(edgedBin, "-c", cfgPath)
	done := make(chan []byte, 1)
	go func() {
		out, _ := cmd.CombinedOutput()
		done <- out
	}()
	select {
	case out := <-done:
		if cmd.ProcessState.ExitCode() == 0 || !strings.Contains(string(out), "corrupt") ||
			!strings.Contains(string(out), "edged db check") {
			t.Fatalf("edged on a damaged store: exit %d\n%s", cmd.ProcessState.ExitCode(), out)
		}
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatal("edged started on a damaged store")
	}
	out, err = exec.Command(edgedBin, "db", "check", "-c", cfgPath).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "damaged") {
		t.Fatalf("db check on a damaged store: %v\n%s", err, out)
	}
}
