package persist

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Setting damaged records aside. Load and ReadQueue skip a damaged record
// (checksum.go) and then commit an asideOp for it: the writer moves the
// record, as it was read, into the damaged bucket (with what it was and
// when) and removes it from its place, so that the store is consistent
// again and Check sound; Check lists what was set aside. The move happens
// only if the record still holds the bytes that were read: one rewritten
// meanwhile (a new retained message for the topic, a new QoS 2 packet id)
// is sound and stays.

var bucketDamaged = []byte("damaged")

// maxAside bounds the damaged bucket; older records are dropped first.
const maxAside = 1000

type asideKind uint8

const (
	asideRetained asideKind = iota // retained/key
	asideInbound                   // sessions/name/inbound/key
	asideRef                       // sessions/name/queue/key, a damaged ref or key
	asideMessage                   // messages/key, damaged or missing, queued to session name
	asideInfo                      // sessions/name/info
	asideEntry                     // queues/name/entries/key
	asideSession                   // sessions/key, whose name cannot be read
	asideOwner                     // sessions/name/owner
	asideSub                       // sessions/name/subs/key
	asideStats                     // sessions/name/stats, derived again from the queue
	asideWill                      // sessions/name/will
)

// asideItem is one damaged record found by a reader.
type asideItem struct {
	what string // for the log and Check: names the session, queue or topic
	kind asideKind
	name string // the client id or queue name
	key  []byte // the record's key in its bucket
	raw  []byte // the record as read (a copy); nil if missing
}

// id identifies the record of it.
func (it *asideItem) id() string { return fmt.Sprintf("%d\x00%s\x00%x", it.kind, it.name, it.key) }

// asideOp is the internal op that sets items aside.
type asideOp struct{ items []asideItem }

func (asideOp) isOp() {}

// found reports a damaged record a reader skipped and adds it to list, to
// be set aside. A record already handed to the writer is not reported
// again (a lazy reader may meet it again before it is moved).
func (db *DB) found(list *[]asideItem, it asideItem, err error) {
	db.asideMu.Lock()
	pending := db.asidePending[it.id()]
	db.asideMu.Unlock()
	if !pending {
		db.damage(it.what, err)
	}
	it.key, it.raw = bytes.Clone(it.key), bytes.Clone(it.raw)
	*list = append(*list, it)
}

// setAside commits the items, unless a reader already did for the same
// record and it is still pending.
func (db *DB) setAside(items []asideItem) {
	db.asideMu.Lock()
	if db.asidePending == nil {
		db.asidePending = make(map[string]bool)
	}
	keep := items[:0]
	for _, it := range items {
		id := it.id()
		if !db.asidePending[id] {
			db.asidePending[id] = true
			keep = append(keep, it)
		}
	}
	db.asideMu.Unlock()
	if len(keep) > 0 {
		db.Commit([]Op{asideOp{items: keep}}, nil)
	}
}

// applyAside moves each item that still holds its bytes aside.
func (a *applier) applyAside(o asideOp) error {
	for _, it := range o.items {
		if err := a.aside1(it); err != nil {
			return err
		}
	}
	return nil
}

func (a *applier) aside1(it asideItem) error {
	switch it.kind {
	case asideRetained:
		return a.moveAside(a.retained, it, nil)
	case asideEntry:
		_, qb, err := findBucket(a.queues, it.name)
		if qb == nil || err != nil {
			return err
		}
		q, err := a.queue(it.name)
		if err != nil {
			return err
		}
		return a.moveAside(q.entries, it, func() error {
			// The damaged entry's size cannot be trusted: count again.
			q.st.count, q.st.bytes = countEntries(q.entries)
			q.dirty = true
			return nil
		})
	}
	if it.kind == asideSession {
		return a.asideSession(it)
	}
	s, err := a.session(it.name, false)
	if s == nil || err != nil {
		return err
	}
	switch it.kind {
	case asideInbound:
		return a.moveAside(s.Bucket(keyInbound), it, nil)
	case asideOwner:
		// The session then has no owner, as one stored before owners
		// were recorded: the next client to resume it adopts it.
		return a.moveAside(s, it, nil)
	case asideSub:
		return a.moveAside(s.Bucket(keySubs), it, nil)
	case asideWill:
		// The will is lost: it is not published.
		return a.moveAside(s, it, nil)
	case asideStats:
		if v := s.Get(keyStats); !bytes.Equal(v, it.raw) {
			return nil
		}
		if err := a.saveAside(it); err != nil {
			return err
		}
		return a.recountSession(it.name, s)
	case asideInfo:
		if v := s.Get(keyInfo); !bytes.Equal(v, it.raw) {
			return nil
		}
		if err := a.saveAside(it); err != nil {
			return err
		}
		return putRec(s, keyInfo, encodeSession(&sessionInfo{}))
	case asideRef:
		return a.moveAside(s.Bucket(keyQueue), it, func() error {
			if err := a.recountSession(it.name, s); err != nil {
				return err
			}
			if len(it.key) != 8 {
				return nil
			}
			return a.recount(binary.BigEndian.Uint64(it.key))
		})
	case asideMessage:
		if v := a.msgs.Get(it.key); !bytes.Equal(v, it.raw) || len(it.key) != 8 {
			return nil
		}
		q := s.Bucket(keyQueue)
		if q.Get(it.key) == nil {
			return nil
		}
		if err := a.saveAside(it); err != nil {
			return err
		}
		if err := q.Delete(it.key); err != nil {
			return err
		}
		if err := a.recountSession(it.name, s); err != nil {
			return err
		}
		return a.recount(binary.BigEndian.Uint64(it.key))
	}
	return fmt.Errorf("set aside: unknown kind %d", it.kind)
}

// asideSession removes the session bucket under it.key, whose name record
// (it.raw) is damaged, with its queue, subscriptions and owner; it cannot
// be loaded, as its client id is unknown.
func (a *applier) asideSession(it asideItem) error {
	sb := a.sess.Bucket(it.key)
	if sb == nil || !bytes.Equal(sb.Get(keyName), it.raw) {
		return nil
	}
	if err := a.saveAside(it); err != nil {
		return err
	}
	var ids []uint64
	if q := sb.Bucket(keyQueue); q != nil {
		_ = q.ForEach(func(k, _ []byte) error {
			if len(k) == 8 {
				ids = append(ids, binary.BigEndian.Uint64(k))
			}
			return nil
		})
	}
	clear(a.sessions) // the cache may hold the bucket under a name
	for id, q := range a.sstats {
		if q.b == sb {
			delete(a.sstats, id)
		}
	}
	if err := a.sess.DeleteBucket(it.key); err != nil {
		return err
	}
	for _, id := range ids {
		if err := a.recount(id); err != nil {
			return err
		}
	}
	return nil
}

// moveAside saves the record it.key of b and deletes it, then calls after,
// if the record still holds it.raw.
func (a *applier) moveAside(b *bolt.Bucket, it asideItem, after func() error) error {
	if b == nil {
		return nil
	}
	v := b.Get(it.key)
	if v == nil || !bytes.Equal(v, it.raw) {
		return nil
	}
	if err := a.saveAside(it); err != nil {
		return err
	}
	if err := b.Delete(it.key); err != nil {
		return err
	}
	if after != nil {
		return after()
	}
	return nil
}

// saveAside appends it to the damaged bucket: varint Unix time | uvarint
// length | what | the record as read.
func (a *applier) saveAside(it asideItem) error {
	b, err := a.tx.CreateBucketIfNotExists(bucketDamaged)
	if err != nil {
		return err
	}
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	v := binary.AppendVarint(nil, time.Now().Unix())
	v = binary.AppendUvarint(v, uint64(len(it.what)))
	v = append(v, it.what...)
	v = append(v, it.raw...)
	if err := putRec(b, u64key(seq), v); err != nil {
		return err
	}
	if seq > maxAside {
		return b.Delete(u64key(seq - maxAside))
	}
	return nil
}

// decodeAside decodes a record of the damaged bucket.
func decodeAside(v []byte) (when time.Time, what string, raw []byte, err error) {
	t, k := binary.Varint(v)
	if k <= 0 {
		return when, "", nil, errors.New("decoding set-aside record: bad time")
	}
	v = v[k:]
	n, k := binary.Uvarint(v)
	if k <= 0 || n > uint64(len(v)-k) {
		return when, "", nil, errors.New("decoding set-aside record: bad length")
	}
	return time.Unix(t, 0), string(v[k : k+int(n)]), v[k+int(n):], nil
}

// recount sets the reference count of message id to the number of
// session queues holding it, and deletes the message if there is none. It
// repairs a count after a damaged ref or count record; it reads every
// session, so it is for damage only.
func (a *applier) recount(id uint64) error {
	k := u64key(id)
	var n uint64
	c := a.sess.Cursor()
	for sk, v := c.First(); sk != nil; sk, v = c.Next() {
		if v != nil {
			continue
		}
		if q := a.sess.Bucket(sk).Bucket(keyQueue); q != nil && q.Get(k) != nil {
			n++
		}
	}
	if n == 0 {
		if err := a.refs.Delete(k); err != nil {
			return err
		}
		return a.msgs.Delete(k)
	}
	return putRec(a.refs, k, u64key(n))
}
