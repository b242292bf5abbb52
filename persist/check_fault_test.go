package persist_test

import (
	"encoding/binary"
	"testing"
)

// A leaf element with a huge key size must give ErrCorrupt, not kill the
// process: bbolt's tx.Check runs on its own goroutine, where
// SetPanicOnFault is off, and so does bbolt.Open's rebuild of the freelist
// of a file written with sync "off" (no freelist stored).
func TestBadKeySizeDoesNotCrash(t *testing.T) {
	if inDamagedChild(t) {
		return
	}
	damageInChild(t, "TestBadKeySizeDoesNotCrash", "no leaf page found", func(b []byte, ps int) (n int) {
		for off := 2 * ps; off+ps <= len(b); off += ps {
			flags := binary.NativeEndian.Uint16(b[off+8:])
			count := int(binary.NativeEndian.Uint16(b[off+10:]))
			if flags == 0x02 && count > 1 { // leaf page
				e := off + 16 + (count-1)*16                       // last leafPageElement
				binary.NativeEndian.PutUint32(b[e+8:], 0x3fffffff) // ksize
				n++
			}
		}
		return n
	})
}
