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

// message: flags | time int64 BE | [expiry int64 BE] | uvarint topic
// length | topic | [uvarint properties length | properties] | payload.
// flags: bits 0-1 QoS, bit 2 retain, bit 3 an expiry follows the time
// (never 0), bit 4 properties follow the topic (a nil Properties has none,
// an empty one has length 0). A message without expiry or properties (any
// 3.1.x message) is encoded as in format 2.
const (
	msgFixed = 1 + 8

	msgFlagRetain = 1 << 2
	msgFlagExpiry = 1 << 3
	msgFlagProps  = 1 << 4
	msgFlagsKnown = 3 | msgFlagRetain | msgFlagExpiry | msgFlagProps
)

func encodeMessage(m *Message) []byte {
	n := msgFixed + binary.MaxVarintLen32 + len(m.Topic) + len(m.Payload) + sumLen
	flags := m.QoS & 3
	if m.Retain {
		flags |= msgFlagRetain
	}
	if m.Expiry != 0 {
		flags |= msgFlagExpiry
		n += 8
	}
	if m.Properties != nil {
		flags |= msgFlagProps
		n += binary.MaxVarintLen32 + len(m.Properties)
	}
	b := make([]byte, 0, n)
	b = append(b, flags)
	b = binary.BigEndian.AppendUint64(b, uint64(m.Time))
	if m.Expiry != 0 {
		b = binary.BigEndian.AppendUint64(b, uint64(m.Expiry))
	}
	b = binary.AppendUvarint(b, uint64(len(m.Topic)))
	b = append(b, m.Topic...)
	if m.Properties != nil {
		b = binary.AppendUvarint(b, uint64(len(m.Properties)))
		b = append(b, m.Properties...)
	}
	return append(b, m.Payload...)
}

// msgParts is an encoded message split into its fields; the slices alias
// the record.
type msgParts struct {
	flags                 byte
	time, expiry          int64
	topic, props, payload []byte // props is nil without msgFlagProps
}

// parseMessage splits the message record v without copying.
func parseMessage(v []byte) (p msgParts, err error) {
	if len(v) < msgFixed+1 {
		return p, fmt.Errorf("decoding message: %w", errShort)
	}
	p.flags = v[0]
	if p.flags&^msgFlagsKnown != 0 {
		return p, fmt.Errorf("decoding message: bad flags %#x", p.flags)
	}
	p.time = int64(binary.BigEndian.Uint64(v[1:9]))
	rest := v[msgFixed:]
	if p.flags&msgFlagExpiry != 0 {
		if len(rest) < 8+1 {
			return p, fmt.Errorf("decoding message: %w", errShort)
		}
		if p.expiry = int64(binary.BigEndian.Uint64(rest)); p.expiry == 0 {
			return p, errors.New("decoding message: expiry flag with expiry 0")
		}
		rest = rest[8:]
	}
	n, k := binary.Uvarint(rest)
	if k <= 0 || n > uint64(len(rest)-k) {
		return p, errors.New("decoding message: bad topic length")
	}
	p.topic, rest = rest[k:k+int(n)], rest[k+int(n):]
	if p.flags&msgFlagProps != 0 {
		n, k := binary.Uvarint(rest)
		if k <= 0 || n > uint64(len(rest)-k) {
			return p, errors.New("decoding message: bad properties length")
		}
		p.props, rest = rest[k:k+int(n):k+int(n)], rest[k+int(n):]
	}
	p.payload = rest
	return p, nil
}

// decodeMessage decodes v. Payload and Properties are copied: v may be
// bbolt memory.
func decodeMessage(v []byte) (Message, error) {
	p, err := parseMessage(v)
	if err != nil {
		return Message{}, err
	}
	m := Message{
		QoS: p.flags & 3, Retain: p.flags&msgFlagRetain != 0, Time: p.time, Expiry: p.expiry,
		Topic: string(p.topic), Payload: make([]byte, len(p.payload)),
	}
	copy(m.Payload, p.payload)
	if p.props != nil {
		m.Properties = make([]byte, len(p.props))
		copy(m.Properties, p.props)
	}
	return m, nil
}

// messageTopic returns the topic of an encoded message without copying its
// payload.
func messageTopic(v []byte) (string, bool) {
	p, err := parseMessage(v)
	if err != nil {
		return "", false
	}
	return string(p.topic), true
}

// messageTime returns the time of an encoded message without decoding it.
func messageTime(v []byte) (int64, bool) {
	if len(v) < msgFixed {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(v[1:9])), true
}

// messageSize returns Message.Size of an encoded message without decoding
// it. A record that does not parse (unverified, damaged) is estimated.
func messageSize(v []byte) int64 {
	if p, err := parseMessage(v); err == nil {
		return int64(len(p.topic) + len(p.props) + len(p.payload))
	}
	if len(v) < msgFixed+1 {
		return 0
	}
	_, k := binary.Uvarint(v[msgFixed:])
	if k <= 0 {
		return 0
	}
	return int64(len(v) - msgFixed - k)
}

// queued ref: QoS | packet id BE | flags | subscription ids. flags: bit 0
// pubrel, bit 1 retain, bit 2 subscription ids follow, each a uvarint of 1
// to MaxSubscriptionID, to the end of the record (at least one).
const (
	refPubrel = 1 << 0
	refRetain = 1 << 1
	refSubIDs = 1 << 2
)

func encodeRef(q *Queued) []byte {
	b := make([]byte, 4, 4+binary.MaxVarintLen32*len(q.SubIDs)+sumLen)
	b[0], b[1], b[2] = q.QoS, byte(q.PacketID>>8), byte(q.PacketID)
	if q.Pubrel {
		b[3] |= refPubrel
	}
	if q.Retain {
		b[3] |= refRetain
	}
	if len(q.SubIDs) > 0 {
		b[3] |= refSubIDs
		for _, id := range q.SubIDs {
			b = binary.AppendUvarint(b, uint64(id))
		}
	}
	return b
}

// decodeRef decodes v into q's QoS, PacketID, Pubrel, Retain and SubIDs.
func decodeRef(v []byte, q *Queued) error {
	if len(v) < 4 || v[0] > 2 || v[3]&^(refPubrel|refRetain|refSubIDs) != 0 ||
		(v[3]&refSubIDs != 0) != (len(v) > 4) {
		return fmt.Errorf("decoding queue ref: bad record %x", v)
	}
	q.QoS, q.PacketID, q.Pubrel, q.Retain = v[0], binary.BigEndian.Uint16(v[1:3]), v[3]&refPubrel != 0, v[3]&refRetain != 0
	q.SubIDs = nil
	for rest := v[4:]; len(rest) > 0; {
		id, k, ok := subID(rest)
		if !ok {
			q.SubIDs = nil
			return fmt.Errorf("decoding queue ref: bad subscription id in %x", v)
		}
		q.SubIDs = append(q.SubIDs, id)
		rest = rest[k:]
	}
	return nil
}

// subID decodes a subscription identifier: a minimal uvarint of 1 to
// MaxSubscriptionID.
func subID(v []byte) (id uint32, k int, ok bool) {
	n, k := binary.Uvarint(v)
	if k <= 0 || n == 0 || n > MaxSubscriptionID || k != uvarintLen(n) {
		return 0, 0, false
	}
	return uint32(n), k, true
}

func uvarintLen(n uint64) int {
	k := 1
	for ; n >= 0x80; n >>= 7 {
		k++
	}
	return k
}

// sessionInfo is the session info record (key "info").
type sessionInfo struct {
	subs     []Subscription // format 1 only; Filter and QoS
	lastSeen int64
	version  byte
	expiry   uint32
}

// session info: varint LastSeen | uvarint count | count × (uvarint len |
// filter | QoS) | [version | uvarint ExpiryInterval]. The list is format
// 1's (format 2 and later write count 0 and keep subscriptions in the subs
// bucket); version and expiry interval are format 3's, absent when both
// are 0.
func encodeSession(in *sessionInfo) []byte {
	b := binary.AppendVarint(make([]byte, 0, 16+sumLen), in.lastSeen)
	b = binary.AppendUvarint(b, uint64(len(in.subs)))
	for _, s := range in.subs {
		b = binary.AppendUvarint(b, uint64(len(s.Filter)))
		b = append(b, s.Filter...)
		b = append(b, s.QoS)
	}
	if in.version != 0 || in.expiry != 0 {
		b = append(b, in.version)
		b = binary.AppendUvarint(b, uint64(in.expiry))
	}
	return b
}

func decodeSession(v []byte) (sessionInfo, error) {
	bad := func() (sessionInfo, error) {
		return sessionInfo{}, errors.New("decoding session: bad record")
	}
	var in sessionInfo
	lastSeen, k := binary.Varint(v)
	if k <= 0 {
		return bad()
	}
	in.lastSeen = lastSeen
	v = v[k:]
	n, k := binary.Uvarint(v)
	if k <= 0 || n > uint64(len(v)) {
		return bad()
	}
	v = v[k:]
	if n > 0 {
		in.subs = make([]Subscription, 0, n)
	}
	for range n {
		l, k := binary.Uvarint(v)
		if k <= 0 || l >= uint64(len(v)-k) {
			return bad()
		}
		v = v[k:]
		in.subs = append(in.subs, Subscription{Filter: string(v[:l]), QoS: v[l]})
		v = v[l+1:]
	}
	if len(v) > 0 {
		in.version = v[0]
		e, k := binary.Uvarint(v[1:])
		if k <= 0 || e > uint64(^uint32(0)) || 1+k != len(v) {
			return bad()
		}
		in.expiry = uint32(e)
	}
	return in, nil
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

// will (key "will" of a session's bucket, format 3): Due int64 BE | the
// will message as a message record.
func encodeWill(w *Will) []byte {
	return append(binary.BigEndian.AppendUint64(nil, uint64(w.Due)), encodeMessage(&w.Msg)...)
}

func decodeWill(v []byte) (*Will, error) {
	if len(v) < 8 {
		return nil, fmt.Errorf("decoding will: %w", errShort)
	}
	m, err := decodeMessage(v[8:])
	if err != nil {
		return nil, fmt.Errorf("decoding will: %w", err)
	}
	return &Will{Msg: m, Due: int64(binary.BigEndian.Uint64(v))}, nil
}
