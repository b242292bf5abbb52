package persist_test

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/edged/edged/persist"
)

// A branch page whose first child is itself (one flipped pgid) must give
// ErrCorrupt from Check and from Open/Load, within seconds.
func TestBranchCycle(t *testing.T) {
	if p := os.Getenv("CYCLE_PATH"); p != "" {
		if os.Getenv("CYCLE_MODE") == "check" {
			if err := persist.Check(p); !errors.Is(err, persist.ErrCorrupt) {
				t.Fatalf("Check: %v, want ErrCorrupt", err)
			}
			return
		}
		db, err := persist.Open(persist.Options{Path: p})
		if err != nil {
			if !errors.Is(err, persist.ErrCorrupt) {
				t.Fatalf("Open: %v", err)
			}
			return
		}
		defer db.Close()
		if _, err := db.Load(); !errors.Is(err, persist.ErrCorrupt) {
			t.Fatalf("Load: %v, want ErrCorrupt", err)
		}
		return
	}
	// "off" leaves no freelist in the file, so bbolt.Open itself walks the
	// tree to rebuild it.
	for _, sync := range []persist.SyncMode{persist.SyncBatch, persist.SyncOff} {
		t.Run(sync.String(), func(t *testing.T) { testBranchCycle(t, sync) })
	}
}

func testBranchCycle(t *testing.T, sync persist.SyncMode) {
	path := writeStoreSync(t, sync)
	b, _ := os.ReadFile(path)
	ps := os.Getpagesize()
	n := 0
	for off := 2 * ps; off+ps <= len(b); off += ps {
		if binary.NativeEndian.Uint16(b[off+8:]) == 0x01 { // branch page
			id := binary.NativeEndian.Uint64(b[off:])
			// branchPageElement: pos uint32, ksize uint32, pgid uint64
			binary.NativeEndian.PutUint64(b[off+16+8:], id)
			n++
		}
	}
	if n == 0 {
		t.Fatal("no branch page")
	}
	_ = os.WriteFile(path, b, 0o600)
	exe, _ := os.Executable()
	for _, mode := range []string{"check", "load"} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		cmd := exec.CommandContext(ctx, exe, "-test.run=^TestBranchCycle$", "-test.count=1")
		cmd.Env = childEnv("CYCLE_PATH="+path, "CYCLE_MODE="+mode)
		out, err := cmd.CombinedOutput()
		if ctx.Err() != nil {
			t.Errorf("%s: still running after 20s (hang)", mode)
		} else if err != nil {
			t.Errorf("%s: %v\n%.600s", mode, err, out)
		}
		cancel()
	}
}
