package persist_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/edged/edged/persist"
)

// dumpRecords returns every value of the bbolt file at path by its bucket
// path and key, and every bucket's sequence, as stored (checksums
// included).
func dumpRecords(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	out := make(map[string]string)
	var walk func(prefix string, bk *bolt.Bucket)
	walk = func(prefix string, bk *bolt.Bucket) {
		out[prefix+" seq"] = fmt.Sprint(bk.Sequence())
		_ = bk.ForEach(func(k, v []byte) error {
			p := fmt.Sprintf("%s/%x", prefix, k)
			if v == nil {
				walk(p, bk.Bucket(k))
			} else {
				out[p] = string(v)
			}
			return nil
		})
	}
	_ = b.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, bk *bolt.Bucket) error {
			walk(string(name), bk)
			return nil
		})
	})
	return out
}

// A store written by format 2 (testdata/v2.db, written by
// TestWriteTestdataStore at commit bcef4fd) is migrated to format 3 at
// Open in one transaction that changes nothing but the version: every
// record (sessions, owners, subscriptions, queues, inflight and inbound
// state, retained messages, bridge queues, the damaged bucket) is the
// same byte for byte, its checksum included, loads with the MQTT 5.0
// fields zero, and takes 5.0 fields afterwards.
func TestMigrateV2(t *testing.T) {
	src, err := os.ReadFile("testdata/v2.db")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "edged.db")
	if err := os.WriteFile(path, src, 0o600); err != nil {
		t.Fatal(err)
	}
	notes, err := persist.CheckReport(path)
	if err != nil || len(notes) != 2 || !strings.Contains(notes[0], "format version 2: edged migrates it to 3") ||
		!strings.Contains(notes[1], `retained "r/damaged"`) {
		t.Fatalf("Check of the v2 file: %q, %v", notes, err)
	}
	before := dumpRecords(t, path)
	if len(before) < 40 {
		t.Fatalf("the v2 file holds only %d records and buckets", len(before))
	}

	var log logBuf
	opts := persist.Options{Path: path, Logger: log.logger()}
	db := mustOpenStore(t, opts)
	if !strings.Contains(log.String(), "from_format=2 to_format=3") {
		t.Errorf("migration not logged:\n%s", log.String())
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	after := dumpRecords(t, path)
	for k, v := range before {
		w, ok := after[k]
		switch {
		case k == "meta/"+fmt.Sprintf("%x", "format"):
			if !bytes.Equal([]byte(v), []byte{0, 0, 0, 0, 0, 0, 0, 2}) || !bytes.Equal([]byte(w), []byte{0, 0, 0, 0, 0, 0, 0, 3}) {
				t.Errorf("format %x → %x", v, w)
			}
		case !ok:
			t.Errorf("%s lost by the migration", k)
		case v != w:
			t.Errorf("%s changed by the migration: %x → %x", k, v, w)
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			t.Errorf("%s added by the migration", k)
		}
	}
	notes, err = persist.CheckReport(path)
	if err != nil || len(notes) != 1 || !strings.Contains(notes[0], `retained "r/damaged"`) {
		t.Fatalf("Check after the migration: %q, %v", notes, err)
	}

	db = mustOpenStore(t, opts)
	long := "long-" + strings.Repeat("c", 1995)
	longTopic := "r/" + strings.Repeat("t", 1998)
	m := func(topic, p string, qos byte, retain bool, tm int64) string {
		return fmtMsg(persist.Message{Topic: topic, Payload: []byte(p), QoS: qos, Retain: retain, Time: tm})
	}
	want := `session "alice" subs=[{1 a/# 1} {5 b/+ 2}] last=1700000000 inbound=[42 43]` + "\n" +
		"  q id=1 qos=1 pid=7 rel=false msg=" + m("a/1", "one", 1, false, 1000) + "\n" +
		"  q id=2 qos=2 pid=8 rel=true msg=" + m("b/2", "two", 2, false, 2000) + "\n" +
		"  q id=3 qos=1 pid=0 rel=false retain msg=" + m("a/3", "three", 1, true, 3000) + "\n" +
		`session "bob" subs=[{1 # 0}] last=0 inbound=[]` + "\n" +
		"  q id=1 qos=0 pid=0 rel=false msg=" + m("a/1", "one", 1, false, 1000) + "\n" +
		fmt.Sprintf("session %q subs=[] last=1700000001 inbound=[]\n", long) +
		"  q id=3 qos=0 pid=0 rel=false msg=" + m("a/3", "three", 1, true, 3000) + "\n" +
		"retained " + m(longTopic, "long retained", 0, true, 5000) + "\n" +
		"retained " + m("r/x", "rx", 1, true, 4000) + "\n"
	snap := mustLoad(t, db)
	if got := fmtSnap(snap); got != want {
		t.Errorf("after migration:\n%.3000s\nwant:\n%.3000s", got, want)
	}
	owners := make(map[string]*persist.Owner)
	for _, s := range snap.Sessions {
		owners[s.ClientID] = s.Owner
		if s.Version != 0 || s.ExpiryInterval != 0 || s.Will != nil {
			t.Errorf("session %.20q: version %d, expiry %d, will %v", s.ClientID, s.Version, s.ExpiryInterval, s.Will)
		}
		if _, ok := s.ExpiresAfter(); ok {
			t.Errorf("session %.20q of format 2 expires", s.ClientID)
		}
		for _, q := range s.Queue {
			if q.SubIDs != nil || q.Msg.Properties != nil || q.Msg.Expiry != 0 {
				t.Errorf("session %.20q: queued %+v", s.ClientID, q)
			}
		}
	}
	if got := fmtOwners(owners); fmt.Sprint(got) != fmt.Sprint(map[string]string{"alice": "user alice", "bob": "unknown", long: "anonymous"}) {
		t.Errorf("owners after migration: %.200v", got)
	}
	if snap.NextMsgID != 4 {
		t.Errorf("NextMsgID = %d", snap.NextMsgID)
	}
	if es, _ := db.ReadQueue("cloud", 0, 10); fmtEntries(es) != "2:"+m("q/e2", "e2", 1, false, 7001)+" 4:"+m("q/e4", "e4", 0, false, 7003)+" " {
		t.Errorf("queue after migration: %s", fmtEntries(es))
	}
	if st := db.QueueStats("cloud"); st.Len != 2 || st.Dropped != 1 || st.Bytes != int64(2*(4+2)) {
		t.Errorf("queue stats %+v", st)
	}

	// The migrated records take MQTT 5.0 fields and keep working.
	v5 := persist.Message{Topic: "a/5", Payload: []byte("five"), QoS: 1, Time: 8000, Properties: []byte("\x03\x00\x04text"), Expiry: 1 << 62}
	mustCommit(t, db,
		persist.Dequeue{ClientID: "alice", MsgID: 1}, persist.Dequeue{ClientID: "bob", MsgID: 1},
		persist.PutSession{ClientID: "alice", LastSeen: 1700000002, Version: 5, ExpiryInterval: 3600},
		persist.PutSubscription{ClientID: "alice", Sub: persist.Subscription{Seq: 5, Filter: "b/+", QoS: 2, NoLocal: true, RetainHandling: 1, ID: 9}},
		persist.SetWill{ClientID: "bob", Will: &persist.Will{Msg: persist.Message{Topic: "bye/bob", Payload: []byte("gone"), QoS: 1}, Due: 9000}},
		persist.PutMessage{ID: 4, Msg: v5}, persist.Enqueue{ClientID: long, MsgID: 4, QoS: 1, SubIDs: []uint32{9}},
		persist.PutRetained{Msg: persist.Message{Topic: "r/x", Payload: []byte("rx5"), QoS: 1, Retain: true, Properties: []byte{}}},
		persist.QueueAppend{Queue: "cloud", Msg: v5})
	db = reopen(t, db, opts)
	snap = mustLoad(t, db)
	want = `session "alice" subs=[{1 a/# 1} {5 b/+ 2 nltrue rapfalse rh1 id9}] last=1700000002 inbound=[42 43] v5 expiry=3600` + "\n" +
		"  q id=2 qos=2 pid=8 rel=true msg=" + m("b/2", "two", 2, false, 2000) + "\n" +
		"  q id=3 qos=1 pid=0 rel=false retain msg=" + m("a/3", "three", 1, true, 3000) + "\n" +
		`session "bob" subs=[{1 # 0}] last=0 inbound=[] will={"bye/bob" "gone" q1 rfalse t0} due=9000` + "\n" +
		fmt.Sprintf("session %q subs=[] last=1700000001 inbound=[]\n", long) +
		"  q id=3 qos=0 pid=0 rel=false msg=" + m("a/3", "three", 1, true, 3000) + "\n" +
		"  q id=4 qos=1 pid=0 rel=false subids=[9] msg=" + fmtMsg(v5) + "\n" +
		"retained " + m(longTopic, "long retained", 0, true, 5000) + "\n" +
		`retained {"r/x" "rx5" q1 rtrue t0 p""}` + "\n"
	if got := fmtSnap(snap); got != want {
		t.Errorf("after 5.0 commits on migrated records:\n%.3000s\nwant:\n%.3000s", got, want)
	}
	if es, _ := db.ReadQueue("cloud", 4, 10); len(es) != 1 || es[0].Seq != 5 || fmtMsg(es[0].Msg) != fmtMsg(v5) {
		t.Errorf("queue after migration: %s", fmtEntries(es))
	}
}
