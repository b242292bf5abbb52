package persist

import (
	"fmt"
	"log/slog"
	"time"
)

// Store is the interface implemented by both *DB (bbolt on disk) and
// *Memory. Consumers declare the subset they need.
type Store interface {
	// Load returns the durable state. It is called once at start-up,
	// before any Commit.
	Load() (*Snapshot, error)
	// Commit queues ops for the writer goroutine and returns at once. See
	// DB.Commit for the contract of done.
	Commit(ops []Op, done func(error))
	// Close applies everything committed so far, calls the pending done
	// callbacks and releases the store. It is idempotent.
	Close() error
}

var (
	_ Store = (*DB)(nil)
	_ Store = (*Memory)(nil)
)

// SyncMode says when a commit is durable (persistence.sync).
type SyncMode int

const (
	// SyncBatch groups the ops of many Commit calls into one transaction
	// and one fsync. It is the default and keeps edged's durability promise.
	SyncBatch SyncMode = iota
	// SyncAlways commits each Commit call in its own transaction with its
	// own fsync.
	SyncAlways
	// SyncOff never fsyncs: done callbacks run once the transaction is in
	// the OS page cache. A crash of the process loses nothing; a power loss
	// can lose recent commits and can damage the file (bbolt NoSync), which
	// Open then refuses with ErrCorrupt.
	SyncOff
)

// ParseSyncMode parses the persistence.sync value "batch", "always" or
// "off". The empty string is SyncBatch.
func ParseSyncMode(s string) (SyncMode, error) {
	switch s {
	case "batch", "":
		return SyncBatch, nil
	case "always":
		return SyncAlways, nil
	case "off":
		return SyncOff, nil
	}
	return 0, fmt.Errorf("parsing sync mode %q: want batch, always or off", s)
}

// String returns the configuration spelling of m.
func (m SyncMode) String() string {
	switch m {
	case SyncBatch:
		return "batch"
	case SyncAlways:
		return "always"
	case SyncOff:
		return "off"
	}
	return fmt.Sprintf("SyncMode(%d)", int(m))
}

// Defaults for Options fields left zero.
const (
	DefaultMaxSize   int64 = 1 << 30 // 1 GiB
	DefaultBatchSize       = 256
	DefaultTimeout         = time.Second
)

// Options configures Open. The zero value of each field selects its
// default.
type Options struct {
	// Path is the bbolt file, usually data_dir/edged.db. It is created if
	// missing.
	Path string
	// Sync is the durability mode (persistence.sync).
	Sync SyncMode
	// MaxSize is the file size budget in bytes (persistence.max_db_size);
	// 0 means DefaultMaxSize. A commit that would grow the file past it
	// fails with ErrFull instead of growing the file or the memory map,
	// which matters on 32-bit targets with little address space. On 32-bit
	// targets Open uses at most 512 MiB.
	MaxSize int64
	// BatchSize is the largest number of Commit calls grouped into one
	// transaction in SyncBatch mode; 0 means DefaultBatchSize.
	BatchSize int
	// Logger receives warnings and errors; nil discards them.
	Logger *slog.Logger
	// Timeout bounds the wait for the file lock; 0 means DefaultTimeout.
	// When it expires Open fails with ErrLocked.
	Timeout time.Duration
}

func (o *Options) setDefaults() {
	if o.MaxSize <= 0 {
		o.MaxSize = DefaultMaxSize
	}
	if o.BatchSize <= 0 {
		o.BatchSize = DefaultBatchSize
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// QueueLimits bounds a bridge queue (Queue). A zero field means no
// limit of that kind. It is the `queue:` section of a bridge in the
// configuration file.
type QueueLimits struct {
	// MaxMessages is the largest number of entries kept.
	MaxMessages int64 `yaml:"max_messages"`
	// MaxBytes is the largest sum of Message.Size over the entries.
	MaxBytes int64 `yaml:"max_bytes" config:"size"`
	// MaxAge is how long an entry is kept after Message.Time.
	MaxAge time.Duration `yaml:"max_age"`
	// Overflow is the policy when an append would exceed a limit:
	// DropOldest ("" too) deletes head entries to make room, DropNewest
	// drops the new entry.
	Overflow string `yaml:"overflow"`
}

// Entry is one element of a bridge queue (Queue).
type Entry struct {
	// Seq is the entry's position. Seqs increase monotonically per queue
	// and are never reused, not even after deletes or a restart.
	Seq uint64
	// Msg is the stored message.
	Msg Message
}

// QueueStats describes a bridge queue (Queue).
type QueueStats struct {
	// Len is the number of entries.
	Len int64
	// Bytes is the sum of Message.Size over the entries.
	Bytes int64
	// Oldest is the Message.Time of the head entry; zero when empty.
	Oldest time.Time
	// Dropped counts entries dropped by a limit, including those counted
	// in Expired. It is persisted.
	Dropped uint64
	// Expired counts the entries dropped because they outlived MaxAge.
	Expired uint64
}

// Stats are a store's counters since Open.
type Stats struct {
	// Commits is the number of write transactions committed.
	Commits uint64
	// Fsyncs is the number of committed transactions that were made
	// durable with fsync (bbolt issues two fdatasync calls for each).
	Fsyncs uint64
	// Ops is the number of ops applied.
	Ops uint64
	// CommitErrors is the number of failed transactions.
	CommitErrors uint64
	// Pending is the number of Commit calls queued and not yet done.
	Pending int64
	// FileSize is the size of the store file in bytes.
	FileSize int64
	// Written is the number of bytes of pages the commits wrote (bbolt's
	// dirty pages plus one meta page per commit), a measure of flash
	// wear. Memory reports 0.
	Written int64
	// BatchLatency is how long the most recent transaction took, from its
	// start to durability.
	BatchLatency time.Duration
	// Damaged is the number of damaged records (checksum mismatch) the
	// store found and set aside since it was opened; see DB.Load.
	Damaged uint64
}
