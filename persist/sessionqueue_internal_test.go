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
// bucket, no checksums) and checks that Open moves the subscriptions to the
// subs bucket, counts the queue, seals it all, and that Check passes on the
// result.
func TestMigrateFormat1Sessions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "edged.db")
	b, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	legacy := []Subscription{{Filter: "a/#", QoS: 1}, {Filter: "b/" + strings.Repeat("x", 40000), QoS: 2}}
	err = b.Update(func(tx *bolt.Tx) error {
		for _, name := range topBuckets {
			if _, err := tx.CreateBucket(name); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		if err := meta.Put(keyFormat, u64key(1)); err != nil {
			return err
		}
		if err := meta.Put(keyNextMsgID, u64key(6)); err != nil {
			return err
		}
		sb, err := tx.Bucket(bucketSessions).CreateBucket([]byte("old"))
		if err != nil {
			return err
		}
		if _, err := sb.CreateBucket(keyInbound); err != nil {
			return err
		}
		q, err := sb.CreateBucket(keyQueue)
		if err != nil {
			return err
		}
		if err := sb.Put(keyInfo, encodeSession(&sessionInfo{subs: legacy, lastSeen: 77})); err != nil {
			return err
		}
		for i := range uint64(5) {
			k := u64key(i + 1)
			m := Message{Topic: "t", Payload: []byte(strings.Repeat("p", int(i)))}
			if err := tx.Bucket(bucketMessages).Put(k, encodeMessage(&m)); err != nil {
				return err
			}
			if err := tx.Bucket(bucketRefs).Put(k, u64key(1)); err != nil {
				return err
			}
			ref := Queued{QoS: 1}
			if i == 0 {
				ref.PacketID = 9
			}
			if err := q.Put(k, encodeRef(&ref)); err != nil {
				return err
			}
		}
		return nil
	})
	b.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := Check(path); err != nil {
		t.Fatalf("Check of a format 1 file: %v", err)
	}

	db, err := Open(Options{Path: path})
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
		return putRec(tx.Bucket(bucketSessions).Bucket([]byte("c")), keyStats, st.encode())
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

// TestReadSessionQueueSkipsDamage damages a queued ref and a queued
// message in the part of a session queue Load does not read: the lazy
// reader skips both (not counted against max, so the queue never stalls on
// them), reports them, and sets them aside; afterwards the session's stats
// are counted again, Load's Waiting matches what is stored and Check is
// clean but for the notes.
func TestReadSessionQueueSkipsDamage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "edged.db")
	db, err := Open(Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	var ops []Op
	for i := range uint64(5) {
		ops = append(ops, PutMessage{ID: i + 1, Msg: Message{Topic: "t", Payload: []byte(fmt.Sprint("payload-", i+1))}},
			Enqueue{ClientID: "c", MsgID: i + 1, QoS: 1})
	}
	if err := commitSync(db, ops...); err != nil {
		t.Fatal(err)
	}
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		_, sb, err := findBucket(tx.Bucket(bucketSessions), "c")
		if sb == nil || err != nil {
			return fmt.Errorf("session not found: %v", err)
		}
		if err := sb.Bucket(keyQueue).Put(u64key(3), []byte("garbage!")); err != nil {
			return err
		}
		m := tx.Bucket(bucketMessages)
		v := append([]byte(nil), m.Get(u64key(4))...)
		v[len(v)-6] ^= 0xFF // in the payload
		return m.Put(u64key(4), v)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := Check(path); err == nil {
		t.Fatal("Check: damage not reported")
	}

	db, err = Open(Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := db.Load()
	if err != nil || len(snap.Sessions) != 1 || snap.Sessions[0].Waiting != 5 {
		t.Fatalf("Load: %+v, %v", snap, err)
	}
	ids := func(qs []Queued) (out []uint64) {
		for _, q := range qs {
			out = append(out, q.MsgID)
		}
		return out
	}
	qs, err := db.ReadSessionQueue("c", 0, 10)
	if err != nil || fmt.Sprint(ids(qs)) != "[1 2 5]" {
		t.Fatalf("ReadSessionQueue: %v, %v", ids(qs), err)
	}
	for _, q := range qs {
		if q.Msg.Topic != "t" || string(q.Msg.Payload) != fmt.Sprint("payload-", q.MsgID) {
			t.Errorf("entry %d: %q", q.MsgID, q.Msg.Payload)
		}
	}
	// As the broker reads it, a window at a time: the damage costs no
	// window and does not end the queue early.
	if qs, _ := db.ReadSessionQueue("c", 2, 1); fmt.Sprint(ids(qs)) != "[5]" {
		t.Errorf("read past the damage: %v", ids(qs))
	}
	if n := db.Stats().Damaged; n != 2 {
		t.Errorf("Damaged = %d, want 2", n)
	}
	if err := db.Close(); err != nil { // applies the set-aside commit
		t.Fatal(err)
	}
	notes, err := CheckReport(path)
	if err != nil || len(notes) != 2 {
		t.Fatalf("CheckReport after setting aside: %q, %v", notes, err)
	}

	db, err = Open(Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	snap, err = db.Load()
	if err != nil || snap.Sessions[0].Waiting != 3 || snap.Sessions[0].WaitingBytes != 3*int64(len("t")+len("payload-1")) {
		t.Fatalf("Load after setting aside: %+v, %v", snap.Sessions, err)
	}
	if qs, _ := db.ReadSessionQueue("c", 0, 10); fmt.Sprint(ids(qs)) != "[1 2 5]" || db.Stats().Damaged != 0 {
		t.Errorf("after setting aside: %v, Damaged = %d", ids(qs), db.Stats().Damaged)
	}
}
