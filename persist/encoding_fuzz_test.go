package persist

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"reflect"
	"slices"
	"testing"
)

// These targets fuzz the record decoders directly: they read what is in
// the database file, which may be damaged. Arbitrary bytes must decode or
// return an error, never panic, and a record that decodes must re-encode to
// one that decodes to the same value. Values built from the input must
// survive encode then decode.

// FuzzDecodeMessage fuzzes decodeMessage, messageTime, messageTopic and
// messageSize, and decodeWill, which wraps a message record. In the
// values built from the input, flags bit 3 gives the message an Expiry
// (when, or 1) and bit 4 Properties (the topic's bytes, possibly empty).
func FuzzDecodeMessage(f *testing.F) {
	f.Add(encodeMessage(&Message{Topic: "a/b", Payload: []byte("hello"), QoS: 1, Retain: true, Time: 1700000000000000000}), "t", []byte("p"), uint8(6), int64(-1))
	f.Add(encodeMessage(&Message{Topic: "", Payload: nil, Time: 0}), "", []byte{}, uint8(0), int64(0))
	f.Add(encodeMessage(&Message{Topic: "v5", Payload: []byte("x"), QoS: 2, Time: 5, Expiry: 6, Properties: []byte{0x26, 0, 1, 'k', 0, 1, 'v'}}), "\x01\x02", []byte("p5"), uint8(0x1f), int64(9))
	f.Add(encodeMessage(&Message{Topic: "e", Properties: []byte{}}), "", []byte(nil), uint8(0x10), int64(0))
	f.Add(append(u64key(3), encodeMessage(&Message{Topic: "will", Payload: []byte("bye"), QoS: 1, Expiry: -1})...), "w", []byte("w"), uint8(0x08), int64(-1))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0x80, 0x01}, "x/y/z", []byte{0}, uint8(2), int64(1)<<62)
	f.Add([]byte{8, 1, 2, 3, 4, 5, 6, 7, 8, 1}, "", []byte(nil), uint8(255), int64(-1)<<63)
	f.Add([]byte{0x10, 0, 0, 0, 0, 0, 0, 0, 0, 1, 'a', 0x80}, "", []byte(nil), uint8(0x18), int64(0))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, "$SYS", []byte("\x00\xff"), uint8(5), int64(42))
	f.Fuzz(func(t *testing.T, raw []byte, topic string, payload []byte, flags uint8, when int64) {
		// Arbitrary bytes.
		m, err := decodeMessage(raw)
		tm, tok := messageTime(raw)
		if tok != (len(raw) >= msgFixed) {
			t.Fatalf("messageTime ok=%v for %d bytes", tok, len(raw))
		}
		if err == nil {
			if !tok || tm != m.Time {
				t.Fatalf("messageTime %d,%v, decoded %d", tm, tok, m.Time)
			}
			if topic, ok := messageTopic(raw); !ok || topic != m.Topic {
				t.Fatalf("messageTopic %q,%v, decoded %q", topic, ok, m.Topic)
			}
			if s := messageSize(raw); s != m.Size() {
				t.Fatalf("messageSize %d, decoded size %d", s, m.Size())
			}
			if m.QoS > 3 || (m.Expiry == 0) != (raw[0]&msgFlagExpiry == 0) || (m.Properties == nil) != (raw[0]&msgFlagProps == 0) {
				t.Fatalf("decoded %+v from flags %#x", m, raw[0])
			}
			if len(raw) > 0 && len(m.Payload) > 0 && &m.Payload[0] == &raw[len(raw)-len(m.Payload)] {
				t.Fatal("the payload aliases the record (bbolt memory)")
			}
			again, err := decodeMessage(encodeMessage(&m))
			if err != nil || !sameMessage(again, m) {
				t.Fatalf("re-encoded %+v decodes to %+v, %v", m, again, err)
			}
		} else if s := messageSize(raw); s < 0 || s > int64(len(raw)) {
			t.Fatalf("messageSize %d of a %d-byte record", s, len(raw))
		}
		if w, err := decodeWill(raw); err == nil {
			again, err := decodeWill(encodeWill(w))
			if err != nil || again.Due != w.Due || !sameMessage(again.Msg, w.Msg) {
				t.Fatalf("re-encoded will %+v decodes to %+v, %v", w, again, err)
			}
		}
		// Values built from the input. QoS is 0-3 (two bits on disk).
		want := Message{Topic: topic, Payload: payload, QoS: flags & 3, Retain: flags&4 != 0, Time: when}
		if flags&8 != 0 {
			want.Expiry = cmp.Or(when, 1)
		}
		if flags&16 != 0 {
			want.Properties = append([]byte{}, topic...)
		}
		enc := encodeMessage(&want)
		got, err := decodeMessage(enc)
		if err != nil || !sameMessage(got, want) {
			t.Fatalf("%+v decodes to %+v, %v", want, got, err)
		}
		if s := messageSize(enc); s != want.Size() {
			t.Fatalf("messageSize %d, want %d", s, want.Size())
		}
		if tm, ok := messageTime(enc); !ok || tm != when {
			t.Fatalf("messageTime %d,%v, want %d", tm, ok, when)
		}
		if flags&0x18 == 0 && len(enc) != msgFixed+uvarintLen(uint64(len(topic)))+len(topic)+len(payload) {
			t.Fatalf("a message without expiry or properties takes %d bytes", len(enc))
		}
		// Every strict prefix of a record is too short or decodes to a
		// shorter payload: never more than was written.
		if len(enc) > 0 {
			if p, err := decodeMessage(enc[:len(enc)-1]); err == nil && p.Size() >= want.Size() {
				t.Fatalf("truncated record decodes to %+v", p)
			}
		}
		w := Will{Msg: want, Due: when ^ 0x5a5a}
		if gw, err := decodeWill(encodeWill(&w)); err != nil || gw.Due != w.Due || !sameMessage(gw.Msg, want) {
			t.Fatalf("will %+v decodes to %+v, %v", w, gw, err)
		}
	})
}

// sameMessage compares every field, nil Properties apart from empty ones.
func sameMessage(a, b Message) bool {
	return a.Topic == b.Topic && bytes.Equal(a.Payload, b.Payload) && a.QoS == b.QoS &&
		a.Retain == b.Retain && a.Time == b.Time && a.Expiry == b.Expiry &&
		bytes.Equal(a.Properties, b.Properties) && (a.Properties == nil) == (b.Properties == nil)
}

// FuzzDecodeRef fuzzes the queue entry reference record. Values built
// from the input carry subscription identifiers when id is not a multiple
// of 3.
func FuzzDecodeRef(f *testing.F) {
	f.Add([]byte{1, 0x12, 0x34, 0}, uint8(2), uint16(65535), true)
	f.Add([]byte{3, 0, 0, 0}, uint8(0), uint16(0), false)
	f.Add([]byte{0, 0, 0, 2}, uint8(1), uint16(1), false)
	f.Add([]byte{0, 0, 0}, uint8(1), uint16(1), false)
	f.Add(encodeRef(&Queued{QoS: 1, PacketID: 9, Retain: true, SubIDs: []uint32{1, 300, MaxSubscriptionID}}), uint8(1), uint16(5), false)
	f.Add([]byte{0, 0, 0, 4}, uint8(1), uint16(3), false)
	f.Add([]byte{0, 0, 0, 4, 0}, uint8(1), uint16(3), false)
	f.Add([]byte{0, 0, 0, 4, 0x81, 0}, uint8(1), uint16(3), false)
	f.Add([]byte{0, 0, 0, 4, 0x80, 0x80, 0x80, 0x80, 0x01}, uint8(1), uint16(3), false)
	f.Fuzz(func(t *testing.T, raw []byte, qos uint8, id uint16, pubrel bool) {
		var got Queued
		if err := decodeRef(raw, &got); err == nil {
			if got.QoS > 2 || !bytes.Equal(encodeRef(&got), raw) {
				t.Fatalf("%x decodes to %+v, which encodes differently", raw, got)
			}
			for _, s := range got.SubIDs {
				if s == 0 || s > MaxSubscriptionID {
					t.Fatalf("%x decodes to subscription id %d", raw, s)
				}
			}
		} else if got.SubIDs != nil {
			t.Fatalf("%x: subscription ids %v with an error", raw, got.SubIDs)
		}
		want := Queued{QoS: qos % 3, PacketID: id, Pubrel: pubrel, Retain: id%2 == 0}
		if id%3 != 0 {
			want.SubIDs = []uint32{uint32(id), MaxSubscriptionID - uint32(id)*4096, 1}
		}
		got = Queued{}
		if err := decodeRef(encodeRef(&want), &got); err != nil || got.QoS != want.QoS || got.PacketID != want.PacketID ||
			got.Pubrel != want.Pubrel || got.Retain != want.Retain || !slices.Equal(got.SubIDs, want.SubIDs) {
			t.Fatalf("%+v decodes to %+v, %v", want, got, err)
		}
		if want.SubIDs == nil && len(encodeRef(&want)) != 4 {
			t.Fatal("a ref without subscription ids is not 4 bytes")
		}
	})
}

// FuzzDecodeSub fuzzes the subscription record. Values built from the
// input take their options from opts (bits as on disk, QoS and retain
// handling taken modulo 3) and their identifier from id.
func FuzzDecodeSub(f *testing.F) {
	f.Add([]byte{1, 'a', '/', '#'}, "a/b", uint8(0x3f), uint32(0))
	f.Add(encodeSub(&Subscription{Filter: "x", QoS: 2, NoLocal: true, RetainAsPublished: true, RetainHandling: 2, ID: MaxSubscriptionID}), "#", uint8(0), uint32(1))
	f.Add([]byte{0x40, 0x80, 0x01, 't'}, "", uint8(0x40), uint32(MaxSubscriptionID+1))
	f.Add([]byte{0x30, 't'}, "t", uint8(0x80), uint32(128))
	f.Add([]byte{0x40, 0x05}, "$share/g/t", uint8(0x7f), uint32(1)<<31)
	f.Add([]byte{3, 'x'}, "x", uint8(3), uint32(7))
	f.Fuzz(func(t *testing.T, raw []byte, filter string, opts uint8, id uint32) {
		k := u64key(uint64(id) * 7)
		if got, err := decodeSub(k, raw); err == nil {
			if got.QoS > 2 || got.RetainHandling > 2 || got.ID > MaxSubscriptionID || got.Filter == "" || !bytes.Equal(encodeSub(&got), raw) {
				t.Fatalf("%x decodes to %+v, which encodes differently", raw, got)
			}
		}
		if _, err := decodeSub(k[:7], raw); err == nil {
			t.Fatal("a 7-byte key decodes")
		}
		want := Subscription{
			Seq: uint64(id) * 7, Filter: cmp.Or(filter, "f"), QoS: opts & 3 % 3, NoLocal: opts&4 != 0,
			RetainAsPublished: opts&8 != 0, RetainHandling: (opts >> 4) & 3 % 3, ID: id % (MaxSubscriptionID + 1),
		}
		enc := encodeSub(&want)
		got, err := decodeSub(k, enc)
		if err != nil || got != want {
			t.Fatalf("%+v decodes to %+v, %v", want, got, err)
		}
		if want.ID == 0 && !want.NoLocal && !want.RetainAsPublished && want.RetainHandling == 0 && len(enc) != 1+len(want.Filter) {
			t.Fatalf("a 3.1.1 subscription takes %d bytes", len(enc))
		}
	})
}

// FuzzDecodeSession fuzzes the session info record. The input's second
// half, split on 0x00, gives the filters of the value that is round
// tripped (format 1's list); lastSeen also gives its version (low byte)
// and expiry interval (bits 8-39).
func FuzzDecodeSession(f *testing.F) {
	f.Add(encodeSession(&sessionInfo{subs: []Subscription{{Filter: "a/+", QoS: 1}, {Filter: "#", QoS: 2}}, lastSeen: 1700000000}), []byte("a/b\x00c/#\x00"), int64(-5))
	f.Add(encodeSession(&sessionInfo{}), []byte{}, int64(0))
	f.Add(encodeSession(&sessionInfo{lastSeen: 1700000000, version: 5, expiry: ExpiryNever}), []byte{}, int64(0x0000ffffffff05))
	f.Add(encodeSession(&sessionInfo{version: 4}), []byte{}, int64(4))
	f.Add([]byte{0}, []byte("\x00\x00"), int64(1)<<62)
	f.Add([]byte{2, 1, 0, 0}, []byte("x"), int64(-1)<<63)
	f.Add([]byte{2, 0, 5, 0x80, 0x80, 0x80, 0x80, 0x10}, []byte(""), int64(5))
	f.Add([]byte{2, 0xff, 0xff, 0xff, 0xff, 0x0f, 1, 'a', 0}, []byte("$share/g/t"), int64(7))
	f.Add([]byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}, []byte("\xff"), int64(1))
	f.Fuzz(func(t *testing.T, raw, filters []byte, lastSeen int64) {
		in, err := decodeSession(raw)
		if err != nil {
			if !reflect.DeepEqual(in, sessionInfo{}) {
				t.Fatalf("values with an error: %+v", in)
			}
		} else {
			if len(in.subs) > len(raw) {
				t.Fatalf("%d subscriptions from %d bytes", len(in.subs), len(raw))
			}
			again, err := decodeSession(encodeSession(&in))
			if err != nil || !sameInfo(again, in) {
				t.Fatalf("re-encoded %+v decodes to %+v, %v", in, again, err)
			}
		}
		want := sessionInfo{lastSeen: lastSeen, version: byte(lastSeen), expiry: uint32(lastSeen >> 8)}
		if len(filters) > 0 {
			for i, fl := range bytes.Split(filters, []byte{0}) {
				want.subs = append(want.subs, Subscription{Filter: string(fl), QoS: byte(i * 7)})
			}
		}
		enc := encodeSession(&want)
		got, err := decodeSession(enc)
		if err != nil || !sameInfo(got, want) {
			t.Fatalf("%+v decodes to %+v, %v", want, got, err)
		}
		// Trailing bytes and a truncated record are refused.
		if _, err := decodeSession(append(enc[:len(enc):len(enc)], 0)); err == nil {
			t.Fatal("a record with a trailing byte decodes")
		}
		if _, err := decodeSession(enc[:len(enc)-1]); err == nil {
			t.Fatal("a truncated record decodes")
		}
		// Format 2's record (no version, no expiry) is format 3's too.
		if v2 := encodeSession(&sessionInfo{lastSeen: lastSeen}); len(v2) != uvarintLen(0)+len(binary.AppendVarint(nil, lastSeen)) {
			t.Fatalf("a 3.1.1 session's info takes %d bytes", len(v2))
		}
	})
}

func sameInfo(a, b sessionInfo) bool {
	return a.lastSeen == b.lastSeen && a.version == b.version && a.expiry == b.expiry && sameSubs(a.subs, b.subs)
}

func sameSubs(a, b []Subscription) bool {
	return len(a) == len(b) && (len(a) == 0 || reflect.DeepEqual(a, b))
}

// FuzzDecodeQStats fuzzes the queue stats record.
func FuzzDecodeQStats(f *testing.F) {
	f.Add([]byte(nil), int64(3), int64(100), uint64(1), uint64(2))
	f.Add(make([]byte, 32), int64(-1), int64(-1)<<63, uint64(1)<<63, ^uint64(0))
	f.Add(make([]byte, 31), int64(0), int64(0), uint64(0), uint64(0))
	f.Fuzz(func(t *testing.T, raw []byte, count, size int64, dropped, expired uint64) {
		st, err := decodeQStats(raw)
		switch {
		case raw == nil && (err != nil || st != qstats{}):
			t.Fatalf("a missing record gives %+v, %v", st, err)
		case raw != nil && len(raw) != 32 && err == nil:
			t.Fatalf("%d bytes decode", len(raw))
		case len(raw) == 32 && (err != nil || !bytes.Equal(st.encode(), raw)):
			t.Fatalf("%x decodes to %+v, %v", raw, st, err)
		}
		want := qstats{count: count, bytes: size, dropped: dropped, expired: expired}
		if got, err := decodeQStats(want.encode()); err != nil || got != want {
			t.Fatalf("%+v decodes to %+v, %v", want, got, err)
		}
		if binary.BigEndian.Uint64(want.encode()) != uint64(count) {
			t.Fatal("count is not the first big-endian field")
		}
	})
}

// FuzzUnseal fuzzes the checksum layer: arbitrary bytes unseal or fail,
// never panic; a sealed record unseals to itself under its key and to an
// error under any other key or with any one byte changed.
func FuzzUnseal(f *testing.F) {
	f.Add([]byte("info"), []byte{0, 1, 2, 3, 4, 5}, uint16(2), uint8(1))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 1}, []byte{}, uint16(0), uint8(0x80))
	f.Add([]byte{}, []byte("\x01\x02\x03"), uint16(9), uint8(255))
	f.Fuzz(func(t *testing.T, k, v []byte, at uint16, flip uint8) {
		if body, err := unseal(k, v); err == nil && (len(body) != len(v)-sumLen || !bytes.Equal(body, v[:len(body)])) {
			t.Fatalf("unseal returned %x for %x", body, v)
		}
		sealed := seal(k, v)
		body, err := unseal(k, sealed)
		if err != nil || !bytes.Equal(body, v) {
			t.Fatalf("sealed %x unseals to %x, %v", v, body, err)
		}
		if flip != 0 {
			bad := bytes.Clone(sealed)
			bad[int(at)%len(bad)] ^= flip
			if _, err := unseal(k, bad); err == nil {
				t.Fatalf("byte %d changed by %#x went unnoticed", int(at)%len(bad), flip)
			}
			other := append(bytes.Clone(k), flip)
			if _, err := unseal(other, sealed); err == nil {
				t.Fatal("a record moved to another key went unnoticed")
			}
		}
		// putRec's in-place append seals alike.
		own := append(make([]byte, 0, len(v)+sumLen), v...)
		if got := binary.BigEndian.AppendUint32(own, recordSum(k, own)); !bytes.Equal(got, sealed) {
			t.Fatal("seal and putRec's encoding differ")
		}
	})
}

// FuzzNameOfKey fuzzes the name keys: arbitrary keys and stored names
// never panic; a name's key maps back to it and to no other name.
func FuzzNameOfKey(f *testing.F) {
	f.Add([]byte("a/b"), "a/b", uint8(0))
	f.Add([]byte{0xff, 1, 2}, "x", uint8(3))
	f.Add([]byte{}, "\xff"+string(make([]byte, 1100)), uint8(255))
	f.Fuzz(func(t *testing.T, k []byte, name string, probe uint8) {
		if got, err := nameOfKey(k, func() (string, error) { return name, nil }); err == nil {
			if len(k) > 0 && k[0] == longKeyTag {
				if got != name || !bytes.HasPrefix(k, hashPrefix(name)) || len(k) != 1+hashLen+1 {
					t.Fatalf("hashed key %x accepted for %.40q", k, name)
				}
			} else if got != string(k) || len(k) > maxRawName {
				t.Fatalf("raw key %.40q gave %.40q", k, got)
			}
		}
		var key []byte
		if isRawName(name) {
			key = []byte(name)
		} else {
			key = append(hashPrefix(name), probe)
		}
		got, err := nameOfKey(key, func() (string, error) { return name, nil })
		if err != nil || got != name {
			t.Fatalf("the key of %.40q maps back to %.40q, %v", name, got, err)
		}
		if !isRawName(name) {
			if _, err := nameOfKey(key, func() (string, error) { return name + "x", nil }); err == nil {
				t.Fatal("a different name was accepted for a hashed key")
			}
		}
	})
}
