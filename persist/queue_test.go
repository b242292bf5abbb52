package persist_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/edged/edged/persist"
)

func qmsg(i int) persist.Message {
	m := msg("q", fmt.Sprintf("payload-%02d", i)) // Size 11
	m.Time = time.Now().UnixNano()
	return m
}

func appendN(t *testing.T, s persist.Store, q string, from, to int) {
	t.Helper()
	var ops []persist.Op
	for i := from; i < to; i++ {
		ops = append(ops, persist.QueueAppend{Queue: q, Msg: qmsg(i)})
	}
	mustCommit(t, s, ops...)
}

func seqs(t *testing.T, s queueStore, q string) []uint64 {
	t.Helper()
	es, err := s.ReadQueue(q, 0, 1000)
	if err != nil {
		t.Fatalf("ReadQueue: %v", err)
	}
	var out []uint64
	for _, e := range es {
		out = append(out, e.Seq)
		if want := fmt.Sprintf("payload-%02d", e.Seq-1); string(e.Msg.Payload) != want && e.Msg.Topic == "q" {
			t.Errorf("entry %d holds %q, want %q", e.Seq, e.Msg.Payload, want)
		}
	}
	return out
}

func TestQueueFIFO(t *testing.T) {
	opts := persist.Options{Path: t.TempDir() + "/edged.db"}
	db := mustOpenStore(t, opts)
	appendN(t, db, "cloud", 0, 5)
	if got := fmt.Sprint(seqs(t, db, "cloud")); got != "[1 2 3 4 5]" {
		t.Errorf("seqs = %s", got)
	}
	es, _ := db.ReadQueue("cloud", 2, 2)
	if fmt.Sprint(es[0].Seq, es[1].Seq, len(es)) != "3 4 2" {
		t.Errorf("ReadQueue(after 2, max 2) = %s", fmtEntries(es))
	}
	mustCommit(t, db, persist.QueueDelete{Queue: "cloud", Seq: 4}, persist.QueueDelete{Queue: "cloud", Seq: 5}, persist.QueueDelete{Queue: "cloud", Seq: 99})
	st := db.QueueStats("cloud")
	if st.Len != 3 || st.Bytes != 3*11 || st.Oldest.IsZero() || st.Dropped != 0 {
		t.Errorf("QueueStats = %+v", st)
	}
	db = reopen(t, db, opts)
	appendN(t, db, "cloud", 5, 6) // seq 6: 4 and 5 are never reused
	if got := fmt.Sprint(seqs(t, db, "cloud")); got != "[1 2 3 6]" {
		t.Errorf("seqs after restart = %s", got)
	}
	mustCommit(t, db, persist.QueueDelete{Queue: "cloud", Seq: 1}, persist.QueueDelete{Queue: "cloud", Seq: 2},
		persist.QueueDelete{Queue: "cloud", Seq: 3}, persist.QueueDelete{Queue: "cloud", Seq: 6})
	if st := db.QueueStats("cloud"); st.Len != 0 || st.Bytes != 0 || !st.Oldest.IsZero() {
		t.Errorf("drained QueueStats = %+v", st)
	}
	db = reopen(t, db, opts)
	appendN(t, db, "cloud", 6, 7)
	if got := fmt.Sprint(seqs(t, db, "cloud")); got != "[7]" {
		t.Errorf("seqs after drain and restart = %s", got)
	}
	if es, err := db.ReadQueue("nope", 0, 10); err != nil || len(es) != 0 {
		t.Errorf("unknown queue: %v, %v", es, err)
	}
}

func TestQueueLimits(t *testing.T) {
	old := time.Now().Add(-2 * time.Hour).UnixNano()
	for _, tc := range []struct {
		name    string
		limits  persist.QueueLimits
		n       int
		want    string
		dropped uint64
	}{
		{"drop-oldest messages", persist.QueueLimits{MaxMessages: 3}, 5, "[3 4 5]", 2},
		{"drop-newest messages", persist.QueueLimits{MaxMessages: 3, Overflow: persist.DropNewest}, 5, "[1 2 3]", 2},
		{"drop-oldest bytes", persist.QueueLimits{MaxBytes: 25}, 5, "[4 5]", 3},
		{"drop-newest bytes", persist.QueueLimits{MaxBytes: 25, Overflow: persist.DropNewest}, 5, "[1 2]", 3},
		{"larger than MaxBytes", persist.QueueLimits{MaxBytes: 10}, 2, "[]", 2},
		{"no limits", persist.QueueLimits{}, 5, "[1 2 3 4 5]", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := mustOpenStore(t, persist.Options{})
			mem := persist.NewMemory()
			defer mem.Close()
			for _, s := range []queueStore{db, mem} {
				s.Queue("q1", tc.limits)
				for i := range tc.n {
					appendN(t, s, "q1", i, i+1)
				}
				got := seqs(t, s, "q1")
				if fmt.Sprint(got) != tc.want && !(tc.want == "[]" && got == nil) {
					t.Errorf("%T seqs = %v, want %s", s, got, tc.want)
				}
				if st := s.QueueStats("q1"); st.Dropped != tc.dropped || st.Len != int64(len(got)) {
					t.Errorf("%T stats = %+v, want dropped %d", s, st, tc.dropped)
				}
			}
		})
	}
	t.Run("MaxAge", func(t *testing.T) {
		opts := persist.Options{Path: t.TempDir() + "/edged.db"}
		db := mustOpenStore(t, opts)
		mem := persist.NewMemory()
		defer mem.Close()
		for _, s := range []queueStore{db, mem} {
			stale := msg("q", "stale")
			stale.Time = old
			// No limits yet: stale entries are kept.
			mustCommit(t, s, persist.QueueAppend{Queue: "q1", Msg: stale}, persist.QueueAppend{Queue: "q1", Msg: stale},
				persist.QueueAppend{Queue: "q1", Msg: qmsg(2)}, persist.QueueAppend{Queue: "q1", Msg: stale})
			s.Queue("q1", persist.QueueLimits{MaxAge: time.Hour})
			if got := fmt.Sprint(seqs(t, s, "q1")); got != "[3]" {
				t.Errorf("%T: read skips expired: %s", s, got)
			}
			n, err := s.ExpireQueues(time.Now())
			if err != nil || n != 2 { // seq 4 is behind a live head; it goes later
				t.Errorf("%T: ExpireQueues = %d, %v", s, n, err)
			}
			mustCommit(t, s, persist.QueueAppend{Queue: "q1", Msg: stale}) // expired on arrival
			st := s.QueueStats("q1")
			if st.Len != 2 || st.Dropped != 3 || st.Expired != 3 {
				t.Errorf("%T: stats = %+v", s, st)
			}
			mustCommit(t, s, persist.QueueDelete{Queue: "q1", Seq: 3})
			if n, _ := s.ExpireQueues(time.Now()); n != 1 {
				t.Errorf("%T: second ExpireQueues = %d, want 1", s, n)
			}
			if n, _ := s.ExpireQueues(time.Now().Add(3 * time.Hour)); n != 0 {
				t.Errorf("%T: empty queue expired %d", s, n)
			}
		}
		db = reopen(t, db, opts)
		if st := db.QueueStats("q1"); st.Dropped != 4 || st.Expired != 4 || st.Len != 0 {
			t.Errorf("dropped counter after restart: %+v", st)
		}
	})
}

// A queue handle owns its queue: its Append op, reads, deletes and stats
// are of its queue only, and its Expire leaves other queues with a MaxAge
// alone (ExpireQueues is the store-wide one).
func TestQueueHandle(t *testing.T) {
	db := mustOpenStore(t, persist.Options{Path: t.TempDir() + "/edged.db"})
	mem := persist.NewMemory()
	defer mem.Close()
	for _, s := range []queueStore{db, mem} {
		a := s.Queue("bridge/a", persist.QueueLimits{MaxAge: time.Hour, MaxMessages: 2})
		b := s.Queue("bridge/b", persist.QueueLimits{MaxAge: time.Hour})
		stale := msg("q", "stale")
		stale.Time = time.Now().Add(-2 * time.Hour).UnixNano()
		// Stale entries can only get in before the limits apply: append
		// them to a queue opened without limits, then reopen it.
		s.Queue("bridge/a", persist.QueueLimits{})
		s.Queue("bridge/b", persist.QueueLimits{})
		mustCommit(t, s, a.Append(stale), b.Append(stale), a.Append(qmsg(1)), b.Append(qmsg(1)))
		a = s.Queue("bridge/a", persist.QueueLimits{MaxAge: time.Hour, MaxMessages: 2})
		b = s.Queue("bridge/b", persist.QueueLimits{MaxAge: time.Hour})
		if a.Name() != "bridge/a" || a.Limits().MaxMessages != 2 {
			t.Errorf("%T: handle %q %+v", s, a.Name(), a.Limits())
		}
		n, err := a.Expire(time.Now())
		if err != nil || n != 1 {
			t.Errorf("%T: a.Expire = %d, %v; want 1", s, n, err)
		}
		if st := b.Stats(); st.Len != 2 || st.Expired != 0 {
			t.Errorf("%T: a.Expire touched queue b: %+v", s, st)
		}
		mustCommit(t, s, a.Append(qmsg(2)), a.Append(qmsg(3))) // MaxMessages 2 drops the head
		es, err := a.Read(0, 10)
		if err != nil || len(es) != 2 || es[0].Seq != 3 || es[1].Seq != 4 {
			t.Fatalf("%T: a.Read = %s, %v", s, fmtEntries(es), err)
		}
		done := make(chan error, 1)
		a.Delete([]uint64{3, 4}, func(err error) { done <- err })
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if st := a.Stats(); st.Len != 0 || st.Dropped != 2 || st.Expired != 1 {
			t.Errorf("%T: a.Stats = %+v", s, st)
		}
		if n, err := s.Queue("bridge/c", persist.QueueLimits{}).Expire(time.Now()); n != 0 || err != nil {
			t.Errorf("%T: Expire without MaxAge = %d, %v", s, n, err)
		}
	}
}
