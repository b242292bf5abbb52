package persist_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/edged/edged/persist"
	bolt "go.etcd.io/bbolt"
)

func TestMaxSize(t *testing.T) {
	opts := persist.Options{Path: t.TempDir() + "/edged.db", MaxSize: 1 << 20}
	db := mustOpenStore(t, opts)
	big := msg("big", string(bytes.Repeat([]byte("x"), 4000)))
	var full error
	id := uint64(1)
	for ; id < 1000 && full == nil; id++ {
		full = commitWait(t, db, persist.PutMessage{ID: id, Msg: big}, persist.Enqueue{ClientID: "c", MsgID: id, QoS: 1})
	}
	if !errors.Is(full, persist.ErrFull) {
		t.Fatalf("commit past MaxSize: %v, want ErrFull", full)
	}
	if st := db.Stats(); st.CommitErrors == 0 || st.FileSize > opts.MaxSize {
		t.Errorf("Stats = %+v", st)
	}
	// Later commits still work, and deletes free the space.
	for i := uint64(1); i < id; i++ {
		mustCommit(t, db, persist.Dequeue{ClientID: "c", MsgID: i})
	}
	mustCommit(t, db, persist.PutMessage{ID: id, Msg: big}, persist.Enqueue{ClientID: "c", MsgID: id, QoS: 1})
	db = reopen(t, db, opts)
	if snap := mustLoad(t, db); len(snap.Sessions) != 1 || len(snap.Sessions[0].Queue) != 1 {
		t.Errorf("after reopen: %s", fmtSnap(snap))
	}
}

// writeStore creates a store file with some content and returns its path.
func writeStore(t *testing.T) string {
	t.Helper()
	return writeStoreSync(t, persist.SyncBatch)
}

func writeStoreSync(t *testing.T, sync persist.SyncMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "edged.db")
	db, err := persist.Open(persist.Options{Path: path, Sync: sync})
	if err != nil {
		t.Fatal(err)
	}
	var ops []persist.Op
	for i := range uint64(200) {
		ops = append(ops, persist.PutMessage{ID: i + 1, Msg: msg("t", string(bytes.Repeat([]byte("y"), 500)))},
			persist.Enqueue{ClientID: "c", MsgID: i + 1, QoS: 1})
	}
	mustCommit(t, db, ops...)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCorruptFile(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, path string)
	}{
		{"garbage", func(t *testing.T, path string) {
			if err := os.WriteFile(path, bytes.Repeat([]byte("garbage!"), 4096), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"short garbage", func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte("not a database"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"truncated", func(t *testing.T, path string) {
			fi, _ := os.Stat(path)
			if err := os.Truncate(path, fi.Size()/3); err != nil {
				t.Fatal(err)
			}
		}},
		{"meta pages zeroed", func(t *testing.T, path string) {
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteAt(make([]byte, 2*os.Getpagesize()), 0); err != nil {
				t.Fatal(err)
			}
		}},
		{"foreign bbolt file", func(t *testing.T, path string) {
			_ = os.Remove(path)
			b, err := bolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			_ = b.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("other")); return err })
			_ = b.Close()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeStore(t)
			tc.damage(t, path)
			db, err := persist.Open(persist.Options{Path: path})
			if err == nil {
				db.Close()
				t.Fatal("Open succeeded on a damaged file")
			}
			if !errors.Is(err, persist.ErrCorrupt) || !bytes.Contains([]byte(err.Error()), []byte("edged db check")) {
				t.Errorf("Open: %v, want ErrCorrupt with advice", err)
			}
			if err := persist.Check(path); !errors.Is(err, persist.ErrCorrupt) {
				t.Errorf("Check: %v, want ErrCorrupt", err)
			}
		})
	}
}

func TestCorruptPage(t *testing.T) {
	// Damage a data page, not the meta: Open may succeed (it does not read
	// every page) but Load or Check must report it, never return garbage.
	path := writeStore(t)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := f.Stat()
	ps := int64(os.Getpagesize())
	for off := 4 * ps; off < fi.Size(); off += ps {
		_, _ = f.WriteAt(bytes.Repeat([]byte{0xAB}, 64), off)
	}
	f.Close()
	if err := persist.Check(path); !errors.Is(err, persist.ErrCorrupt) {
		t.Errorf("Check: %v, want ErrCorrupt", err)
	}
	db, err := persist.Open(persist.Options{Path: path})
	if err != nil {
		if !errors.Is(err, persist.ErrCorrupt) {
			t.Errorf("Open: %v, want ErrCorrupt", err)
		}
		return
	}
	defer db.Close()
	if _, err := db.Load(); !errors.Is(err, persist.ErrCorrupt) {
		t.Errorf("Load: %v, want ErrCorrupt", err)
	}
}

func TestNewerFormat(t *testing.T) {
	path := writeStore(t)
	b, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = b.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("meta")).Put([]byte("format"), []byte{0, 0, 0, 0, 0, 0, 0, 99})
	})
	_ = b.Close()
	if _, err := persist.Open(persist.Options{Path: path}); !errors.Is(err, persist.ErrNewerFormat) {
		t.Errorf("Open: %v, want ErrNewerFormat", err)
	}
}

func TestCheckFindsBadRefcount(t *testing.T) {
	path := writeStore(t)
	b, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = b.Update(func(tx *bolt.Tx) error {
		k := []byte{0, 0, 0, 0, 0, 0, 0, 1}
		return tx.Bucket([]byte("refs")).Put(k, sealed(k, []byte{0, 0, 0, 0, 0, 0, 0, 5}))
	})
	_ = b.Close()
	err = persist.Check(path)
	if !errors.Is(err, persist.ErrCorrupt) || !bytes.Contains([]byte(err.Error()), []byte("refcount 5")) {
		t.Errorf("Check: %v", err)
	}
}

func TestCompact(t *testing.T) {
	opts := persist.Options{Path: t.TempDir() + "/edged.db", Sync: persist.SyncOff}
	db := mustOpenStore(t, opts)
	payload := string(bytes.Repeat([]byte("z"), 1000))
	for i := range 5 {
		var ops []persist.Op
		for j := range 1000 {
			ops = append(ops, persist.QueueAppend{Queue: "cloud", Msg: msg("t", payload+string(rune('a'+i+j%3)))})
		}
		mustCommit(t, db, ops...)
	}
	var del []persist.Op
	for seq := uint64(1); seq <= 4990; seq++ {
		del = append(del, persist.QueueDelete{Queue: "cloud", Seq: seq})
	}
	mustCommit(t, db, del...)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	before, after, err := persist.Compact(opts.Path)
	if err != nil {
		t.Fatal(err)
	}
	if after*4 > before {
		t.Errorf("Compact: %d → %d bytes", before, after)
	}
	t.Logf("compacted %d → %d bytes", before, after)
	db = mustOpenStore(t, opts)
	if st := db.QueueStats("cloud"); st.Len != 10 {
		t.Errorf("after compact: %+v", st)
	}
	mustCommit(t, db, persist.QueueAppend{Queue: "cloud", Msg: msg("t", "next")})
	if es, _ := db.ReadQueue("cloud", 5000, 10); len(es) != 1 || es[0].Seq != 5001 {
		t.Errorf("seq after compact: %s", fmtEntries(es))
	}
}

func TestAutoCompact(t *testing.T) {
	opts := persist.Options{Path: t.TempDir() + "/edged.db", Sync: persist.SyncOff}
	db := mustOpenStore(t, opts)
	payload := string(bytes.Repeat([]byte("z"), 4000))
	for range 6 {
		var ops []persist.Op
		for range 1000 {
			ops = append(ops, persist.QueueAppend{Queue: "cloud", Msg: msg("t", payload)})
		}
		mustCommit(t, db, ops...)
	}
	var del []persist.Op
	for seq := uint64(1); seq <= 6000; seq++ {
		del = append(del, persist.QueueDelete{Queue: "cloud", Seq: seq})
	}
	mustCommit(t, db, del...)
	big := db.Stats().FileSize
	if big < 20<<20 {
		t.Fatalf("file only %d bytes", big)
	}
	db = reopen(t, db, opts)
	if small := db.Stats().FileSize; small*4 > big {
		t.Errorf("no compaction at Open: %d → %d bytes", big, small)
	}
}

// sealed is a record as format 2 stores it: v and the CRC-32C of its key
// and v, big-endian (written out here, to test the format itself).
func sealed(k, v []byte) []byte {
	c := crc32.MakeTable(crc32.Castagnoli)
	return binary.BigEndian.AppendUint32(slices.Clone(v), crc32.Update(crc32.Checksum(k, c), c, v))
}
