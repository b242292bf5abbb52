package broker_test

import (
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/edged/edged/broker"
	"github.com/edged/edged/persist"
)

// TestRestartWithBacklogReadsSessionsNotMessages stores 50,000 queued
// 64-byte messages (EDGED_TEST_QUEUED=200000 for more) for one offline
// persistent session in a bbolt file, as a broker would have, then
// measures what starting a broker on it costs: start-up must not load the
// queue (200,000 took ~170 MB of RSS when it did). The heap bound is
// generous; the numbers are logged. make footprint measures the RSS of the
// binary.
func TestRestartWithBacklogReadsSessionsNotMessages(t *testing.T) {
	n := 50000
	if v, err := strconv.Atoi(os.Getenv("EDGED_TEST_QUEUED")); err == nil && v > 0 {
		n = v
	}
	path := filepath.Join(t.TempDir(), "edged.db")
	seedBacklog(t, path, n)

	heap := func() uint64 {
		runtime.GC()
		runtime.GC() // and sync.Pool's victim cache
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	start := time.Now()
	db, err := persist.Open(persist.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s, err := broker.New(broker.Config{Store: db, SysInterval: -1, Limits: broker.Limits{MaxQueuedMessages: n}})
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	grown := int64(heap()) - int64(before)
	t.Cleanup(func() { s.Shutdown(t.Context()) })
	pending, spilled, _ := s.SessionQueue("offline")
	t.Logf("start-up with %d queued: %v, heap grew %d KiB; %d in memory, %d on disk", n, took.Round(time.Millisecond), grown>>10, pending, spilled)
	if pending != 0 || spilled != n {
		t.Errorf("%d in memory, %d on disk only; want 0, %d", pending, spilled, n)
	}
	if grown > 4<<20 {
		t.Errorf("start-up grew the heap by %d KiB", grown>>10)
	}
}

// seedBacklog writes n queued 64-byte messages for the offline persistent
// session "offline" (subscribed to q/#) into a new store at path.
func seedBacklog(t *testing.T, path string, n int) {
	db, err := persist.Open(persist.Options{Path: path, Sync: persist.SyncOff})
	if err != nil {
		t.Fatal(err)
	}
	payload := make([]byte, 64)
	ops := []persist.Op{
		persist.PutSession{ClientID: "offline", LastSeen: time.Now().Unix()},
		persist.PutSubscription{ClientID: "offline", Sub: persist.Subscription{Seq: 1, Filter: "q/#", QoS: 1}},
	}
	for id := uint64(1); id <= uint64(n); id++ {
		ops = append(ops, persist.PutMessage{ID: id, Msg: persist.Message{Topic: "q/t", Payload: payload, QoS: 1, Time: 1}},
			persist.Enqueue{ClientID: "offline", MsgID: id, QoS: 1})
		if len(ops) >= 20000 || id == uint64(n) {
			db.Commit(ops, nil)
			ops = nil
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}
