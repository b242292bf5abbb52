package persist

import (
	"bytes"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// The delete Load commits for an expired retained message removes the
// record Load read, not one a PutRetained wrote for the topic since.
func TestExpiredRetainedDeleteKeepsNewer(t *testing.T) {
	db, err := Open(Options{Path: filepath.Join(t.TempDir(), "edged.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	commit := func(ops ...Op) {
		t.Helper()
		ch := make(chan error, 1)
		db.Commit(ops, func(err error) { ch <- err })
		if err := <-ch; err != nil {
			t.Fatal(err)
		}
	}
	raw := func(topic string) (v []byte) {
		_ = db.bolt.View(func(tx *bolt.Tx) error { v = bytes.Clone(tx.Bucket(bucketRetained).Get([]byte(topic))); return nil })
		return v
	}
	commit(PutRetained{Msg: Message{Topic: "r/a", Payload: []byte("old"), Expiry: 1}},
		PutRetained{Msg: Message{Topic: "r/b", Payload: []byte("old"), Expiry: 1}})
	oldA, oldB := raw("r/a"), raw("r/b")
	commit(PutRetained{Msg: Message{Topic: "r/a", Payload: []byte("new")}})
	commit(expiredRetainedOp{keys: [][]byte{[]byte("r/a"), []byte("r/b")}, raws: [][]byte{oldA, oldB}})
	if raw("r/a") == nil || raw("r/b") != nil {
		t.Errorf("r/a %q (the newer message must stay), r/b %q (must go)", raw("r/a"), raw("r/b"))
	}
}
