package persist_test

import (
	"encoding/binary"
	"testing"
)

// A branch page whose first child is itself (one flipped pgid) must give
// ErrCorrupt from Check and from Open/Load, within seconds. "off" leaves no
// freelist in the file, so bbolt.Open itself walks the tree to rebuild it.
func TestBranchCycle(t *testing.T) {
	if inDamagedChild(t) {
		return
	}
	damageInChild(t, "TestBranchCycle", "no branch page", func(b []byte, ps int) (n int) {
		for off := 2 * ps; off+ps <= len(b); off += ps {
			if binary.NativeEndian.Uint16(b[off+8:]) == 0x01 { // branch page
				id := binary.NativeEndian.Uint64(b[off:])
				// branchPageElement: pos uint32, ksize uint32, pgid uint64
				binary.NativeEndian.PutUint64(b[off+16+8:], id)
				n++
			}
		}
		return n
	})
}
