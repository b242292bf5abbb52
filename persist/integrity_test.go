package persist_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/edged/edged/persist"
	bolt "go.etcd.io/bbolt"
)

// logBuf collects a store's log lines.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuf) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

// Names longer than bbolt's 32 KiB key limit, up to MQTT's 65,535 bytes,
// are stored (under hashed keys) and survive a restart, in both stores;
// before format 2 the ops were skipped after being acknowledged.
func TestLongNames(t *testing.T) {
	client := "c/" + strings.Repeat("c", 40000)
	topic := "t/" + strings.Repeat("t", 40000)
	longest := strings.Repeat("m", 65535)
	queue := "q/" + strings.Repeat("q", 40000)
	ops := []persist.Op{
		persist.PutSession{ClientID: client, LastSeen: 7},
		persist.PutSubscription{ClientID: client, Sub: persist.Subscription{Seq: 1, Filter: topic, QoS: 1}},
		persist.SetOwner{ClientID: client, Owner: persist.Owner{Username: "u", HasUsername: true}},
		persist.PutMessage{ID: 1, Msg: msg(topic, "queued")},
		persist.Enqueue{ClientID: client, MsgID: 1, QoS: 1},
		persist.Enqueue{ClientID: longest, MsgID: 1, QoS: 1},
		persist.SetInflight{ClientID: client, MsgID: 1, PacketID: 9},
		persist.PutInbound{ClientID: client, PacketID: 3},
		persist.PutRetained{Msg: msg(topic, "retained")},
		persist.PutRetained{Msg: msg(longest, "longest")},
		persist.PutRetained{Msg: msg("short", "s")},
		persist.QueueAppend{Queue: queue, Msg: msg(topic, "fifo")},
	}
	want := func(t *testing.T, s persist.Store) {
		t.Helper()
		snap := mustLoad(t, s)
		if len(snap.Sessions) != 2 || snap.Sessions[0].ClientID != client || snap.Sessions[1].ClientID != longest {
			t.Fatalf("sessions: %d", len(snap.Sessions))
		}
		ss := snap.Sessions[0]
		if len(ss.Subs) != 1 || ss.Subs[0].Filter != topic || ss.LastSeen != 7 || len(ss.Queue) != 1 ||
			ss.Queue[0].Msg.Topic != topic || ss.Queue[0].PacketID != 9 || len(ss.Inbound) != 1 ||
			ss.Owner == nil || ss.Owner.Username != "u" {
			t.Errorf("long session not loaded whole")
		}
		if len(snap.Retained) != 3 || snap.Retained[0].Topic != longest || snap.Retained[1].Topic != "short" ||
			snap.Retained[2].Topic != topic || string(snap.Retained[2].Payload) != "retained" {
			t.Errorf("retained: %d", len(snap.Retained))
		}
		qs := s.(queueStore)
		if es, err := qs.ReadQueue(queue, 0, 10); err != nil || len(es) != 1 || string(es[0].Msg.Payload) != "fifo" {
			t.Errorf("ReadQueue: %v %v", es, err)
		}
	}
	t.Run("memory", func(t *testing.T) {
		m := persist.NewMemory()
		defer m.Close()
		mustCommit(t, m, ops...)
		want(t, m)
	})
	t.Run("db", func(t *testing.T) {
		opts := persist.Options{Path: filepath.Join(t.TempDir(), "edged.db")}
		db := mustOpenStore(t, opts)
		mustCommit(t, db, ops...)
		want(t, db)
		db = reopen(t, db, opts)
		want(t, db)
		// Replace, delete and dequeue by long name.
		mustCommit(t, db, persist.PutRetained{Msg: msg(topic, "again")}, persist.DeleteRetained{Topic: longest},
			persist.Dequeue{ClientID: client, MsgID: 1}, persist.DeleteSession{ClientID: longest},
			persist.QueueDelete{Queue: queue, Seq: 1})
		db = reopen(t, db, opts)
		snap := mustLoad(t, db)
		if len(snap.Sessions) != 1 || len(snap.Sessions[0].Queue) != 0 || len(snap.Retained) != 2 ||
			string(snap.Retained[1].Payload) != "again" || snap.Retained[0].Topic != "short" {
			t.Errorf("after replace and delete: %d sessions, %d retained", len(snap.Sessions), len(snap.Retained))
		}
		if st := db.QueueStats(queue); st.Len != 0 {
			t.Errorf("queue stats %+v", st)
		}
	})
}

// An existing store file that is empty, or shorter than two pages, is
// damage: Open refuses it with the advice of any damage and never starts
// empty in its place. A missing file is created.
func TestEmptyFileRefused(t *testing.T) {
	for _, size := range []int{0, 100, 4096} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "edged.db")
			if err := os.WriteFile(path, make([]byte, size), 0o600); err != nil {
				t.Fatal(err)
			}
			db, err := persist.Open(persist.Options{Path: path})
			if err == nil {
				db.Close()
				t.Fatal("Open started on an empty file")
			}
			if !errors.Is(err, persist.ErrCorrupt) || !strings.Contains(err.Error(), "edged db check") {
				t.Errorf("Open: %v, want ErrCorrupt with advice", err)
			}
			if err := persist.Check(path); !errors.Is(err, persist.ErrCorrupt) {
				t.Errorf("Check: %v, want ErrCorrupt", err)
			}
			if fi, _ := os.Stat(path); fi.Size() != int64(size) {
				t.Errorf("the file was changed to %d bytes", fi.Size())
			}
		})
	}
	path := filepath.Join(t.TempDir(), "new.db")
	db := mustOpenStore(t, persist.Options{Path: path})
	mustCommit(t, db, persist.PutRetained{Msg: msg("a", "b")})
	if _, err := os.Stat(path + ".new"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary file left behind: %v", err)
	}
}

// metaTxid returns the transaction id of meta page i of a bbolt file.
func metaTxid(b []byte, ps, i int) uint64 {
	return binary.NativeEndian.Uint64(b[i*ps+16+48:])
}

// A damaged newest meta page makes bbolt fall back one transaction. Open
// starts (a torn meta write after a power loss looks the same), logs which
// transaction was lost, and Check reports it until a commit rewrites the
// page; a damaged older meta page loses nothing and is reported as such.
func TestSilentRollbackDetected(t *testing.T) {
	for _, which := range []string{"newest", "older"} {
		t.Run(which, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "edged.db")
			db := mustOpenStore(t, persist.Options{Path: path})
			mustCommit(t, db, persist.PutRetained{Msg: msg("first", "1")})
			mustCommit(t, db, persist.PutRetained{Msg: msg("second", "2")})
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(path)
			ps := os.Getpagesize()
			newest := 0
			if metaTxid(b, ps, 1) > metaTxid(b, ps, 0) {
				newest = 1
			}
			page := newest
			if which == "older" {
				page = 1 - newest
			}
			lost := metaTxid(b, ps, newest)
			// Damage the root page id field: the checksum no longer
			// matches, the txid field stays readable.
			b[page*ps+16+16] ^= 0x5A
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			err := persist.Check(path)
			if which == "newest" {
				if !errors.Is(err, persist.ErrCorrupt) || !strings.Contains(err.Error(), fmt.Sprintf("transaction %d, the newest, is lost", lost)) {
					t.Errorf("Check: %v, want the lost transaction %d reported", err, lost)
				}
			} else if !errors.Is(err, persist.ErrCorrupt) || !strings.Contains(err.Error(), "is intact") {
				t.Errorf("Check: %v", err)
			}
			var log logBuf
			db, err = persist.Open(persist.Options{Path: path, Logger: log.logger()})
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer db.Close()
			snap := mustLoad(t, db)
			if which == "newest" {
				if !strings.Contains(log.String(), "level=ERROR") || !strings.Contains(log.String(), fmt.Sprintf("lost_txid=%d", lost)) {
					t.Errorf("no error about transaction %d in the log:\n%s", lost, log.String())
				}
				if len(snap.Retained) != 1 {
					t.Errorf("%d retained: the rollback did not happen as the test expects", len(snap.Retained))
				}
			} else if !strings.Contains(log.String(), "level=WARN") || len(snap.Retained) != 2 {
				t.Errorf("older meta page damaged: %d retained, log:\n%s", len(snap.Retained), log.String())
			}
			// Open's first commit rewrote the damaged page; Check notes
			// the rollback from then on.
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			notes, err := persist.CheckReport(path)
			if err != nil {
				t.Fatalf("Check after the restart: %v", err)
			}
			noted := strings.Contains(strings.Join(notes, "\n"), fmt.Sprintf("after a rollback: meta page %d is damaged", page))
			if noted != (which == "newest") {
				t.Errorf("notes %q", notes)
			}
		})
	}
}

// writeRecordStore writes one record of every kind, each holding a unique
// marker string, and returns the path and the markers.
func writeRecordStore(t *testing.T) (string, map[string]string) {
	path := filepath.Join(t.TempDir(), "edged.db")
	db, err := persist.Open(persist.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	marks := map[string]string{
		"queued":   "QUEUED-PAYLOAD-" + strings.Repeat("q", 64),
		"retained": "RETAINED-PAYLOAD-" + strings.Repeat("r", 64),
		"entry":    "ENTRY-PAYLOAD-" + strings.Repeat("e", 64),
		"sub":      "FILTER-" + strings.Repeat("f", 64),
		"owner":    "OWNER-" + strings.Repeat("o", 64),
	}
	mustCommit(t, db,
		persist.PutSession{ClientID: "alice", LastSeen: 5},
		persist.PutSubscription{ClientID: "alice", Sub: persist.Subscription{Seq: 1, Filter: marks["sub"], QoS: 1}},
		persist.SetOwner{ClientID: "alice", Owner: persist.Owner{Username: marks["owner"], HasUsername: true}},
		persist.PutSession{ClientID: "bob", LastSeen: 5},
		persist.PutMessage{ID: 1, Msg: msg("a", marks["queued"])},
		persist.Enqueue{ClientID: "alice", MsgID: 1, QoS: 1},
		persist.PutMessage{ID: 2, Msg: msg("a", "intact")},
		persist.Enqueue{ClientID: "bob", MsgID: 2, QoS: 1},
		persist.PutRetained{Msg: msg("r/1", marks["retained"])},
		persist.PutRetained{Msg: msg("r/2", "intact")},
		persist.QueueAppend{Queue: "cloud", Msg: msg("q", marks["entry"])},
		persist.QueueAppend{Queue: "cloud", Msg: msg("q", "intact")},
	)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return path, marks
}

// Damage inside a record (here 8 bytes over a payload or a filter, which
// bbolt cannot notice) is caught by the record's checksum: the record is
// set aside with an error naming its session, topic or queue, never
// delivered as if whole, and Check lists it. The other records load.
// Once set aside, the store is sound again and Check notes what was set
// aside.
func TestPayloadCorruptionDetected(t *testing.T) {
	for _, kind := range []string{"queued", "retained", "entry", "sub", "owner"} {
		t.Run(kind, func(t *testing.T) {
			path, marks := writeRecordStore(t)
			b, _ := os.ReadFile(path)
			i := bytes.Index(b, []byte(marks[kind]))
			if i < 0 {
				t.Fatal("marker not found in the file")
			}
			copy(b[i+20:], "GARBAGE!")
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			where := map[string]string{"queued": `session \"alice\": message 1`, "retained": `retained \"r/1\"`,
				"entry": `queue \"cloud\": entry`, "sub": `session \"alice\": subscription`,
				"owner": `session \"alice\": owner`}[kind]
			if err := persist.Check(path); !errors.Is(err, persist.ErrCorrupt) ||
				!strings.Contains(err.Error(), strings.ReplaceAll(strings.Split(where, ":")[0], `\"`, `"`)) {
				t.Errorf("Check: %v, want the damaged %s reported", err, kind)
			}
			var log logBuf
			opts := persist.Options{Path: path, Logger: log.logger()}
			db, err := persist.Open(opts)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			snap := mustLoad(t, db)
			es, err := db.ReadQueue("cloud", 0, 10)
			if err != nil {
				t.Fatal(err)
			}
			all := fmtSnap(snap) + fmtEntries(es)
			if strings.Contains(all, "GARBAGE!") {
				t.Fatalf("damaged record delivered:\n%s", all)
			}
			if strings.Count(all, "intact") != 3 {
				t.Errorf("sound records lost:\n%s", all)
			}
			if !strings.Contains(log.String(), where) || db.Stats().Damaged != 1 {
				t.Errorf("Damaged = %d, log does not name %s:\n%s", db.Stats().Damaged, where, log.String())
			}
			if kind == "sub" && (len(snap.Sessions) != 2 || len(snap.Sessions[0].Queue) != 1 || snap.Sessions[0].Subs != nil) {
				t.Errorf("session with a damaged subscription: want its queue without it:\n%s", all)
			}
			if kind == "owner" && (len(snap.Sessions) != 2 || len(snap.Sessions[0].Queue) != 1 || snap.Sessions[0].Owner != nil) {
				t.Errorf("session with a damaged owner: want its queue, no owner:\n%s", all)
			}
			if kind != "owner" && (len(snap.Sessions) != 2 || snap.Sessions[0].Owner == nil || snap.Sessions[0].Owner.Username != marks["owner"]) {
				t.Errorf("owner lost:\n%s", all)
			}

			// Set aside: sound again, and noted.
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			notes, err := persist.CheckReport(path)
			if err != nil || len(notes) != 1 || !strings.Contains(notes[0], "set aside as damaged") ||
				!strings.Contains(notes[0], strings.ReplaceAll(strings.Split(where, ":")[0], `\"`, `"`)) {
				t.Errorf("CheckReport after setting aside: %q, %v", notes, err)
			}
			db = mustOpenStore(t, opts)
			snap = mustLoad(t, db)
			es, _ = db.ReadQueue("cloud", 0, 10)
			if again := fmtSnap(snap) + fmtEntries(es); strings.Count(again, "intact") != 3 || db.Stats().Damaged != 0 {
				t.Errorf("after setting aside: Damaged = %d\n%s", db.Stats().Damaged, again)
			}
		})
	}
}

// The experiment: random 8-byte overwrites of record bytes (here
// within the values, where they leave bbolt's page structure sound). Not
// one damaged payload is delivered, and Check reports every case.
func TestRandomRecordDamage(t *testing.T) {
	path, _ := writeRecordStore(t)
	orig, _ := os.ReadFile(path)
	// the spans of the record values in the file
	var spans [][2]int
	for _, s := range []string{"QUEUED-PAYLOAD-" + strings.Repeat("q", 64), "RETAINED-PAYLOAD-" + strings.Repeat("r", 64),
		"ENTRY-PAYLOAD-" + strings.Repeat("e", 64), "FILTER-" + strings.Repeat("f", 64)} {
		for off := 0; ; {
			i := bytes.Index(orig[off:], []byte(s))
			if i < 0 {
				break
			}
			spans = append(spans, [2]int{off + i, off + i + len(s)})
			off += i + len(s)
		}
	}
	r := rand.New(rand.NewPCG(9, 24))
	for n := range 24 {
		b := bytes.Clone(orig)
		sp := spans[r.IntN(len(spans))]
		at := sp[0] + r.IntN(sp[1]-sp[0]-8)
		for j := range 8 {
			b[at+j] ^= byte(1 + r.IntN(255))
		}
		p := filepath.Join(t.TempDir(), "d.db")
		_ = os.WriteFile(p, b, 0o600)
		if err := persist.Check(p); !errors.Is(err, persist.ErrCorrupt) {
			t.Errorf("case %d: Check: %v", n, err)
		}
		db, err := persist.Open(persist.Options{Path: p})
		if err != nil {
			t.Fatalf("case %d: Open: %v", n, err)
		}
		snap := mustLoad(t, db)
		es, _ := db.ReadQueue("cloud", 0, 10)
		for _, m := range append(snap.Retained, entryMsgs(es)...) {
			checkWhole(t, n, m)
		}
		for _, s := range snap.Sessions {
			for _, q := range s.Queue {
				checkWhole(t, n, q.Msg)
			}
		}
		if db.Stats().Damaged == 0 {
			t.Errorf("case %d: no damage counted", n)
		}
		_ = db.Close()
		if notes, err := persist.CheckReport(p); err != nil || len(notes) == 0 {
			t.Errorf("case %d: after setting aside: %q, %v", n, notes, err)
		}
	}
}

func entryMsgs(es []persist.Entry) []persist.Message {
	var ms []persist.Message
	for _, e := range es {
		ms = append(ms, e.Msg)
	}
	return ms
}

// checkWhole fails unless m is one of writeRecordStore's messages.
func checkWhole(t *testing.T, n int, m persist.Message) {
	t.Helper()
	p := string(m.Payload)
	if p == "intact" || p == "QUEUED-PAYLOAD-"+strings.Repeat("q", 64) || p == "RETAINED-PAYLOAD-"+strings.Repeat("r", 64) ||
		p == "ENTRY-PAYLOAD-"+strings.Repeat("e", 64) {
		return
	}
	t.Errorf("case %d: damaged message delivered: %s", n, fmtMsg(m))
}

// A store written by format 1 (testdata/v1.db, written by the code of
// commit cc1fc12) is migrated at Open: every record gets its checksum, and
// the 2,000-byte client id and topic move to hashed keys. Its content is
// unchanged and it keeps working.
func TestMigrateV1(t *testing.T) {
	src, err := os.ReadFile("testdata/v1.db")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "edged.db")
	if err := os.WriteFile(path, src, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := persist.Check(path); err != nil {
		t.Fatalf("Check of the v1 file: %v", err)
	}
	var log logBuf
	opts := persist.Options{Path: path, Logger: log.logger()}
	db := mustOpenStore(t, opts)
	if !strings.Contains(log.String(), "from_format=1 to_format=3") {
		t.Errorf("migration not logged:\n%s", log.String())
	}
	long := "long-" + strings.Repeat("c", 1995)
	longTopic := "r/" + strings.Repeat("t", 1998)
	m := func(topic, p string, qos byte, retain bool, tm int64) string {
		return fmtMsg(persist.Message{Topic: topic, Payload: []byte(p), QoS: qos, Retain: retain, Time: tm})
	}
	want := `session "alice" subs=[{1 a/# 1} {2 b/+ 2}] last=1700000000 inbound=[42]` + "\n" +
		"  q id=1 qos=1 pid=0 rel=false msg=" + m("a/1", "one", 1, false, 1000) + "\n" +
		"  q id=2 qos=2 pid=7 rel=true msg=" + m("b/2", "two", 2, false, 2000) + "\n" +
		fmt.Sprintf("session %q subs=[{1 # 1}] last=1700000001 inbound=[]\n", long) +
		"  q id=1 qos=1 pid=0 rel=false msg=" + m("a/1", "one", 1, false, 1000) + "\n" +
		"retained " + m(longTopic, "long retained", 0, true, 4000) + "\n" +
		"retained " + m("r/x", "rx", 1, true, 3000) + "\n"
	snap := mustLoad(t, db)
	if got := fmtSnap(snap); got != want {
		t.Errorf("after migration:\n%.3000s\nwant:\n%.3000s", got, want)
	}
	if snap.NextMsgID != 3 {
		t.Errorf("NextMsgID = %d", snap.NextMsgID)
	}
	if es, _ := db.ReadQueue("cloud", 0, 10); fmtEntries(es) != "2:"+m("q/2", "e2", 1, false, 6000)+" 3:"+m("q/3", "e3", 0, false, 7000)+" " {
		t.Errorf("queue after migration: %s", fmtEntries(es))
	}
	if st := db.QueueStats("cloud"); st.Len != 2 {
		t.Errorf("queue stats %+v", st)
	}
	mustCommit(t, db, persist.Dequeue{ClientID: long, MsgID: 1}, persist.DeleteRetained{Topic: longTopic},
		persist.QueueAppend{Queue: "cloud", Msg: msg("q/4", "e4")})
	db = reopen(t, db, opts)
	snap = mustLoad(t, db)
	if len(snap.Sessions) != 2 || len(snap.Sessions[1].Queue) != 0 || len(snap.Retained) != 1 {
		t.Errorf("after commits on migrated records:\n%s", fmtSnap(snap))
	}
	if es, _ := db.ReadQueue("cloud", 3, 10); len(es) != 1 || es[0].Seq != 4 {
		t.Errorf("queue sequence after migration: %s", fmtEntries(es))
	}
}

// A damaged reference count is counted again from the session queues
// when a Dequeue or Enqueue needs it, so the message is freed exactly with
// its last reference and the store is sound again.
func TestDamagedRefcountRecounted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "edged.db")
	opts := persist.Options{Path: path}
	db := mustOpenStore(t, opts)
	mustCommit(t, db, persist.PutMessage{ID: 1, Msg: msg("a", "shared")},
		persist.Enqueue{ClientID: "c1", MsgID: 1, QoS: 1}, persist.Enqueue{ClientID: "c2", MsgID: 1, QoS: 1})
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = b.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("refs")).Put([]byte{0, 0, 0, 0, 0, 0, 0, 1}, []byte("garbage!garbage!"))
	})
	_ = b.Close()
	if err := persist.Check(path); !errors.Is(err, persist.ErrCorrupt) || !strings.Contains(err.Error(), "refcount record") {
		t.Fatalf("Check: %v", err)
	}
	db = mustOpenStore(t, opts)
	mustCommit(t, db, persist.Dequeue{ClientID: "c1", MsgID: 1})
	if snap := mustLoad(t, db); len(snap.Sessions) != 2 || len(snap.Sessions[1].Queue) != 1 {
		t.Fatalf("after the first Dequeue:\n%s", fmtSnap(snap))
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := persist.Check(path); err != nil {
		t.Fatalf("Check after the recount: %v", err)
	}
	db = mustOpenStore(t, opts)
	mustCommit(t, db, persist.Dequeue{ClientID: "c2", MsgID: 1})
}
