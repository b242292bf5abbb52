package persist

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// formatVersion is the version of the bucket layout and record encodings
// written by this package. Open refuses files with a larger version.
const formatVersion = 3

// Bucket and key names; see doc.go for the layout.
var (
	bucketMeta     = []byte("meta")
	bucketMessages = []byte("messages")
	bucketRefs     = []byte("refs")
	bucketSessions = []byte("sessions")
	bucketRetained = []byte("retained")
	bucketQueues   = []byte("queues")

	keyFormat    = []byte("format")
	keyNextMsgID = []byte("next_msg_id")
	keyInfo      = []byte("info")
	keyQueue     = []byte("queue")
	keyInbound   = []byte("inbound")
	keyOwner     = []byte("owner")
	keyStats     = []byte("stats")
	keyEntries   = []byte("entries")
	keyName      = []byte("name")
	keyRollback  = []byte("rollback")
	keyWill      = []byte("will")

	topBuckets = [][]byte{bucketMeta, bucketMessages, bucketRefs, bucketSessions, bucketRetained, bucketQueues}
)

// Auto-compaction at Open: a file larger than compactMinSize with more than
// compactFreeRatio of its pages free is compacted.
const (
	compactMinSize   = 16 << 20
	compactFreeRatio = 0.5
)

// DB is a Store in a bbolt file. Commit may be called from any goroutine;
// one writer goroutine owned by the DB applies the ops. The read methods
// (Load, ReadSessionQueue, ReadQueue, QueueStats, Stats) may run
// concurrently with it.
type DB struct {
	opts Options
	bolt *bolt.DB
	log  *slog.Logger
	c    committer

	// nextID is the next message id to persist in the meta bucket; the
	// writer goroutine owns it after Open.
	nextID uint64

	limitsMu sync.RWMutex
	limits   map[string]QueueLimits

	dropWarn    rateLimiter
	invalidWarn rateLimiter
	damageWarn  rateLimiter
	// damaged counts the damaged records found (Stats.Damaged).
	damaged atomic.Uint64
	// asidePending holds the damaged records already handed to the writer
	// to be set aside (aside.go).
	asideMu      sync.Mutex
	asidePending map[string]bool
	// broken holds the error that stopped the store; every later commit
	// fails with it. See commitFailed.
	broken   atomic.Pointer[error]
	pageSize int

	closeOnce sync.Once
	closeErr  error
}

// Open opens or creates the store at opts.Path and starts its writer
// goroutine. A damaged or foreign file fails with an error wrapping
// ErrCorrupt, a file from a newer edged with ErrNewerFormat, and a file
// locked by another process with ErrLocked. Open never starts empty in
// place of an unreadable file.
func Open(opts Options) (*DB, error) {
	opts.setDefaults()
	if opts.Path == "" {
		return nil, errors.New("opening store: no path")
	}
	if requested, clamped := clampMaxSize(opts.MaxSize); clamped != requested {
		opts.MaxSize = clamped
		opts.Logger.Warn("store size limit lowered on this 32-bit system",
			"max_db_size", requested, "effective", clamped)
	}
	made, err := createStore(opts.Path)
	if err != nil {
		return nil, err
	}
	b, created, err := openBolt(opts.Path, boltOptions(&opts, false))
	if err != nil {
		return nil, err
	}
	// bbolt has read the meta pages by now; a damaged one made it fall
	// back a transaction (see doc.go, Damage).
	var rollback string
	if d := inspectMeta(opts.Path); d != nil {
		if d.lost {
			rollback = d.String()
			opts.Logger.Error("store rolled back: "+d.String(), "path", opts.Path, "lost_txid", d.used+1, "txid", d.used)
		} else {
			opts.Logger.Warn("store meta page damaged: "+d.String(), "path", opts.Path, "txid", d.used)
		}
	}
	next, fresh, err := initialize(b, opts.Path, opts.Logger, rollback)
	if err != nil {
		_ = b.Close()
		return nil, err
	}
	if made || created || fresh {
		// The file's directory entry must be durable before the first
		// commit is acknowledged.
		if err := syncFile(filepath.Dir(opts.Path)); err != nil {
			_ = b.Close()
			return nil, fmt.Errorf("opening store %s: syncing its directory: %w", opts.Path, err)
		}
	}
	if shouldCompact(b) {
		size := fileSize(opts.Path)
		_ = b.Close()
		before, after, err := Compact(opts.Path)
		if err != nil {
			return nil, fmt.Errorf("opening store: compacting: %w", err)
		}
		opts.Logger.Info("store compacted", "path", opts.Path, "size_before", before, "size_after", after, "size", size)
		if b, _, err = openBolt(opts.Path, boltOptions(&opts, false)); err != nil {
			return nil, err
		}
	}
	if opts.Sync == SyncOff {
		b.NoSync = true
	}
	db := &DB{
		opts:     opts,
		bolt:     b,
		log:      opts.Logger,
		nextID:   next,
		limits:   make(map[string]QueueLimits),
		pageSize: b.Info().PageSize,
	}
	db.dropWarn.every = 10 * time.Second
	db.invalidWarn.every = 10 * time.Second
	db.damageWarn.every = 10 * time.Second
	batch := opts.BatchSize
	if opts.Sync == SyncAlways {
		batch = 1
	}
	db.c.splitOnFull = true
	db.c.start(batch, opts.Sync != SyncOff, opts.Logger, db.applyBatch)
	return db, nil
}

func boltOptions(opts *Options, readOnly bool) *bolt.Options {
	return &bolt.Options{
		Timeout:        opts.Timeout,
		NoFreelistSync: opts.Sync == SyncOff,
		FreelistType:   bolt.FreelistMapType,
		ReadOnly:       readOnly,
		// bbolt's MaxSize is an int; Open clamps it further on 32-bit
		// targets (clampMaxSize).
		MaxSize: int(min(opts.MaxSize, int64(math.MaxInt))),
		NoSync:  opts.Sync == SyncOff,
	}
}

// is32bit is true on targets with a 32-bit address space.
const is32bit = math.MaxInt == math.MaxInt32

// maxSize32 is the largest MaxSize on 32-bit targets. bbolt maps the file
// in powers of two, so a file just over 512 MiB needs one contiguous 1 GiB
// mapping, which a 32-bit process rarely has.
const maxSize32 = 512 << 20

// clampMaxSize returns the requested MaxSize and the one Open uses.
func clampMaxSize(size int64) (requested, effective int64) {
	return size, clampMaxSizeFor(size, is32bit)
}

func clampMaxSizeFor(size int64, small bool) int64 {
	if small && size > maxSize32 {
		return maxSize32
	}
	return size
}

// createStore creates a new store file at path, if there is none, with its
// buckets, in a temporary file renamed into place, so that a crash never
// leaves an empty or half-created file at path: an existing file that is
// empty is damage (precheck). made reports that it created the file; the
// caller syncs the directory.
func createStore(path string) (made bool, err error) {
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		return false, nil // exists, or cannot tell: openBolt reports it
	}
	tmp := path + ".new"
	_ = os.Remove(tmp)
	b, err := bolt.Open(tmp, 0o600, &bolt.Options{FreelistType: bolt.FreelistMapType})
	if err != nil {
		return false, fmt.Errorf("creating store %s: %w", path, err)
	}
	err = b.Update(func(tx *bolt.Tx) error { return createBuckets(tx) })
	if cerr := b.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return false, fmt.Errorf("creating store %s: %w", path, err)
	}
	return true, nil
}

// createBuckets creates the top-level buckets and the format version of a
// new store.
func createBuckets(tx *bolt.Tx) error {
	for _, name := range topBuckets {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	m := tx.Bucket(bucketMeta)
	if m.Get(keyFormat) == nil {
		return m.Put(keyFormat, u64key(formatVersion))
	}
	return nil
}

// openBolt opens a bbolt file after checking it (checkFile, under the file
// lock, before bbolt reads more than the meta pages), and maps bbolt's
// errors (and panics on damaged pages) to ErrCorrupt and ErrLocked. created
// reports whether it created the file.
func openBolt(path string, bopts *bolt.Options) (b *bolt.DB, created bool, err error) {
	var f *os.File
	bopts.OpenFile = func(name string, flag int, perm os.FileMode) (*os.File, error) {
		var nf *os.File
		var err error
		if flag&os.O_CREATE != 0 {
			nf, err = os.OpenFile(name, flag|os.O_EXCL, perm)
			if err == nil {
				created = true
			} else if errors.Is(err, os.ErrExist) {
				nf, err = os.OpenFile(name, flag&^os.O_CREATE, perm)
			}
		} else {
			nf, err = os.OpenFile(name, flag, perm)
		}
		if err != nil {
			return nil, err
		}
		if err := lockFile(nf, flag&(os.O_WRONLY|os.O_RDWR) != 0, bopts.Timeout); err != nil {
			_ = nf.Close()
			return nil, err
		}
		// A file created just now is empty; any other is checked.
		if !created {
			if err := checkFile(nf, path); err != nil {
				_ = nf.Close()
				return nil, err
			}
		}
		f = nf
		return nf, nil
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if f != nil {
				_ = f.Close() // releases the lock; the mapping leaks
			}
			b, err = nil, corruptErr(path, fmt.Errorf("%v", r))
		}
	}()
	b, err = bolt.Open(path, 0o600, bopts)
	switch {
	case err == nil:
		return b, created, nil
	case errors.Is(err, ErrCorrupt):
		return nil, false, err
	case errors.Is(err, berrors.ErrTimeout):
		return nil, false, fmt.Errorf("opening store %s: %w (timeout %v)", path, ErrLocked, bopts.Timeout)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum),
		errors.Is(err, berrors.ErrVersionMismatch), errors.Is(err, berrors.ErrInvalidMapping):
		return nil, false, corruptErr(path, err)
	}
	return nil, false, fmt.Errorf("opening store %s: %w", path, err)
}

// corruptErr wraps ErrCorrupt and cause with advice for the operator.
func corruptErr(path string, cause error) error {
	return &corruptError{path: path, cause: cause}
}

// corruptError is a damaged store found while opening it. Its message
// advises running `edged db check`; CheckReport, which is that command,
// reports the cause without the advice.
type corruptError struct {
	path  string
	cause error
}

func (e *corruptError) Error() string {
	return fmt.Sprintf("opening store %s: %v: %v; run `edged db check` for details, "+
		"then restore a backup or move the file aside to start with an empty store", e.path, ErrCorrupt, e.cause)
}

func (e *corruptError) Unwrap() []error { return []error{ErrCorrupt, e.cause} }

// initialize creates the buckets of a new file, checks the format version
// of an existing one and returns the next message id. fresh reports that it
// initialised a new file.
//
// rollback, if not empty, describes a silent rollback Open found; it is
// kept in the meta bucket (keyRollback) for Check, as the first commit
// rewrites the damaged meta page.
func initialize(b *bolt.DB, path string, log *slog.Logger, rollback string) (next uint64, fresh bool, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = corruptErr(path, fmt.Errorf("%v", r))
		}
	}()
	// A read first: a read-only check does not write to a foreign file.
	err = b.View(func(tx *bolt.Tx) error {
		empty := true
		_ = tx.ForEach(func([]byte, *bolt.Bucket) error { empty = false; return nil })
		if !empty {
			return checkFormat(tx, path)
		}
		// bbolt creates a file with 4 pages: 2 meta, freelist, empty root.
		// Any later commit grows it, so a larger file whose root reads as
		// empty lost its root page; creating buckets would replace the data.
		if tx.Size() != 4*int64(b.Info().PageSize) {
			return corruptErr(path, errors.New("no buckets in a used file: root page damaged"))
		}
		fresh = true
		return nil
	})
	if err != nil {
		return 0, false, err
	}
	if b.IsReadOnly() {
		return 0, false, b.View(func(tx *bolt.Tx) error { next = loadNextID(tx); return nil })
	}
	var from uint64
	err = b.Update(func(tx *bolt.Tx) error {
		if err := createBuckets(tx); err != nil {
			return err
		}
		if from = formatOf(tx); from < formatVersion {
			if err := migrate(tx, from); err != nil {
				return fmt.Errorf("migrating from format %d: %w", from, err)
			}
		}
		if rollback != "" {
			v := binary.AppendVarint(nil, time.Now().Unix())
			if err := putRec(tx.Bucket(bucketMeta), keyRollback, append(v, rollback...)); err != nil {
				return err
			}
		}
		next = loadNextID(tx)
		return nil
	})
	if errors.Is(err, ErrCorrupt) {
		return 0, false, corruptErr(path, err)
	}
	if err != nil {
		return 0, false, fmt.Errorf("opening store %s: initializing: %w", path, err)
	}
	if from < formatVersion && !fresh {
		log.Info("store migrated", "path", path, "from_format", from, "to_format", formatVersion)
	}
	return next, fresh, nil
}

func checkFormat(tx *bolt.Tx, path string) error {
	m := tx.Bucket(bucketMeta)
	if m == nil {
		return corruptErr(path, errors.New("no meta bucket: not an edged store"))
	}
	v := m.Get(keyFormat)
	if len(v) != 8 {
		return corruptErr(path, errors.New("no format version: not an edged store"))
	}
	if ver := binary.BigEndian.Uint64(v); ver > formatVersion {
		return fmt.Errorf("opening store %s: %w: version %d, this edged reads up to %d; upgrade edged",
			path, ErrNewerFormat, ver, formatVersion)
	}
	for _, name := range topBuckets {
		if tx.Bucket(name) == nil {
			return corruptErr(path, fmt.Errorf("bucket %q missing", name))
		}
	}
	return nil
}

// formatOf returns the format version of a store with a meta bucket.
func formatOf(tx *bolt.Tx) uint64 {
	if v := tx.Bucket(bucketMeta).Get(keyFormat); len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// loadNextID returns a message id larger than every stored one. A damaged
// next_msg_id record is ignored: the largest message id bounds it, and
// Check reports the record.
func loadNextID(tx *bolt.Tx) uint64 {
	next := uint64(1)
	if m := tx.Bucket(bucketMeta); m != nil {
		if v, err := getRec(m, keyNextMsgID); err == nil && len(v) == 8 {
			next = max(next, binary.BigEndian.Uint64(v))
		}
	}
	if b := tx.Bucket(bucketMessages); b != nil {
		if k, _ := b.Cursor().Last(); len(k) == 8 {
			next = max(next, binary.BigEndian.Uint64(k)+1)
		}
	}
	return next
}

func shouldCompact(b *bolt.DB) bool {
	size := fileSize(b.Path())
	if size <= compactMinSize {
		return false
	}
	st := b.Stats()
	free := int64(st.FreePageN+st.PendingPageN) * int64(b.Info().PageSize)
	return float64(free) > compactFreeRatio*float64(size)
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// Commit queues ops to be applied, in one transaction, after the ops of
// every earlier Commit call. It never blocks on I/O and never calls done
// itself: done is called exactly once, from the store's writer goroutine,
// in commit order, after the transaction holding ops is durable per the
// sync mode, or with the (wrapped) error if it failed, for example with
// ErrFull. done may be nil; it must not block or call Close.
//
// Commit only appends to a queue, so callers may hold their own locks. The
// ops and the slices they reference must not be modified afterwards. An
// invalid op (see the op types) is skipped and logged; it does not fail the
// others. After Close, done is called with ErrClosed on a new goroutine.
//
// A write failure other than ErrFull (for example EIO from a write or an
// fsync) stops the store: that commit and every later one fail with an
// error wrapping the failure, until the store is opened again.
func (db *DB) Commit(ops []Op, done func(error)) { db.c.commit(ops, done) }

// Close applies everything committed so far, calls the pending dones,
// stops the writer and closes the file. It is idempotent.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		db.c.close()
		if db.opts.Sync == SyncOff {
			if err := db.bolt.Sync(); err != nil {
				db.closeErr = fmt.Errorf("closing store: syncing: %w", err)
			}
		}
		if err := db.bolt.Close(); err != nil && db.closeErr == nil {
			db.closeErr = fmt.Errorf("closing store: %w", err)
		}
	})
	return db.closeErr
}

// Stats returns the store's counters.
func (db *DB) Stats() Stats {
	s := db.c.stats()
	s.FileSize = fileSize(db.opts.Path)
	s.Damaged = db.damaged.Load()
	bs := db.bolt.Stats()
	s.Written = bs.TxStats.GetPageAlloc() + int64(s.Commits)*int64(db.pageSize)
	return s
}

// setQueueLimits sets the limits of the bridge queue name, applied by every
// later QueueAppend, ExpireQueues and ReadQueue. Limits are configuration
// and are not stored.
func (db *DB) setQueueLimits(name string, l QueueLimits) {
	db.limitsMu.Lock()
	db.limits[name] = l
	db.limitsMu.Unlock()
}

func (db *DB) queueLimits(name string) QueueLimits {
	db.limitsMu.RLock()
	defer db.limitsMu.RUnlock()
	return db.limits[name]
}

// ExpireQueues deletes the entries of every bridge queue with a MaxAge
// limit whose Message.Time is before now minus MaxAge, and returns how many
// it deleted: store-wide maintenance. A queue's owner expires only its own
// queue with Queue.Expire. It is applied in commit order and waits for
// durability, so it must not be called from a done callback.
func (db *DB) ExpireQueues(now time.Time) (int64, error) {
	n, err := expire(&db.c, "", now)
	if err != nil {
		return 0, fmt.Errorf("expiring queues: %w", err)
	}
	return n, nil
}

// expire commits an expireOp for the FIFO name ("": every FIFO) and waits.
func expire(c *committer, name string, now time.Time) (int64, error) {
	var n int64
	ch := make(chan error, 1)
	c.commit([]Op{expireOp{queue: name, now: now.UnixNano(), expired: &n}}, func(err error) { ch <- err })
	if err := <-ch; err != nil {
		return 0, err
	}
	return n, nil
}

// applyBatch is the writer goroutine's transaction.
func (db *DB) applyBatch(groups []group) (err error) {
	if cause := db.broken.Load(); cause != nil {
		return fmt.Errorf("committing: the store stopped after an earlier error; restart edged: %w", *cause)
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = db.stop(fmt.Errorf("%w: %v", ErrCorrupt, r))
		}
	}()
	a := applier{db: db, next: db.nextID}
	var txid uint64
	var applyErr error
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		txid = uint64(tx.ID())
		applyErr = a.applyGroups(tx, groups)
		return applyErr
	})
	if err != nil {
		if applyErr == nil {
			return db.commitFailed(err, txid)
		}
		return fmt.Errorf("committing: %w", err) // an op failed: nothing was written
	}
	db.nextID = a.next
	for _, f := range a.after {
		f()
	}
	return nil
}

func (a *applier) applyGroups(tx *bolt.Tx, groups []group) error {
	db := a.db
	if db.overSoftLimit(tx) && growing(groups) {
		return fmt.Errorf("%w: %d of %d bytes in use, only deletes are accepted", ErrFull, db.inUse(tx), db.opts.MaxSize)
	}
	a.begin(tx)
	for i := range groups {
		if groups[i].err != nil {
			continue
		}
		for _, op := range groups[i].ops {
			if err := a.apply(op); err != nil {
				return err
			}
		}
		if err := a.endGroup(); err != nil {
			return err
		}
	}
	return a.end()
}

// commitFailed classifies an error of bbolt's tx.Commit for transaction
// txid. The store keeps running only when the failure left the file as the
// last successful commit wrote it: the size limit, or a full disk while
// writing data pages (the meta page is unchanged). Any other failure, such
// as EIO from a write or fsync, may have left a meta page on disk (or in
// the page cache) that refers to pages bbolt now considers free; committing
// on could reuse them, so the store stops (fsyncgate).
func (db *DB) commitFailed(err error, txid uint64) error {
	switch {
	case errors.Is(err, berrors.ErrMaxSizeReached):
		return fmt.Errorf("committing: %w: %w", ErrFull, err)
	case isMmapError(err):
		// bbolt could not map the file larger: the address space is
		// exhausted (32-bit). It may have unmapped the file already.
		err = fmt.Errorf("%w: %w", ErrFull, err)
		if !db.boltUsable() {
			return db.stop(err)
		}
		return fmt.Errorf("committing: %w", err)
	case isNoSpace(err) && db.metaUnchanged(txid):
		return fmt.Errorf("committing: %w: %w", ErrFull, err)
	}
	return db.stop(err)
}

// stop marks the store broken with cause, the first one, and returns the
// commit's error.
func (db *DB) stop(cause error) error {
	db.broken.CompareAndSwap(nil, &cause)
	db.log.Error("store stopped: no more commits until restart", "err", cause)
	return fmt.Errorf("committing: the store stops, restart edged: %w", cause)
}

func isMmapError(err error) bool {
	s := err.Error()
	return errors.Is(err, syscall.ENOMEM) || strings.Contains(s, "mmap allocate error") ||
		strings.Contains(s, "mmap size calculation error") || strings.Contains(s, "mmap too large")
}

// isNoSpace reports ENOSPC; bbolt formats some errors with %s.
func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || strings.Contains(err.Error(), syscall.ENOSPC.Error())
}

// boltUsable reports whether bbolt still has the file mapped.
func (db *DB) boltUsable() (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	_ = db.bolt.Info() // panics when unmapped
	return true
}

// metaUnchanged reports whether the meta page that transaction txid would
// have written still holds an older transaction, as read through the page
// cache.
func (db *DB) metaUnchanged(txid uint64) bool {
	f, err := os.Open(db.opts.Path)
	if err != nil {
		return false
	}
	defer f.Close()
	m, ok := readMeta(f, int64(txid%2)*int64(db.pageSize))
	return ok && m.txid < txid
}

// reserve is the part of Options.MaxSize kept for transactions that only
// delete: bbolt copies every page it modifies, so even a delete needs free
// pages, and a store filled to the last page could never drain.
func (db *DB) reserve() int64 {
	return min(max(db.opts.MaxSize/16, 32<<10), 64<<20)
}

// inUse is the part of the file that holds live pages.
func (db *DB) inUse(tx *bolt.Tx) int64 {
	st := db.bolt.Stats()
	return tx.Size() - int64(st.FreePageN)*int64(db.bolt.Info().PageSize)
}

func (db *DB) overSoftLimit(tx *bolt.Tx) bool {
	return db.inUse(tx) >= db.opts.MaxSize-db.reserve()
}

// growing reports whether groups hold an op that may add data.
func growing(groups []group) bool {
	for i := range groups {
		for _, op := range groups[i].ops {
			switch o := op.(type) {
			case PutMessage, Enqueue, PutSession, PutSubscription, SetOwner, PutInbound, PutRetained, QueueAppend:
				return true
			case SetWill:
				if o.Will != nil {
					return true
				}
				return true
			}
		}
	}
	return false
}

// applier applies ops inside one write transaction.
type applier struct {
	db                     *DB
	tx                     *bolt.Tx
	meta, msgs, refs, sess *bolt.Bucket
	retained, queues       *bolt.Bucket
	next                   uint64
	nextDirty              bool
	puts                   []uint64
	sessions               map[string]*bolt.Bucket
	sstats                 map[string]*sessQ // see sessionqueue.go
	qs                     map[string]*qtx
	after                  []func()
}

type qtx struct {
	b, entries *bolt.Bucket
	st         qstats
	dirty      bool
}

func (a *applier) begin(tx *bolt.Tx) {
	a.tx = tx
	a.meta = tx.Bucket(bucketMeta)
	a.msgs = tx.Bucket(bucketMessages)
	a.refs = tx.Bucket(bucketRefs)
	a.sess = tx.Bucket(bucketSessions)
	a.retained = tx.Bucket(bucketRetained)
	a.queues = tx.Bucket(bucketQueues)
	a.puts = a.puts[:0]
	clear(a.sessions)
	clear(a.sstats)
	clear(a.qs)
	a.after = a.after[:0]
	a.nextDirty = false
}

func (a *applier) endGroup() error {
	// A PutMessage no Enqueue referenced is a caller error: drop it so it
	// does not leak.
	for _, id := range a.puts {
		if a.refs.Get(u64key(id)) == nil {
			if err := a.msgs.Delete(u64key(id)); err != nil {
				return err
			}
		}
	}
	a.puts = a.puts[:0]
	return nil
}

func (a *applier) end() error {
	if a.nextDirty {
		if err := putRec(a.meta, keyNextMsgID, u64key(a.next)); err != nil {
			return err
		}
	}
	for _, q := range a.qs {
		if q.dirty {
			if err := putRec(q.b, keyStats, q.st.encode()); err != nil {
				return err
			}
		}
	}
	return a.flushSessionStats()
}

// session returns the bucket of a session, creating it if create is set,
// or nil.
func (a *applier) session(id string, create bool) (*bolt.Bucket, error) {
	if b, ok := a.sessions[id]; ok {
		return b, nil
	}
	var b *bolt.Bucket
	var err error
	if !create {
		if _, b, err = findBucket(a.sess, id); b == nil || err != nil {
			return nil, err
		}
	} else {
		var created bool
		if b, created, err = createBucket(a.sess, id); err != nil {
			return nil, err
		}
		if created {
			if _, err := b.CreateBucket(keyQueue); err != nil {
				return nil, err
			}
			if _, err := b.CreateBucket(keyInbound); err != nil {
				return nil, err
			}
			if _, err := b.CreateBucket(keySubs); err != nil {
				return nil, err
			}
			if err := putRec(b, keyInfo, encodeSession(&sessionInfo{})); err != nil {
				return nil, err
			}
		}
	}
	if a.sessions == nil {
		a.sessions = make(map[string]*bolt.Bucket)
	}
	a.sessions[id] = b
	return b, nil
}

func (a *applier) queue(name string) (*qtx, error) {
	if q, ok := a.qs[name]; ok {
		return q, nil
	}
	b, _, err := createBucket(a.queues, name)
	if err != nil {
		return nil, err
	}
	e, err := b.CreateBucketIfNotExists(keyEntries)
	if err != nil {
		return nil, err
	}
	st, err := queueStats(b, e)
	dirty := false
	if err != nil {
		// The stats are derived from the entries: count them again.
		a.db.damage("queue "+quote(name)+" stats", err)
		dirty = true
	}
	q := &qtx{b: b, entries: e, st: st, dirty: dirty}
	if a.qs == nil {
		a.qs = make(map[string]*qtx)
	}
	a.qs[name] = q
	return q, nil
}

func (a *applier) decRef(id uint64) error {
	k := u64key(id)
	v, err := getRec(a.refs, k)
	if err != nil {
		// The count is lost: count the queues holding the message.
		a.db.damage(fmt.Sprintf("refcount of message %d", id), err)
		return a.recount(id)
	}
	if len(v) != 8 {
		return nil
	}
	n := binary.BigEndian.Uint64(v)
	if n <= 1 {
		if err := a.refs.Delete(k); err != nil {
			return err
		}
		return a.msgs.Delete(k)
	}
	return putRec(a.refs, k, u64key(n-1))
}

func (a *applier) skip(op Op, err error) {
	a.db.invalidWarn.do(func(suppressed int) {
		a.db.log.Warn("store op skipped", "err", err, "suppressed", suppressed)
	})
}

func (a *applier) apply(op Op) error {
	if err := validate(op); err != nil {
		a.skip(op, err)
		return nil
	}
	switch o := op.(type) {
	case PutMessage:
		if o.ID >= a.next {
			a.next, a.nextDirty = o.ID+1, true
		}
		a.puts = append(a.puts, o.ID)
		return putRec(a.msgs, u64key(o.ID), encodeMessage(&o.Msg))

	case Enqueue:
		return a.enqueue(o)

	case SetInflight:
		s, err := a.session(o.ClientID, false)
		if s == nil || err != nil {
			return err
		}
		q := s.Bucket(keyQueue)
		k := u64key(o.MsgID)
		v, err := getRec(q, k)
		if v == nil && err == nil {
			return nil
		}
		var ref Queued
		if err == nil {
			err = decodeRef(v, &ref)
		}
		if err != nil {
			a.db.damage(fmt.Sprintf("session %s: queued message %d", quote(o.ClientID), o.MsgID), err)
			return nil
		}
		ref.PacketID, ref.Pubrel = o.PacketID, o.Pubrel
		return putRec(q, k, encodeRef(&ref))

	case Dequeue:
		return a.dequeue(o)

	case PutSession:
		s, err := a.session(o.ClientID, true)
		if err != nil {
			return err
		}
		return putRec(s, keyInfo, encodeSession(&sessionInfo{lastSeen: o.LastSeen, version: o.Version, expiry: o.ExpiryInterval}))

	case PutSubscription:
		return a.putSubscription(o)

	case DeleteSubscription:
		return a.deleteSubscription(o)

	case SetOwner:
		s, err := a.session(o.ClientID, true)
		if err != nil {
			return err
		}
		return putRec(s, keyOwner, encodeOwner(o.Owner))

	case SetWill:
		s, err := a.session(o.ClientID, o.Will != nil)
		if s == nil || err != nil {
			return err
		}
		if o.Will == nil {
			return s.Delete(keyWill)
		}
		return putRec(s, keyWill, encodeWill(o.Will))

	case DeleteSession:
		key, s, err := findBucket(a.sess, o.ClientID)
		if s == nil || err != nil {
			return err
		}
		c := s.Bucket(keyQueue).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if err := a.decRef(binary.BigEndian.Uint64(k)); err != nil {
				return err
			}
		}
		delete(a.sessions, o.ClientID)
		delete(a.sstats, o.ClientID)
		return a.sess.DeleteBucket(key)

	case PutInbound:
		s, err := a.session(o.ClientID, true)
		if err != nil {
			return err
		}
		return putRec(s.Bucket(keyInbound), u16key(o.PacketID), []byte{0})

	case DeleteInbound:
		s, err := a.session(o.ClientID, false)
		if s == nil || err != nil {
			return err
		}
		return s.Bucket(keyInbound).Delete(u16key(o.PacketID))

	case PutRetained:
		k, _, err := nameKey(a.retained, o.Msg.Topic, retainedNameOf(a.retained))
		if err != nil {
			return err
		}
		return putRec(a.retained, k, encodeMessage(&o.Msg))

	case DeleteRetained:
		k, found, err := nameKey(a.retained, o.Topic, retainedNameOf(a.retained))
		if !found || err != nil {
			return err
		}
		return a.retained.Delete(k)

	case QueueAppend:
		return a.queueAppend(o)

	case QueueDelete:
		q, err := a.queue(o.Queue)
		if err != nil {
			return err
		}
		k := u64key(o.Seq)
		v := q.entries.Get(k)
		if v == nil {
			return nil
		}
		size := messageSize(strip(v))
		if err := q.entries.Delete(k); err != nil {
			return err
		}
		q.st.count--
		q.st.bytes -= size
		q.dirty = true
		return nil

	case asideOp:
		return a.applyAside(o)

	case expiredRetainedOp:
		for i, k := range o.keys {
			// Unless a new retained message replaced it since Load.
			if bytes.Equal(a.retained.Get(k), o.raws[i]) {
				if err := a.retained.Delete(k); err != nil {
					return err
				}
			}
		}
		return nil

	case expireOp:
		a.db.limitsMu.RLock()
		names := make([]string, 0, len(a.db.limits))
		for name, l := range a.db.limits {
			if l.MaxAge > 0 && (o.queue == "" || o.queue == name) {
				names = append(names, name)
			}
		}
		a.db.limitsMu.RUnlock()
		for _, name := range names {
			if _, b, err := findBucket(a.queues, name); b == nil || err != nil {
				if err != nil {
					return err
				}
				continue
			}
			q, err := a.queue(name)
			if err != nil {
				return err
			}
			n, err := a.expire(q, expiredBefore(a.db.queueLimits(name), o.now))
			if err != nil {
				return err
			}
			a.after = append(a.after, func() { *o.expired += n }) // only once committed
		}
		return nil
	}
	return nil
}

// expire deletes the head entries of q older than before.
func (a *applier) expire(q *qtx, before int64) (int64, error) {
	if before == 0 {
		return 0, nil
	}
	var n int64
	c := q.entries.Cursor()
	for k, v := c.First(); k != nil; k, v = c.First() {
		t, _ := messageTime(strip(v)) // unverified: a damaged head may go early
		if !isExpired(t, before) {
			break
		}
		if err := a.dropHead(q, c, v); err != nil {
			return n, err
		}
		q.st.expired++
		n++
	}
	return n, nil
}

// dropHead deletes the entry under c (value v) and counts it as dropped.
func (a *applier) dropHead(q *qtx, c *bolt.Cursor, v []byte) error {
	size := messageSize(strip(v))
	if err := c.Delete(); err != nil {
		return err
	}
	q.st.count--
	q.st.bytes -= size
	q.st.dropped++
	q.dirty = true
	return nil
}

func (a *applier) queueAppend(o QueueAppend) error {
	q, err := a.queue(o.Queue)
	if err != nil {
		return err
	}
	l := a.db.queueLimits(o.Queue)
	before := expiredBefore(l, time.Now().UnixNano())
	if _, err := a.expire(q, before); err != nil {
		return err
	}
	size := o.Msg.Size()
	drop := isExpired(o.Msg.Time, before)
	if !drop && !fits(l, q.st, size) {
		if l.Overflow == DropNewest || (l.MaxBytes > 0 && size > l.MaxBytes) {
			drop = true
		} else {
			c := q.entries.Cursor()
			for k, v := c.First(); k != nil && !fits(l, q.st, size); k, v = c.First() {
				if err := a.dropHead(q, c, v); err != nil {
					return err
				}
			}
		}
	}
	if drop {
		q.st.dropped++
		if isExpired(o.Msg.Time, before) {
			q.st.expired++
		}
		q.dirty = true
		a.after = append(a.after, func() {
			a.db.dropWarn.do(func(suppressed int) {
				a.db.log.Warn("queue entry dropped", "queue", o.Queue, "dropped", q.st.dropped, "suppressed", suppressed)
			})
		})
		return nil
	}
	seq, err := q.b.NextSequence()
	if err != nil {
		return err
	}
	if err := putRec(q.entries, u64key(seq), encodeMessage(&o.Msg)); err != nil {
		return err
	}
	q.st.count++
	q.st.bytes += size
	q.dirty = true
	return nil
}

// fits reports whether one more entry of size bytes fits a queue with
// stats st under limits l.
func fits(l QueueLimits, st qstats, size int64) bool {
	if l.MaxMessages > 0 && st.count+1 > l.MaxMessages {
		return false
	}
	if l.MaxBytes > 0 && st.bytes+size > l.MaxBytes {
		return false
	}
	return true
}

// Load returns the durable state: sessions (ascending client id) with
// their subscriptions, owner, will, version and expiry interval, the sent
// entries at the head of their queues (MsgID order) and the count and
// bytes of the rest (Session.Waiting, read with ReadSessionQueue), retained
// messages (ascending topic), and a NextMsgID above every committed id.
// Messages queued to several sessions share one Payload slice.
//
// Expiry: a retained message whose Expiry has passed is left out and
// deleted (committed after the read). Everything else is returned as
// stored, expired or not, for the broker to decide: sessions past their
// expiry interval (it may publish their wills first), queued messages
// past their Expiry (sent ones are completed, waiting ones the broker
// drops with Dequeue as it reads them [MQTT-3.3.2-5]).
//
// A damaged record (checksum mismatch, or a record that does not decode)
// is never returned as if whole: it is logged with its session or topic,
// counted in Stats.Damaged and set aside (aside.go; see doc.go, Damage).
// A queued message, a subscription or a retained message is then skipped;
// a session whose info record is damaged loads with LastSeen 0 and Version
// 0 (the broker stores it again), one whose owner record is damaged
// without an owner, one whose will is damaged without a will.
// Damage to the bucket structure fails Load with ErrCorrupt.
func (db *DB) Load() (snap *Snapshot, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			snap, err = nil, fmt.Errorf("loading store: %w: %v", ErrCorrupt, r)
		}
	}()
	snap = &Snapshot{}
	var aside []asideItem
	var expired expiredRetainedOp
	now := time.Now().UnixNano()
	err = db.bolt.View(func(tx *bolt.Tx) error {
		msgs := tx.Bucket(bucketMessages)
		cache := make(map[uint64]*Message)
		sessions := tx.Bucket(bucketSessions)
		// Sized up front: growing them by append allocates about four
		// times their size (a Message is 88 bytes).
		snap.Sessions = make([]Session, 0, countKeys(sessions))
		sc := sessions.Cursor()
		for k, v := sc.First(); k != nil; k, v = sc.Next() {
			if v != nil {
				return fmt.Errorf("session key %x is not a bucket", k)
			}
			sb := sessions.Bucket(k)
			id, err := bucketName(k, sb)
			if err != nil {
				db.found(&aside, asideItem{what: fmt.Sprintf("session key %x (name unreadable)", k), kind: asideSession,
					key: k, raw: sb.Get(keyName)}, err)
				continue
			}
			s, err := db.loadSession(id, sb, msgs, cache, &aside)
			if err != nil {
				return fmt.Errorf("session %s: %w", quote(id), err)
			}
			snap.Sessions = append(snap.Sessions, s)
		}
		retained := tx.Bucket(bucketRetained)
		snap.Retained = make([]Message, 0, countKeys(retained))
		rc := retained.Cursor()
		for k, v := rc.First(); k != nil; k, v = rc.Next() {
			m, err := current.decodeRetained(k, v)
			if err != nil {
				db.found(&aside, asideItem{what: "retained " + keyString(k), kind: asideRetained, key: k, raw: v}, err)
				continue
			}
			if m.Expired(now) {
				expired.keys = append(expired.keys, bytes.Clone(k))
				expired.raws = append(expired.raws, bytes.Clone(v))
				continue
			}
			snap.Retained = append(snap.Retained, m)
		}
		snap.NextMsgID = loadNextID(tx)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("loading store: %w: %w", ErrCorrupt, err)
	}
	if len(aside) > 0 {
		db.setAside(aside)
	}
	if len(expired.keys) > 0 {
		db.Commit([]Op{expired}, nil)
	}
	// Hashed keys (long names) sort apart from raw ones.
	slices.SortFunc(snap.Sessions, func(a, b Session) int { return strings.Compare(a.ClientID, b.ClientID) })
	slices.SortFunc(snap.Retained, func(a, b Message) int { return strings.Compare(a.Topic, b.Topic) })
	return snap, nil
}

// countKeys returns the number of keys in b (values and buckets).
func countKeys(b *bolt.Bucket) int {
	n := 0
	c := b.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		n++
	}
	return n
}

// reader reads the records of one format version: format 1 had no
// checksums and raw keys only; format 2 had no MQTT 5.0 fields, which
// format 3 added without changing the encoding of a record that has none.
// Check reads them all; everything else reads the current format (Open
// migrates).
type reader struct{ v1, v2 bool }

var current = reader{}

func readerFor(format uint64) reader { return reader{v1: format < 2, v2: format < 3} }

// open verifies and strips a record's checksum.
func (r reader) open(k, v []byte) ([]byte, error) {
	if r.v1 {
		return v, nil
	}
	return unseal(k, v)
}

// name returns the name under key k, as nameOfKey.
func (r reader) name(k []byte, stored func() (string, error)) (string, error) {
	if r.v1 {
		return string(k), nil
	}
	return nameOfKey(k, stored)
}

// decodeRetained decodes the retained record v under key k and checks
// that its topic is the key's name.
func (r reader) decodeRetained(k, v []byte) (Message, error) {
	body, err := r.open(k, v)
	if err != nil {
		return Message{}, err
	}
	m, err := decodeMessage(body)
	if err != nil {
		return Message{}, err
	}
	name, err := r.name(k, func() (string, error) { return m.Topic, nil })
	if err == nil && name != m.Topic {
		err = fmt.Errorf("holds topic %s", quote(m.Topic))
	}
	return m, err
}

// loadMessage reads message k, or returns nil and why it cannot.
func loadMessage(msgs *bolt.Bucket, k []byte) (*Message, error) {
	v := msgs.Get(k)
	if v == nil {
		return nil, errors.New("missing")
	}
	body, err := unseal(k, v)
	if err != nil {
		return nil, err
	}
	m, err := decodeMessage(body)
	if err != nil {
		return nil, err
	}
	return &m, nil
}

// damage reports a damaged record found while reading (what names it with
// its session or queue) and counts it. The first maxDamageLogs are logged
// each, later ones rate-limited.
func (db *DB) damage(what string, err error) {
	if n := db.damaged.Add(1); n <= maxDamageLogs {
		db.log.Error("store record damaged, set aside", "record", what, "err", err)
		return
	}
	db.damageWarn.do(func(suppressed int) {
		db.log.Error("store record damaged, set aside", "record", what, "err", err, "suppressed", suppressed,
			"damaged", db.damaged.Load())
	})
}

const maxDamageLogs = 100

// quote quotes a name for messages, shortened if long.
func quote(name string) string {
	if len(name) > 64 {
		return fmt.Sprintf("%q... (%d bytes)", name[:64], len(name))
	}
	return fmt.Sprintf("%q", name)
}

// keyString formats a key for messages: its name if raw, else hex.
func keyString(k []byte) string {
	if len(k) > 0 && k[0] == longKeyTag {
		return fmt.Sprintf("key %x", k)
	}
	return quote(string(k))
}

// ReadQueue returns up to max entries of the bridge queue name with Seq
// greater than afterSeq, in ascending Seq order, from the durable state.
// Entries past the queue's MaxAge are skipped (ExpireQueues or the next
// QueueAppend deletes them). max ≤ 0 returns none. An unknown queue is
// empty. A damaged entry is set aside as in Load: skipped, logged and
// counted.
func (db *DB) ReadQueue(name string, afterSeq uint64, max int) (entries []Entry, err error) {
	if max <= 0 || afterSeq == math.MaxUint64 {
		return nil, nil
	}
	before := expiredBefore(db.queueLimits(name), time.Now().UnixNano())
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			entries, err = nil, fmt.Errorf("reading queue %q: %w: %v", name, ErrCorrupt, r)
		}
	}()
	var aside []asideItem
	err = db.bolt.View(func(tx *bolt.Tx) error {
		_, qb, err := findBucket(tx.Bucket(bucketQueues), name)
		if qb == nil || err != nil {
			return err
		}
		c := qb.Bucket(keyEntries).Cursor()
		for k, v := c.Seek(u64key(afterSeq + 1)); k != nil && len(entries) < max; k, v = c.Next() {
			body, err := unseal(k, v)
			var m Message
			if err == nil {
				if t, _ := messageTime(body); isExpired(t, before) {
					continue
				}
				m, err = decodeMessage(body)
			}
			if err != nil || len(k) != 8 {
				db.found(&aside, asideItem{what: fmt.Sprintf("queue %s: entry %x", quote(name), k), kind: asideEntry, name: name, key: k, raw: v},
					cmp.Or(err, errors.New("bad key")))
				continue
			}
			entries = append(entries, Entry{Seq: binary.BigEndian.Uint64(k), Msg: m})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading queue %q: %w", name, err)
	}
	if len(aside) > 0 {
		db.setAside(aside)
	}
	return entries, nil
}

// queueStats returns the stats of the queue bucket qb with entries e. If
// the stats record is damaged it returns the count and bytes of the
// entries (dropped and expired are lost) and the error.
func queueStats(qb, e *bolt.Bucket) (qstats, error) {
	v, err := getRec(qb, keyStats)
	var st qstats
	if err == nil {
		if st, err = decodeQStats(v); err == nil {
			return st, nil
		}
	}
	st = qstats{}
	st.count, st.bytes = countEntries(e)
	return st, err
}

// countEntries returns the number and bytes of the entries of a queue.
func countEntries(e *bolt.Bucket) (n, size int64) {
	_ = e.ForEach(func(_, v []byte) error {
		n++
		size += messageSize(strip(v))
		return nil
	})
	return n, size
}

// QueueStats returns the durable state of the FIFO name. An unknown queue
// has zero stats; one with damaged stats has its entries counted (Check
// reports it).
func (db *DB) QueueStats(name string) (qs QueueStats) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			qs = QueueStats{}
		}
	}()
	_ = db.bolt.View(func(tx *bolt.Tx) error {
		_, qb, err := findBucket(tx.Bucket(bucketQueues), name)
		if qb == nil || err != nil {
			return err
		}
		e := qb.Bucket(keyEntries)
		st, _ := queueStats(qb, e)
		qs = QueueStats{Len: st.count, Bytes: st.bytes, Dropped: st.dropped, Expired: st.expired}
		if _, v := e.Cursor().First(); v != nil {
			if t, ok := messageTime(strip(v)); ok && t != 0 {
				qs.Oldest = time.Unix(0, t)
			}
		}
		return nil
	})
	return qs
}
