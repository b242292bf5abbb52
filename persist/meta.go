package persist

import (
	"encoding/binary"
	"fmt"
	"os"
)

// bbolt keeps two meta pages, each with a checksum, and writes transaction
// t's meta to page t%2. When the newest meta page is damaged, bbolt opens
// the file with the other one: one transaction back, with no error. This is
// a silent rollback; inspectMeta detects it from the damaged page.

// metaDamage describes a damaged meta page next to a valid one.
type metaDamage struct {
	page uint64 // the damaged meta page, 0 or 1
	used uint64 // the transaction of the valid meta page, which bbolt uses
	raw  uint64 // the transaction id field of the damaged page, unverified
	// lost is true unless the damaged page is known to be the older one.
	lost bool
}

func (d *metaDamage) String() string {
	switch {
	case d.raw == d.used+1:
		return fmt.Sprintf("meta page %d is damaged: the store fell back to transaction %d; "+
			"transaction %d, the newest, is lost (unless the machine lost power while it was written: "+
			"then it was never acknowledged)", d.page, d.used, d.used+1)
	case !d.lost:
		return fmt.Sprintf("meta page %d (transaction %d, the older) is damaged; the newest, %d, is intact",
			d.page, d.raw, d.used)
	}
	return fmt.Sprintf("meta page %d is damaged and its transaction id is unreadable: the store uses "+
		"transaction %d; transaction %d may be lost", d.page, d.used, d.used+1)
}

// inspectMeta reads both meta pages of the bbolt file at path and reports
// a damaged one next to a valid one, or nil (both valid, or no valid one,
// which precheck refuses).
func inspectMeta(path string) *metaDamage {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	m0, ok0 := readMeta(f, 0)
	if ok0 {
		ps := int64(m0.pageSize)
		if _, ok1 := readMeta(f, ps); ok1 {
			return nil
		}
		return newMetaDamage(f, 1, ps, m0.txid)
	}
	for _, off := range []int64{int64(os.Getpagesize()), 4096, 16384, 65536} {
		if m1, ok := readMeta(f, off); ok && m1.pageSize == uint32(off) {
			return newMetaDamage(f, 0, 0, m1.txid)
		}
	}
	return nil
}

func newMetaDamage(f *os.File, page uint64, off int64, used uint64) *metaDamage {
	d := &metaDamage{page: page, used: used, raw: ^uint64(0), lost: true}
	var b [8]byte
	if _, err := f.ReadAt(b[:], off+pageHeader+48); err == nil {
		d.raw = binary.NativeEndian.Uint64(b[:])
	}
	if d.raw+1 == used {
		d.lost = false
	}
	return d
}
