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

// A leaf element with a huge key size must give ErrCorrupt, not kill the
// process: bbolt's tx.Check runs on its own goroutine, where
// SetPanicOnFault is off, and so does bbolt.Open's rebuild of the freelist
// of a file written with sync "off" (no freelist stored).
func TestBadKeySizeDoesNotCrash(t *testing.T) {
	if p := os.Getenv("CHECK_FAULT_PATH"); p != "" {
		if os.Getenv("CHECK_FAULT_MODE") == "check" {
			if err := persist.Check(p); !errors.Is(err, persist.ErrCorrupt) {
				t.Fatalf("Check: %v, want ErrCorrupt", err)
			}
			return
		}
		db, err := persist.Open(persist.Options{Path: p})
		if err == nil {
			_, err = db.Load()
			_ = db.Close()
		}
		if !errors.Is(err, persist.ErrCorrupt) {
			t.Fatalf("Open+Load: %v, want ErrCorrupt", err)
		}
		return
	}
	for _, sync := range []persist.SyncMode{persist.SyncBatch, persist.SyncOff} {
		t.Run(sync.String(), func(t *testing.T) {
			path := writeStoreSync(t, sync)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			ps := os.Getpagesize()
			n := 0
			for off := 2 * ps; off+ps <= len(b); off += ps {
				flags := binary.NativeEndian.Uint16(b[off+8:])
				count := int(binary.NativeEndian.Uint16(b[off+10:]))
				if flags == 0x02 && count > 1 { // leaf page
					e := off + 16 + (count-1)*16                       // last leafPageElement
					binary.NativeEndian.PutUint32(b[e+8:], 0x3fffffff) // ksize
					n++
				}
			}
			if n == 0 {
				t.Fatal("no leaf page found")
			}
			exe, _ := os.Executable()
			for _, mode := range []string{"check", "open"} {
				if err := os.WriteFile(path, b, 0o600); err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				cmd := exec.CommandContext(ctx, exe, "-test.run=^TestBadKeySizeDoesNotCrash$", "-test.count=1")
				cmd.Env = childEnv("CHECK_FAULT_PATH="+path, "CHECK_FAULT_MODE="+mode)
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Errorf("%s on a damaged leaf page: %v\n%.4000s", mode, err, out)
				}
				cancel()
			}
		})
	}
}
