package bridge

import (
	"context"
	"time"
)

// Status is a snapshot of a bridge for an operator's tools.
type Status struct {
	Name     string
	Address  string
	ClientID string
	// Connected reports whether the upstream connection is up, since
	// Since; when it is down, Since is when it went down (zero if it was
	// never up).
	Connected bool
	Since     time.Time
	// Queue is the durable queue of out messages: its backlog, the age of
	// its head, and the messages its limits dropped (Dropped counts all,
	// Expired those over max_age).
	Queue QueueStats
	// Sent counts the messages acknowledged upstream since New.
	Sent uint64
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
	return Status{
		Name:      br.cfg.Name,
		Address:   br.cfg.Address,
		ClientID:  br.cfg.ClientID,
		Connected: br.connected.Load(),
		Since:     unixNano(br.since.Load()),
		Queue:     br.queue.Stats(),
		Sent:      br.sent.Load(),
		Purged:    br.purged.Load(),
		Protocol:  br.Protocol(),
		Drops:     br.Drops(),
	}
}

func unixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// purgeBatch is how many entries one commit of Purge deletes.
const purgeBatch = 1024

// Purge deletes every message in the queue, durably, and returns how many
// it deleted. Messages in flight upstream may still be delivered; their
// acknowledgement deletes nothing more. Messages queued while Purge runs
// may be deleted too.
func (br *Bridge) Purge(ctx context.Context) (int64, error) {
	var after uint64
	var n int64
	for {
		es, err := br.queue.Read(after, purgeBatch)
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
		br.queue.Delete(seqs, func(err error) { done <- err })
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
	br.log.Info("queue purged", "messages", n)
	return n, nil
}
