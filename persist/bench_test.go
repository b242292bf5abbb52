package persist_test

import (
	"bytes"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edged/edged/persist"
)

// BenchmarkCommit measures group commit: 8 publishers each commit
// PutMessage+Enqueue of a 200-byte payload, wait for done (the PUBACK
// point), then commit its Dequeue (the subscriber's ack).
func BenchmarkCommit(b *testing.B) {
	for _, mode := range []persist.SyncMode{persist.SyncBatch, persist.SyncAlways, persist.SyncOff} {
		b.Run(mode.String(), func(b *testing.B) { benchCommit(b, mode, 8) })
	}
}

// BenchmarkCommitPublishers shows how group commit scales with the number
// of publishers waiting for their PUBACK at once: with one fsync per
// batch, msgs/s is bounded by publishers × fsyncs/s.
func BenchmarkCommitPublishers(b *testing.B) {
	for _, n := range []int{8, 64, 256} {
		b.Run(fmt.Sprint(n), func(b *testing.B) { benchCommit(b, persist.SyncBatch, n) })
	}
}

func benchCommit(b *testing.B, mode persist.SyncMode, workers int) {
	{
		{
			db := mustOpenStore(b, persist.Options{Sync: mode})
			payload := bytes.Repeat([]byte("p"), 200)
			var ids atomic.Uint64
			var failed atomic.Int64
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for w := range workers {
				n := b.N / workers
				if w < b.N%workers {
					n++
				}
				client := fmt.Sprint("client", w)
				wg.Go(func() {
					done := make(chan error, 1)
					for range n {
						id := ids.Add(1)
						m := persist.Message{Topic: "sensors/temp", Payload: payload, QoS: 1, Time: time.Now().UnixNano()}
						db.Commit([]persist.Op{persist.PutMessage{ID: id, Msg: m}, persist.Enqueue{ClientID: client, MsgID: id, QoS: 1}},
							func(err error) { done <- err })
						if err := <-done; err != nil {
							failed.Add(1)
						}
						db.Commit([]persist.Op{persist.Dequeue{ClientID: client, MsgID: id}}, nil)
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(start).Seconds()
			b.StopTimer()
			if failed.Load() > 0 {
				b.Fatalf("%d commits failed", failed.Load())
			}
			st := db.Stats()
			b.ReportMetric(float64(b.N)/elapsed, "msgs/s")
			b.ReportMetric(float64(st.Fsyncs)/elapsed, "fsyncs/s")
			b.ReportMetric(float64(st.Commits)/elapsed, "txs/s")
		}
	}
}

// BenchmarkLoad measures start-up: Load of 20,000 queued 64-byte messages
// in 10 sessions and 2,000 retained messages, each record's checksum
// verified.
func BenchmarkLoad(b *testing.B) {
	db := mustOpenStore(b, persist.Options{Sync: persist.SyncOff})
	payload := bytes.Repeat([]byte("p"), 64)
	var ops []persist.Op
	for i := range uint64(20000) {
		ops = append(ops, persist.PutMessage{ID: i + 1, Msg: persist.Message{Topic: "a/b", Payload: payload, QoS: 1}},
			persist.Enqueue{ClientID: fmt.Sprint("c", i%10), MsgID: i + 1, QoS: 1})
	}
	for i := range 2000 {
		ops = append(ops, persist.PutRetained{Msg: persist.Message{Topic: fmt.Sprint("r/", i), Payload: payload}})
	}
	mustCommit(b, db, ops...)
	b.ResetTimer()
	for b.Loop() {
		if _, err := db.Load(); err != nil {
			b.Fatal(err)
		}
	}
}
