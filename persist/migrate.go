package persist

import (
	"bytes"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// migrate brings a store of format version from up to formatVersion,
// inside the caller's write transaction: the file is either migrated
// whole or not at all. Each step brings it one version further.
//
// Format 2 → 3 (MQTT 5.0) rewrites nothing: format 3 added fields to the
// message, queue ref, subscription and session info records behind flags
// or trailing bytes that format 2 never wrote, and the will record, so
// every format 2 record is a format 3 record with those fields zero, its
// checksum unchanged. Only the version changes, so that an edged of format
// 2, which would take a record with the new fields for damage, refuses the
// file (ErrNewerFormat).
func migrate(tx *bolt.Tx, from uint64) error {
	if from < 1 || from >= formatVersion {
		return fmt.Errorf("no migration from format %d", from)
	}
	if from == 1 {
		if err := migrate1to2(tx); err != nil {
			return err
		}
	}
	return tx.Bucket(bucketMeta).Put(keyFormat, u64key(formatVersion))
}

// migrate1to2 brings a format 1 store to format 2, in this order:
//   - each session's subscriptions move from the list in its info record
//     to its subs bucket, and its queue gets a stats record
//     (migrateSession), reading the records as format 1 wrote them;
//   - every record is sealed with its checksum (checksum.go), those just
//     written too;
//   - names that format 2 keys by hash (key.go: longer than maxRawName
//     bytes) move to their hashed keys.
func migrate1to2(tx *bolt.Tx) error {
	sessions := tx.Bucket(bucketSessions)
	msgs := tx.Bucket(bucketMessages)
	for _, k := range bucketKeys(sessions) {
		if err := migrateSession(sessions.Bucket(k), msgs, "session "+keyString(k)); err != nil {
			return err
		}
	}
	for _, name := range [][]byte{bucketMessages, bucketRefs} {
		if err := sealAll(tx.Bucket(name)); err != nil {
			return err
		}
	}
	meta := tx.Bucket(bucketMeta)
	if v := meta.Get(keyNextMsgID); v != nil {
		if err := meta.Put(keyNextMsgID, seal(keyNextMsgID, v)); err != nil {
			return err
		}
	}
	for _, k := range bucketKeys(sessions) {
		sb := sessions.Bucket(k)
		if sb == nil {
			return fmt.Errorf("%w: session %s is not a bucket", ErrCorrupt, keyString(k))
		}
		for _, b := range []*bolt.Bucket{sb, sb.Bucket(keyQueue), sb.Bucket(keyInbound), sb.Bucket(keySubs)} {
			if b == nil {
				return fmt.Errorf("%w: session %s: queue or inbound bucket missing", ErrCorrupt, keyString(k))
			}
			if err := sealAll(b); err != nil {
				return err
			}
		}
		if err := rekeyBucket(sessions, k); err != nil {
			return err
		}
	}
	queues := tx.Bucket(bucketQueues)
	for _, k := range bucketKeys(queues) {
		qb := queues.Bucket(k)
		if qb == nil {
			return fmt.Errorf("%w: queue %s is not a bucket", ErrCorrupt, keyString(k))
		}
		if err := sealAll(qb); err != nil {
			return err
		}
		if e := qb.Bucket(keyEntries); e != nil {
			if err := sealAll(e); err != nil {
				return err
			}
		}
		if err := rekeyBucket(queues, k); err != nil {
			return err
		}
	}
	retained := tx.Bucket(bucketRetained)
	for _, k := range valueKeys(retained) {
		v := retained.Get(k)
		if isRawName(string(k)) {
			if err := retained.Put(k, seal(k, v)); err != nil {
				return err
			}
			continue
		}
		v = bytes.Clone(v)
		if err := retained.Delete(k); err != nil {
			return err
		}
		nk, _, err := nameKey(retained, string(k), retainedNameOf(retained))
		if err != nil {
			return err
		}
		if err := retained.Put(nk, seal(nk, v)); err != nil {
			return err
		}
	}
	return nil
}

// valueKeys returns copies of the keys of b's values (not buckets).
func valueKeys(b *bolt.Bucket) [][]byte {
	var keys [][]byte
	_ = b.ForEach(func(k, v []byte) error {
		if v != nil {
			keys = append(keys, bytes.Clone(k))
		}
		return nil
	})
	return keys
}

// bucketKeys returns copies of the keys of b's nested buckets.
func bucketKeys(b *bolt.Bucket) [][]byte {
	var keys [][]byte
	_ = b.ForEach(func(k, v []byte) error {
		if v == nil {
			keys = append(keys, bytes.Clone(k))
		}
		return nil
	})
	return keys
}

// sealAll seals every value of b (not its nested buckets).
func sealAll(b *bolt.Bucket) error {
	for _, k := range valueKeys(b) {
		if err := b.Put(k, seal(k, b.Get(k))); err != nil {
			return err
		}
	}
	return nil
}

// rekeyBucket moves the bucket stored under its raw name k in parent to
// the key nameKey gives the name, if that differs.
func rekeyBucket(parent *bolt.Bucket, k []byte) error {
	name := string(k)
	if isRawName(name) {
		return nil
	}
	dst, _, err := createBucket(parent, name)
	if err != nil {
		return err
	}
	if err := copyBucket(dst, parent.Bucket(k)); err != nil {
		return err
	}
	return parent.DeleteBucket(k)
}

// copyBucket copies everything in src, nested buckets and sequences too,
// into dst.
func copyBucket(dst, src *bolt.Bucket) error {
	if err := dst.SetSequence(src.Sequence()); err != nil {
		return err
	}
	return src.ForEach(func(k, v []byte) error {
		if v != nil {
			return dst.Put(bytes.Clone(k), bytes.Clone(v))
		}
		sub, err := dst.CreateBucket(bytes.Clone(k))
		if err != nil {
			return err
		}
		return copyBucket(sub, src.Bucket(k))
	})
}
