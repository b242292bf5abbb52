package persist

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// With every long name hashing alike, nameKey probes: each name gets its
// own key, lookups compare the stored name, and deleting one leaves the
// others reachable (no tombstones needed: a lookup scans the whole hash
// prefix).
func TestNameKeyCollisions(t *testing.T) {
	saved := nameHash
	nameHash = func(string) [hashLen]byte { return [hashLen]byte{1, 2, 3} }
	t.Cleanup(func() { nameHash = saved })

	path := filepath.Join(t.TempDir(), "edged.db")
	db, err := Open(Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	name := func(i int) string { return fmt.Sprintf("%d/%s", i, strings.Repeat("x", maxRawName)) }
	var ops []Op
	for i := range 5 {
		ops = append(ops, PutSession{ClientID: name(i), LastSeen: int64(i + 1)},
			PutRetained{Msg: Message{Topic: name(i), Payload: []byte{byte(i)}}},
			QueueAppend{Queue: name(i), Msg: Message{Topic: "t", Payload: []byte{byte(i)}}})
	}
	ops = append(ops, DeleteSession{ClientID: name(1)}, DeleteRetained{Topic: name(1)},
		PutSession{ClientID: name(3), LastSeen: 33}, PutRetained{Msg: Message{Topic: name(3), Payload: []byte("again")}},
		PutSession{ClientID: name(5), LastSeen: 6}) // takes the freed probe slot
	if err := commitSync(db, ops...); err != nil {
		t.Fatal(err)
	}
	snap, err := db.Load()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range snap.Sessions {
		got = append(got, fmt.Sprintf("%s=%d", s.ClientID[:2], s.LastSeen))
	}
	for _, m := range snap.Retained {
		got = append(got, fmt.Sprintf("%s=%q", m.Topic[:2], m.Payload))
	}
	want := `[0/=1 2/=3 3/=33 4/=5 5/=6 0/="\x00" 2/="\x02" 3/="again" 4/="\x04"]`
	if fmt.Sprint(got) != want {
		t.Errorf("got %v\nwant %s", got, want)
	}
	for i := range 5 {
		if es, err := db.ReadQueue(name(i), 0, 5); err != nil || len(es) != 1 || es[0].Msg.Payload[0] != byte(i) {
			t.Errorf("queue %d: %v %v", i, es, err)
		}
	}
	_ = db.bolt.View(func(tx *bolt.Tx) error {
		n := 0
		_ = tx.Bucket(bucketSessions).ForEach(func(k, _ []byte) error {
			if len(k) != 1+hashLen+1 || k[0] != longKeyTag {
				t.Errorf("session key %x", k)
			}
			n++
			return nil
		})
		if n != 5 {
			t.Errorf("%d session buckets", n)
		}
		return nil
	})
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := Check(path); err != nil {
		t.Errorf("Check: %v", err)
	}
}

// A hashed key whose stored name does not hash to it (a damaged or
// misplaced name record) is reported, never taken for another name.
func TestNameOfKeyMismatch(t *testing.T) {
	long := strings.Repeat("y", maxRawName+1)
	k := append(hashPrefix(long), 0)
	if n, err := nameOfKey(k, func() (string, error) { return long, nil }); err != nil || n != long {
		t.Errorf("nameOfKey = %.10q, %v", n, err)
	}
	if _, err := nameOfKey(k, func() (string, error) { return long + "z", nil }); err == nil {
		t.Error("a name that does not hash to its key was accepted")
	}
	if _, err := nameOfKey([]byte(long), nil); err == nil {
		t.Error("a raw key longer than maxRawName was accepted")
	}
}

// A session under a hashed key whose name record is damaged cannot be
// loaded (its client id is unknown): it is set aside with its queue, and
// the messages it shared keep their other references.
func TestDamagedSessionNameSetAside(t *testing.T) {
	path := filepath.Join(t.TempDir(), "edged.db")
	db, err := Open(Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("n", maxRawName+1)
	if err := commitSync(db, PutMessage{ID: 1, Msg: Message{Topic: "t", Payload: []byte("shared")}},
		Enqueue{ClientID: long, MsgID: 1, QoS: 1}, Enqueue{ClientID: "other", MsgID: 1, QoS: 1}); err != nil {
		t.Fatal(err)
	}
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		k, sb, err := findBucket(tx.Bucket(bucketSessions), long)
		if sb == nil || err != nil {
			return fmt.Errorf("session %x not found: %v", k, err)
		}
		return sb.Put(keyName, []byte("damaged name"))
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = db.Close()
	if err := Check(path); err == nil {
		t.Fatal("Check: damaged session name not reported")
	}
	db, err = Open(Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := db.Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Sessions) != 1 || snap.Sessions[0].ClientID != "other" || snap.Sessions[0].Waiting != 1 {
		t.Fatalf("Load: %+v", snap.Sessions)
	}
	_ = db.Close()
	notes, err := CheckReport(path)
	if err != nil || len(notes) != 1 || !strings.Contains(notes[0], "name unreadable") {
		t.Fatalf("CheckReport after setting aside: %q, %v", notes, err)
	}
}
