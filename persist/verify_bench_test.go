package persist

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// BenchmarkVerifyPages measures the walk Open runs on a 50 MiB store of
// small messages in session queues and a bridge queue (warm page cache).
func BenchmarkVerifyPages(b *testing.B) {
	path := filepath.Join(b.TempDir(), "edged.db")
	db, err := Open(Options{Path: path})
	if err != nil {
		b.Fatal(err)
	}
	id, written := uint64(1), 0
	for written < 50<<20 {
		var ops []Op
		for i := range 2000 {
			m := Message{Topic: "sensors/a/b", Payload: []byte(strings.Repeat("p", 100+i%400)), QoS: 1, Time: time.Now().UnixNano()}
			ops = append(ops, PutMessage{ID: id, Msg: m}, Enqueue{ClientID: fmt.Sprintf("client-%d", id%500), MsgID: id, QoS: 1},
				QueueAppend{Queue: "cloud", Msg: m})
			id++
			written += 2 * len(m.Payload)
		}
		if err := commitSync(db, ops...); err != nil {
			b.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		b.Fatal(err)
	}
	if _, _, err := Compact(path); err != nil { // no free pages: all 50 MiB are walked
		b.Fatal(err)
	}
	b.Logf("store: %d MiB, %d messages", fileSize(path)>>20, id-1)
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	b.ResetTimer()
	for b.Loop() {
		if err := checkFile(f, path); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	start := time.Now()
	db, err = Open(Options{Path: path})
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("whole Open: %v", time.Since(start))
	_ = db.Close()
}
