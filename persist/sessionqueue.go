package persist

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime/debug"

	bolt "go.etcd.io/bbolt"
)

// This file holds what keeps a persistent session's subscriptions and
// outbound queue on disk without reading or rewriting them whole: one record
// per subscription, and the queue's count and bytes in a stats record kept
// in the same transaction as its entries, so start-up reads sessions and
// the messages in flight, not every queued message. Like every record of
// format 2 and later they are sealed (checksum.go), and a damaged one is set aside
// (aside.go), never delivered.

// keySubs names a session's sub-bucket of subscriptions: Seq (uint64) →
// QoS | filter. The session's stats key (keyStats) holds the count and
// bytes of its queue as a qstats record.
var keySubs = []byte("subs")

// subscription record: options | [uvarint ID] | filter. options: bits 0-1
// QoS, bit 2 no local, bit 3 retain as published, bits 4-5 retain
// handling, bit 6 an identifier follows (1 to MaxSubscriptionID). A 3.1.x
// subscription's record is QoS | filter, as in format 2.
const (
	subNoLocal = 1 << 2
	subRAP     = 1 << 3
	subRHShift = 4
	subHasID   = 1 << 6
)

func encodeSub(s *Subscription) []byte {
	b := make([]byte, 0, 1+binary.MaxVarintLen32+len(s.Filter)+sumLen)
	opts := s.QoS&3 | (s.RetainHandling&3)<<subRHShift
	if s.NoLocal {
		opts |= subNoLocal
	}
	if s.RetainAsPublished {
		opts |= subRAP
	}
	if s.ID != 0 {
		opts |= subHasID
	}
	b = append(b, opts)
	if s.ID != 0 {
		b = binary.AppendUvarint(b, uint64(s.ID))
	}
	return append(b, s.Filter...)
}

func decodeSub(k, v []byte) (Subscription, error) {
	bad := func() (Subscription, error) {
		return Subscription{}, fmt.Errorf("decoding subscription %x: bad record", k)
	}
	if len(k) != 8 || len(v) < 2 || v[0]&3 > 2 || v[0]&0x80 != 0 || (v[0]>>subRHShift)&3 > 2 {
		return bad()
	}
	s := Subscription{
		Seq: binary.BigEndian.Uint64(k), QoS: v[0] & 3, NoLocal: v[0]&subNoLocal != 0,
		RetainAsPublished: v[0]&subRAP != 0, RetainHandling: (v[0] >> subRHShift) & 3,
	}
	rest := v[1:]
	if v[0]&subHasID != 0 {
		id, n, ok := subID(rest)
		if !ok {
			return bad()
		}
		s.ID, rest = id, rest[n:]
	}
	if len(rest) == 0 {
		return bad()
	}
	s.Filter = string(rest)
	return s, nil
}

// sessQ is the stats of one session queue inside a write transaction,
// written back by applier.end when dirty.
type sessQ struct {
	b     *bolt.Bucket // the session bucket
	st    qstats
	dirty bool
}

// sessionQueue returns the stats of session id (bucket b) in this
// transaction. Damaged stats are derived again from the queue.
func (a *applier) sessionQueue(id string, b *bolt.Bucket) (*sessQ, error) {
	if q, ok := a.sstats[id]; ok {
		return q, nil
	}
	st, err := sessionStats(b, a.msgs)
	dirty := false
	if err != nil {
		a.db.damage("session "+quote(id)+": queue stats", err)
		dirty = true
	}
	q := &sessQ{b: b, st: st, dirty: dirty}
	if a.sstats == nil {
		a.sstats = make(map[string]*sessQ)
	}
	a.sstats[id] = q
	return q, nil
}

// recountSession sets the stats of session id (bucket b) to its queue's
// count and bytes, after a damaged entry was set aside.
func (a *applier) recountSession(id string, b *bolt.Bucket) error {
	q, ok := a.sstats[id]
	if !ok {
		// Not read: the stats may be the damaged record.
		q = &sessQ{b: b}
		if a.sstats == nil {
			a.sstats = make(map[string]*sessQ)
		}
		a.sstats[id] = q
	}
	q.st.count, q.st.bytes = countSessionQueue(b.Bucket(keyQueue), a.msgs)
	q.dirty = true
	return nil
}

func (a *applier) flushSessionStats() error {
	for _, q := range a.sstats {
		if q.dirty {
			if err := putRec(q.b, keyStats, q.st.encode()); err != nil {
				return err
			}
		}
	}
	return nil
}

// sessionStats returns the queue stats of the session bucket sb. If its
// stats record is damaged it returns the count and bytes of its queue and
// the error.
func sessionStats(sb, msgs *bolt.Bucket) (qstats, error) {
	v, err := getRec(sb, keyStats)
	var st qstats
	if err == nil {
		if st, err = decodeQStats(v); err == nil {
			return st, nil
		}
	}
	st = qstats{}
	if qb := sb.Bucket(keyQueue); qb != nil {
		st.count, st.bytes = countSessionQueue(qb, msgs)
	}
	return st, err
}

// countSessionQueue returns the number of entries of a session queue and
// the bytes of their messages (unverified: an estimate for damage only).
func countSessionQueue(qb, msgs *bolt.Bucket) (n, size int64) {
	_ = qb.ForEach(func(k, _ []byte) error {
		n++
		size += messageSize(strip(msgs.Get(k)))
		return nil
	})
	return n, size
}

func (a *applier) enqueue(o Enqueue) error {
	k := u64key(o.MsgID)
	mv := a.msgs.Get(k)
	if mv == nil {
		a.skip(o, fmt.Errorf("%w: enqueue of unknown message %d", errInvalidOp, o.MsgID))
		return nil
	}
	s, err := a.session(o.ClientID, true)
	if err != nil {
		return err
	}
	q := s.Bucket(keyQueue)
	if q.Get(k) != nil {
		return nil
	}
	if err := putRec(q, k, encodeRef(&Queued{QoS: o.QoS, Retain: o.Retain, SubIDs: o.SubIDs})); err != nil {
		return err
	}
	sq, err := a.sessionQueue(o.ClientID, s)
	if err != nil {
		return err
	}
	sq.st.count++
	sq.st.bytes += messageSize(strip(mv))
	sq.dirty = true
	var n uint64
	v, err := getRec(a.refs, k)
	if err != nil {
		a.db.damage(fmt.Sprintf("refcount of message %d", o.MsgID), err)
		return a.recount(o.MsgID)
	}
	if len(v) == 8 {
		n = binary.BigEndian.Uint64(v)
	}
	return putRec(a.refs, k, u64key(n+1))
}

func (a *applier) dequeue(o Dequeue) error {
	s, err := a.session(o.ClientID, false)
	if s == nil || err != nil {
		return err
	}
	q := s.Bucket(keyQueue)
	k := u64key(o.MsgID)
	if q.Get(k) == nil {
		return nil
	}
	if err := q.Delete(k); err != nil {
		return err
	}
	sq, err := a.sessionQueue(o.ClientID, s)
	if err != nil {
		return err
	}
	sq.st.count--
	sq.st.bytes -= messageSize(strip(a.msgs.Get(k)))
	sq.dirty = true
	return a.decRef(o.MsgID)
}

func (a *applier) putSubscription(o PutSubscription) error {
	s, err := a.session(o.ClientID, true)
	if err != nil {
		return err
	}
	b, err := s.CreateBucketIfNotExists(keySubs)
	if err != nil {
		return err
	}
	return putRec(b, u64key(o.Sub.Seq), encodeSub(&o.Sub))
}

func (a *applier) deleteSubscription(o DeleteSubscription) error {
	s, err := a.session(o.ClientID, false)
	if s == nil || err != nil {
		return err
	}
	if b := s.Bucket(keySubs); b != nil {
		return b.Delete(u64key(o.Seq))
	}
	return nil
}

// migrateSession brings the session bucket b of a format 1 file, whose
// records are not sealed yet, to the session layout of format 2 (migrate
// seals it afterwards): subscriptions held as one list in the info record
// move to the subs bucket (Seq 1, 2, ...), and the queue gets its stats
// record.
func migrateSession(b, msgs *bolt.Bucket, where string) error {
	info, err := decodeSession(b.Get(keyInfo))
	subs := info.subs
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrCorrupt, where, err)
	}
	sub, err := b.CreateBucketIfNotExists(keySubs)
	if err != nil {
		return err
	}
	if len(subs) > 0 {
		for i := range subs {
			subs[i].Seq = uint64(i + 1)
			if err := sub.Put(u64key(subs[i].Seq), encodeSub(&subs[i])); err != nil {
				return err
			}
		}
		if err := b.Put(keyInfo, encodeSession(&sessionInfo{lastSeen: info.lastSeen})); err != nil {
			return err
		}
	}
	qb := b.Bucket(keyQueue)
	if qb == nil {
		return fmt.Errorf("%w: %s: queue or inbound bucket missing", ErrCorrupt, where)
	}
	var st qstats
	_ = qb.ForEach(func(k, _ []byte) error {
		st.count++
		st.bytes += messageSize(msgs.Get(k)) // format 1: not sealed
		return nil
	})
	return b.Put(keyStats, st.encode())
}

// loadSession loads the session id from its bucket sb: its subscriptions
// (ascending Seq), owner, LastSeen, the sent entries at the head of its
// queue with their messages, the count and bytes of the rest, and its
// inbound packet ids. cache holds the messages decoded so far, nil for a
// damaged one. A damaged record is reported (db.found) and added to aside,
// and skipped: a damaged subscription is not loaded, a damaged owner loads
// as none (see the Damage section of doc.go), a damaged queue entry is not
// returned.
func (db *DB) loadSession(id string, sb, msgs *bolt.Bucket, cache map[uint64]*Message, aside *[]asideItem) (Session, error) {
	s := Session{ClientID: id}
	where := "session " + quote(id)
	info, err := getRec(sb, keyInfo)
	var in sessionInfo
	if err == nil {
		in, err = decodeSession(info)
	}
	if err == nil && len(in.subs) > 0 {
		// Format 2 keeps subscriptions in the subs bucket only.
		err = errors.New("subscriptions in the info record")
	}
	if err != nil {
		db.found(aside, asideItem{what: where + ": info", kind: asideInfo, name: id, raw: sb.Get(keyInfo)}, err)
		in = sessionInfo{}
	}
	s.LastSeen, s.Version, s.ExpiryInterval = in.lastSeen, in.version, in.expiry
	wv, err := getRec(sb, keyWill)
	if err == nil && wv != nil {
		s.Will, err = decodeWill(wv)
	}
	if err != nil {
		db.found(aside, asideItem{what: where + ": will", kind: asideWill, name: id, key: keyWill, raw: sb.Get(keyWill)}, err)
		s.Will = nil
	}
	ov, err := getRec(sb, keyOwner)
	if err == nil {
		s.Owner, err = decodeOwner(ov)
	}
	if err != nil {
		db.found(aside, asideItem{what: where + ": owner", kind: asideOwner, name: id, key: keyOwner, raw: sb.Get(keyOwner)}, err)
		s.Owner = nil
	}
	if b := sb.Bucket(keySubs); b != nil {
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			body, err := unseal(k, v)
			var sub Subscription
			if err == nil {
				sub, err = decodeSub(k, body)
			}
			if err != nil {
				db.found(aside, asideItem{what: fmt.Sprintf("%s: subscription %x", where, k), kind: asideSub, name: id, key: k, raw: v}, err)
				continue
			}
			s.Subs = append(s.Subs, sub)
		}
	}
	qb, ib := sb.Bucket(keyQueue), sb.Bucket(keyInbound)
	if qb == nil || ib == nil {
		return s, errors.New("queue or inbound bucket missing")
	}
	st, err := sessionStats(sb, msgs)
	if err != nil {
		db.found(aside, asideItem{what: where + ": queue stats", kind: asideStats, name: id, key: keyStats, raw: sb.Get(keyStats)}, err)
	}
	s.Waiting, s.WaitingBytes = st.count, st.bytes
	c := qb.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		q, sent, ok := db.readQueued(where, id, k, v, msgs, cache, aside)
		if !sent {
			break
		}
		// A damaged entry is not in flight any more: it leaves the count
		// (by its stored size, as the stats counted it).
		s.Waiting--
		s.WaitingBytes -= messageSize(strip(msgs.Get(k)))
		if ok {
			s.Queue = append(s.Queue, q)
		}
	}
	if s.Waiting < 0 || s.WaitingBytes < 0 {
		if err == nil { // not reported yet
			db.found(aside, asideItem{what: where + ": queue stats", kind: asideStats, name: id, key: keyStats, raw: sb.Get(keyStats)},
				fmt.Errorf("%d messages, %d bytes: fewer than the %d entries in flight", st.count, st.bytes, len(s.Queue)))
		}
		s.Waiting, s.WaitingBytes = max(s.Waiting, 0), max(s.WaitingBytes, 0)
	}
	c = ib.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if _, err := unseal(k, v); err != nil || len(k) != 2 {
			db.found(aside, asideItem{what: fmt.Sprintf("%s: inbound packet id %x", where, k), kind: asideInbound, name: id, key: k, raw: v},
				cmp.Or(err, errors.New("bad key")))
			continue
		}
		s.Inbound = append(s.Inbound, binary.BigEndian.Uint16(k))
	}
	return s, nil
}

// readQueued decodes the entry k, v of the queue of session id (where
// names it) and, if sent is unset or it was sent (has a packet id), its
// message, through cache when it is not nil. ok reports that q is whole: a
// damaged ref or message is added to aside (and reported) instead, with
// sent set, so that the caller skips it.
func (db *DB) readQueued(where, id string, k, v []byte, msgs *bolt.Bucket, cache map[uint64]*Message, aside *[]asideItem) (q Queued, sent, ok bool) {
	if len(k) != 8 {
		db.found(aside, asideItem{what: fmt.Sprintf("%s: queue key %x", where, k), kind: asideRef, name: id, key: k, raw: v},
			errors.New("bad key"))
		return q, true, false
	}
	q.MsgID = binary.BigEndian.Uint64(k)
	body, err := unseal(k, v)
	if err == nil {
		err = decodeRef(body, &q)
	}
	if err != nil {
		db.found(aside, asideItem{what: fmt.Sprintf("%s: queued message %d", where, q.MsgID), kind: asideRef, name: id, key: k, raw: v}, err)
		return q, true, false
	}
	if cache != nil && q.PacketID == 0 {
		return q, false, false // Load: the sent entries end here
	}
	m, cached := cache[q.MsgID]
	if !cached {
		m, err = loadMessage(msgs, k)
		if cache != nil {
			cache[q.MsgID] = m
		}
	}
	if m == nil {
		it := asideItem{what: fmt.Sprintf("%s: message %d", where, q.MsgID), kind: asideMessage, name: id, key: k, raw: msgs.Get(k)}
		if err != nil {
			db.found(aside, it, err)
		} else { // reported with the first session found holding it
			it.key, it.raw = bytes.Clone(it.key), bytes.Clone(it.raw)
			*aside = append(*aside, it)
		}
		return q, true, false
	}
	q.Msg = *m
	return q, true, true
}

// ReadSessionQueue returns up to max entries of the outbound queue of
// session clientID with MsgID greater than afterMsgID, in ascending MsgID
// order, with their messages, from the durable state: an entry still being
// committed is not there yet. An unknown session's queue is empty; max ≤ 0
// returns none. A damaged entry (its ref or its message) is set aside as in
// Load: skipped, not counted against max, logged and counted in
// Stats.Damaged; the broker then finds its queue one entry shorter than
// counted and carries on. Damage to the bucket structure fails it with
// ErrCorrupt.
func (db *DB) ReadSessionQueue(clientID string, afterMsgID uint64, max int) (out []Queued, err error) {
	if max <= 0 || afterMsgID == ^uint64(0) {
		return nil, nil
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("reading the queue of session %s: %w: %v", quote(clientID), ErrCorrupt, r)
		}
	}()
	var aside []asideItem
	err = db.bolt.View(func(tx *bolt.Tx) error {
		_, sb, err := findBucket(tx.Bucket(bucketSessions), clientID)
		if sb == nil || err != nil {
			return err
		}
		qb := sb.Bucket(keyQueue)
		if qb == nil {
			return errors.New("queue bucket missing")
		}
		msgs := tx.Bucket(bucketMessages)
		where := "session " + quote(clientID)
		c := qb.Cursor()
		for k, v := c.Seek(u64key(afterMsgID + 1)); k != nil && len(out) < max; k, v = c.Next() {
			if q, _, ok := db.readQueued(where, clientID, k, v, msgs, nil, &aside); ok {
				out = append(out, q)
			}
		}
		return nil
	})
	if len(aside) > 0 {
		db.setAside(aside)
	}
	if err != nil {
		return nil, fmt.Errorf("reading the queue of session %s: %w: %w", quote(clientID), ErrCorrupt, err)
	}
	return out, nil
}
