package persist_test

import (
	"bytes"
	"path/filepath"
	"testing"
	"time"

	"github.com/edged/edged/persist"
)

// An ExpireQueues batched with a commit that fails with ErrFull is retried
// alone; its count must not include the rolled-back first attempt.
func TestExpireCountAfterSplitRetry(t *testing.T) {
	db, err := persist.Open(persist.Options{Path: filepath.Join(t.TempDir(), "e.db"), MaxSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Now()
	db.Queue("q", persist.QueueLimits{MaxAge: time.Hour})
	var ops []persist.Op
	for range 5 {
		ops = append(ops, persist.QueueAppend{Queue: "q", Msg: persist.Message{Topic: "t", Payload: []byte("x"), QoS: 1, Time: now.UnixNano()}})
	}
	mustCommit(t, db, ops...)

	release := make(chan struct{})
	db.Commit([]persist.Op{persist.PutRetained{Msg: msg("hold", "x")}}, func(error) { <-release }) // keeps the writer busy
	got := make(chan int64, 1)
	go func() {
		n, err := db.ExpireQueues(now.Add(2 * time.Hour))
		if err != nil {
			t.Error(err)
		}
		got <- n
	}()
	for db.Stats().Pending != 1 {
		time.Sleep(time.Millisecond)
	}
	big := persist.Message{Topic: "t", Payload: bytes.Repeat([]byte("b"), 2<<20), QoS: 1, Time: now.UnixNano()}
	full := make(chan error, 1)
	db.Commit([]persist.Op{persist.QueueAppend{Queue: "big", Msg: big}}, func(err error) { full <- err })
	close(release)
	if err := <-full; !isFull(err) {
		t.Fatalf("big append: %v, want ErrFull", err)
	}
	if n := <-got; n != 5 {
		t.Errorf("ExpireQueues = %d, want 5 (the entries it deleted)", n)
	}
	if st := db.QueueStats("q"); st.Len != 0 || st.Expired != 5 {
		t.Errorf("stats %+v", st)
	}
}
