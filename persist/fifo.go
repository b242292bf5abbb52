package persist

import (
	"fmt"
	"time"
)

// Overflow policies of a bridge queue (QueueLimits.Overflow).
const (
	DropOldest = "drop-oldest" // delete head entries to make room (default)
	DropNewest = "drop-newest" // refuse the new entry
)

// fifoStore is what a Queue handle needs of its store: *DB and *Memory.
type fifoStore interface {
	Commit(ops []Op, done func(error))
	ReadQueue(name string, afterSeq uint64, max int) ([]Entry, error)
	QueueStats(name string) QueueStats
	setQueueLimits(name string, l QueueLimits)
	committer() *committer
}

// Queue is the handle of one bridge queue of a store: its name, its limits,
// the op that appends to it and the calls that read, delete, count and
// expire its entries. It is the one owner of a bridge's queue: cmd/edged
// opens it once (DB.Queue) and hands it to the broker, whose routing adds
// Append ops to the commit that stores a message, and to the bridge, which
// reads and deletes what it forwarded. Its methods are safe for concurrent
// use.
type Queue struct {
	s      fifoStore
	name   string
	limits QueueLimits
}

// Queue returns the handle of the bridge queue name and sets its limits,
// applied by every later append, read and Expire. Limits are
// configuration: they are not stored, so open every queue with its limits
// before committing to it. Opening a name twice replaces its limits.
func (db *DB) Queue(name string, l QueueLimits) *Queue { return openQueue(db, name, l) }

// Queue returns the handle of the FIFO name as DB.Queue.
func (m *Memory) Queue(name string, l QueueLimits) *Queue { return openQueue(m, name, l) }

func openQueue(s fifoStore, name string, l QueueLimits) *Queue {
	s.setQueueLimits(name, l)
	return &Queue{s: s, name: name, limits: l}
}

func (db *DB) committer() *committer    { return &db.c }
func (m *Memory) committer() *committer { return &m.c }

// Name returns the queue's name in the store.
func (q *Queue) Name() string { return q.name }

// Limits returns the limits the queue was opened with.
func (q *Queue) Limits() QueueLimits { return q.limits }

// Append returns the op that appends m to the queue; the limits are applied
// in the transaction that commits it.
func (q *Queue) Append(m Message) Op { return QueueAppend{Queue: q.name, Msg: m} }

// Add appends msgs to the queue in one commit of its own; done (which may
// be nil) is called as for Delete. Messages routed by the broker are
// appended with Append ops in the broker's commit instead.
func (q *Queue) Add(msgs []Message, done func(error)) {
	ops := make([]Op, len(msgs))
	for i, m := range msgs {
		ops[i] = q.Append(m)
	}
	q.s.Commit(ops, done)
}

// Read returns up to max entries with Seq > afterSeq, ascending, from the
// durable state (see DB.ReadQueue). Fewer than max means the end of the
// queue was reached.
func (q *Queue) Read(afterSeq uint64, max int) ([]Entry, error) {
	return q.s.ReadQueue(q.name, afterSeq, max)
}

// Delete removes the entries seqs in one commit; done (which may be nil) is
// called, from the store's goroutine and without blocking, once the
// deletion is durable or failed.
func (q *Queue) Delete(seqs []uint64, done func(error)) {
	ops := make([]Op, len(seqs))
	for i, s := range seqs {
		ops[i] = QueueDelete{Queue: q.name, Seq: s}
	}
	q.s.Commit(ops, done)
}

// Stats describes the queue's durable state.
func (q *Queue) Stats() QueueStats { return q.s.QueueStats(q.name) }

// Expire deletes this queue's entries older than its MaxAge at now, and
// returns how many. It is applied in commit order and waits for
// durability, so it must not be called from a done callback. Without a
// MaxAge it does nothing.
func (q *Queue) Expire(now time.Time) (int64, error) {
	if q.limits.MaxAge <= 0 {
		return 0, nil
	}
	n, err := expire(q.s.committer(), q.name, now)
	if err != nil {
		return 0, fmt.Errorf("expiring queue %q: %w", q.name, err)
	}
	return n, nil
}
