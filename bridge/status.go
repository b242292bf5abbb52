package bridge

import (
	"context"
	"time"

	"github.com/edged/edged/persist"
)

// Status is a snapshot of a bridge for an operator's tools.
type Status struct {
	Name string
	// Address is the upstream address in use or, while the bridge is
	// down, the first configured; Addresses are all of them.
	Address   string
	Addresses []string
	ClientID  string
	// Connected reports whether the upstream connection is up, since
	// Since; when it is down, Since is when it went down (zero if it was
	// never up).
	Connected bool
	Since     time.Time
	// Queue is the durable queues of out messages (normal and high added
	// up): their backlog, the age of the oldest head, and the messages
	// their limits dropped (Dropped counts all, Expired those over
	// max_age). QueuedHigh is the backlog of the high queue alone.
	Queue      persist.QueueStats
	QueuedHigh int64
	// OfflineDropped counts the QoS 0 messages offline_qos0 drop or a
	// bound of latest threw away, OfflineReplaced those latest replaced by
	// a newer one of their topic.
	OfflineDropped, OfflineReplaced uint64
	// Sent counts the messages acknowledged upstream since New, SentBytes
	// their topic and payload bytes, SentBytesHour those of the last hour
	// (of the time since New, in the first hour).
	Sent, SentBytes, SentBytesHour uint64
	// Purged counts the messages an operator deleted with Purge since New.
	Purged uint64
	// Protocol is the MQTT version of the last connection (Protocol5 or
	// Protocol311; "" before the first).
	Protocol string
	// Drops counts the messages dropped instead of sent since New
	// (expired, too large for the upstream, refused by it).
	Drops Drops
}

// Status returns a snapshot of the bridge.
func (br *Bridge) Status() Status {
	st := Status{
		Name:            br.cfg.Name,
		Address:         br.Address(),
		Addresses:       br.cfg.Addresses,
		ClientID:        br.cfg.ClientID,
		Connected:       br.connected.Load(),
		Since:           unixNano(br.since.Load()),
		Queue:           br.Stats(),
		OfflineDropped:  br.latest.dropped.Load(),
		OfflineReplaced: br.latest.replaced.Load(),
		Sent:            br.sent.Load(),
		SentBytes:       br.sentBytes.Load(),
		SentBytesHour:   br.hourly.last(time.Now(), br.sentBytes.Load()),
		Purged:          br.purged.Load(),
		Protocol:        br.Protocol(),
		Drops:           br.Drops(),
	}
	if st.Address == "" {
		st.Address = br.cfg.Addresses[0]
	}
	if br.high != nil {
		st.QueuedHigh = br.high.q.Stats().Len
	}
	return st
}

func unixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// purgeBatch is how many entries one commit of Purge deletes.
const purgeBatch = 1024

// Purge deletes every message in the queues (and what offline_qos0 latest
// keeps), durably, and returns how many it deleted. Messages in flight
// upstream may still be delivered; their acknowledgement deletes nothing
// more. Messages queued while Purge runs may be deleted too.
func (br *Bridge) Purge(ctx context.Context) (int64, error) {
	var n int64
	br.latest.purge()
	for _, l := range br.lanes() {
		m, err := br.purge(ctx, l.q)
		n += m
		if err != nil {
			return n, err
		}
	}
	br.log.Info("queue purged", "messages", n)
	return n, nil
}

func (br *Bridge) purge(ctx context.Context, q fifo) (int64, error) {
	var after uint64
	var n int64
	for {
		es, err := q.Read(after, purgeBatch)
		if err != nil {
			return n, err
		}
		if len(es) == 0 {
			break
		}
		seqs := make([]uint64, len(es))
		for i, e := range es {
			seqs[i] = e.Seq
		}
		after = seqs[len(seqs)-1]
		done := make(chan error, 1)
		q.Delete(seqs, func(err error) { done <- err })
		select {
		case err = <-done:
		case <-ctx.Done():
			return n, ctx.Err()
		}
		if err != nil {
			return n, err
		}
		n += int64(len(seqs))
		br.purged.Add(uint64(len(seqs)))
		if len(es) < purgeBatch {
			break
		}
	}
	return n, nil
}
