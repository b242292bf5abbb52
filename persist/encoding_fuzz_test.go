package persist

import (
	"bytes"
	"encoding/binary"
	"reflect"
	"testing"
)

// These targets fuzz the record decoders directly: they read what is in
// the database file, which may be damaged. Arbitrary bytes must decode or
// return an error, never panic, and a record that decodes must re-encode to
// one that decodes to the same value. Values built from the input must
// survive encode then decode.

// FuzzDecodeMessage fuzzes decodeMessage, messageTime and messageSize.
func FuzzDecodeMessage(f *testing.F) {
	f.Add(encodeMessage(&Message{Topic: "a/b", Payload: []byte("hello"), QoS: 1, Retain: true, Time: 1700000000000000000}), "t", []byte("p"), uint8(6), int64(-1))
	f.Add(encodeMessage(&Message{Topic: "", Payload: nil, Time: 0}), "", []byte{}, uint8(0), int64(0))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0x80, 0x01}, "x/y/z", []byte{0}, uint8(2), int64(1)<<62)
	f.Add([]byte{8, 1, 2, 3, 4, 5, 6, 7, 8, 1}, "", []byte(nil), uint8(255), int64(-1)<<63)
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
			if m.QoS > 3 {
				t.Fatalf("decoded QoS %d", m.QoS)
			}
			if len(raw) > 0 && len(m.Payload) > 0 && &m.Payload[0] == &raw[len(raw)-len(m.Payload)] {
				t.Fatal("the payload aliases the record (bbolt memory)")
			}
			again, err := decodeMessage(encodeMessage(&m))
			if err != nil || !sameMessage(again, m) {
				t.Fatalf("re-encoded %+v decodes to %+v, %v", m, again, err)
			}
		}
		// Values built from the input. QoS is 0-3 (two bits on disk).
		want := Message{Topic: topic, Payload: payload, QoS: flags & 3, Retain: flags&4 != 0, Time: when}
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
		// Every strict prefix of a record is too short or decodes to a
		// shorter payload: never more than was written.
		if len(enc) > 0 {
			if p, err := decodeMessage(enc[:len(enc)-1]); err == nil && p.Size() >= want.Size() {
				t.Fatalf("truncated record decodes to %+v", p)
			}
		}
	})
}

func sameMessage(a, b Message) bool {
	return a.Topic == b.Topic && bytes.Equal(a.Payload, b.Payload) && a.QoS == b.QoS &&
		a.Retain == b.Retain && a.Time == b.Time
}

// FuzzDecodeRef fuzzes the queue entry reference record.
func FuzzDecodeRef(f *testing.F) {
	f.Add([]byte{1, 0x12, 0x34, 0}, uint8(2), uint16(65535), true)
	f.Add([]byte{3, 0, 0, 0}, uint8(0), uint16(0), false)
	f.Add([]byte{0, 0, 0, 2}, uint8(1), uint16(1), false)
	f.Add([]byte{0, 0, 0}, uint8(1), uint16(1), false)
	f.Fuzz(func(t *testing.T, raw []byte, qos uint8, id uint16, pubrel bool) {
		var got Queued
		if err := decodeRef(raw, &got); err == nil {
			if got.QoS > 2 || !bytes.Equal(encodeRef(&got), raw) {
				t.Fatalf("%x decodes to %+v, which encodes differently", raw, got)
			}
		}
		want := Queued{QoS: qos % 3, PacketID: id, Pubrel: pubrel, Retain: id%2 == 0}
		got = Queued{}
		if err := decodeRef(encodeRef(&want), &got); err != nil || got.QoS != want.QoS || got.PacketID != want.PacketID || got.Pubrel != want.Pubrel || got.Retain != want.Retain {
			t.Fatalf("%+v decodes to %+v, %v", want, got, err)
		}
	})
}

// FuzzDecodeSession fuzzes the session info record. The input's second
// half, split on 0x00, gives the filters of the value that is round
// tripped.
func FuzzDecodeSession(f *testing.F) {
	f.Add(encodeSession([]Subscription{{Filter: "a/+", QoS: 1}, {Filter: "#", QoS: 2}}, 1700000000), []byte("a/b\x00c/#\x00"), int64(-5))
	f.Add(encodeSession(nil, 0), []byte{}, int64(0))
	f.Add([]byte{0}, []byte("\x00\x00"), int64(1)<<62)
	f.Add([]byte{2, 1, 0, 0}, []byte("x"), int64(-1)<<63)
	f.Add([]byte{2, 0xff, 0xff, 0xff, 0xff, 0x0f, 1, 'a', 0}, []byte("$share/g/t"), int64(7))
	f.Add([]byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}, []byte("\xff"), int64(1))
	f.Fuzz(func(t *testing.T, raw, filters []byte, lastSeen int64) {
		subs, ls, err := decodeSession(raw)
		if err != nil {
			if subs != nil || ls != 0 {
				t.Fatalf("values with an error: %v %d", subs, ls)
			}
		} else {
			if len(subs) > len(raw) {
				t.Fatalf("%d subscriptions from %d bytes", len(subs), len(raw))
			}
			s2, ls2, err := decodeSession(encodeSession(subs, ls))
			if err != nil || ls2 != ls || !sameSubs(s2, subs) {
				t.Fatalf("re-encoded %v %d decodes to %v %d, %v", subs, ls, s2, ls2, err)
			}
		}
		var want []Subscription
		if len(filters) > 0 {
			for i, fl := range bytes.Split(filters, []byte{0}) {
				want = append(want, Subscription{Filter: string(fl), QoS: byte(i * 7)})
			}
		}
		enc := encodeSession(want, lastSeen)
		got, gls, err := decodeSession(enc)
		if err != nil || gls != lastSeen || !sameSubs(got, want) {
			t.Fatalf("%v %d decodes to %v %d, %v", want, lastSeen, got, gls, err)
		}
		// Trailing bytes and a truncated record are refused.
		if _, _, err := decodeSession(append(enc[:len(enc):len(enc)], 0)); err == nil {
			t.Fatal("a record with a trailing byte decodes")
		}
		if _, _, err := decodeSession(enc[:len(enc)-1]); err == nil {
			t.Fatal("a truncated record decodes")
		}
	})
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
