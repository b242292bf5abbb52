package persist_test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edged/edged/persist"
)

func buildRichStore(t *testing.T, path string) {
	db, err := persist.Open(persist.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	var ops []persist.Op
	id := uint64(1)
	for c := range 30 {
		cid := fmt.Sprintf("client-%03d", c)
		ops = append(ops, persist.PutSession{ClientID: cid, LastSeen: 5}, persist.PutSubscription{ClientID: cid, Sub: persist.Subscription{Seq: 1, Filter: "a/#", QoS: 1}})
		for range 20 {
			ops = append(ops, persist.PutMessage{ID: id, Msg: msg("a/b", strings.Repeat("p", 100+int(id)%300))},
				persist.Enqueue{ClientID: cid, MsgID: id, QoS: 1},
				persist.Enqueue{ClientID: "shared", MsgID: id, QoS: 2})
			id++
		}
		ops = append(ops, persist.PutInbound{ClientID: cid, PacketID: uint16(c + 1)})
		ops = append(ops, persist.PutRetained{Msg: msg(fmt.Sprintf("r/%d", c), strings.Repeat("r", 200))})
	}
	for range 300 {
		ops = append(ops, persist.QueueAppend{Queue: "cloud", Msg: msg("q", strings.Repeat("q", 300))})
	}
	mustCommit(t, db, ops...)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestDamageChild is TestDamageFuzz's subprocess: it opens the damaged file and exercise every read path and a commit.
func TestDamageChild(t *testing.T) {
	path := os.Getenv("DAMAGE_PATH")
	if path == "" {
		t.Skip("helper")
	}
	if os.Getenv("DAMAGE_MODE") == "check" {
		if err := persist.Check(path); errors.Is(err, persist.ErrCorrupt) {
			fmt.Println("CORRUPT")
		}
		return
	}
	db, err := persist.Open(persist.Options{Path: path, Timeout: time.Second})
	if err != nil {
		if !errors.Is(err, persist.ErrCorrupt) {
			fmt.Println("OPEN-NONCORRUPT:", err)
		} else {
			fmt.Println("CORRUPT")
		}
		return
	}
	defer db.Close()
	snap, err := db.Load()
	if err == nil && len(snap.Sessions) == 0 {
		fmt.Println("SILENT-EMPTY")
	} else if errors.Is(err, persist.ErrCorrupt) {
		fmt.Println("CORRUPT")
	}
	es, _ := db.ReadQueue("cloud", 0, 1000)
	// Nothing damaged is delivered as if whole: every message read is one
	// buildRichStore wrote (a payload of one repeated letter).
	var read []persist.Message
	if snap != nil {
		read = append(read, snap.Retained...)
		for _, s := range snap.Sessions {
			for _, q := range s.Queue {
				read = append(read, q.Msg)
			}
		}
	}
	for _, e := range es {
		read = append(read, e.Msg)
	}
	for _, m := range read {
		if !richMessage(m) {
			fmt.Printf("DELIVERED-DAMAGED %.60q %.60q\n", m.Topic, m.Payload)
			break
		}
	}
	_ = db.QueueStats("cloud")
	ch := make(chan error, 1)
	db.Commit([]persist.Op{persist.PutMessage{ID: 99999, Msg: msg("x", "y")}, persist.Enqueue{ClientID: "client-001", MsgID: 99999, QoS: 1},
		persist.DeleteSession{ClientID: "client-002"}, persist.QueueAppend{Queue: "cloud", Msg: msg("q", "z")}}, func(err error) { ch <- err })
	<-ch
}

// TestDamageFuzz damages random bytes of the non-meta pages of a store and
// opens, loads and commits to it (and checks it) in a subprocess: no crash,
// no hang, no silent empty start, no damaged message delivered as if whole
// (records carry checksums). DAMAGE_N sets the number of cases (default
// 30), DAMAGE_SEED the seed (default 1; "random" for a new one), and
// DAMAGE_CHECK=1 or 0 runs only Check or only Open (default both). Failing
// files are kept in DAMAGE_KEEP if set.
func TestDamageFuzz(t *testing.T) {
	if os.Getenv("DAMAGE_PATH") != "" {
		t.Skip("in the child")
	}
	n := 30
	if v, err := strconv.Atoi(os.Getenv("DAMAGE_N")); err == nil {
		n = v
	}
	if testing.Short() {
		n = min(n, 5)
	}
	seed := uint64(1)
	switch v := os.Getenv("DAMAGE_SEED"); v {
	case "":
	case "random":
		seed = uint64(time.Now().UnixNano())
	default:
		seed, _ = strconv.ParseUint(v, 10, 64)
	}
	modes := []string{"open", "check"}
	switch os.Getenv("DAMAGE_CHECK") {
	case "1":
		modes = []string{"check"}
	case "0":
		modes = []string{"open"}
	}
	t.Logf("DAMAGE_N=%d DAMAGE_SEED=%d modes %v", n, seed, modes)
	dir := t.TempDir()
	good := filepath.Join(dir, "good.db")
	buildRichStore(t, good)
	orig, _ := os.ReadFile(good)
	ps := os.Getpagesize()
	exe, _ := os.Executable()
	r := rand.New(rand.NewPCG(1, seed))
	failures, corrupt := 0, 0
	for i := range n {
		b := bytes.Clone(orig)
		// damage: a few random bytes or a random 16-byte run in non-meta
		// pages, half of them in a page header or its first elements
		for range 1 + r.IntN(4) {
			off := 2*ps + r.IntN(len(b)-2*ps-16)
			if r.IntN(2) == 0 {
				off = (2+r.IntN(len(b)/ps-2))*ps + r.IntN(64)
			}
			if r.IntN(2) == 0 {
				b[off] = byte(r.Uint32())
			} else {
				for j := range 16 {
					b[off+j] = byte(r.Uint32())
				}
			}
		}
		p := filepath.Join(dir, fmt.Sprintf("d%d.db", i))
		for _, mode := range modes {
			_ = os.WriteFile(p, b, 0o600) // afresh: Open may write to it
			cmd := exec.Command(exe, "-test.run=^TestDamageChild$", "-test.count=1", "-test.timeout=20s", "-test.v")
			cmd.Env = childEnv("DAMAGE_PATH="+p, "DAMAGE_MODE="+mode)
			out, err := cmd.CombinedOutput()
			s := string(out)
			if strings.Contains(s, "CORRUPT") {
				corrupt++
			}
			if err == nil && !strings.Contains(s, "OPEN-NONCORRUPT") && !strings.Contains(s, "SILENT-EMPTY") &&
				!strings.Contains(s, "DELIVERED-DAMAGED") {
				continue
			}
			failures++
			first := s
			if k := strings.Index(s, "goroutine "); k > 0 {
				first = s[:k]
			}
			if len(first) > 600 {
				first = first[:600]
			}
			t.Errorf("case %d (%s): %v\n%s", i, mode, err, first)
			if keep := os.Getenv("DAMAGE_KEEP"); keep != "" {
				_ = os.MkdirAll(keep, 0o755)
				_ = os.WriteFile(filepath.Join(keep, fmt.Sprintf("d%d-%d.db", seed, i)), b, 0o600)
			}
		}
		_ = os.Remove(p)
		if failures > 8 {
			break
		}
	}
	t.Logf("%d cases, %d runs reported ErrCorrupt, %d failures", n, corrupt, failures)
}

// richMessage reports whether m is a message buildRichStore wrote.
func richMessage(m persist.Message) bool {
	p := m.Payload
	if len(p) == 0 || strings.Trim(string(p), string(p[:1])) != "" {
		return false
	}
	switch {
	case m.Topic == "a/b" && p[0] == 'p' && len(p) >= 100 && len(p) < 400:
	case strings.HasPrefix(m.Topic, "r/") && p[0] == 'r' && len(p) == 200:
	case m.Topic == "q" && p[0] == 'q' && len(p) == 300:
	default:
		return false
	}
	return m.QoS == 1 && m.Time == 1_700_000_000_000_000_000
}
