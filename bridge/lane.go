package bridge

import (
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"

	"github.com/edged/edged/persist"
)

// lane is one of a bridge's queues as the forwarder sees it: the normal
// one, or the one of priority: high rules, which is sent first.
type lane struct {
	name string // for logs
	q    fifo
	add  func(msgs []persist.Message, done func(error)) // persist.Queue.Add
	log  *slog.Logger
	wake chan struct{} // 1-buffered; the tap appended to q

	mu       sync.Mutex
	deleting map[uint64]struct{} // seqs whose deletion is not durable yet
}

func newLane(name string, q *persist.Queue, log *slog.Logger) *lane {
	return &lane{name: name, q: q, add: q.Add, log: log, wake: make(chan struct{}, 1), deleting: make(map[uint64]struct{})}
}

// notify is the tap's callback: it runs on the store's goroutine.
func (l *lane) notify() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// read reads up to n entries after seq, leaving out those whose deletion
// is not durable yet. last is the Seq of the last entry read (after, if
// none) and end reports that the end of the queue was reached.
func (l *lane) read(after uint64, n int) (es []persist.Entry, last uint64, end bool, err error) {
	// Snapshot before reading: a seq that leaves deleting before this point
	// is durably deleted, so Read cannot return it.
	l.mu.Lock()
	var skip map[uint64]struct{}
	if len(l.deleting) > 0 {
		skip = maps.Clone(l.deleting)
	}
	l.mu.Unlock()
	es, err = l.q.Read(after, n)
	if err != nil {
		return nil, after, false, fmt.Errorf("reading %s queue: %w", l.name, err)
	}
	last, end = after, len(es) < n
	if len(es) > 0 {
		last = es[len(es)-1].Seq
	}
	if len(skip) > 0 {
		es = slices.DeleteFunc(es, func(e persist.Entry) bool { _, ok := skip[e.Seq]; return ok })
	}
	return es, last, end, nil
}

// remove deletes entries acknowledged upstream from the queue.
func (l *lane) remove(seqs []uint64) {
	l.mu.Lock()
	for _, s := range seqs {
		l.deleting[s] = struct{}{}
	}
	l.mu.Unlock()
	l.q.Delete(seqs, func(err error) {
		l.mu.Lock()
		for _, s := range seqs {
			delete(l.deleting, s)
		}
		l.mu.Unlock()
		if err != nil {
			l.log.Error("deleting forwarded messages from the queue; they will be sent again", "queue", l.name, "count", len(seqs), "error", err)
		}
	})
}
