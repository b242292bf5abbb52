package persist

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

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
// a damaged page tree (verifyPages). An empty file is damage: Open creates
// a new store whole (createStore), so an empty one was cut short or
// truncated.
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
// highest txid) and checks it against the file size.
func precheck(f *os.File, path string) (best boltMeta, ok bool, err error) {
	fi, err := f.Stat()
	if err != nil {
		return best, false, fmt.Errorf("opening store %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return best, false, fmt.Errorf("opening store %s: not a regular file", path)
	}
	size := fi.Size()
	if size < 2*1024 {
		return best, false, corruptErr(path, fmt.Errorf("the file has %d bytes, less than the two meta pages of a store", size))
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
	if size < 2*int64(best.pageSize) {
		return best, false, corruptErr(path, fmt.Errorf("the file has %d bytes, less than two pages of %d", size, best.pageSize))
	}
	if need := int64(best.pgid) * int64(best.pageSize); best.pgid > 1<<40 || need > size {
		return best, false, corruptErr(path, fmt.Errorf("file is truncated: %d bytes, its meta page needs %d", size, need))
	}
	return best, true, nil
}

// Check opens the store at path read-only and checks it: the meta pages
// (a damaged one next to a valid one is a silent rollback, see inspectMeta),
// bbolt's own consistency check (page structure, freelist, key order), the
// format version, every record's checksum and encoding, that every key
// matches its name, that message reference counts match the session queues
// with no orphaned or missing message, and that queue statistics match
// their entries. It returns nil for a sound store, or an error wrapping
// ErrCorrupt that lists the problems (at most 100), each naming its
// session, queue or topic. Run it while edged is stopped: a running edged
// holds the lock (ErrLocked). A store of an older format is checked as it
// is; Open migrates it.
func Check(path string) error {
	_, err := CheckReport(path)
	return err
}

// CheckReport is Check, and also returns notes about a store that is
// sound: the damaged records edged found and set aside earlier (see
// doc.go, Damage), oldest first, and the format version if Open is yet to
// migrate it.
func CheckReport(path string) (notes []string, err error) {
	_, notes, err = CheckSummary(path)
	return notes, err
}

// Summary is what a sound store holds, as CheckSummary counts it.
type Summary struct {
	Sessions       int64 // persistent sessions
	Subscriptions  int64 // their subscriptions
	QueuedMessages int64 // messages queued for them (sent and not yet sent)
	QueuedBytes    int64 // bytes of topic and payload of those
	Retained       int64 // retained messages
	Queues         []QueueSummary
	FileSize       int64 // bytes
	PageSize       int   // bytes
	FreePages      int   // pages free for reuse (compact returns them)
	PendingPages   int   // pages freed by transactions still open
	Format         int   // format version of the file
}

// QueueSummary is one named durable queue (a bridge's: bridge/<name>).
type QueueSummary struct {
	Name     string
	Messages int64
	Bytes    int64
}

// CheckSummary is CheckReport, and also returns what the store holds.
func CheckSummary(path string) (sum Summary, notes []string, err error) {
	opts := Options{Path: path}
	opts.setDefaults()
	b, _, err := openBolt(path, boltOptions(&opts, true))
	if err != nil {
		// This is `edged db check`: the cause, without advice to run it.
		var ce *corruptError
		if errors.As(err, &ce) {
			return sum, nil, fmt.Errorf("checking store %s: %w: %w", path, ErrCorrupt, ce.cause)
		}
		return sum, nil, fmt.Errorf("checking store: %w", err)
	}
	defer b.Close()
	if fi, err := os.Stat(path); err == nil {
		sum.FileSize = fi.Size()
	}
	st := b.Stats()
	sum.FreePages, sum.PendingPages, sum.PageSize = st.FreePageN, st.PendingPageN, b.Info().PageSize
	var problems []error
	add := func(e error) bool {
		if len(problems) < 100 {
			problems = append(problems, e)
		}
		return len(problems) < 100
	}
	if d := inspectMeta(path); d != nil {
		add(errors.New(d.String()))
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
			n := len(problems)
			for e := range tx.Check() {
				if !add(e) {
					break
				}
			}
			if len(problems) > n {
				return nil // the page structure is broken; the record checks would fault
			}
			if err := checkFormat(tx, path); err != nil {
				add(err)
				return nil
			}
			r := readerFor(formatOf(tx))
			sum.Format = int(formatOf(tx))
			if formatOf(tx) < formatVersion {
				notes = append(notes, fmt.Sprintf("format version %d: edged migrates it to %d when it starts", formatOf(tx), formatVersion))
			}
			checkRecords(tx, add, r, &sum)
			if v := tx.Bucket(bucketMeta).Get(keyRollback); v != nil {
				body, err := unseal(keyRollback, v)
				t, k := binary.Varint(body)
				if err != nil || k <= 0 {
					add(fmt.Errorf("meta rollback: bad record (%v)", err))
				} else {
					notes = append(notes, fmt.Sprintf("edged started on %s after a rollback: %s",
						time.Unix(t, 0).UTC().Format(time.RFC3339), body[k:]))
				}
			}
			notes = append(notes, asideNotes(tx, add)...)
			return nil
		})
	}()
	if len(problems) > 0 {
		return sum, notes, fmt.Errorf("checking store %s: %w: %w", path, ErrCorrupt, errors.Join(problems...))
	}
	return sum, notes, nil
}

// asideNotes describes the records of the damaged bucket.
func asideNotes(tx *bolt.Tx, add func(error) bool) []string {
	b := tx.Bucket(bucketDamaged)
	if b == nil {
		return nil
	}
	var notes []string
	_ = b.ForEach(func(k, v []byte) error {
		body, err := unseal(k, v)
		var when time.Time
		var what string
		var raw []byte
		if err == nil {
			when, what, raw, err = decodeAside(body)
		}
		if err != nil {
			add(fmt.Errorf("set-aside record %x: %w", k, err))
			return nil
		}
		notes = append(notes, fmt.Sprintf("set aside as damaged on %s: %s (%d bytes kept)",
			when.UTC().Format(time.RFC3339), what, len(raw)))
		return nil
	})
	return notes
}

// checkRecords checks edged's invariants inside tx, reading records with
// r (format 1 or the current one).
// It counts what it reads into sum.
func checkRecords(tx *bolt.Tx, add func(error) bool, r reader, sum *Summary) {
	open := r.open
	msgs, refs := tx.Bucket(bucketMessages), tx.Bucket(bucketRefs)
	if v := tx.Bucket(bucketMeta).Get(keyNextMsgID); v != nil {
		if body, err := open(keyNextMsgID, v); err != nil || len(body) != 8 {
			add(fmt.Errorf("meta next_msg_id: bad record (%v)", err))
		}
	}
	// sizes of the messages whose record is sound, for the queue checks
	sound := make(map[uint64]bool)
	_ = msgs.ForEach(func(k, v []byte) error {
		body, err := open(k, v)
		if err == nil {
			_, err = decodeMessage(body)
		}
		if err != nil || len(k) != 8 {
			add(fmt.Errorf("message %x: %w", k, cmp.Or(err, errors.New("bad key"))))
			return nil
		}
		sound[binary.BigEndian.Uint64(k)] = true
		return nil
	})
	counted := make(map[uint64]uint64)
	sessions := tx.Bucket(bucketSessions)
	_ = sessions.ForEach(func(k, v []byte) error {
		sb := sessions.Bucket(k)
		if sb == nil {
			add(fmt.Errorf("session %s is not a bucket", keyString(k)))
			return nil
		}
		name, err := r.name(k, func() (string, error) {
			v, err := open(keyName, sb.Get(keyName))
			if err == nil && v == nil {
				err = errors.New("hashed key without its name record")
			}
			return string(v), err
		})
		where := "session " + quote(name)
		if err != nil {
			where = "session " + keyString(k)
			add(fmt.Errorf("%s: name: %w", where, err))
		}
		sum.Sessions++
		info, err := open(keyInfo, sb.Get(keyInfo))
		if err == nil {
			var in sessionInfo
			in, err = decodeSession(info)
			if err == nil && len(in.subs) > 0 && !r.v1 {
				// Format 2 keeps them in the subs bucket; format 1 in
				// the info record (Open moves them).
				err = errors.New("subscriptions in the info record")
			}
			if err == nil && (in.version != 0 || in.expiry != 0) && r.v2 {
				err = errors.New("format 3 fields in an older format")
			}
		}
		if err != nil {
			add(fmt.Errorf("%s: info: %w", where, err))
		}
		if v := sb.Get(keyWill); v != nil {
			body, err := open(keyWill, v)
			if err == nil {
				_, err = decodeWill(body)
			}
			if err == nil && r.v2 {
				err = errors.New("a will in an older format")
			}
			if err != nil {
				add(fmt.Errorf("%s: will: %w", where, err))
			}
		}
		owner, err := open(keyOwner, sb.Get(keyOwner))
		if err == nil {
			_, err = decodeOwner(owner)
		}
		if err != nil {
			add(fmt.Errorf("%s: owner: %w", where, err))
		}
		qb, ib := sb.Bucket(keyQueue), sb.Bucket(keyInbound)
		if qb == nil || ib == nil {
			add(fmt.Errorf("%s: queue or inbound bucket missing", where))
			return nil
		}
		if b := sb.Bucket(keySubs); b != nil {
			_ = b.ForEach(func(sk, sv []byte) error {
				body, err := open(sk, sv)
				if err == nil {
					_, err = decodeSub(sk, body)
				}
				if err != nil {
					add(fmt.Errorf("%s: subscription %x: %w", where, sk, err))
				}
				sum.Subscriptions++
				return nil
			})
		}
		var n, size int64
		_ = qb.ForEach(func(mk, mv []byte) error {
			if len(mk) != 8 {
				add(fmt.Errorf("%s: bad queue key %x", where, mk))
				return nil
			}
			id := binary.BigEndian.Uint64(mk)
			body, err := open(mk, mv)
			if err == nil {
				err = decodeRef(body, &Queued{})
			}
			if err != nil {
				add(fmt.Errorf("%s: queued message %d: %w", where, id, err))
			}
			n++
			if v := msgs.Get(mk); r.v1 {
				size += messageSize(v)
			} else {
				size += messageSize(strip(v))
			}
			counted[id]++
			if msgs.Get(mk) == nil {
				add(fmt.Errorf("%s: queued message %d missing", where, id))
			} else if !sound[id] {
				add(fmt.Errorf("%s: queued message %d is damaged", where, id))
			}
			return nil
		})
		// A file of format 1 has no stats yet; Open adds them. In format
		// 2 a session gets them with its first Enqueue.
		if v := sb.Get(keyStats); v != nil {
			body, err := open(keyStats, v)
			var st qstats
			if err == nil {
				st, err = decodeQStats(body)
			}
			if err != nil {
				add(fmt.Errorf("%s: queue stats: %w", where, err))
			} else if st.count != n || st.bytes != size {
				add(fmt.Errorf("%s: queue stats say %d messages, %d bytes; the queue holds %d, %d bytes", where, st.count, st.bytes, n, size))
			}
		} else if n > 0 && !r.v1 {
			add(fmt.Errorf("%s: no queue stats; the queue holds %d messages", where, n))
		}
		sum.QueuedMessages += n
		sum.QueuedBytes += size
		_ = ib.ForEach(func(pk, pv []byte) error {
			if _, err := open(pk, pv); err != nil || len(pk) != 2 {
				add(fmt.Errorf("%s: inbound packet id %x: %w", where, pk, cmp.Or(err, errors.New("bad key"))))
			}
			return nil
		})
		return nil
	})
	_ = msgs.ForEach(func(k, v []byte) error {
		if len(k) == 8 && counted[binary.BigEndian.Uint64(k)] == 0 {
			add(fmt.Errorf("message %d is referenced by no session (orphan)", binary.BigEndian.Uint64(k)))
		}
		return nil
	})
	_ = refs.ForEach(func(k, v []byte) error {
		body, err := open(k, v)
		if err != nil || len(k) != 8 || len(body) != 8 {
			add(fmt.Errorf("refcount record %x: %w", k, cmp.Or(err, errors.New("bad record"))))
			if len(k) == 8 {
				delete(counted, binary.BigEndian.Uint64(k))
			}
			return nil
		}
		id := binary.BigEndian.Uint64(k)
		if n := binary.BigEndian.Uint64(body); n != counted[id] {
			add(fmt.Errorf("message %d: refcount %d, queued %d times", id, n, counted[id]))
		}
		delete(counted, id)
		return nil
	})
	for id, n := range counted {
		add(fmt.Errorf("message %d: no refcount, queued %d times", id, n))
	}
	_ = tx.Bucket(bucketRetained).ForEach(func(k, v []byte) error {
		if _, err := r.decodeRetained(k, v); err != nil {
			add(fmt.Errorf("retained %s: %w", keyString(k), err))
		}
		sum.Retained++
		return nil
	})
	queues := tx.Bucket(bucketQueues)
	_ = queues.ForEach(func(k, v []byte) error {
		qb := queues.Bucket(k)
		if qb == nil || qb.Bucket(keyEntries) == nil {
			add(fmt.Errorf("queue %s: not a bucket", keyString(k)))
			return nil
		}
		name, err := r.name(k, func() (string, error) {
			v, err := open(keyName, qb.Get(keyName))
			if err == nil && v == nil {
				err = errors.New("hashed key without its name record")
			}
			return string(v), err
		})
		where := "queue " + quote(name)
		if err != nil {
			where = "queue " + keyString(k)
			add(fmt.Errorf("%s: name: %w", where, err))
		}
		var st qstats
		body, err := open(keyStats, qb.Get(keyStats))
		if err == nil {
			st, err = decodeQStats(body)
		}
		if err != nil {
			add(fmt.Errorf("%s: stats: %w", where, err))
		}
		var n, size int64
		_ = qb.Bucket(keyEntries).ForEach(func(ek, ev []byte) error {
			body, err := open(ek, ev)
			if err == nil {
				_, err = decodeMessage(body)
			}
			if err != nil || len(ek) != 8 {
				add(fmt.Errorf("%s: entry %x: %w", where, ek, cmp.Or(err, errors.New("bad key"))))
			} else if binary.BigEndian.Uint64(ek) > qb.Sequence() {
				add(fmt.Errorf("%s: entry %d above the sequence %d", where, binary.BigEndian.Uint64(ek), qb.Sequence()))
			}
			n++
			size += messageSize(body)
			return nil
		})
		if n != st.count || size != st.bytes {
			add(fmt.Errorf("%s: stats say %d entries of %d bytes, found %d of %d", where, st.count, st.bytes, n, size))
		}
		sum.Queues = append(sum.Queues, QueueSummary{Name: name, Messages: n, Bytes: size})
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
