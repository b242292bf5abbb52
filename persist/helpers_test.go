package persist_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edged/edged/persist"
)

// mustOpenStore opens a store in t.TempDir() (unless opts.Path is set).
// Its cleanup closes the store, opens it again and runs Check, so every
// test ends with an integrity check of the file it left.
func mustOpenStore(t testing.TB, opts persist.Options) *persist.DB {
	t.Helper()
	if opts.Path == "" {
		opts.Path = filepath.Join(t.TempDir(), "edged.db")
	}
	db, err := persist.Open(opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		again, err := persist.Open(persist.Options{Path: opts.Path, MaxSize: opts.MaxSize})
		if err != nil {
			t.Errorf("reopening: %v", err)
			return
		}
		if err := again.Close(); err != nil {
			t.Errorf("closing again: %v", err)
		}
		if err := persist.Check(opts.Path); err != nil {
			t.Errorf("Check: %v", err)
		}
	})
	return db
}

// reopen closes db and opens its file again, as a restart does.
func reopen(t testing.TB, db *persist.DB, opts persist.Options) *persist.DB {
	t.Helper()
	if err := db.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return mustOpenStore(t, opts)
}

// commitWait commits ops and waits for done.
func commitWait(t testing.TB, s persist.Store, ops ...persist.Op) error {
	t.Helper()
	ch := make(chan error, 1)
	s.Commit(ops, func(err error) { ch <- err })
	select {
	case err := <-ch:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("done not called within 10s")
		return nil
	}
}

func mustCommit(t testing.TB, s persist.Store, ops ...persist.Op) {
	t.Helper()
	if err := commitWait(t, s, ops...); err != nil {
		t.Fatalf("commit: %v", err)
	}
}

// mustLoad loads s and completes each session's Queue with the waiting
// entries Load leaves out, read with ReadSessionQueue in small pages, after
// checking that they match the session's Waiting and WaitingBytes.
func mustLoad(t testing.TB, s persist.Store) *persist.Snapshot {
	t.Helper()
	snap, err := s.Load()
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	r := s.(interface {
		ReadSessionQueue(string, uint64, int) ([]persist.Queued, error)
	})
	for i := range snap.Sessions {
		ss := &snap.Sessions[i]
		var after uint64
		if n := len(ss.Queue); n > 0 {
			after = ss.Queue[n-1].MsgID
		}
		var n, size int64
		for {
			qs, err := r.ReadSessionQueue(ss.ClientID, after, 3)
			if err != nil {
				t.Fatalf("ReadSessionQueue(%q): %v", ss.ClientID, err)
			}
			if len(qs) == 0 {
				break
			}
			for _, q := range qs {
				n++
				size += q.Msg.Size()
				after = q.MsgID
			}
			ss.Queue = append(ss.Queue, qs...)
		}
		// A damaged entry is counted by Load and skipped by
		// ReadSessionQueue (then set aside).
		if db, ok := s.(*persist.DB); ok && db.Stats().Damaged > 0 && n <= ss.Waiting {
			continue
		}
		if n != ss.Waiting || size != ss.WaitingBytes {
			t.Fatalf("session %q: Load says %d waiting, %d bytes; ReadSessionQueue reads %d, %d bytes", ss.ClientID, ss.Waiting, ss.WaitingBytes, n, size)
		}
	}
	return snap
}

// fmtSnap formats a snapshot canonically (nil and empty slices alike).
// The MQTT 5.0 fields appear only when set, so a 3.1.1 state formats as it
// did before format 3.
func fmtSnap(s *persist.Snapshot) string {
	var b strings.Builder
	for _, ss := range s.Sessions {
		subs := make([]string, len(ss.Subs))
		for i, sub := range ss.Subs {
			subs[i] = fmtSub(sub)
		}
		fmt.Fprintf(&b, "session %q subs=[%s] last=%d inbound=%v", ss.ClientID, strings.Join(subs, " "), ss.LastSeen, ss.Inbound)
		if ss.Version != 0 || ss.ExpiryInterval != 0 {
			fmt.Fprintf(&b, " v%d expiry=%d", ss.Version, ss.ExpiryInterval)
		}
		if w := ss.Will; w != nil {
			fmt.Fprintf(&b, " will=%s due=%d", fmtMsg(w.Msg), w.Due)
		}
		b.WriteString("\n")
		for _, q := range ss.Queue {
			ret := ""
			if q.Retain {
				ret = " retain"
			}
			if q.SubIDs != nil {
				ret += fmt.Sprintf(" subids=%v", q.SubIDs)
			}
			fmt.Fprintf(&b, "  q id=%d qos=%d pid=%d rel=%t%s msg=%s\n", q.MsgID, q.QoS, q.PacketID, q.Pubrel, ret, fmtMsg(q.Msg))
		}
	}
	for _, m := range s.Retained {
		fmt.Fprintf(&b, "retained %s\n", fmtMsg(m))
	}
	return b.String()
}

func fmtSub(s persist.Subscription) string {
	v5 := ""
	if s.NoLocal || s.RetainAsPublished || s.RetainHandling != 0 || s.ID != 0 {
		v5 = fmt.Sprintf(" nl%t rap%t rh%d id%d", s.NoLocal, s.RetainAsPublished, s.RetainHandling, s.ID)
	}
	return fmt.Sprintf("{%d %s %d%s}", s.Seq, s.Filter, s.QoS, v5)
}

func fmtMsg(m persist.Message) string {
	v5 := ""
	if m.Properties != nil {
		v5 += fmt.Sprintf(" p%q", m.Properties)
	}
	if m.Expiry != 0 {
		v5 += fmt.Sprintf(" e%d", m.Expiry)
	}
	return fmt.Sprintf("{%q %q q%d r%t t%d%s}", m.Topic, m.Payload, m.QoS, m.Retain, m.Time, v5)
}

func fmtEntries(es []persist.Entry) string {
	var b strings.Builder
	for _, e := range es {
		fmt.Fprintf(&b, "%d:%s ", e.Seq, fmtMsg(e.Msg))
	}
	return b.String()
}

// queueStore is what the FIFO tests need of both stores.
type queueStore interface {
	persist.Store
	Queue(string, persist.QueueLimits) *persist.Queue
	ReadQueue(string, uint64, int) ([]persist.Entry, error)
	QueueStats(string) persist.QueueStats
	ExpireQueues(time.Time) (int64, error)
	Stats() persist.Stats
}

var (
	_ queueStore = (*persist.DB)(nil)
	_ queueStore = (*persist.Memory)(nil)
)

// childEnv is the environment for a subprocess of the test binary: the
// current one plus kv, without the race detector's 1 s sleep at exit.
func childEnv(kv ...string) []string {
	env := append(os.Environ(), "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	return append(env, kv...)
}

func isFull(err error) bool { return errors.Is(err, persist.ErrFull) }

func errorsIs(err, target error) bool { return errors.Is(err, target) }

// damageInChild writes a store in each sync mode, damages it with damage
// (which reports how many places it changed; none fails the test with
// none), and runs the test named test again in a child process, once with
// Check and once with Open and Load, each bounded to 20 s: a hang or a crash
// (a fault in a bbolt goroutine kills the process) fails the test, and the
// child itself fails unless it gets ErrCorrupt (see inDamagedChild).
func damageInChild(t *testing.T, test, none string, damage func(b []byte, pageSize int) int) {
	for _, sync := range []persist.SyncMode{persist.SyncBatch, persist.SyncOff} {
		t.Run(sync.String(), func(t *testing.T) {
			path := writeStoreSync(t, sync)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if damage(b, os.Getpagesize()) == 0 {
				t.Fatal(none)
			}
			exe, _ := os.Executable()
			for _, mode := range []string{"check", "open"} {
				if err := os.WriteFile(path, b, 0o600); err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				cmd := exec.CommandContext(ctx, exe, "-test.run=^"+test+"$", "-test.count=1")
				cmd.Env = childEnv("DAMAGED_PATH="+path, "DAMAGED_MODE="+mode)
				out, err := cmd.CombinedOutput()
				if ctx.Err() != nil {
					t.Errorf("%s: still running after 20s (hang)", mode)
				} else if err != nil {
					t.Errorf("%s on the damaged store: %v\n%.4000s", mode, err, out)
				}
				cancel()
			}
		})
	}
}

// inDamagedChild reports whether this is damageInChild's child process; if
// so it has checked that Check (or Open and Load) of the damaged store
// returns ErrCorrupt.
func inDamagedChild(t *testing.T) bool {
	p := os.Getenv("DAMAGED_PATH")
	if p == "" {
		return false
	}
	if os.Getenv("DAMAGED_MODE") == "check" {
		if err := persist.Check(p); !errors.Is(err, persist.ErrCorrupt) {
			t.Fatalf("Check: %v, want ErrCorrupt", err)
		}
		return true
	}
	db, err := persist.Open(persist.Options{Path: p})
	if err == nil {
		_, err = db.Load()
		_ = db.Close()
	}
	if !errors.Is(err, persist.ErrCorrupt) {
		t.Fatalf("Open+Load: %v, want ErrCorrupt", err)
	}
	return true
}
