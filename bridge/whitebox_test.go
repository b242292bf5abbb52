package bridge

import (
	"log/slog"
	"strings"
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
	l := &lane{name: "normal", q: q, log: slog.New(slog.DiscardHandler), deleting: map[uint64]struct{}{}}
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

// offline_qos0 latest is bounded: a new topic over the bound is dropped and
// counted, a newer message of a kept topic replaces it while it fits, and
// nothing is kept once the link is up.
func TestLatestBounds(t *testing.T) {
	lt := newLatest(persist.QueueLimits{MaxMessages: 2, MaxBytes: 40})
	m := func(topic, payload string) *persist.Message {
		return &persist.Message{Topic: topic, Payload: []byte(payload)}
	}
	for _, x := range []*persist.Message{m("a", "1"), m("b", "1"), m("c", "1"), m("a", "2"), m("a", strings.Repeat("x", 40))} {
		if lt.admit(x, OfflineLatest, false) {
			t.Fatalf("%s admitted while offline", x.Topic)
		}
	}
	if lt.admit(m("d", "1"), OfflineDrop, false) {
		t.Fatal("drop admitted while offline")
	}
	if got := len(lt.msgs); got != 2 || string(lt.msgs["a"].m.Payload) != "2" {
		t.Errorf("kept %d topics, a=%q; want 2, a=2", got, lt.msgs["a"].m.Payload)
	}
	if d, r := lt.dropped.Load(), lt.replaced.Load(); d != 3 || r != 1 {
		t.Errorf("dropped %d replaced %d, want 3 and 1", d, r)
	}
	lt.mu.Lock()
	lt.up = true
	lt.mu.Unlock()
	if !lt.admit(m("a", "3"), OfflineLatest, false) || !lt.admit(m("d", "2"), OfflineDrop, false) {
		t.Error("not admitted while online")
	}
}
