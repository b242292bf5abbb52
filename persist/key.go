package persist

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Names (client ids, retained topics, durable queue names) are bbolt keys.
// bbolt limits a key to 32,768 bytes and MQTT allows 65,535, and long keys
// make bbolt's branch pages large, so nameKey derives the key of a name:
//
//   - a name of at most maxRawName bytes that does not start with byte
//     0xFF is its own key, as in format 1;
//   - any other name is keyed by 0xFF, the first hashLen bytes of its
//     SHA-256 and one probe byte. 0xFF never occurs in UTF-8, so such a key
//     cannot be a raw name. The full name is stored with the record (a
//     retained message holds its topic; a session or queue bucket holds a
//     "name" record) and checked against the key on every read. Names
//     whose hashes collide get different probe bytes.
const (
	maxRawName = 1024
	// maxNameSize is the longest name a store accepts: the longest MQTT
	// string.
	maxNameSize = 65535
	longKeyTag  = 0xFF
	hashLen     = 16
	maxProbes   = 256
)

// nameHash is the hash of long names; a variable so that tests can force
// collisions.
var nameHash = func(name string) [hashLen]byte {
	s := sha256.Sum256([]byte(name))
	return [hashLen]byte(s[:hashLen])
}

func isRawName(name string) bool {
	return len(name) <= maxRawName && (len(name) == 0 || name[0] != longKeyTag)
}

// hashPrefix returns the key prefix of a long name: the tag and its hash.
func hashPrefix(name string) []byte {
	h := nameHash(name)
	k := make([]byte, 0, 1+hashLen+1)
	k = append(k, longKeyTag)
	return append(k, h[:]...)
}

var errNoSlot = errors.New("no free key for the name: too many names with the same hash")

// nameKey returns the key of name in b. found reports that b holds name
// under key; otherwise key is where to store it. nameOf returns the name
// stored under the hashed key k, or false if it cannot be read (a damaged
// record is never taken for name).
func nameKey(b *bolt.Bucket, name string, nameOf func(k []byte) (string, bool)) (key []byte, found bool, err error) {
	if isRawName(name) {
		k := []byte(name)
		ck, _ := b.Cursor().Seek(k)
		return k, ck != nil && bytes.Equal(ck, k), nil
	}
	p := hashPrefix(name)
	var used [maxProbes]bool
	c := b.Cursor()
	for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
		if len(k) != len(p)+1 {
			continue
		}
		used[k[len(p)]] = true
		if n, ok := nameOf(k); ok && n == name {
			return bytes.Clone(k), true, nil
		}
	}
	for i, u := range used {
		if !u {
			return append(p, byte(i)), false, nil
		}
	}
	return nil, false, errNoSlot
}

// nameOfKey returns the name stored under key k, as nameKey derived it.
// stored reads the full name kept with the record; it is called only for
// hashed keys. A name that does not hash to its key is an error.
func nameOfKey(k []byte, stored func() (string, error)) (string, error) {
	if len(k) == 0 || k[0] != longKeyTag {
		if len(k) > maxRawName {
			return "", fmt.Errorf("key of %d bytes: longer names are hashed", len(k))
		}
		return string(k), nil
	}
	name, err := stored()
	if err != nil {
		return "", err
	}
	if p := hashPrefix(name); len(k) != len(p)+1 || !bytes.HasPrefix(k, p) {
		return "", fmt.Errorf("hashed key %x does not match the name stored with it", k)
	}
	return name, nil
}

// Named buckets: sessions and durable queues are buckets keyed by
// nameKey; a hashed one holds its name under keyName.

// bucketNameOf is nameKey's nameOf for the buckets in parent.
func bucketNameOf(parent *bolt.Bucket) func(k []byte) (string, bool) {
	return func(k []byte) (string, bool) {
		b := parent.Bucket(k)
		if b == nil {
			return "", false
		}
		v, err := getRec(b, keyName)
		if err != nil || v == nil {
			return "", false
		}
		return string(v), true
	}
}

// findBucket returns the bucket of name in parent and its key, or nil.
func findBucket(parent *bolt.Bucket, name string) ([]byte, *bolt.Bucket, error) {
	k, found, err := nameKey(parent, name, bucketNameOf(parent))
	if err != nil || !found {
		return nil, nil, err
	}
	return k, parent.Bucket(k), nil
}

// createBucket returns the bucket of name in parent, creating it (and
// storing its name if the key is hashed) if it does not exist. created
// reports that it did.
func createBucket(parent *bolt.Bucket, name string) (b *bolt.Bucket, created bool, err error) {
	k, found, err := nameKey(parent, name, bucketNameOf(parent))
	if err != nil {
		return nil, false, err
	}
	if found {
		if b = parent.Bucket(k); b == nil {
			return nil, false, fmt.Errorf("%q is not a bucket", name)
		}
		return b, false, nil
	}
	if b, err = parent.CreateBucket(k); err != nil {
		return nil, false, err
	}
	if !isRawName(name) {
		if err := putRec(b, keyName, []byte(name)); err != nil {
			return nil, false, err
		}
	}
	return b, true, nil
}

// bucketName returns the name of the bucket b stored under k.
func bucketName(k []byte, b *bolt.Bucket) (string, error) {
	return nameOfKey(k, func() (string, error) {
		v, err := getRec(b, keyName)
		if err == nil && v == nil {
			err = errors.New("hashed key without its name record")
		}
		return string(v), err
	})
}

// retainedNameOf is nameKey's nameOf for the retained bucket.
func retainedNameOf(b *bolt.Bucket) func(k []byte) (string, bool) {
	return func(k []byte) (string, bool) {
		v, err := unseal(k, b.Get(k))
		if err != nil {
			return "", false
		}
		t, ok := messageTopic(v)
		return t, ok
	}
}
