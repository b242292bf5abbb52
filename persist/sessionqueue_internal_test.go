package persist

import (
	"encoding/binary"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestMigrateFormat1Sessions writes a session as edged's format 1 did
// (subscriptions as a list in the info record, no queue stats, no subs
// bucket) and checks that Open moves the subscriptions to the subs bucket,
// counts the queue, and that Check passes on the result.
func TestMigrateFormat1Sessions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "edged.db")
	db, err := Open(Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	var ops []Op
	for i := range uint64(5) {
		ops = append(ops, PutMessage{ID: i + 1, Msg: Message{Topic: "t", Payload: []byte(strings.Repeat("p", int(i)))}},
			Enqueue{ClientID: "old", MsgID: i + 1, QoS: 1})
	}
	ops = append(ops, SetInflight{ClientID: "old", MsgID: 1, PacketID: 9})
	if err := commitSync(db, ops...); err != nil {
		t.Fatal(err)
	}
	db.Close()

	b, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	legacy := []Subscription{{Filter: "a/#", QoS: 1}, {Filter: "b/" + strings.Repeat("x", 40000), QoS: 2}}
	err = b.Update(func(tx *bolt.Tx) error {
		sb := tx.Bucket(bucketSessions).Bucket([]byte("old"))
		if err := sb.DeleteBucket(keySubs); err != nil {
			return err
		}
		if err := sb.Delete(keyStats); err != nil {
			return err
		}
		if err := sb.Put(keyInfo, encodeSession(legacy, 77)); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keyFormat, u64key(1))
	})
	b.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := Check(path); err != nil {
		t.Fatalf("Check of a format 1 file: %v", err)
	}

	db, err = Open(Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := db.Load()
	if err != nil {
		t.Fatal(err)
	}
	s := snap.Sessions[0]
	if len(s.Subs) != 2 || s.Subs[0] != (Subscription{Seq: 1, Filter: "a/#", QoS: 1}) || s.Subs[1].Seq != 2 || s.Subs[1].Filter != legacy[1].Filter || s.LastSeen != 77 {
		t.Errorf("subs after migration: %d %+v, last seen %d", len(s.Subs), s.Subs[0], s.LastSeen)
	}
	if len(s.Queue) != 1 || s.Waiting != 4 || s.WaitingBytes != 4+1+2+3+4 {
		t.Errorf("queue after migration: %d sent, %d waiting, %d bytes", len(s.Queue), s.Waiting, s.WaitingBytes)
	}
	qs, err := db.ReadSessionQueue("old", s.Queue[0].MsgID, 10)
	if err != nil || len(qs) != 4 || qs[0].MsgID != 2 || string(qs[3].Msg.Payload) != "pppp" {
		t.Errorf("ReadSessionQueue: %d entries, %v", len(qs), err)
	}
	db.Close()
	if err := Check(path); err != nil {
		t.Fatalf("Check after migration: %v", err)
	}
}

// TestCheckReportsSessionQueueStats checks that db check notices queue
// stats that disagree with the queue, which would make the broker's
// limits wrong.
func TestCheckReportsSessionQueueStats(t *testing.T) {
	path := filepath.Join(t.TempDir(), "edged.db")
	db, err := Open(Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	if err := commitSync(db, PutMessage{ID: 1, Msg: Message{Topic: "t", Payload: []byte("x")}}, Enqueue{ClientID: "c", MsgID: 1, QoS: 1}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	b, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	st := qstats{count: 5, bytes: 2}
	_ = b.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSessions).Bucket([]byte("c")).Put(keyStats, st.encode())
	})
	b.Close()
	if err := Check(path); err == nil || !strings.Contains(err.Error(), "queue stats say 5 messages") {
		t.Fatalf("Check = %v", err)
	}
}

// TestSubscriptionOpsWriteLittle measures what one more subscription
// costs on disk in a session that already has many: it must not grow with
// their number (format 1 rewrote the whole list for each SUBSCRIBE).
func TestSubscriptionOpsWriteLittle(t *testing.T) {
	path := filepath.Join(t.TempDir(), "edged.db")
	db, err := Open(Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	written := func() int64 { return db.Stats().Written }
	const n = 2000
	var w0, w1 int64
	start := written()
	for i := range uint64(n) {
		if i == n/2 {
			w0 = written()
			t.Logf("first %d subscriptions: %.0f bytes written per PutSubscription", n/2, float64(w0-start)/(n/2))
		}
		if err := commitSync(db, PutSubscription{ClientID: "c", Sub: Subscription{Seq: i + 1, Filter: fmt.Sprintf("sensors/%d/#", i), QoS: 1}}); err != nil {
			t.Fatal(err)
		}
	}
	w1 = written()
	perOp := float64(w1-w0) / (n / 2)
	t.Logf("%d subscriptions: %.0f bytes written per PutSubscription over the last %d (file %d bytes)", n, perOp, n/2, fileSize(path))
	// A commit writes the pages it touched: the subs leaf and the pages
	// above it, the freelist and meta, about 7 pages. Rewriting the list
	// would add n * 20 bytes, 20 pages more on average.
	if perOp > 12*4096 {
		t.Errorf("%.0f bytes per subscription", perOp)
	}
	var seqs []uint64
	_ = db.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSessions).Bucket([]byte("c")).Bucket(keySubs).ForEach(func(k, _ []byte) error {
			seqs = append(seqs, binary.BigEndian.Uint64(k))
			return nil
		})
	})
	if len(seqs) != n {
		t.Errorf("%d subscriptions stored", len(seqs))
	}
}
