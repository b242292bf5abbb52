package persist

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"runtime/debug"

	bolt "go.etcd.io/bbolt"
)

// bbolt's meta page, as laid out by go.etcd.io/bbolt/internal/common: a
// 16-byte page header followed by the meta fields in native byte order.
const (
	boltMagic    = 0xED0CDAED
	boltVersion  = 2
	pageHeader   = 16
	metaChecksum = 56 // offset of the checksum field in the meta
	metaLen      = 64
)

type boltMeta struct {
	pageSize uint32
	root     uint64 // root page of the root bucket
	freelist uint64 // freelist page, or noFreelist
	pgid     uint64 // high water mark
	txid     uint64
}

// readMeta parses the meta page at off in f. Like bbolt, it accepts a meta
// with the right magic, version and checksum.
func readMeta(f *os.File, off int64) (boltMeta, bool) {
	var b [pageHeader + metaLen]byte
	if _, err := f.ReadAt(b[:], off); err != nil {
		return boltMeta{}, false
	}
	ne := binary.NativeEndian
	m := b[pageHeader:]
	if ne.Uint32(m[0:]) != boltMagic || ne.Uint32(m[4:]) != boltVersion {
		return boltMeta{}, false
	}
	h := fnv.New64a()
	_, _ = h.Write(m[:metaChecksum])
	if h.Sum64() != ne.Uint64(m[metaChecksum:]) {
		return boltMeta{}, false
	}
	return boltMeta{
		pageSize: ne.Uint32(m[8:]),
		root:     ne.Uint64(m[16:]),
		freelist: ne.Uint64(m[32:]),
		pgid:     ne.Uint64(m[40:]),
		txid:     ne.Uint64(m[48:]),
	}, true
}

// checkFile runs on the store file f after Open has locked it and before
// bbolt reads anything but the meta pages. It catches the damage that would
// make bbolt fault on its memory map, hang, or reuse live pages: a file
// that is not bbolt, or is shorter than its meta page says (precheck), and
// a damaged page tree (verifyPages). An empty file is fine: Open creates the
// store.
func checkFile(f *os.File, path string) error {
	m, ok, err := precheck(f, path)
	if err != nil || !ok {
		return err
	}
	if err := verifyPages(f, m); err != nil {
		return corruptErr(path, err)
	}
	return nil
}

// precheck reads the meta page bbolt will use (the valid one with the
// highest txid) and checks it against the file size. ok is false for an
// empty file.
func precheck(f *os.File, path string) (best boltMeta, ok bool, err error) {
	fi, err := f.Stat()
	if err != nil {
		return best, false, fmt.Errorf("opening store %s: %w", path, err)
	}
	size := fi.Size()
	if size == 0 {
		return best, false, nil
	}
	if !fi.Mode().IsRegular() {
		return best, false, fmt.Errorf("opening store %s: not a regular file", path)
	}
	m0, ok0 := readMeta(f, 0)
	found := false
	offs := []int64{int64(os.Getpagesize()), 4096, 16384, 65536}
	if ok0 {
		best, found = m0, true
		offs = []int64{int64(m0.pageSize)}
	}
	for _, off := range offs {
		if m1, ok := readMeta(f, off); ok && m1.pageSize == uint32(off) {
			if !found || m1.txid > best.txid {
				best = m1
			}
			found = true
			break
		}
	}
	if !found {
		return best, false, corruptErr(path, errors.New("no valid bbolt meta page: not a bbolt file or both meta pages are damaged"))
	}
	if best.pageSize < 1024 || best.pageSize&(best.pageSize-1) != 0 {
		return best, false, corruptErr(path, fmt.Errorf("bad page size %d", best.pageSize))
	}
	if need := int64(best.pgid) * int64(best.pageSize); best.pgid > 1<<40 || need > size {
		return best, false, corruptErr(path, fmt.Errorf("file is truncated: %d bytes, its meta page needs %d", size, need))
	}
	return best, true, nil
}

// Check opens the store at path read-only and checks it: bbolt's own
// consistency check (page structure, freelist, key order), the format
// version, that every record decodes, that message reference counts match
// the session queues with no orphaned or missing message, and that queue
// statistics match their entries. It returns nil for a sound store, or an
// error wrapping ErrCorrupt that lists the problems (at most 100). Run it
// while edged is stopped: a running edged holds the lock (ErrLocked).
func Check(path string) (err error) {
	opts := Options{Path: path}
	opts.setDefaults()
	b, _, err := openBolt(path, boltOptions(&opts, true))
	if err != nil {
		return fmt.Errorf("checking store: %w", err)
	}
	defer b.Close()
	var problems []error
	add := func(e error) bool {
		if len(problems) < 100 {
			problems = append(problems, e)
		}
		return len(problems) < 100
	}
	func() {
		defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
		defer func() {
			if r := recover(); r != nil {
				add(fmt.Errorf("reading the file failed: %v", r))
			}
		}()
		_ = b.View(func(tx *bolt.Tx) error {
			// Open ran verifyPages, so bbolt's checker goroutine cannot
			// loop or fault. After 100 problems stop reading: the checker
			// then stays blocked on its send and reads no more.
			for e := range tx.Check() {
				if !add(e) {
					break
				}
			}
			if len(problems) > 0 {
				return nil // the page structure is broken; the record checks would fault
			}
			if err := checkFormat(tx, path); err != nil {
				add(err)
				return nil
			}
			checkRecords(tx, add)
			return nil
		})
	}()
	if len(problems) > 0 {
		return fmt.Errorf("checking store %s: %w: %w", path, ErrCorrupt, errors.Join(problems...))
	}
	return nil
}

// checkRecords checks edged's invariants inside tx.
func checkRecords(tx *bolt.Tx, add func(error) bool) {
	msgs, refs := tx.Bucket(bucketMessages), tx.Bucket(bucketRefs)
	counted := make(map[uint64]uint64)
	_ = tx.Bucket(bucketSessions).ForEach(func(k, v []byte) error {
		sb := tx.Bucket(bucketSessions).Bucket(k)
		if sb == nil {
			add(fmt.Errorf("session %q is not a bucket", k))
			return nil
		}
		if _, _, err := decodeSession(sb.Get(keyInfo)); err != nil {
			add(fmt.Errorf("session %q: %w", k, err))
		}
		if _, err := decodeOwner(sb.Get(keyOwner)); err != nil {
			add(fmt.Errorf("session %q: %w", k, err))
		}
		qb, ib := sb.Bucket(keyQueue), sb.Bucket(keyInbound)
		if qb == nil || ib == nil {
			add(fmt.Errorf("session %q: queue or inbound bucket missing", k))
			return nil
		}
		if b := sb.Bucket(keySubs); b != nil {
			_ = b.ForEach(func(sk, sv []byte) error {
				if _, err := decodeSub(sk, sv); err != nil {
					add(fmt.Errorf("session %q: %w", k, err))
				}
				return nil
			})
		}
		var n, size int64
		_ = qb.ForEach(func(mk, mv []byte) error {
			if len(mk) != 8 {
				add(fmt.Errorf("session %q: bad queue key %x", k, mk))
				return nil
			}
			if err := decodeRef(mv, &Queued{}); err != nil {
				add(fmt.Errorf("session %q: %w", k, err))
			}
			id := binary.BigEndian.Uint64(mk)
			n++
			size += messageSize(msgs.Get(mk))
			counted[id]++
			if msgs.Get(mk) == nil {
				add(fmt.Errorf("session %q: queued message %d missing", k, id))
			}
			return nil
		})
		// A file of format 1 has no stats yet; Open adds them.
		if v := sb.Get(keyStats); v != nil {
			if st, err := decodeQStats(v); err != nil {
				add(fmt.Errorf("session %q: %w", k, err))
			} else if st.count != n || st.bytes != size {
				add(fmt.Errorf("session %q: queue stats say %d messages, %d bytes; the queue holds %d, %d bytes", k, st.count, st.bytes, n, size))
			}
		}
		_ = ib.ForEach(func(pk, _ []byte) error {
			if len(pk) != 2 {
				add(fmt.Errorf("session %q: bad inbound key %x", k, pk))
			}
			return nil
		})
		return nil
	})
	_ = msgs.ForEach(func(k, v []byte) error {
		if _, err := decodeMessage(v); err != nil {
			add(fmt.Errorf("message %x: %w", k, err))
		}
		if len(k) == 8 && counted[binary.BigEndian.Uint64(k)] == 0 {
			add(fmt.Errorf("message %d is referenced by no session (orphan)", binary.BigEndian.Uint64(k)))
		}
		return nil
	})
	_ = refs.ForEach(func(k, v []byte) error {
		if len(k) != 8 || len(v) != 8 {
			add(fmt.Errorf("bad refcount record %x", k))
			return nil
		}
		id := binary.BigEndian.Uint64(k)
		if n := binary.BigEndian.Uint64(v); n != counted[id] {
			add(fmt.Errorf("message %d: refcount %d, queued %d times", id, n, counted[id]))
		}
		delete(counted, id)
		return nil
	})
	for id, n := range counted {
		add(fmt.Errorf("message %d: no refcount, queued %d times", id, n))
	}
	_ = tx.Bucket(bucketRetained).ForEach(func(k, v []byte) error {
		if m, err := decodeMessage(v); err != nil || m.Topic != string(k) {
			add(fmt.Errorf("retained %q: bad record", k))
		}
		return nil
	})
	_ = tx.Bucket(bucketQueues).ForEach(func(k, v []byte) error {
		qb := tx.Bucket(bucketQueues).Bucket(k)
		if qb == nil || qb.Bucket(keyEntries) == nil {
			add(fmt.Errorf("queue %q: not a bucket", k))
			return nil
		}
		st, err := decodeQStats(qb.Get(keyStats))
		if err != nil {
			add(fmt.Errorf("queue %q: %w", k, err))
		}
		var n, size int64
		_ = qb.Bucket(keyEntries).ForEach(func(ek, ev []byte) error {
			if _, err := decodeMessage(ev); err != nil || len(ek) != 8 {
				add(fmt.Errorf("queue %q: entry %x: bad record", k, ek))
			} else if binary.BigEndian.Uint64(ek) > qb.Sequence() {
				add(fmt.Errorf("queue %q: entry %d above the sequence %d", k, binary.BigEndian.Uint64(ek), qb.Sequence()))
			}
			n++
			size += messageSize(ev)
			return nil
		})
		if n != st.count || size != st.bytes {
			add(fmt.Errorf("queue %q: stats say %d entries of %d bytes, found %d of %d", k, st.count, st.bytes, n, size))
		}
		return nil
	})
}

// Compact rewrites the store at path into a new file without free pages,
// fsyncs it and atomically renames it over path. It returns the file sizes
// before and after. Run it while edged is stopped (it holds the lock, so a
// running edged makes it fail with ErrLocked). On error the original file
// is untouched.
func Compact(path string) (before, after int64, err error) {
	if _, err := os.Stat(path); err != nil {
		return 0, 0, fmt.Errorf("compacting store: %w", err)
	}
	opts := Options{Path: path}
	opts.setDefaults()
	src, _, err := openBolt(path, boltOptions(&opts, false))
	if err != nil {
		return 0, 0, fmt.Errorf("compacting store: %w", err)
	}
	defer func() {
		if cerr := src.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("compacting store: %w", cerr)
		}
	}()
	before = fileSize(path)
	tmp := path + ".compact"
	_ = os.Remove(tmp)
	dst, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: opts.Timeout, NoSync: true, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return 0, 0, fmt.Errorf("compacting store: creating %s: %w", tmp, err)
	}
	err = func() (err error) {
		defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("%w: %v", ErrCorrupt, r)
			}
		}()
		return bolt.Compact(dst, src, 64<<20)
	}()
	if err == nil {
		err = dst.Sync()
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syncFile(tmp)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return 0, 0, fmt.Errorf("compacting store: %w", err)
	}
	if err := syncFile(filepath.Dir(path)); err != nil {
		return 0, 0, fmt.Errorf("compacting store: syncing directory: %w", err)
	}
	return before, fileSize(path), nil
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
