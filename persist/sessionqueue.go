package persist

import (
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
// the messages in flight, not every queued message.

// keySubs names a session's sub-bucket of subscriptions: Seq (uint64) →
// QoS | filter. The session's stats key (keyStats) holds the count and
// bytes of its queue as a qstats record.
var keySubs = []byte("subs")

// subscription record: QoS | filter.
func encodeSub(s *Subscription) []byte {
	b := make([]byte, 0, 1+len(s.Filter))
	b = append(b, s.QoS)
	return append(b, s.Filter...)
}

func decodeSub(k, v []byte) (Subscription, error) {
	if len(k) != 8 || len(v) < 2 || v[0] > 2 {
		return Subscription{}, fmt.Errorf("decoding subscription %x: bad record", k)
	}
	return Subscription{Seq: binary.BigEndian.Uint64(k), QoS: v[0], Filter: string(v[1:])}, nil
}

// sessQ is the stats of one session queue inside a write transaction,
// written back by applier.end when dirty.
type sessQ struct {
	b     *bolt.Bucket // the session bucket
	st    qstats
	dirty bool
}

func (a *applier) sessionQueue(id string, b *bolt.Bucket) (*sessQ, error) {
	if q, ok := a.sstats[id]; ok {
		return q, nil
	}
	st, err := decodeQStats(b.Get(keyStats))
	if err != nil {
		return nil, fmt.Errorf("session %q: %w", id, err)
	}
	q := &sessQ{b: b, st: st}
	if a.sstats == nil {
		a.sstats = make(map[string]*sessQ)
	}
	a.sstats[id] = q
	return q, nil
}

func (a *applier) flushSessionStats() error {
	for _, q := range a.sstats {
		if q.dirty {
			if err := q.b.Put(keyStats, q.st.encode()); err != nil {
				return err
			}
		}
	}
	return nil
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
	if err := q.Put(k, encodeRef(&Queued{QoS: o.QoS, Retain: o.Retain})); err != nil {
		return err
	}
	sq, err := a.sessionQueue(o.ClientID, s)
	if err != nil {
		return err
	}
	sq.st.count++
	sq.st.bytes += messageSize(mv)
	sq.dirty = true
	var n uint64
	if v := a.refs.Get(k); len(v) == 8 {
		n = binary.BigEndian.Uint64(v)
	}
	return a.refs.Put(k, u64key(n+1))
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
	sq.st.bytes -= messageSize(a.msgs.Get(k))
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
	return b.Put(u64key(o.Sub.Seq), encodeSub(&o.Sub))
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

// migrateSessions brings the sessions of a file written by an older edged
// to this layout, in the write transaction tx of Open: subscriptions held
// as one list in the info record move to the subs bucket (Seq 1, 2, ...),
// and a queue without a stats record gets one. A migrated file has neither,
// so this reads only the sessions' info and stats records.
func migrateSessions(tx *bolt.Tx) error {
	sb := tx.Bucket(bucketSessions)
	msgs := tx.Bucket(bucketMessages)
	var ids [][]byte
	_ = sb.ForEach(func(k, v []byte) error {
		if v == nil {
			ids = append(ids, k)
		}
		return nil
	})
	for _, id := range ids {
		b := sb.Bucket(id)
		subs, lastSeen, err := decodeSession(b.Get(keyInfo))
		if err != nil {
			return corruptErr(tx.DB().Path(), fmt.Errorf("session %q: %w", id, err))
		}
		if len(subs) > 0 {
			sub, err := b.CreateBucketIfNotExists(keySubs)
			if err != nil {
				return err
			}
			for i := range subs {
				subs[i].Seq = uint64(i + 1)
				if err := sub.Put(u64key(subs[i].Seq), encodeSub(&subs[i])); err != nil {
					return err
				}
			}
			if err := b.Put(keyInfo, encodeSession(nil, lastSeen)); err != nil {
				return err
			}
		}
		if b.Get(keyStats) == nil {
			qb := b.Bucket(keyQueue)
			if qb == nil {
				continue // Load and Check report it
			}
			var st qstats
			_ = qb.ForEach(func(k, _ []byte) error {
				st.count++
				st.bytes += messageSize(msgs.Get(k))
				return nil
			})
			if err := b.Put(keyStats, st.encode()); err != nil {
				return err
			}
		}
	}
	return nil
}

// loadSession reads a session's subscriptions, the sent entries at the
// head of its queue (with their messages, shared through cache), the count
// and bytes of the rest, and its inbound packet ids.
func loadSession(sb, msgs *bolt.Bucket, cache map[uint64]Message) (Session, error) {
	var s Session
	var err error
	var legacy []Subscription
	if legacy, s.LastSeen, err = decodeSession(sb.Get(keyInfo)); err != nil {
		return s, err
	}
	if len(legacy) > 0 {
		return s, errors.New("subscriptions in the info record (not migrated)")
	}
	if s.Owner, err = decodeOwner(sb.Get(keyOwner)); err != nil {
		return s, err
	}
	if b := sb.Bucket(keySubs); b != nil {
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			sub, err := decodeSub(k, v)
			if err != nil {
				return s, err
			}
			s.Subs = append(s.Subs, sub)
		}
	}
	st, err := decodeQStats(sb.Get(keyStats))
	if err != nil {
		return s, err
	}
	qb, ib := sb.Bucket(keyQueue), sb.Bucket(keyInbound)
	if qb == nil || ib == nil {
		return s, errors.New("queue or inbound bucket missing")
	}
	s.Waiting, s.WaitingBytes = st.count, st.bytes
	c := qb.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		q, err := readQueued(k, v, msgs, cache)
		if err != nil {
			return s, err
		}
		if q.PacketID == 0 {
			break
		}
		s.Queue = append(s.Queue, q)
		s.Waiting--
		s.WaitingBytes -= q.Msg.Size()
	}
	if s.Waiting < 0 || s.WaitingBytes < 0 {
		return s, fmt.Errorf("queue stats %d messages, %d bytes below the %d entries in flight", st.count, st.bytes, len(s.Queue))
	}
	c = ib.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		if len(k) != 2 {
			return s, fmt.Errorf("bad inbound key %x", k)
		}
		s.Inbound = append(s.Inbound, binary.BigEndian.Uint16(k))
	}
	return s, nil
}

// readQueued decodes the queue entry k, v and its message, through cache
// when it is not nil.
func readQueued(k, v []byte, msgs *bolt.Bucket, cache map[uint64]Message) (Queued, error) {
	if len(k) != 8 {
		return Queued{}, fmt.Errorf("bad queue key %x", k)
	}
	id := binary.BigEndian.Uint64(k)
	q := Queued{MsgID: id}
	if err := decodeRef(v, &q); err != nil {
		return q, err
	}
	m, ok := cache[id]
	if !ok {
		mv := msgs.Get(k)
		if mv == nil {
			return q, fmt.Errorf("queued message %d missing", id)
		}
		var err error
		if m, err = decodeMessage(mv); err != nil {
			return q, fmt.Errorf("message %d: %w", id, err)
		}
		if cache != nil {
			cache[id] = m
		}
	}
	q.Msg = m
	return q, nil
}

// ReadSessionQueue returns up to max entries of the outbound queue of
// session clientID with MsgID greater than afterMsgID, in ascending MsgID
// order, with their messages, from the durable state: an entry still being
// committed is not there yet. An unknown session's queue is empty; max ≤ 0
// returns none. A record that does not decode fails it with ErrCorrupt.
func (db *DB) ReadSessionQueue(clientID string, afterMsgID uint64, max int) (out []Queued, err error) {
	if max <= 0 || afterMsgID == ^uint64(0) {
		return nil, nil
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("reading the queue of session %q: %w: %v", clientID, ErrCorrupt, r)
		}
	}()
	err = db.bolt.View(func(tx *bolt.Tx) error {
		a := applier{sess: tx.Bucket(bucketSessions)}
		sb, err := a.session(clientID, false)
		if sb == nil || err != nil {
			return err
		}
		qb := sb.Bucket(keyQueue)
		if qb == nil {
			return errors.New("queue bucket missing")
		}
		msgs := tx.Bucket(bucketMessages)
		c := qb.Cursor()
		for k, v := c.Seek(u64key(afterMsgID + 1)); k != nil && len(out) < max; k, v = c.Next() {
			q, err := readQueued(k, v, msgs, nil)
			if err != nil {
				return err
			}
			out = append(out, q)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the queue of session %q: %w: %w", clientID, ErrCorrupt, err)
	}
	return out, nil
}
