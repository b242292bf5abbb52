package persist

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	bolt "go.etcd.io/bbolt"
)

// Every record of format 2 and later (except meta/format, which any version must be
// able to read) is sealed: its encoding (encoding.go) followed by the
// CRC-32C (Castagnoli) of its key and that encoding, 4 bytes big-endian.
// bbolt checksums its meta pages only; the seal detects a damaged data
// page, value or key. The seal wraps the encodings, so they do not know
// about it: write with putRec (or seal), read with getRec (or unseal).

const sumLen = 4

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errChecksum marks a record whose checksum does not match: it is damaged.
var errChecksum = errors.New("checksum mismatch: record damaged")

func recordSum(k, v []byte) uint32 {
	return crc32.Update(crc32.Checksum(k, castagnoli), castagnoli, v)
}

// seal returns a new slice: v followed by the checksum of k and v.
func seal(k, v []byte) []byte {
	out := make([]byte, len(v), len(v)+sumLen)
	copy(out, v)
	return binary.BigEndian.AppendUint32(out, recordSum(k, v))
}

// unseal verifies the checksum of the record v stored under k and returns
// v without it (a subslice of v). A nil v (no record) returns nil.
func unseal(k, v []byte) ([]byte, error) {
	if v == nil {
		return nil, nil
	}
	if len(v) < sumLen {
		return nil, fmt.Errorf("record of %d bytes: %w", len(v), errChecksum)
	}
	body := v[:len(v)-sumLen]
	if binary.BigEndian.Uint32(v[len(body):]) != recordSum(k, body) {
		return nil, errChecksum
	}
	return body, nil
}

// strip returns v without its checksum, unverified. The writer uses it
// where it deletes a record and only needs an estimate of its size or age.
func strip(v []byte) []byte {
	if len(v) < sumLen {
		return nil
	}
	return v[:len(v)-sumLen]
}

// putRec stores the sealed v under k in b. It appends the checksum to v, so
// v must be the caller's own memory, never a value read from bbolt (use
// seal for those).
func putRec(b *bolt.Bucket, k, v []byte) error {
	return b.Put(k, binary.BigEndian.AppendUint32(v, recordSum(k, v)))
}

// getRec returns the verified record under k in b, or nil if there is none.
func getRec(b *bolt.Bucket, k []byte) ([]byte, error) { return unseal(k, b.Get(k)) }
