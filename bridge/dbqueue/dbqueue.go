// Package dbqueue adapts a durable FIFO of a persist.DB to bridge.Queue.
//
// It exists so that package bridge need not import persist (packages depend on what they declare):
// cmd/edged wires a bridge to its queue through it, and the bridge's tests
// use the same adapter rather than a copy.
package dbqueue

import (
	"time"

	"github.com/edged/edged/bridge"
	"github.com/edged/edged/persist"
)

// Queue is the persist FIFO named Name, seen as a bridge.Queue.
type Queue struct {
	db   *persist.DB
	name string
}

var _ bridge.Queue = (*Queue)(nil)

// New returns the queue of the bridge named bridgeName in db.
func New(db *persist.DB, bridgeName string) *Queue {
	return &Queue{db: db, name: bridge.QueueName(bridgeName)}
}

// SetLimits implements bridge.Queue.
func (q *Queue) SetLimits(l bridge.QueueLimits) {
	q.db.SetQueueLimits(q.name, persist.QueueLimits{
		MaxMessages: l.MaxMessages,
		MaxBytes:    l.MaxBytes,
		MaxAge:      l.MaxAge,
		DropNewest:  l.Overflow == bridge.DropNewest,
	})
}

// Read implements bridge.Queue.
func (q *Queue) Read(after uint64, max int) ([]bridge.Entry, error) {
	es, err := q.db.ReadQueue(q.name, after, max)
	if err != nil {
		return nil, err
	}
	out := make([]bridge.Entry, len(es))
	for i, e := range es {
		out[i] = bridge.Entry{
			Seq:     e.Seq,
			Topic:   e.Msg.Topic,
			Payload: e.Msg.Payload,
			QoS:     e.Msg.QoS,
			Retain:  e.Msg.Retain,
			Time:    time.Unix(0, e.Msg.Time),

			Properties: e.Msg.Properties,
		}
		if e.Msg.Expiry != 0 {
			out[i].Expiry = time.Unix(0, e.Msg.Expiry)
		}
	}
	return out, nil
}

// Delete implements bridge.Queue: one commit removes seqs.
func (q *Queue) Delete(seqs []uint64, done func(error)) {
	ops := make([]persist.Op, len(seqs))
	for i, s := range seqs {
		ops[i] = persist.QueueDelete{Queue: q.name, Seq: s}
	}
	q.db.Commit(ops, done)
}

// Stats implements bridge.Queue.
func (q *Queue) Stats() bridge.QueueStats {
	s := q.db.QueueStats(q.name)
	return bridge.QueueStats{Len: s.Len, Bytes: s.Bytes, Oldest: s.Oldest, Dropped: s.Dropped, Expired: s.Expired}
}

// Expire implements bridge.Queue. It expires every queue of the store.
func (q *Queue) Expire(now time.Time) error {
	_, err := q.db.ExpireQueues(now)
	return err
}
