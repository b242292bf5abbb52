package bridge

import (
	"log/slog"
	"sync"
	"testing"

	"github.com/edged/edged/broker/packet"
	"github.com/edged/edged/persist"
)

// raceQueue simulates the store goroutine: a Delete becomes durable (and its
// done callback runs) concurrently with a Read that already took its bbolt
// snapshot.
type raceQueue struct {
	memQueue
	pmu     sync.Mutex
	pending func() // commit of the last Delete, run during the next Read
}

func (q *raceQueue) Read(after uint64, max int) ([]persist.Entry, error) {
	out, err := q.memQueue.Read(after, max)
	q.pmu.Lock()
	p := q.pending
	q.pending = nil
	q.pmu.Unlock()
	// The View transaction has its snapshot; the store goroutine now commits
	// the delete and calls done before read() filters against deleting.
	if p != nil {
		p()
	}
	return out, err
}

func (q *raceQueue) Delete(seqs []uint64, done func(error)) {
	q.pmu.Lock()
	defer q.pmu.Unlock()
	q.pending = func() { q.memQueue.Delete(seqs, done) }
}

// An entry acknowledged upstream (remove) whose deletion commits between
// queue.Read and the deleting-filter is returned again: sent a second time
// on the next connection although it is outside any in-flight window.
func TestReadSkipsEntriesBeingDeleted(t *testing.T) {
	q := &raceQueue{}
	for i := uint64(1); i <= 4; i++ {
		q.entries = append(q.entries, persist.Entry{Seq: i, Msg: persist.Message{Topic: "t"}})
	}
	l := newLane("normal", q, slog.New(slog.DiscardHandler))
	l.remove([]uint64{1, 2})       // acked upstream on the old connection
	es, _, _, err := l.read(0, 10) // new connection starts from the head
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if e.Seq <= 2 {
			t.Errorf("entry %d was acknowledged upstream and is read again for resend", e.Seq)
		}
	}
}

// The tap filter (local_prefix+pattern) and mapOut disagree: the broker
// queues (and acknowledges) a message that the forwarder then deletes as
// "queued under a rule that is gone".
func TestTapAndMappingAgree(t *testing.T) {
	r := newRules([]Rule{{Pattern: "#", Direction: Out, QoS: 1, LocalPrefix: "edge/", RemotePrefix: "site1/"}})
	for _, topic := range []string{"edge", "edge/"} {
		tapped := false
		for _, f := range r.tapFilters() {
			tapped = tapped || packet.MatchTopic(f, topic)
		}
		_, _, ok := r.mapOut(topic, 1)
		if tapped && !ok {
			t.Errorf("topic %q is queued by the tap but mapOut drops it (silent loss of an acknowledged message)", topic)
		}
	}
}
