package persist_test

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edged/edged/persist"
)

func msg(topic, payload string) persist.Message {
	return persist.Message{Topic: topic, Payload: []byte(payload), QoS: 1, Time: 1_700_000_000_000_000_000}
}

func TestParseSyncMode(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want persist.SyncMode
		err  bool
	}{
		{"batch", persist.SyncBatch, false},
		{"", persist.SyncBatch, false},
		{"always", persist.SyncAlways, false},
		{"off", persist.SyncOff, false},
		{"sometimes", 0, true},
	} {
		got, err := persist.ParseSyncMode(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ParseSyncMode(%q) = %v, %v", tc.in, got, err)
		}
		if err == nil && tc.in != "" && got.String() != tc.in {
			t.Errorf("String() = %q, want %q", got, tc.in)
		}
	}
}

// TestOps applies each op to a store prepared by setup, and compares Load
// with want before and after a restart, for DB and Memory.
func TestOps(t *testing.T) {
	m1, m2 := msg("a/b", "one"), msg("a/c", "two")
	base := []persist.Op{
		persist.PutSession{ClientID: "c1", LastSeen: 0}, persist.PutSubscription{ClientID: "c1", Sub: persist.Subscription{Seq: 1, Filter: "a/#", QoS: 1}},
		persist.PutMessage{ID: 1, Msg: m1},
		persist.Enqueue{ClientID: "c1", MsgID: 1, QoS: 1},
	}
	q1 := func(pid uint16, rel bool) string {
		return fmt.Sprintf("  q id=1 qos=1 pid=%d rel=%t msg=%s\n", pid, rel, fmtMsg(m1))
	}
	sess := `session "c1" subs=[{1 a/# 1}] last=0 inbound=[]` + "\n"
	for _, tc := range []struct {
		name string
		ops  []persist.Op
		want string
		next uint64
	}{
		{"base", nil, sess + q1(0, false), 2},
		{"PutMessage+Enqueue", []persist.Op{persist.PutMessage{ID: 7, Msg: m2}, persist.Enqueue{ClientID: "c1", MsgID: 7, QoS: 0}},
			sess + q1(0, false) + "  q id=7 qos=0 pid=0 rel=false msg=" + fmtMsg(m2) + "\n", 8},
		{"PutMessage without Enqueue is dropped", []persist.Op{persist.PutMessage{ID: 9, Msg: m2}}, sess + q1(0, false), 10},
		{"Enqueue unknown message", []persist.Op{persist.Enqueue{ClientID: "c1", MsgID: 5, QoS: 1}}, sess + q1(0, false), 2},
		{"Enqueue twice", []persist.Op{persist.Enqueue{ClientID: "c1", MsgID: 1, QoS: 2}}, sess + q1(0, false), 2},
		{"Enqueue creates session", []persist.Op{persist.Enqueue{ClientID: "c2", MsgID: 1, QoS: 0}},
			sess + q1(0, false) + `session "c2" subs=[] last=0 inbound=[]` + "\n  q id=1 qos=0 pid=0 rel=false msg=" + fmtMsg(m1) + "\n", 2},
		{"SetInflight", []persist.Op{persist.SetInflight{ClientID: "c1", MsgID: 1, PacketID: 42}}, sess + q1(42, false), 2},
		{"SetInflight pubrel", []persist.Op{persist.SetInflight{ClientID: "c1", MsgID: 1, PacketID: 42, Pubrel: true}}, sess + q1(42, true), 2},
		{"SetInflight missing", []persist.Op{persist.SetInflight{ClientID: "c1", MsgID: 3, PacketID: 42}, persist.SetInflight{ClientID: "zz", MsgID: 1}}, sess + q1(0, false), 2},
		{"Dequeue", []persist.Op{persist.Dequeue{ClientID: "c1", MsgID: 1}}, sess, 2},
		{"Dequeue missing", []persist.Op{persist.Dequeue{ClientID: "c1", MsgID: 2}, persist.Dequeue{ClientID: "zz", MsgID: 1}}, sess + q1(0, false), 2},
		{"PutSession keeps queue and subscriptions", []persist.Op{persist.PutSession{ClientID: "c1", LastSeen: 99}},
			`session "c1" subs=[{1 a/# 1}] last=99 inbound=[]` + "\n" + q1(0, false), 2},
		{"PutSubscription adds and replaces", []persist.Op{
			persist.PutSubscription{ClientID: "c1", Sub: persist.Subscription{Seq: 9, Filter: "x", QoS: 2}},
			persist.PutSubscription{ClientID: "c1", Sub: persist.Subscription{Seq: 1, Filter: "a/#", QoS: 0}},
			persist.PutSubscription{ClientID: "c3", Sub: persist.Subscription{Seq: 2, Filter: strings.Repeat("f", 65535), QoS: 1}},
		}, `session "c1" subs=[{1 a/# 0} {9 x 2}] last=0 inbound=[]` + "\n" + q1(0, false) +
			`session "c3" subs=[{2 ` + strings.Repeat("f", 65535) + ` 1}] last=0 inbound=[]` + "\n", 2},
		{"DeleteSubscription", []persist.Op{persist.DeleteSubscription{ClientID: "c1", Seq: 1}, persist.DeleteSubscription{ClientID: "zz", Seq: 1}},
			`session "c1" subs=[] last=0 inbound=[]` + "\n" + q1(0, false), 2},
		{"Enqueue retain flag", []persist.Op{persist.PutMessage{ID: 7, Msg: m2}, persist.Enqueue{ClientID: "c1", MsgID: 7, QoS: 1, Retain: true}},
			sess + q1(0, false) + "  q id=7 qos=1 pid=0 rel=false retain msg=" + fmtMsg(m2) + "\n", 8},
		{"DeleteSession", []persist.Op{persist.DeleteSession{ClientID: "c1"}}, "", 2},
		{"DeleteSession missing", []persist.Op{persist.DeleteSession{ClientID: "zz"}}, sess + q1(0, false), 2},
		{"PutInbound", []persist.Op{persist.PutInbound{ClientID: "c1", PacketID: 300}, persist.PutInbound{ClientID: "c1", PacketID: 7}},
			`session "c1" subs=[{1 a/# 1}] last=0 inbound=[7 300]` + "\n" + q1(0, false), 2},
		{"DeleteInbound", []persist.Op{persist.PutInbound{ClientID: "c1", PacketID: 300}, persist.PutInbound{ClientID: "c1", PacketID: 7}, persist.DeleteInbound{ClientID: "c1", PacketID: 300}},
			`session "c1" subs=[{1 a/# 1}] last=0 inbound=[7]` + "\n" + q1(0, false), 2},
		{"PutRetained", []persist.Op{persist.PutRetained{Msg: m2}}, sess + q1(0, false) + "retained " + fmtMsg(m2) + "\n", 2},
		{"PutRetained replaces", []persist.Op{persist.PutRetained{Msg: m2}, persist.PutRetained{Msg: msg("a/c", "three")}},
			sess + q1(0, false) + "retained " + fmtMsg(msg("a/c", "three")) + "\n", 2},
		{"DeleteRetained", []persist.Op{persist.PutRetained{Msg: m2}, persist.DeleteRetained{Topic: "a/c"}}, sess + q1(0, false), 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			check := func(t *testing.T, s persist.Store) {
				t.Helper()
				snap := mustLoad(t, s)
				if got := fmtSnap(snap); got != tc.want {
					t.Errorf("Load:\n%s\nwant:\n%s", got, tc.want)
				}
				if snap.NextMsgID != tc.next {
					t.Errorf("NextMsgID = %d, want %d", snap.NextMsgID, tc.next)
				}
			}
			t.Run("memory", func(t *testing.T) {
				m := persist.NewMemory()
				defer m.Close()
				mustCommit(t, m, base...)
				mustCommit(t, m, tc.ops...)
				check(t, m)
			})
			t.Run("db", func(t *testing.T) {
				opts := persist.Options{Path: t.TempDir() + "/edged.db"}
				db := mustOpenStore(t, opts)
				mustCommit(t, db, base...)
				mustCommit(t, db, tc.ops...)
				check(t, db)
				db = reopen(t, db, opts)
				check(t, db)
			})
		})
	}
}

func TestSharedMessageRefcount(t *testing.T) {
	opts := persist.Options{Path: t.TempDir() + "/edged.db"}
	db := mustOpenStore(t, opts)
	m := msg("s/1", "shared")
	mustCommit(t, db,
		persist.PutMessage{ID: 10, Msg: m},
		persist.Enqueue{ClientID: "a", MsgID: 10, QoS: 1},
		persist.Enqueue{ClientID: "b", MsgID: 10, QoS: 0},
		persist.Enqueue{ClientID: "c", MsgID: 10, QoS: 2},
		// Load reads the messages of sent entries only.
		persist.SetInflight{ClientID: "a", MsgID: 10, PacketID: 1},
		persist.SetInflight{ClientID: "c", MsgID: 10, PacketID: 1},
	)
	snap := mustLoad(t, db)
	if len(snap.Sessions) != 3 {
		t.Fatalf("sessions = %d", len(snap.Sessions))
	}
	if &snap.Sessions[0].Queue[0].Msg.Payload[0] != &snap.Sessions[2].Queue[0].Msg.Payload[0] {
		t.Error("Load does not share the payload of a message queued twice")
	}
	mustCommit(t, db, persist.Dequeue{ClientID: "a", MsgID: 10})
	db = reopen(t, db, opts) // refcounts must survive a restart (the cleanup Check verifies them)
	mustCommit(t, db, persist.DeleteSession{ClientID: "b"})
	snap = mustLoad(t, db)
	if got := fmtSnap(snap); got != `session "a" subs=[] last=0 inbound=[]`+"\n"+`session "c" subs=[] last=0 inbound=[]`+"\n  q id=10 qos=2 pid=1 rel=false msg="+fmtMsg(m)+"\n" {
		t.Errorf("after dequeue a, delete b:\n%s", got)
	}
	mustCommit(t, db, persist.Dequeue{ClientID: "c", MsgID: 10})
	// The message is gone: a new Enqueue of id 10 is a no-op.
	mustCommit(t, db, persist.Enqueue{ClientID: "a", MsgID: 10, QoS: 1})
	if snap := mustLoad(t, db); len(snap.Sessions[0].Queue) != 0 {
		t.Errorf("message 10 still stored after its last reference went")
	}
	if snap.NextMsgID != 11 {
		t.Errorf("NextMsgID = %d, want 11", snap.NextMsgID)
	}
	db = reopen(t, db, opts)
	if snap := mustLoad(t, db); snap.NextMsgID != 11 {
		t.Errorf("NextMsgID after restart = %d, want 11", snap.NextMsgID)
	}
}

func TestRestartRestoresEverything(t *testing.T) {
	opts := persist.Options{Path: t.TempDir() + "/edged.db"}
	db := mustOpenStore(t, opts)
	var ops []persist.Op
	for i := range uint64(50) {
		ops = append(ops, persist.PutMessage{ID: i + 1, Msg: msg(fmt.Sprintf("t/%d", i), "p")},
			persist.Enqueue{ClientID: fmt.Sprintf("c%d", i%3), MsgID: i + 1, QoS: byte(i % 3)})
	}
	ops = append(ops,
		persist.SetInflight{ClientID: "c0", MsgID: 1, PacketID: 1, Pubrel: true},
		persist.PutInbound{ClientID: "c1", PacketID: 5},
		persist.PutSession{ClientID: "c2", LastSeen: 1234}, persist.PutSubscription{ClientID: "c2", Sub: persist.Subscription{Seq: 1, Filter: "#", QoS: 2}},
		persist.PutRetained{Msg: msg("r", "retained")},
		persist.QueueAppend{Queue: "cloud", Msg: msg("b", "bridge")},
	)
	mustCommit(t, db, ops...)
	before := fmtSnap(mustLoad(t, db))
	db = reopen(t, db, opts)
	if after := fmtSnap(mustLoad(t, db)); after != before {
		t.Errorf("after restart:\n%s\nbefore:\n%s", after, before)
	}
	if es, _ := db.ReadQueue("cloud", 0, 10); fmtEntries(es) != "1:"+fmtMsg(msg("b", "bridge"))+" " {
		t.Errorf("queue after restart: %s", fmtEntries(es))
	}
}

// TestDoneContract checks that done is called exactly once per Commit, in
// commit order, never from inside Commit, and that Close flushes.
func TestDoneContract(t *testing.T) {
	for _, mode := range []persist.SyncMode{persist.SyncBatch, persist.SyncAlways, persist.SyncOff} {
		t.Run(mode.String(), func(t *testing.T) {
			db := mustOpenStore(t, persist.Options{Sync: mode, BatchSize: 16})
			mem := persist.NewMemory()
			for _, s := range []persist.Store{db, mem} {
				const n = 500
				var mu sync.Mutex // a caller's lock, held across Commit
				caller := goid()
				var calls [n]atomic.Int32
				var order []int
				var errs atomic.Int32
				for i := range n {
					mu.Lock()
					s.Commit([]persist.Op{persist.PutRetained{Msg: msg(fmt.Sprint("t", i%7), "x")}}, func(err error) {
						// Inside Commit means on the caller's goroutine
						// (a done that runs on the writer's goroutine
						// while the caller is still in Commit is fine).
						if goid() == caller {
							errs.Add(1)
						}
						if err != nil {
							errs.Add(1)
						}
						calls[i].Add(1)
						order = append(order, i) // writer goroutine only
					})
					s.Commit(nil, nil) // done may be nil
					mu.Unlock()
				}
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				if err := s.Close(); err != nil {
					t.Fatalf("second Close: %v", err)
				}
				for i := range calls {
					if c := calls[i].Load(); c != 1 {
						t.Fatalf("done %d called %d times", i, c)
					}
				}
				if !slices.IsSorted(order) {
					t.Error("dones out of order")
				}
				if errs.Load() != 0 {
					t.Errorf("%d dones failed or ran inside Commit", errs.Load())
				}
				ch := make(chan error, 1)
				s.Commit(nil, func(err error) { ch <- err })
				if err := <-ch; err == nil {
					t.Error("Commit after Close succeeded")
				}
			}
		})
	}
}

func TestStats(t *testing.T) {
	db := mustOpenStore(t, persist.Options{})
	mustCommit(t, db, persist.PutRetained{Msg: msg("a", "b")}, persist.DeleteRetained{Topic: "a"})
	st := db.Stats()
	if st.Commits != 1 || st.Fsyncs != 1 || st.Ops != 2 || st.CommitErrors != 0 || st.FileSize <= 0 || st.Pending != 0 {
		t.Errorf("Stats = %+v", st)
	}
}

func TestLocked(t *testing.T) {
	opts := persist.Options{Path: t.TempDir() + "/edged.db", Timeout: 50 * time.Millisecond}
	mustOpenStore(t, opts)
	_, err := persist.Open(opts)
	if !errorsIs(err, persist.ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
}

// A Commit call with an op the store cannot store is refused as a whole
// with ErrInvalidOp, before anything is applied, so the broker never
// acknowledges it; the calls around it are applied.
func TestInvalidOpsRefused(t *testing.T) {
	long := strings.Repeat("x", 65536)
	for _, bad := range []persist.Op{
		persist.PutSession{ClientID: ""},
		persist.PutSession{ClientID: long},
		persist.Enqueue{ClientID: "c1", MsgID: 1, QoS: 3},
		persist.PutRetained{Msg: persist.Message{Topic: ""}},
		persist.PutRetained{Msg: persist.Message{Topic: long}},
		persist.QueueAppend{Queue: long, Msg: msg("t", "p")},
		persist.PutMessage{ID: 3, Msg: persist.Message{Topic: "x", QoS: 7}},
		persist.PutSubscription{ClientID: "c1", Sub: persist.Subscription{Seq: 1, Filter: "a", QoS: 3}},
		persist.PutSubscription{ClientID: "c1", Sub: persist.Subscription{Seq: 1, Filter: ""}},
		persist.PutSubscription{ClientID: long, Sub: persist.Subscription{Seq: 1, Filter: "a"}},
		persist.DeleteSubscription{ClientID: ""},
		persist.SetOwner{ClientID: ""},
		persist.SetOwner{ClientID: long},
		nil,
	} {
		t.Run(fmt.Sprintf("%T", bad), func(t *testing.T) {
			for _, s := range []persist.Store{persist.NewMemory(), mustOpenStore(t, persist.Options{})} {
				before := persist.PutRetained{Msg: msg("before", "1")}
				good := persist.PutRetained{Msg: msg("same-call", "2")}
				after := persist.PutRetained{Msg: msg("after", "3")}
				ch := make(chan error, 3)
				s.Commit([]persist.Op{before}, func(err error) { ch <- err })
				s.Commit([]persist.Op{good, bad}, func(err error) { ch <- err })
				s.Commit([]persist.Op{after}, func(err error) { ch <- err })
				errs := []error{<-ch, <-ch, <-ch}
				if errs[0] != nil || !errors.Is(errs[1], persist.ErrInvalidOp) || errs[2] != nil {
					t.Fatalf("%T: commits returned %v, want nil, ErrInvalidOp, nil", s, errs)
				}
				snap := mustLoad(t, s)
				if len(snap.Retained) != 2 || snap.Retained[0].Topic != "after" || snap.Retained[1].Topic != "before" {
					t.Errorf("%T: retained after the refused call: %s", s, fmtSnap(snap))
				}
				if m, ok := s.(*persist.Memory); ok {
					m.Close()
				}
			}
		})
	}
}

// goid returns the id of the calling goroutine, from its stack header
// ("goroutine 7 [running]:"); tests only.
func goid() string {
	var b [64]byte
	n := runtime.Stack(b[:], false)
	f := strings.Fields(string(b[:n]))
	if len(f) < 2 {
		return ""
	}
	return f[1]
}
