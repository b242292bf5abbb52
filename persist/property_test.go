package persist_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/edged/edged/persist"
)

// scenario drives the same random ops and restarts into a DB and a Memory
// and compares what they load. pick(n) returns a choice in [0, n); more
// reports whether the input has more choices.
type scenario struct {
	t       *testing.T
	opts    persist.Options
	db      *persist.DB
	mem     *persist.Memory
	pick    func(n int) int
	more    func() bool
	nextID  uint64
	pending []chan error
}

// The last client, topic and queue name are long enough to be stored under
// hashed keys (over 1,024 bytes; TestLongNames goes past bbolt's 32 KiB).
var (
	clients = []string{"c1", "c2", "c3/" + strings.Repeat("c", 1100)}
	topics  = []string{"t/1", "t/2", "t/3/" + strings.Repeat("t", 1100)}
	fifos   = []string{"q1", "q2/" + strings.Repeat("q", 1100)}
)

func (s *scenario) setLimits(qs queueStore) {
	qs.Queue("q1", persist.QueueLimits{MaxMessages: 4, MaxBytes: 60})
	qs.Queue(fifos[1], persist.QueueLimits{MaxMessages: 3, MaxAge: time.Hour, Overflow: persist.DropNewest})
}

func (s *scenario) message(i int) persist.Message {
	m := persist.Message{Topic: topics[i%3], Payload: fmt.Appendf(nil, "p%d", s.nextID), QoS: byte(i % 3), Retain: i%2 == 0}
	switch s.pick(3) {
	case 0:
		m.Time = time.Now().UnixNano()
	case 1:
		m.Time = 1000 + int64(i) // long expired
	}
	// MQTT 5.0 fields: properties (nil, empty or not), an expiry past
	// (retained ones are dropped by Load) or far ahead.
	switch s.pick(4) {
	case 1:
		m.Properties = []byte{}
	case 2:
		m.Properties = fmt.Appendf(nil, "\x26props%d", i)
		m.Expiry = time.Now().Add(time.Hour).UnixNano()
	case 3:
		m.Expiry = 2000 + int64(i)
	}
	return m
}

// op returns a random group of ops, or nil when the input is exhausted.
func (s *scenario) group() []persist.Op {
	if !s.more() {
		return nil
	}
	k := s.pick(16)
	c := clients[max(0, s.pick(len(clients)))]
	id := uint64(max(0, s.pick(int(s.nextID)+1)))
	switch k {
	case 0, 1, 2:
		s.nextID++
		ops := []persist.Op{persist.PutMessage{ID: s.nextID, Msg: s.message(int(s.nextID))}}
		for i, cl := range clients {
			if s.pick(2) == 1 || i == 0 {
				e := persist.Enqueue{ClientID: cl, MsgID: s.nextID, QoS: byte(max(0, s.pick(3)))}
				if s.pick(3) == 0 {
					e.SubIDs = []uint32{uint32(1 + s.pick(3)), persist.MaxSubscriptionID}
				}
				ops = append(ops, e)
			}
		}
		return ops
	case 3:
		return []persist.Op{persist.SetInflight{ClientID: c, MsgID: id, PacketID: uint16(max(0, s.pick(5))), Pubrel: s.pick(2) == 1}}
	case 4, 5:
		return []persist.Op{persist.Dequeue{ClientID: c, MsgID: id}}
	case 6:
		seq := uint64(max(0, s.pick(3)))
		if s.pick(3) == 0 {
			return []persist.Op{persist.DeleteSubscription{ClientID: c, Seq: seq}}
		}
		sub := persist.Subscription{Seq: seq, Filter: topics[max(0, s.pick(3))], QoS: byte(max(0, s.pick(3)))}
		if o := s.pick(8); o > 0 {
			sub.NoLocal, sub.RetainAsPublished, sub.RetainHandling, sub.ID = o&1 != 0, o&2 != 0, byte(o%3), uint32(o*1000)
		}
		return []persist.Op{persist.PutSession{ClientID: c, LastSeen: int64(s.pick(100)), Version: byte(3 + s.pick(3)), ExpiryInterval: uint32(s.pick(3)) * 0x7fffffff},
			persist.PutSubscription{ClientID: c, Sub: sub}}
	case 7:
		switch s.pick(3) {
		case 1:
			return []persist.Op{persist.SetWill{ClientID: c}}
		case 2:
			return []persist.Op{persist.SetWill{ClientID: c, Will: &persist.Will{Msg: s.message(s.pick(3)), Due: int64(s.pick(3))}}}
		}
		return []persist.Op{persist.DeleteSession{ClientID: c}}
	case 8:
		return []persist.Op{persist.PutInbound{ClientID: c, PacketID: uint16(max(0, s.pick(4)))}, persist.DeleteInbound{ClientID: c, PacketID: uint16(max(0, s.pick(4)))}}
	case 9:
		return []persist.Op{persist.PutRetained{Msg: s.message(s.pick(3))}, persist.DeleteRetained{Topic: topics[max(0, s.pick(3))]}}
	case 10, 11:
		return []persist.Op{persist.QueueAppend{Queue: fifos[max(0, s.pick(2))], Msg: s.message(s.pick(3))}}
	case 12:
		return []persist.Op{persist.QueueDelete{Queue: fifos[max(0, s.pick(2))], Seq: uint64(max(0, s.pick(12)))}}
	case 13:
		// invalid: refused as a whole by both stores, nothing applied
		s.flush()
		ops := []persist.Op{persist.PutSession{ClientID: c}, persist.PutSession{ClientID: ""}, persist.Enqueue{ClientID: c, MsgID: id, QoS: 4}}
		s.commit(ops)
		for _, ch := range s.pending {
			if err := <-ch; !errors.Is(err, persist.ErrInvalidOp) {
				s.t.Fatalf("invalid commit: %v, want ErrInvalidOp", err)
			}
		}
		s.pending = s.pending[:0]
		return []persist.Op{}
	case 14:
		s.flush()
		n1, err1 := s.db.ExpireQueues(time.Now())
		n2, err2 := s.mem.ExpireQueues(time.Now())
		if n1 != n2 || err1 != nil || err2 != nil {
			s.t.Fatalf("ExpireQueues: db %d %v, memory %d %v", n1, err1, n2, err2)
		}
		return []persist.Op{}
	default:
		s.restart()
		return []persist.Op{}
	}
}

func (s *scenario) commit(ops []persist.Op) {
	ch1, ch2 := make(chan error, 1), make(chan error, 1)
	s.db.Commit(ops, func(err error) { ch1 <- err })
	s.mem.Commit(ops, func(err error) { ch2 <- err })
	s.pending = append(s.pending, ch1, ch2)
}

func (s *scenario) flush() {
	for _, ch := range s.pending {
		if err := <-ch; err != nil {
			s.t.Fatalf("commit: %v", err)
		}
	}
	s.pending = s.pending[:0]
}

func (s *scenario) restart() {
	s.flush()
	s.compare()
	s.db = reopen(s.t, s.db, s.opts)
	s.setLimits(s.db)
	s.compare()
}

func (s *scenario) compare() {
	s.t.Helper()
	s.flush()
	a, b := fmtSnap(mustLoad(s.t, s.db)), fmtSnap(mustLoad(s.t, s.mem))
	if a != b {
		s.t.Fatalf("DB loads:\n%s\nMemory loads:\n%s", a, b)
	}
	for _, q := range fifos {
		ea, err := s.db.ReadQueue(q, 0, 100)
		if err != nil {
			s.t.Fatal(err)
		}
		eb, _ := s.mem.ReadQueue(q, 0, 100)
		if fa, fb := fmtEntries(ea), fmtEntries(eb); fa != fb {
			s.t.Fatalf("queue %s: DB %s, Memory %s", q, fa, fb)
		}
		if sa, sb := s.db.QueueStats(q), s.mem.QueueStats(q); sa != sb {
			s.t.Fatalf("queue %s stats: DB %+v, Memory %+v", q, sa, sb)
		}
	}
	sa, sb := mustLoad(s.t, s.db).NextMsgID, mustLoad(s.t, s.mem).NextMsgID
	if sa != sb {
		s.t.Fatalf("NextMsgID: DB %d, Memory %d", sa, sb)
	}
}

func runScenario(t *testing.T, steps int, pick func(int) int, more func() bool) {
	s := &scenario{t: t, pick: pick, more: more, opts: persist.Options{Path: t.TempDir() + "/edged.db", BatchSize: 4}}
	s.db = mustOpenStore(t, s.opts)
	s.mem = persist.NewMemory()
	t.Cleanup(func() { s.mem.Close() })
	s.setLimits(s.db)
	s.setLimits(s.mem)
	for range steps {
		ops := s.group()
		if ops == nil {
			break
		}
		s.commit(ops)
		if s.pick(8) == 0 {
			s.compare()
		}
	}
	s.compare()
	if testing.Verbose() {
		snap := mustLoad(t, s.db)
		st := s.db.Stats()
		t.Logf("end: %d sessions, %d retained, next id %d, q1 %+v, q2 %+v, commits %d",
			len(snap.Sessions), len(snap.Retained), snap.NextMsgID, s.db.QueueStats("q1"), s.db.QueueStats(fifos[1]), st.Commits)
	}
}

func TestProperty(t *testing.T) {
	steps := 400
	if testing.Short() {
		steps = 100
	}
	for seed := range uint64(8) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 42))
			runScenario(t, steps, func(n int) int { return r.IntN(n) }, func() bool { return true })
		})
	}
}

func FuzzQueue(f *testing.F) {
	f.Add([]byte{0, 0, 1, 10, 10, 10, 2, 12, 1, 15, 0, 4, 0, 1, 7, 14, 9})
	f.Add([]byte("\x0a\x01\x00\x0a\x01\x01\x0a\x00\x00\x0c\x00\x01\x0f\x0b\x01\x01"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 2000 {
			return
		}
		runScenario(t, 1000, func(n int) int {
			if len(data) == 0 {
				return 0
			}
			v := int(data[0]) % n
			data = data[1:]
			return v
		}, func() bool { return len(data) > 0 })
	})
}
