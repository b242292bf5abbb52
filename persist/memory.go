package persist

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"
)

// Memory is a Store that keeps everything in maps: it loses its state with
// the process. It has the same semantics as DB, including the asynchronous
// done callbacks from its own goroutine, and serves tests and as the
// reference model DB is tested against.
type Memory struct {
	c committer

	mu       sync.Mutex
	msgs     map[uint64]*memMsg
	sessions map[string]*memSession
	retained map[string]Message
	queues   map[string]*memQueue
	limits   map[string]QueueLimits
	next     uint64

	closeOnce sync.Once
}

type memMsg struct {
	msg  Message
	refs int
}

type memSession struct {
	subs     map[uint64]Subscription
	lastSeen int64
	queue    map[uint64]*Queued // Msg unset; see Memory.msgs
	order    []uint64           // the keys of queue, ascending
	inbound  map[uint16]struct{}
	owner    *Owner
	version  byte
	expiry   uint32
	will     *Will
}

type memQueue struct {
	seq     uint64
	entries []Entry // ascending Seq
	st      qstats
}

// NewMemory returns an empty Memory with its writer goroutine started.
func NewMemory() *Memory {
	m := &Memory{
		msgs:     make(map[uint64]*memMsg),
		sessions: make(map[string]*memSession),
		retained: make(map[string]Message),
		queues:   make(map[string]*memQueue),
		limits:   make(map[string]QueueLimits),
		next:     1,
	}
	o := Options{}
	o.setDefaults()
	m.c.start(DefaultBatchSize, false, o.Logger, m.applyBatch)
	return m
}

// Commit queues ops with the contract of DB.Commit.
func (m *Memory) Commit(ops []Op, done func(error)) { m.c.commit(ops, done) }

// Close applies everything committed so far, calls the pending dones and
// stops the writer. It is idempotent. The state stays readable.
func (m *Memory) Close() error {
	m.closeOnce.Do(m.c.close)
	return nil
}

// Stats returns the store's counters; FileSize is 0.
func (m *Memory) Stats() Stats { return m.c.stats() }

// setQueueLimits sets the limits of the FIFO name as DB.setQueueLimits.
func (m *Memory) setQueueLimits(name string, l QueueLimits) {
	m.mu.Lock()
	m.limits[name] = l
	m.mu.Unlock()
}

// ExpireQueues deletes expired FIFO entries as DB.ExpireQueues.
func (m *Memory) ExpireQueues(now time.Time) (int64, error) {
	n, err := expire(&m.c, "", now)
	if err != nil {
		return 0, fmt.Errorf("expiring queues: %w", err)
	}
	return n, nil
}

// cloneMsg copies msg as a store round trip returns it: a nil Payload
// becomes empty, Properties keeps nil apart from empty.
func cloneMsg(msg Message) Message {
	msg.Payload = slices.Clone(msg.Payload)
	if msg.Payload == nil {
		msg.Payload = []byte{}
	}
	msg.Properties = slices.Clone(msg.Properties)
	return msg
}

func cloneWill(w *Will) *Will {
	if w == nil {
		return nil
	}
	return &Will{Msg: cloneMsg(w.Msg), Due: w.Due}
}

func (m *Memory) applyBatch(groups []group) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range groups {
		if groups[i].err != nil {
			continue
		}
		var puts []uint64
		for _, op := range groups[i].ops {
			if p, ok := op.(PutMessage); ok {
				puts = append(puts, p.ID)
			}
			m.apply(op)
		}
		for _, id := range puts {
			if mm := m.msgs[id]; mm != nil && mm.refs == 0 {
				delete(m.msgs, id)
			}
		}
	}
	return nil
}

func (m *Memory) session(id string, create bool) *memSession {
	s := m.sessions[id]
	if s == nil && create {
		s = &memSession{subs: make(map[uint64]Subscription), queue: make(map[uint64]*Queued), inbound: make(map[uint16]struct{})}
		m.sessions[id] = s
	}
	return s
}

func (m *Memory) decRef(id uint64) {
	if mm := m.msgs[id]; mm != nil {
		if mm.refs--; mm.refs <= 0 {
			delete(m.msgs, id)
		}
	}
}

func (m *Memory) apply(op Op) {
	switch o := op.(type) {
	case PutMessage:
		m.next = max(m.next, o.ID+1)
		if mm := m.msgs[o.ID]; mm != nil {
			mm.msg = cloneMsg(o.Msg)
		} else {
			m.msgs[o.ID] = &memMsg{msg: cloneMsg(o.Msg)}
		}
	case Enqueue:
		mm := m.msgs[o.MsgID]
		if mm == nil {
			return
		}
		s := m.session(o.ClientID, true)
		if s.queue[o.MsgID] != nil {
			return
		}
		s.queue[o.MsgID] = &Queued{MsgID: o.MsgID, QoS: o.QoS, Retain: o.Retain, SubIDs: slices.Clone(o.SubIDs)}
		if i, _ := slices.BinarySearch(s.order, o.MsgID); i == len(s.order) {
			s.order = append(s.order, o.MsgID)
		} else {
			s.order = slices.Insert(s.order, i, o.MsgID)
		}
		mm.refs++
	case SetInflight:
		if s := m.session(o.ClientID, false); s != nil {
			if q := s.queue[o.MsgID]; q != nil {
				q.PacketID, q.Pubrel = o.PacketID, o.Pubrel
			}
		}
	case Dequeue:
		if s := m.session(o.ClientID, false); s != nil && s.queue[o.MsgID] != nil {
			delete(s.queue, o.MsgID)
			// Acknowledgements mostly remove the head: reslice it away
			// rather than move the whole queue.
			if i, _ := slices.BinarySearch(s.order, o.MsgID); i == 0 {
				s.order = s.order[1:]
			} else {
				s.order = slices.Delete(s.order, i, i+1)
			}
			m.decRef(o.MsgID)
		}
	case PutSession:
		s := m.session(o.ClientID, true)
		s.lastSeen, s.version, s.expiry = o.LastSeen, o.Version, o.ExpiryInterval
	case SetWill:
		if s := m.session(o.ClientID, o.Will != nil); s != nil {
			s.will = cloneWill(o.Will)
		}
	case SetOwner:
		owner := o.Owner
		m.session(o.ClientID, true).owner = &owner
	case PutSubscription:
		m.session(o.ClientID, true).subs[o.Sub.Seq] = o.Sub
	case DeleteSubscription:
		if s := m.session(o.ClientID, false); s != nil {
			delete(s.subs, o.Seq)
		}
	case DeleteSession:
		if s := m.session(o.ClientID, false); s != nil {
			for id := range s.queue {
				m.decRef(id)
			}
			delete(m.sessions, o.ClientID)
		}
	case PutInbound:
		m.session(o.ClientID, true).inbound[o.PacketID] = struct{}{}
	case DeleteInbound:
		if s := m.session(o.ClientID, false); s != nil {
			delete(s.inbound, o.PacketID)
		}
	case PutRetained:
		m.retained[o.Msg.Topic] = cloneMsg(o.Msg)
	case DeleteRetained:
		delete(m.retained, o.Topic)
	case QueueAppend:
		m.queueAppend(o)
	case QueueDelete:
		q := m.queue(o.Queue)
		i, ok := slices.BinarySearchFunc(q.entries, o.Seq, func(e Entry, s uint64) int { return cmp.Compare(e.Seq, s) })
		if ok {
			q.st.count--
			q.st.bytes -= q.entries[i].Msg.Size()
			q.entries = slices.Delete(q.entries, i, i+1)
		}
	case expireOp:
		for name, l := range m.limits {
			if q := m.queues[name]; q != nil && (o.queue == "" || o.queue == name) {
				*o.expired += m.expire(q, expiredBefore(l, o.now))
			}
		}
	}
}

func (m *Memory) queue(name string) *memQueue {
	q := m.queues[name]
	if q == nil {
		q = &memQueue{}
		m.queues[name] = q
	}
	return q
}

func (m *Memory) dropHead(q *memQueue) {
	q.st.count--
	q.st.bytes -= q.entries[0].Msg.Size()
	q.st.dropped++
	q.entries[0] = Entry{}
	q.entries = q.entries[1:]
}

func (m *Memory) expire(q *memQueue, before int64) int64 {
	var n int64
	for len(q.entries) > 0 && isExpired(q.entries[0].Msg.Time, before) {
		m.dropHead(q)
		q.st.expired++
		n++
	}
	return n
}

func (m *Memory) queueAppend(o QueueAppend) {
	q := m.queue(o.Queue)
	l := m.limits[o.Queue]
	before := expiredBefore(l, time.Now().UnixNano())
	m.expire(q, before)
	size := o.Msg.Size()
	drop := isExpired(o.Msg.Time, before)
	if !drop && !fits(l, q.st, size) {
		if l.Overflow == DropNewest || (l.MaxBytes > 0 && size > l.MaxBytes) {
			drop = true
		} else {
			for len(q.entries) > 0 && !fits(l, q.st, size) {
				m.dropHead(q)
			}
		}
	}
	if drop {
		q.st.dropped++
		if isExpired(o.Msg.Time, before) {
			q.st.expired++
		}
		return
	}
	q.seq++
	q.entries = append(q.entries, Entry{Seq: q.seq, Msg: cloneMsg(o.Msg)})
	q.st.count++
	q.st.bytes += size
}

// Load returns a deep copy of the state, ordered as DB.Load orders it.
func (m *Memory) Load() (*Snapshot, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	snap := &Snapshot{NextMsgID: m.next}
	for _, id := range slices.Sorted(maps.Keys(m.sessions)) {
		s := m.sessions[id]
		out := Session{ClientID: id, LastSeen: s.lastSeen, Version: s.version, ExpiryInterval: s.expiry, Will: cloneWill(s.will)}
		if s.owner != nil {
			owner := *s.owner
			out.Owner = &owner
		}
		for _, seq := range slices.Sorted(maps.Keys(s.subs)) {
			out.Subs = append(out.Subs, s.subs[seq])
		}
		sent := true
		for _, mid := range s.order {
			q := *s.queue[mid]
			if sent = sent && q.PacketID != 0; sent {
				q.Msg = cloneMsg(m.msgs[mid].msg)
				q.SubIDs = slices.Clone(q.SubIDs)
				out.Queue = append(out.Queue, q)
			} else {
				out.Waiting++
				out.WaitingBytes += m.msgs[mid].msg.Size()
			}
		}
		out.Inbound = slices.Sorted(maps.Keys(s.inbound))
		snap.Sessions = append(snap.Sessions, out)
	}
	now := time.Now().UnixNano()
	for _, t := range slices.Sorted(maps.Keys(m.retained)) {
		if r := m.retained[t]; r.Expired(now) {
			delete(m.retained, t)
		} else {
			snap.Retained = append(snap.Retained, cloneMsg(r))
		}
	}
	return snap, nil
}

// ReadQueue returns FIFO entries as DB.ReadQueue.
func (m *Memory) ReadQueue(name string, afterSeq uint64, max int) ([]Entry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	q := m.queues[name]
	if q == nil || max <= 0 {
		return nil, nil
	}
	before := expiredBefore(m.limits[name], time.Now().UnixNano())
	i, _ := slices.BinarySearchFunc(q.entries, afterSeq, func(e Entry, s uint64) int {
		if e.Seq <= s {
			return -1
		}
		return 1
	})
	var out []Entry
	for ; i < len(q.entries) && len(out) < max; i++ {
		e := q.entries[i]
		if isExpired(e.Msg.Time, before) {
			continue
		}
		out = append(out, Entry{Seq: e.Seq, Msg: cloneMsg(e.Msg)})
	}
	return out, nil
}

// QueueStats returns the stats of the FIFO name as DB.QueueStats.
func (m *Memory) QueueStats(name string) QueueStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	q := m.queues[name]
	if q == nil {
		return QueueStats{}
	}
	qs := QueueStats{Len: q.st.count, Bytes: q.st.bytes, Dropped: q.st.dropped, Expired: q.st.expired}
	if len(q.entries) > 0 && q.entries[0].Msg.Time != 0 {
		qs.Oldest = time.Unix(0, q.entries[0].Msg.Time)
	}
	return qs
}

// ReadSessionQueue returns session queue entries as DB.ReadSessionQueue.
func (m *Memory) ReadSessionQueue(clientID string, afterMsgID uint64, max int) ([]Queued, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.sessions[clientID]
	if s == nil || max <= 0 || afterMsgID == ^uint64(0) {
		return nil, nil
	}
	var out []Queued
	i, _ := slices.BinarySearch(s.order, afterMsgID+1)
	for ; i < len(s.order) && len(out) < max; i++ {
		q := *s.queue[s.order[i]]
		q.Msg = cloneMsg(m.msgs[q.MsgID].msg)
		q.SubIDs = slices.Clone(q.SubIDs)
		out = append(out, q)
	}
	return out, nil
}
