package persist_test

import (
	"encoding/binary"
	"errors"
	"os"
	"testing"

	"github.com/edged/edged/persist"
)

// A damaged root page that reads as an empty leaf must not make Open start
// an empty store in place of the file.
func TestDamagedRootNotEmpty(t *testing.T) {
	for _, name := range []string{"count zeroed", "page zeroed"} {
		t.Run(name, func(t *testing.T) {
			path := writeStore(t)
			b, _ := os.ReadFile(path)
			ps := os.Getpagesize()
			// Both meta pages: root bucket's pgid at meta offset 16 (after
			// magic, version, pageSize, flags); txid at 48.
			best := 0
			if binary.NativeEndian.Uint64(b[ps+16+48:]) > binary.NativeEndian.Uint64(b[16+48:]) {
				best = ps
			}
			root := int(binary.NativeEndian.Uint64(b[best+16+16:]))
			off := root * ps
			if name == "count zeroed" {
				binary.NativeEndian.PutUint16(b[off+10:], 0)
			} else {
				clear(b[off : off+ps])
			}
			_ = os.WriteFile(path, b, 0o600)
			db, err := persist.Open(persist.Options{Path: path})
			if err != nil {
				if !errors.Is(err, persist.ErrCorrupt) {
					t.Fatalf("Open: %v", err)
				}
				return
			}
			defer db.Close()
			snap, err := db.Load()
			if err == nil && len(snap.Sessions) == 0 {
				t.Fatalf("Open+Load of a store with 1 session and 200 messages returned an empty store")
			}
		})
	}
}
