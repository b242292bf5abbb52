package persist

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestClampMaxSize(t *testing.T) {
	for _, tc := range []struct {
		size  int64
		small bool
		want  int64
	}{
		{1 << 30, true, 512 << 20},
		{512 << 20, true, 512 << 20},
		{64 << 20, true, 64 << 20},
		{1 << 30, false, 1 << 30},
		{8 << 30, false, 8 << 30},
	} {
		if got := clampMaxSizeFor(tc.size, tc.small); got != tc.want {
			t.Errorf("clampMaxSizeFor(%d, %t) = %d, want %d", tc.size, tc.small, got, tc.want)
		}
	}
}

func lastTxID(t *testing.T, db *DB) uint64 {
	var id uint64
	if err := db.bolt.View(func(tx *bolt.Tx) error { id = uint64(tx.ID()); return nil }); err != nil {
		t.Fatal(err)
	}
	return id
}

func commitSync(db *DB, ops ...Op) error {
	ch := make(chan error, 1)
	db.Commit(ops, func(err error) { ch <- err })
	select {
	case err := <-ch:
		return err
	case <-time.After(10 * time.Second):
		return errors.New("done not called")
	}
}

// A failed tx.Commit keeps the store running only if it cannot have left a
// meta page behind (fsyncgate): size limit, or ENOSPC before the meta write.
func TestCommitFailureStopsStore(t *testing.T) {
	db, err := Open(Options{Path: filepath.Join(t.TempDir(), "edged.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	put := PutRetained{Msg: Message{Topic: "t", Payload: []byte("x")}}
	if err := commitSync(db, put); err != nil {
		t.Fatal(err)
	}
	next := lastTxID(t, db) + 1

	// The next transaction's meta slot holds an older meta: the disk filled
	// while writing data pages.
	err = db.commitFailed(fmt.Errorf("write: %w", syscall.ENOSPC), next)
	if !errors.Is(err, ErrFull) || db.broken.Load() != nil {
		t.Fatalf("ENOSPC before the meta write: %v, broken %v", err, db.broken.Load() != nil)
	}
	err = db.commitFailed(errors.New("mmap allocate error: cannot allocate memory"), next)
	if !errors.Is(err, ErrFull) || db.broken.Load() != nil {
		t.Fatalf("mmap error with bbolt still mapped: %v, broken %v", err, db.broken.Load() != nil)
	}
	if err := commitSync(db, put); err != nil {
		t.Fatalf("commit after ErrFull: %v", err)
	}

	// ENOSPC when the slot already holds this txid: the meta was written.
	cur := lastTxID(t, db)
	if err := db.commitFailed(fmt.Errorf("sync: %w", syscall.ENOSPC), cur); errors.Is(err, ErrFull) || db.broken.Load() == nil {
		t.Fatalf("ENOSPC after the meta write: %v, broken %v", err, db.broken.Load() != nil)
	}
	db.broken.Store(nil)

	// EIO anywhere stops the store; every later commit says why.
	_ = db.commitFailed(fmt.Errorf("fdatasync: %w", syscall.EIO), cur+1)
	for range 2 {
		err := commitSync(db, put)
		if !errors.Is(err, syscall.EIO) || !strings.Contains(err.Error(), "restart edged") {
			t.Fatalf("commit after EIO: %v", err)
		}
	}
}

// Open knows when it created the file, and then syncs its directory.
func TestOpenReportsCreated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "edged.db")
	opts := Options{Path: path}
	opts.setDefaults()
	for i, want := range []bool{true, false} {
		b, created, err := openBolt(path, boltOptions(&opts, false))
		if err != nil {
			t.Fatal(err)
		}
		_ = b.Close()
		if created != want {
			t.Errorf("open %d: created = %t, want %t", i, created, want)
		}
	}
}
