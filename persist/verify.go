package persist

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// bbolt's page layout (go.etcd.io/bbolt/internal/common), in native byte
// order: a 16-byte header (id uint64, flags uint16, count uint16, overflow
// uint32) followed by count 16-byte elements. A branch element is pos, ksize
// uint32 and the child's page id; a leaf element is flags, pos, ksize,
// vsize uint32. pos is relative to the element itself. A bucket's value is
// its root page id and sequence, followed by the page itself when the
// bucket is inline (root 0).
const (
	branchPageFlag   = 0x01
	leafPageFlag     = 0x02
	freelistPageFlag = 0x10
	bucketLeafFlag   = 0x01
	pageElemSize     = 16
	bucketHdrSize    = 16
	noFreelist       = ^uint64(0)
	// maxTreeDepth bounds the recursion: a sound b+tree of 2^40 pages with
	// nested buckets is far shallower.
	maxTreeDepth = 256
)

// verifyPages walks the page tree of meta m in f, from the root bucket
// through every nested bucket (stored or inline), and the freelist page.
// It checks that every page id is below the high-water mark, that no page
// is reached twice (which also stops a cycle), the page types, and that
// every element lies within its page and overflow pages. It reads with
// ReadAt, not through bbolt's memory map, so it runs before bbolt touches
// the tree: bbolt walks the tree on goroutines of its own, where
// SetPanicOnFault does not apply and a bad element size kills the process
// (tx.Check, and bbolt.Open itself for a file without a stored freelist, as
// sync "off" writes), and tx.Check recurses forever on a cycle.
//
// It does not check key order or unreachable pages; Check does that with
// bbolt's tx.Check once the structure is known to be safe to walk.
func verifyPages(f *os.File, m boltMeta) error {
	w := &pageWalker{
		f:    f,
		ps:   uint64(m.pageSize),
		hwm:  m.pgid,
		seen: make([]uint64, m.pgid/64+1),
	}
	if m.pgid < 3 {
		return fmt.Errorf("high-water mark %d below the first data page", m.pgid)
	}
	w.set(w.seen, 0)
	w.set(w.seen, 1)
	if err := w.tree(m.root, 0); err != nil {
		return err
	}
	if m.freelist != noFreelist {
		return w.freelist(m.freelist)
	}
	return nil
}

type pageWalker struct {
	f    *os.File
	ps   uint64   // page size
	hwm  uint64   // high-water mark: the first page id past the tree
	seen []uint64 // bitset of the pages reached
	bufs [][]byte // one read buffer per tree depth
}

func (w *pageWalker) set(bits []uint64, id uint64) bool {
	was := bits[id/64]&(1<<(id%64)) != 0
	bits[id/64] |= 1 << (id % 64)
	return was
}

func (w *pageWalker) isSet(bits []uint64, id uint64) bool {
	return bits[id/64]&(1<<(id%64)) != 0
}

// read reads n bytes of page id into buf, growing it if needed.
func (w *pageWalker) read(buf []byte, id, n uint64) ([]byte, error) {
	if uint64(cap(buf)) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := w.f.ReadAt(buf, int64(id*w.ps)); err != nil {
		if errors.Is(err, io.EOF) {
			return buf, fmt.Errorf("page %d: past the end of the file", id)
		}
		return buf, fmt.Errorf("reading page %d: %w", id, err)
	}
	return buf, nil
}

// page reads the header of page id, checks it and marks the page and its
// overflow pages reached. It returns the buffer holding at least the header
// and count elements, and the size of the page with its overflow.
func (w *pageWalker) page(id uint64, depth int, elem uint64) (b []byte, flags uint16, count int, size uint64, err error) {
	if id < 2 || id >= w.hwm {
		return nil, 0, 0, 0, fmt.Errorf("page id %d out of range [2, %d)", id, w.hwm)
	}
	for len(w.bufs) <= depth {
		w.bufs = append(w.bufs, nil)
	}
	b, err = w.read(w.bufs[depth], id, min(w.ps, (w.hwm-id)*w.ps))
	w.bufs[depth] = b
	if err != nil {
		return nil, 0, 0, 0, err
	}
	ne := binary.NativeEndian
	if pid := ne.Uint64(b[0:]); pid != id {
		return nil, 0, 0, 0, fmt.Errorf("page %d: header says page %d", id, pid)
	}
	flags, count = ne.Uint16(b[8:]), int(ne.Uint16(b[10:]))
	overflow := uint64(ne.Uint32(b[12:]))
	if id+overflow >= w.hwm {
		return nil, 0, 0, 0, fmt.Errorf("page %d: %d overflow pages reach past the high-water mark %d", id, overflow, w.hwm)
	}
	for i := id; i <= id+overflow; i++ {
		if w.set(w.seen, i) {
			return nil, 0, 0, 0, fmt.Errorf("page %d: reached twice (a cycle or a shared page)", i)
		}
	}
	size = (overflow + 1) * w.ps
	need := uint64(pageHeader) + uint64(count)*elem
	if need > size {
		return nil, 0, 0, 0, fmt.Errorf("page %d: %d elements do not fit in %d bytes", id, count, size)
	}
	if need > uint64(len(b)) {
		if b, err = w.read(b, id, need); err != nil {
			return nil, 0, 0, 0, err
		}
		w.bufs[depth] = b
	}
	return b, flags, count, size, nil
}

// tree checks the page id and everything below it.
func (w *pageWalker) tree(id uint64, depth int) error {
	if depth > maxTreeDepth {
		return fmt.Errorf("page %d: tree deeper than %d levels", id, maxTreeDepth)
	}
	b, flags, count, size, err := w.page(id, depth, pageElemSize)
	if err != nil {
		return err
	}
	ne := binary.NativeEndian
	switch flags {
	case branchPageFlag:
		if count == 0 {
			return fmt.Errorf("page %d: branch page without elements", id)
		}
		children := make([]uint64, count)
		for i := range count {
			e := uint64(pageHeader + i*pageElemSize)
			pos, ksize := uint64(ne.Uint32(b[e:])), uint64(ne.Uint32(b[e+4:]))
			if e+pos+ksize > size {
				return fmt.Errorf("page %d: branch element %d (pos %d, key %d bytes) past the page end", id, i, pos, ksize)
			}
			children[i] = ne.Uint64(b[e+8:])
		}
		for _, c := range children {
			if err := w.tree(c, depth+1); err != nil {
				return err
			}
		}
		return nil
	case leafPageFlag:
		for i := range count {
			e := uint64(pageHeader + i*pageElemSize)
			fl := ne.Uint32(b[e:])
			pos, ksize, vsize := uint64(ne.Uint32(b[e+4:])), uint64(ne.Uint32(b[e+8:])), uint64(ne.Uint32(b[e+12:]))
			if e+pos+ksize+vsize > size {
				return fmt.Errorf("page %d: leaf element %d (pos %d, key %d, value %d bytes) past the page end", id, i, pos, ksize, vsize)
			}
			if fl&bucketLeafFlag == 0 {
				continue
			}
			start := e + pos + ksize
			var v []byte
			if start+vsize <= uint64(len(b)) {
				v = b[start : start+vsize]
			} else {
				v = make([]byte, vsize)
				if _, err := w.f.ReadAt(v, int64(id*w.ps+start)); err != nil {
					return fmt.Errorf("reading page %d: %w", id, err)
				}
			}
			if err := w.bucket(v, id, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("page %d: not a branch or leaf page (flags %#x)", id, flags)
}

// bucket checks the bucket whose value v is stored on page parent.
func (w *pageWalker) bucket(v []byte, parent uint64, depth int) error {
	if depth > maxTreeDepth {
		return fmt.Errorf("page %d: buckets nested deeper than %d levels", parent, maxTreeDepth)
	}
	if len(v) < bucketHdrSize {
		return fmt.Errorf("page %d: bucket value of %d bytes", parent, len(v))
	}
	ne := binary.NativeEndian
	if root := ne.Uint64(v); root != 0 {
		return w.tree(root, depth)
	}
	p := v[bucketHdrSize:]
	if len(p) < pageHeader {
		return fmt.Errorf("page %d: inline bucket of %d bytes", parent, len(v))
	}
	if flags := ne.Uint16(p[8:]); flags != leafPageFlag {
		return fmt.Errorf("page %d: inline bucket is not a leaf (flags %#x)", parent, flags)
	}
	count := int(ne.Uint16(p[10:]))
	if pageHeader+count*pageElemSize > len(p) {
		return fmt.Errorf("page %d: inline bucket: %d elements do not fit in %d bytes", parent, count, len(p))
	}
	for i := range count {
		e := uint64(pageHeader + i*pageElemSize)
		fl := ne.Uint32(p[e:])
		pos, ksize, vsize := uint64(ne.Uint32(p[e+4:])), uint64(ne.Uint32(p[e+8:])), uint64(ne.Uint32(p[e+12:]))
		end := e + pos + ksize + vsize
		if end > uint64(len(p)) {
			return fmt.Errorf("page %d: inline bucket element %d past its end", parent, i)
		}
		if fl&bucketLeafFlag != 0 {
			if err := w.bucket(p[e+pos+ksize:end], parent, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// freelist checks the freelist page id: every free page id is in range,
// listed once and not part of the tree (bbolt would hand it out again).
func (w *pageWalker) freelist(id uint64) error {
	b, flags, count, size, err := w.page(id, 0, 0)
	if err != nil {
		return fmt.Errorf("freelist: %w", err)
	}
	if flags != freelistPageFlag {
		return fmt.Errorf("freelist: page %d: not a freelist page (flags %#x)", id, flags)
	}
	n, first := uint64(count), uint64(pageHeader)
	if count == 0xFFFF {
		n, first = binary.NativeEndian.Uint64(b[pageHeader:]), pageHeader+8
	}
	if n > size/8 || first+n*8 > size {
		return fmt.Errorf("freelist: page %d: %d ids do not fit in %d bytes", id, n, size)
	}
	if b, err = w.read(b, id, first+n*8); err != nil {
		return fmt.Errorf("freelist: %w", err)
	}
	free := make([]uint64, len(w.seen))
	for i := range n {
		fid := binary.NativeEndian.Uint64(b[first+i*8:])
		switch {
		case fid < 2 || fid >= w.hwm:
			return fmt.Errorf("freelist: page id %d out of range [2, %d)", fid, w.hwm)
		case w.isSet(w.seen, fid):
			return fmt.Errorf("freelist: page %d is free and in use", fid)
		case w.set(free, fid):
			return fmt.Errorf("freelist: page %d listed twice", fid)
		}
	}
	return nil
}
