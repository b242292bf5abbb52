package persist_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/edged/edged/persist"
)

// TestWriteTestdataStore writes the store that a migration test reads
// (testdata/v<N>.db) with the code of this tree, so a later format can
// prove it migrates it: set EDGED_WRITE_TESTDATA to the file to write, for
// example
//
//	EDGED_WRITE_TESTDATA=$PWD/testdata/v2.db go test -run TestWriteTestdataStore ./persist
//
// It writes every kind of record: sessions with an owner, subscriptions,
// sent, released and waiting queue entries, inbound packet ids; a session
// and a retained message under hashed keys (long names); a bridge queue
// with dropped and deleted entries; and a damaged retained record set
// aside. testdata/v2.db was written by it at commit bcef4fd (format 2).
func TestWriteTestdataStore(t *testing.T) {
	out := os.Getenv("EDGED_WRITE_TESTDATA")
	if out == "" {
		t.Skip("EDGED_WRITE_TESTDATA not set")
	}
	path := filepath.Join(t.TempDir(), "edged.db")
	opts := persist.Options{Path: path}
	db, err := persist.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	long := "long-" + strings.Repeat("c", 1995)
	longTopic := "r/" + strings.Repeat("t", 1998)
	m := func(topic, p string, qos byte, retain bool, tm int64) persist.Message {
		return persist.Message{Topic: topic, Payload: []byte(p), QoS: qos, Retain: retain, Time: tm}
	}
	mustCommit(t, db,
		persist.SetOwner{ClientID: "alice", Owner: persist.Owner{Username: "alice", HasUsername: true}},
		persist.PutSession{ClientID: "alice", LastSeen: 1700000000},
		persist.PutSubscription{ClientID: "alice", Sub: persist.Subscription{Seq: 1, Filter: "a/#", QoS: 1}},
		persist.PutSubscription{ClientID: "alice", Sub: persist.Subscription{Seq: 5, Filter: "b/+", QoS: 2}},
		persist.PutSubscription{ClientID: "alice", Sub: persist.Subscription{Seq: 6, Filter: "gone", QoS: 0}},
		persist.DeleteSubscription{ClientID: "alice", Seq: 6},
		persist.PutMessage{ID: 1, Msg: m("a/1", "one", 1, false, 1000)},
		persist.Enqueue{ClientID: "alice", MsgID: 1, QoS: 1},
		persist.PutMessage{ID: 2, Msg: m("b/2", "two", 2, false, 2000)},
		persist.Enqueue{ClientID: "alice", MsgID: 2, QoS: 2},
		persist.PutMessage{ID: 3, Msg: m("a/3", "three", 1, true, 3000)},
		persist.Enqueue{ClientID: "alice", MsgID: 3, QoS: 1, Retain: true},
		persist.SetInflight{ClientID: "alice", MsgID: 1, PacketID: 7},
		persist.SetInflight{ClientID: "alice", MsgID: 2, PacketID: 8, Pubrel: true},
		persist.PutInbound{ClientID: "alice", PacketID: 42},
		persist.PutInbound{ClientID: "alice", PacketID: 43},
		persist.Enqueue{ClientID: "bob", MsgID: 1, QoS: 0},
		persist.PutSubscription{ClientID: "bob", Sub: persist.Subscription{Seq: 1, Filter: "#", QoS: 0}},
		persist.SetOwner{ClientID: long, Owner: persist.Owner{}},
		persist.PutSession{ClientID: long, LastSeen: 1700000001},
		persist.Enqueue{ClientID: long, MsgID: 3, QoS: 0},
		persist.PutRetained{Msg: m("r/x", "rx", 1, true, 4000)},
		persist.PutRetained{Msg: m(longTopic, "long retained", 0, true, 5000)},
		persist.PutRetained{Msg: m("r/damaged", "to be damaged", 0, true, 6000)},
	)
	db.Queue("cloud", persist.QueueLimits{MaxMessages: 3})
	for i, p := range []string{"e1", "e2", "e3", "e4"} {
		mustCommit(t, db, persist.QueueAppend{Queue: "cloud", Msg: m("q/"+p, p, byte(i%3), false, int64(7000+i))})
	}
	mustCommit(t, db, persist.QueueDelete{Queue: "cloud", Seq: 3})
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// Damage the retained record of r/damaged; Load sets it aside.
	b, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("retained")).Put([]byte("r/damaged"), []byte("garbage, no checksum"))
	}); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = persist.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Load(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	notes, err := persist.CheckReport(path)
	if err != nil || len(notes) != 1 {
		t.Fatalf("the written store: %q, %v", notes, err)
	}
	if _, _, err := persist.Compact(path); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s (%d bytes)", out, len(raw))
}
