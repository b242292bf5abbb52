package persist

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// On-disk encodings. All integers in keys are big-endian so that bbolt's
// byte order is numeric order. Values are versioned by the format version
// in the meta bucket, not per record. Each is stored sealed with a
// checksum (checksum.go); the functions here see the record without it.

var errShort = errors.New("record too short")

func u64key(v uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return b[:]
}

func u16key(v uint16) []byte {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return b[:]
}

// message: flags (bits 0-1 QoS, bit 2 retain) | time int64 BE |
// uvarint topic length | topic | payload.
const msgFixed = 1 + 8

func encodeMessage(m *Message) []byte {
	b := make([]byte, 0, msgFixed+binary.MaxVarintLen32+len(m.Topic)+len(m.Payload)+sumLen)
	flags := m.QoS & 3
	if m.Retain {
		flags |= 4
	}
	b = append(b, flags)
	b = binary.BigEndian.AppendUint64(b, uint64(m.Time))
	b = binary.AppendUvarint(b, uint64(len(m.Topic)))
	b = append(b, m.Topic...)
	b = append(b, m.Payload...)
	return b
}

// decodeMessage decodes v. The payload is copied: v may be bbolt memory.
func decodeMessage(v []byte) (Message, error) {
	if len(v) < msgFixed+1 {
		return Message{}, fmt.Errorf("decoding message: %w", errShort)
	}
	flags := v[0]
	if flags&^7 != 0 {
		return Message{}, fmt.Errorf("decoding message: bad flags %#x", flags)
	}
	m := Message{QoS: flags & 3, Retain: flags&4 != 0, Time: int64(binary.BigEndian.Uint64(v[1:9]))}
	rest := v[msgFixed:]
	n, k := binary.Uvarint(rest)
	if k <= 0 || n > uint64(len(rest)-k) {
		return Message{}, fmt.Errorf("decoding message: bad topic length")
	}
	rest = rest[k:]
	m.Topic = string(rest[:n])
	m.Payload = make([]byte, len(rest)-int(n))
	copy(m.Payload, rest[n:])
	return m, nil
}

// messageTopic returns the topic of an encoded message without copying its
// payload.
func messageTopic(v []byte) (string, bool) {
	if len(v) < msgFixed+1 {
		return "", false
	}
	rest := v[msgFixed:]
	n, k := binary.Uvarint(rest)
	if k <= 0 || n > uint64(len(rest)-k) {
		return "", false
	}
	return string(rest[k : k+int(n)]), true
}

// messageTime returns the time of an encoded message without decoding it.
func messageTime(v []byte) (int64, bool) {
	if len(v) < msgFixed {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(v[1:9])), true
}

// messageSize returns Message.Size of an encoded message without decoding
// it.
func messageSize(v []byte) int64 {
	if len(v) < msgFixed+1 {
		return 0
	}
	_, k := binary.Uvarint(v[msgFixed:])
	if k <= 0 {
		return 0
	}
	return int64(len(v) - msgFixed - k)
}

// queued ref: QoS | packet id BE | flags (bit 0 pubrel, bit 1 retain).
func encodeRef(q *Queued) []byte {
	b := []byte{q.QoS, byte(q.PacketID >> 8), byte(q.PacketID), 0}
	if q.Pubrel {
		b[3] |= 1
	}
	if q.Retain {
		b[3] |= 2
	}
	return b
}

// decodeRef decodes v into q's QoS, PacketID, Pubrel and Retain.
func decodeRef(v []byte, q *Queued) error {
	if len(v) != 4 || v[0] > 2 || v[3] > 3 {
		return fmt.Errorf("decoding queue ref: bad record %x", v)
	}
	q.QoS, q.PacketID, q.Pubrel, q.Retain = v[0], binary.BigEndian.Uint16(v[1:3]), v[3]&1 != 0, v[3]&2 != 0
	return nil
}

// session info: varint LastSeen | uvarint count | count × (uvarint len |
// filter | QoS).
func encodeSession(subs []Subscription, lastSeen int64) []byte {
	b := binary.AppendVarint(nil, lastSeen)
	b = binary.AppendUvarint(b, uint64(len(subs)))
	for _, s := range subs {
		b = binary.AppendUvarint(b, uint64(len(s.Filter)))
		b = append(b, s.Filter...)
		b = append(b, s.QoS)
	}
	return b
}

func decodeSession(v []byte) (subs []Subscription, lastSeen int64, err error) {
	bad := func() ([]Subscription, int64, error) {
		return nil, 0, errors.New("decoding session: bad record")
	}
	lastSeen, k := binary.Varint(v)
	if k <= 0 {
		return bad()
	}
	v = v[k:]
	n, k := binary.Uvarint(v)
	if k <= 0 || n > uint64(len(v)) {
		return bad()
	}
	v = v[k:]
	if n > 0 {
		subs = make([]Subscription, 0, n)
	}
	for range n {
		l, k := binary.Uvarint(v)
		if k <= 0 || l >= uint64(len(v)-k) {
			return bad()
		}
		v = v[k:]
		subs = append(subs, Subscription{Filter: string(v[:l]), QoS: v[l]})
		v = v[l+1:]
	}
	if len(v) != 0 {
		return bad()
	}
	return subs, lastSeen, nil
}

// session owner (key "owner" of a session's bucket, absent in sessions
// stored before owners were recorded): 0 for a client without a user name,
// or 1 followed by the user name.
func encodeOwner(o Owner) []byte {
	if !o.HasUsername {
		return []byte{0}
	}
	return append([]byte{1}, o.Username...)
}

func decodeOwner(v []byte) (*Owner, error) {
	switch {
	case v == nil:
		return nil, nil
	case len(v) == 1 && v[0] == 0:
		return &Owner{}, nil
	case len(v) >= 1 && v[0] == 1:
		return &Owner{Username: string(v[1:]), HasUsername: true}, nil
	}
	return nil, errors.New("decoding session owner: bad record")
}

// queue stats: count | bytes | dropped | expired, each uint64 BE.
type qstats struct {
	count, bytes     int64
	dropped, expired uint64
}

func (s *qstats) encode() []byte {
	b := make([]byte, 0, 32)
	b = binary.BigEndian.AppendUint64(b, uint64(s.count))
	b = binary.BigEndian.AppendUint64(b, uint64(s.bytes))
	b = binary.BigEndian.AppendUint64(b, s.dropped)
	b = binary.BigEndian.AppendUint64(b, s.expired)
	return b
}

func decodeQStats(v []byte) (qstats, error) {
	if v == nil {
		return qstats{}, nil
	}
	if len(v) != 32 {
		return qstats{}, errors.New("decoding queue stats: bad record")
	}
	return qstats{
		count:   int64(binary.BigEndian.Uint64(v[0:])),
		bytes:   int64(binary.BigEndian.Uint64(v[8:])),
		dropped: binary.BigEndian.Uint64(v[16:]),
		expired: binary.BigEndian.Uint64(v[24:]),
	}, nil
}
