package persist_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/edged/edged/persist"
)

// v5State commits one of every MQTT 5.0 field and returns what Load must
// show for it (fmtSnap).
func v5State(t *testing.T, s persist.Store) string {
	t.Helper()
	const future = 1 << 62 // 2116
	props := []byte("\x01\x01\x03\x00\x0atext/plain\x26\x00\x01k\x00\x01v")
	m1 := persist.Message{Topic: "v5/a", Payload: []byte("one"), QoS: 1, Time: 10, Properties: props, Expiry: future}
	m2 := persist.Message{Topic: "v5/b", Payload: []byte("two"), QoS: 2, Time: 20, Properties: []byte{}}
	m3 := persist.Message{Topic: "v3/c", Payload: []byte("three"), QoS: 1, Time: 30}
	will := persist.Will{Msg: persist.Message{Topic: "will/v5", Payload: []byte("gone"), QoS: 1, Retain: true, Properties: []byte("\x18\x00\x00\x00\x3c")}, Due: 1_700_000_060_000_000_000}
	mustCommit(t, s,
		persist.PutSession{ClientID: "v5c", LastSeen: 1700000000, Version: 5, ExpiryInterval: 3600},
		persist.SetOwner{ClientID: "v5c", Owner: persist.Owner{Username: "u", HasUsername: true}},
		persist.PutSubscription{ClientID: "v5c", Sub: persist.Subscription{Seq: 1, Filter: "v5/#", QoS: 2, NoLocal: true, RetainAsPublished: true, RetainHandling: 2, ID: persist.MaxSubscriptionID}},
		persist.PutSubscription{ClientID: "v5c", Sub: persist.Subscription{Seq: 2, Filter: "v3/+", QoS: 1, RetainHandling: 1}},
		persist.PutSubscription{ClientID: "v5c", Sub: persist.Subscription{Seq: 3, Filter: "x", ID: 1}},
		persist.SetWill{ClientID: "v5c", Will: &will},
		persist.PutMessage{ID: 1, Msg: m1}, persist.Enqueue{ClientID: "v5c", MsgID: 1, QoS: 1, SubIDs: []uint32{persist.MaxSubscriptionID, 1}},
		persist.PutMessage{ID: 2, Msg: m2}, persist.Enqueue{ClientID: "v5c", MsgID: 2, QoS: 2, Retain: true, SubIDs: []uint32{128}},
		persist.PutMessage{ID: 3, Msg: m3}, persist.Enqueue{ClientID: "v5c", MsgID: 3, QoS: 1},
		persist.SetInflight{ClientID: "v5c", MsgID: 1, PacketID: 5},
		// A 3.1.1 session, one that never expires, and a will set and
		// removed.
		persist.PutSession{ClientID: "v3c", LastSeen: 1700000001, Version: 4, ExpiryInterval: 99},
		persist.PutSession{ClientID: "v5never", Version: 5, ExpiryInterval: persist.ExpiryNever},
		persist.SetWill{ClientID: "v5never", Will: &persist.Will{Msg: persist.Message{Topic: "w", Payload: []byte("x")}}},
		persist.SetWill{ClientID: "v5never"},
		persist.SetWill{ClientID: "nobody"}, // creates nothing
		persist.PutRetained{Msg: persist.Message{Topic: "r/v5", Payload: []byte("kept"), QoS: 1, Retain: true, Properties: props, Expiry: future}},
	)
	return `session "v3c" subs=[] last=1700000001 inbound=[] v4 expiry=99` + "\n" +
		`session "v5c" subs=[{1 v5/# 2 nltrue raptrue rh2 id268435455} {2 v3/+ 1 nlfalse rapfalse rh1 id0} {3 x 0 nlfalse rapfalse rh0 id1}] last=1700000000 inbound=[] v5 expiry=3600 will=` +
		fmtMsg(will.Msg) + " due=1700000060000000000\n" +
		"  q id=1 qos=1 pid=5 rel=false subids=[268435455 1] msg=" + fmtMsg(m1) + "\n" +
		"  q id=2 qos=2 pid=0 rel=false retain subids=[128] msg=" + fmtMsg(m2) + "\n" +
		"  q id=3 qos=1 pid=0 rel=false msg=" + fmtMsg(m3) + "\n" +
		`session "v5never" subs=[] last=0 inbound=[] v5 expiry=4294967295` + "\n" +
		"retained " + fmtMsg(persist.Message{Topic: "r/v5", Payload: []byte("kept"), QoS: 1, Retain: true, Properties: props, Expiry: future}) + "\n"
}

// Every MQTT 5.0 field goes through Commit, Load and a restart unchanged
// (nil properties stay nil, empty ones empty), in DB and Memory alike;
// replacing a will and the session info works; ExpiresAfter applies the
// expiry interval only from version 5.
func TestV5RoundTrip(t *testing.T) {
	opts := persist.Options{Path: filepath.Join(t.TempDir(), "edged.db")}
	db := mustOpenStore(t, opts)
	mem := persist.NewMemory()
	defer mem.Close()
	want := v5State(t, db)
	if got := v5State(t, mem); got != want {
		t.Fatal("the two calls differ")
	}
	check := func(what string, s persist.Store) *persist.Snapshot {
		t.Helper()
		snap := mustLoad(t, s)
		if got := fmtSnap(snap); got != want {
			t.Errorf("%s:\n%s\nwant:\n%s", what, got, want)
		}
		return snap
	}
	check("memory", mem)
	check("db", db)
	db = reopen(t, db, opts)
	snap := check("db after restart", db)
	if q := snap.Sessions[1].Queue; q[2].Msg.Properties != nil || q[1].Msg.Properties == nil || q[2].SubIDs != nil {
		t.Errorf("nil and empty properties or subscription ids confused: %+v", q)
	}
	for i, want := range []struct {
		secs uint32
		ok   bool
	}{{0, false}, {3600, true}, {0, false}} {
		if secs, ok := snap.Sessions[i].ExpiresAfter(); secs != want.secs || ok != want.ok {
			t.Errorf("session %q ExpiresAfter = %d, %t", snap.Sessions[i].ClientID, secs, ok)
		}
	}
	// ReadSessionQueue returns the 5.0 fields of waiting entries too.
	if qs, err := db.ReadSessionQueue("v5c", 1, 10); err != nil || len(qs) != 2 || qs[0].SubIDs[0] != 128 || qs[0].Msg.Properties == nil {
		t.Errorf("ReadSessionQueue: %+v, %v", qs, err)
	}
	// PutSession writes the whole info record; SetWill replaces the will;
	// SetInflight keeps the subscription ids.
	ops := []persist.Op{
		persist.PutSession{ClientID: "v5c", LastSeen: 0},
		persist.SetWill{ClientID: "v5c", Will: &persist.Will{Msg: persist.Message{Topic: "will/2", Payload: []byte{}}, Due: 0}},
		persist.SetInflight{ClientID: "v5c", MsgID: 1, PacketID: 6, Pubrel: true},
		persist.SetWill{ClientID: "v5never", Will: &persist.Will{Msg: persist.Message{Topic: "w2", Payload: []byte("y"), QoS: 2}, Due: -1}},
	}
	mustCommit(t, db, ops...)
	mustCommit(t, mem, ops...)
	want = strings.Replace(want, "last=1700000000 inbound=[] v5 expiry=3600 will="+fmtMsg(persist.Message{Topic: "will/v5", Payload: []byte("gone"), QoS: 1, Retain: true, Properties: []byte("\x18\x00\x00\x00\x3c")})+" due=1700000060000000000",
		`last=0 inbound=[] will={"will/2" "" q0 rfalse t0} due=0`, 1)
	want = strings.Replace(want, "q id=1 qos=1 pid=5 rel=false", "q id=1 qos=1 pid=6 rel=true", 1)
	want = strings.Replace(want, "expiry=4294967295", `expiry=4294967295 will={"w2" "y" q2 rfalse t0} due=-1`, 1)
	check("memory after updates", mem)
	check("db after updates", db)
	db = reopen(t, db, opts)
	check("db after updates and restart", db)
	// DeleteSession removes the will with the session.
	mustCommit(t, db, persist.DeleteSession{ClientID: "v5never"})
	db = reopen(t, db, opts)
	if snap := mustLoad(t, db); len(snap.Sessions) != 2 {
		t.Errorf("after DeleteSession:\n%s", fmtSnap(snap))
	}
}

// Load leaves out and deletes retained messages whose Expiry has passed,
// in DB and Memory; one without Expiry or with a later one stays.
// Queued messages are returned expired or not: the broker drops them.
func TestExpiredRetainedDroppedAtLoad(t *testing.T) {
	opts := persist.Options{Path: filepath.Join(t.TempDir(), "edged.db")}
	db := mustOpenStore(t, opts)
	mem := persist.NewMemory()
	defer mem.Close()
	now := time.Now()
	past, soon := now.Add(-time.Second).UnixNano(), now.Add(300*time.Millisecond).UnixNano()
	ops := []persist.Op{
		persist.PutRetained{Msg: persist.Message{Topic: "r/old", Payload: []byte("x"), Retain: true, Expiry: past}},
		persist.PutRetained{Msg: persist.Message{Topic: "r/soon", Payload: []byte("y"), Retain: true, Expiry: soon}},
		persist.PutRetained{Msg: persist.Message{Topic: "r/never", Payload: []byte("z"), Retain: true}},
		persist.PutMessage{ID: 1, Msg: persist.Message{Topic: "q", Payload: []byte("q"), QoS: 1, Expiry: past}},
		persist.Enqueue{ClientID: "c", MsgID: 1, QoS: 1},
	}
	topics := func(s persist.Store) string {
		snap := mustLoad(t, s)
		var ts []string
		for _, r := range snap.Retained {
			ts = append(ts, r.Topic)
		}
		if len(snap.Sessions) != 1 || len(snap.Sessions[0].Queue) != 1 || !snap.Sessions[0].Queue[0].Msg.Expired(time.Now().UnixNano()) {
			t.Errorf("the expired queued message:\n%s", fmtSnap(snap))
		}
		return strings.Join(ts, " ")
	}
	for _, s := range []persist.Store{db, mem} {
		mustCommit(t, s, ops...)
		if got := topics(s); got != "r/never r/soon" {
			t.Errorf("%T: retained %q", s, got)
		}
	}
	time.Sleep(time.Until(time.Unix(0, soon)) + 10*time.Millisecond)
	for _, s := range []persist.Store{db, mem} {
		if got := topics(s); got != "r/never" {
			t.Errorf("%T: retained %q after r/soon expired", s, got)
		}
	}
	// The deletes are committed: the file no longer holds them.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := bolt.Open(opts.Path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	_ = b.View(func(tx *bolt.Tx) error {
		if n := tx.Bucket([]byte("retained")).Stats().KeyN; n != 1 {
			t.Errorf("%d retained records left, want 1", n)
		}
		return nil
	})
	_ = b.Close()
	db = mustOpenStore(t, opts)
	if got := topics(db); got != "r/never" {
		t.Errorf("after restart: %q", got)
	}
}

// Ops with 5.0 fields the store cannot keep are refused whole with
// ErrInvalidOp, as other invalid ops.
func TestV5InvalidOps(t *testing.T) {
	db := mustOpenStore(t, persist.Options{})
	mem := persist.NewMemory()
	defer mem.Close()
	for _, op := range []persist.Op{
		persist.PutSubscription{ClientID: "c", Sub: persist.Subscription{Seq: 1, Filter: "a", RetainHandling: 3}},
		persist.PutSubscription{ClientID: "c", Sub: persist.Subscription{Seq: 1, Filter: "a", ID: persist.MaxSubscriptionID + 1}},
		persist.Enqueue{ClientID: "c", MsgID: 1, QoS: 1, SubIDs: []uint32{0}},
		persist.Enqueue{ClientID: "c", MsgID: 1, QoS: 1, SubIDs: []uint32{1, persist.MaxSubscriptionID + 1}},
		persist.SetWill{ClientID: "c", Will: &persist.Will{Msg: persist.Message{Topic: ""}}},
		persist.SetWill{ClientID: "c", Will: &persist.Will{Msg: persist.Message{Topic: "w", QoS: 3}}},
		persist.SetWill{ClientID: ""},
	} {
		for _, s := range []persist.Store{db, mem} {
			err := commitWait(t, s, persist.PutMessage{ID: 1, Msg: msg("a", "x")}, persist.PutSession{ClientID: "c"}, op)
			if !errors.Is(err, persist.ErrInvalidOp) {
				t.Errorf("%T %#v: %v, want ErrInvalidOp", s, op, err)
			}
		}
	}
	for _, s := range []persist.Store{db, mem} {
		if snap := mustLoad(t, s); len(snap.Sessions) != 0 {
			t.Errorf("%T: refused ops applied:\n%s", s, fmtSnap(snap))
		}
	}
}

// Damaged records with 5.0 fields are found by Check and set aside by
// Load like others: a will that does not read is dropped (not published),
// a subscription with options dropped, an info record reset (LastSeen 0,
// version 0), a queue ref with subscription ids or a message with
// properties leaves the queue; the rest of the session loads.
func TestDamagedV5RecordsSetAside(t *testing.T) {
	opts := persist.Options{Path: filepath.Join(t.TempDir(), "edged.db")}
	db := mustOpenStore(t, opts)
	v5State(t, db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	u64 := func(n byte) []byte { return []byte{0, 0, 0, 0, 0, 0, 0, n} }
	b, err := bolt.Open(opts.Path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = b.Update(func(tx *bolt.Tx) error {
		sb := tx.Bucket([]byte("sessions")).Bucket([]byte("v5c"))
		w := sb.Get([]byte("will"))
		bad := []byte(string(w))
		bad[len(bad)/2] ^= 0x40 // checksum mismatch
		if err := sb.Put([]byte("will"), bad); err != nil {
			return err
		}
		// Sealed but not decodable: retain handling 3; a version with an
		// expiry interval over 32 bits; subscription id 0.
		if err := sb.Bucket([]byte("subs")).Put(u64(1), sealed(u64(1), []byte("\x3fv5/#"))); err != nil {
			return err
		}
		if err := sb.Put([]byte("info"), sealed([]byte("info"), []byte{2, 0, 5, 0xff, 0xff, 0xff, 0xff, 0x1f})); err != nil {
			return err
		}
		if err := sb.Bucket([]byte("queue")).Put(u64(2), sealed(u64(2), []byte{2, 0, 0, 6, 0})); err != nil {
			return err
		}
		m := tx.Bucket([]byte("messages"))
		mv := []byte(string(m.Get(u64(3))))
		mv[2] ^= 1
		return m.Put(u64(3), mv)
	})
	_ = b.Close()
	if err != nil {
		t.Fatal(err)
	}
	err = persist.Check(opts.Path)
	for _, want := range []string{`session "v5c": will`, `session "v5c": subscription 0000000000000001`, `session "v5c": info`,
		`session "v5c": queued message 2`, "message 0000000000000003"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Check does not report %s: %v", want, err)
		}
	}
	var log logBuf
	opts.Logger = log.logger()
	db = mustOpenStore(t, opts)
	snap := mustLoad(t, db)
	want := `session "v5c" subs=[{2 v3/+ 1 nlfalse rapfalse rh1 id0} {3 x 0 nlfalse rapfalse rh0 id1}] last=0 inbound=[]`
	if got := fmtSnap(snap); !strings.Contains(got, want+"\n  q id=1 qos=1 pid=5") || strings.Contains(got, "q id=2") || strings.Contains(got, "q id=3") {
		t.Errorf("after damage:\n%s\nwant v5c as:\n%s", got, want)
	}
	if got := db.Stats().Damaged; got != 5 {
		t.Errorf("Stats.Damaged = %d, want 5\n%s", got, log.String())
	}
	db = reopen(t, db, opts)
	mustLoad(t, db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	notes, err := persist.CheckReport(opts.Path)
	if err != nil || len(notes) != 5 {
		t.Fatalf("after setting aside: %q, %v", notes, err)
	}
	db = mustOpenStore(t, opts)
}
