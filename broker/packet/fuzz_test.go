package packet_test

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/edged/edged/broker/packet"
	"github.com/edged/edged/broker/packet/packettest"
)

// maxSeed keeps large fixtures out of the corpus; they slow the mutator.
const maxSeed = 4096

// decoded is the outcome of reading packets from a stream until an error.
type decoded struct {
	packets []packet.Packet
	err     error
}

// decodeAll reads packets from r until Read fails; a clean stream ends with
// io.EOF. At most 1000 packets are read (every packet takes 2 bytes or more,
// so fuzz inputs never reach that).
func decodeAll(r io.Reader, maxSize int, v packet.Version) decoded {
	var d decoded
	for range 1000 {
		p, err := packet.Read(r, maxSize, v)
		if err != nil {
			d.err = err
			return d
		}
		d.packets = append(d.packets, p)
	}
	return d
}

func sameResult(t *testing.T, what string, got, want decoded) {
	t.Helper()
	if !reflect.DeepEqual(got.packets, want.packets) {
		t.Fatalf("%s: decoded %#v, whole input decoded %#v", what, got.packets, want.packets)
	}
	if got.err == nil || want.err == nil || got.err.Error() != want.err.Error() {
		t.Fatalf("%s: error %v, whole input gave %v", what, got.err, want.err)
	}
}

// fuzzVersion maps the fuzzer's version byte to a protocol version: the
// byte's value mod 3 picks 3.1, 3.1.1 or 5.0 (so 4 is 3.1.1 and 5 is 5.0).
func fuzzVersion(b byte) packet.Version {
	return [...]packet.Version{packet.V31, packet.V311, packet.V5}[b%3]
}

// FuzzDecode holds the decoder to its contract on arbitrary input at every
// protocol version: no panic; only codec errors or end-of-input errors; the
// same result however the bytes arrive; canonical re-encoding; decode,
// encode, decode stability; and PacketTooLarge before any body allocation.
// data is a stream: the first packet's first byte and body, then any
// further packets, read as a connection reads them.
func FuzzDecode(f *testing.F) {
	for b := range 256 {
		if v := fuzzVersion(byte(b)); b >= 3 && b <= 5 && v != packet.Version(b) {
			f.Fatalf("fuzzVersion(%d) = %d", b, v)
		}
	}
	for _, tc := range packettest.Valid {
		if len(tc.Raw) <= maxSeed {
			f.Add(byte(packet.V311), tc.Raw)
		}
	}
	for _, tc := range packettest.Invalid {
		f.Add(byte(packet.V311), tc.Raw)
	}
	for _, tc := range packettest.Valid5 {
		f.Add(byte(packet.V5), tc.Raw)
	}
	for _, tc := range packettest.Invalid5 {
		f.Add(byte(packet.V5), tc.Raw)
	}
	f.Add(byte(packet.V311), append(append([]byte{}, packettest.Valid[0].Raw...), packettest.Valid[len(packettest.Valid)-1].Raw...))
	f.Add(byte(packet.V5), append(append([]byte{}, packettest.Valid5[0].Raw...), packettest.Valid5[len(packettest.Valid5)-1].Raw...))
	f.Add(byte(packet.V311), []byte{})
	// 3.1: a CONNACK with the session present flag is read but written
	// without it.
	f.Add(byte(packet.V31), []byte("\x20\x02\x01\x00\x90\x03\x00\x01\x80"))

	f.Fuzz(func(t *testing.T, version byte, data []byte) {
		v := fuzzVersion(version)
		// A maximum just above the input keeps a lying remaining length from
		// allocating much; it is the same for every reader below.
		maxSize := len(data) + 1

		// Whole input through an io.ByteReader, remembering where each packet
		// starts.
		br := bytes.NewReader(data)
		var whole decoded
		var spans [][]byte
		for range 1000 {
			start := len(data) - br.Len()
			p, err := packet.Read(br, maxSize, v)
			if err != nil {
				whole.err = err
				break
			}
			whole.packets = append(whole.packets, p)
			spans = append(spans, data[start:len(data)-br.Len()])
		}
		if whole.err == nil {
			t.Fatal("1000 packets without an error")
		}
		var perr *packet.Error
		if whole.err != io.EOF && whole.err != io.ErrUnexpectedEOF && !errors.As(whole.err, &perr) {
			t.Fatalf("error %v (%T) is neither *packet.Error nor io.EOF/io.ErrUnexpectedEOF", whole.err, whole.err)
		}

		// Serial trickle and arbitrary splits give the same result.
		sameResult(t, "one byte", decodeAll(iotest.OneByteReader(bytes.NewReader(data)), maxSize, v), whole)
		split := 0
		if len(data) > 0 {
			split = int(data[len(data)-1]) % (len(data) + 1)
		}
		sameResult(t, "split", decodeAll(io.MultiReader(bytes.NewReader(data[:split]), bytes.NewReader(data[split:])), maxSize, v), whole)
		sameResult(t, "half", decodeAll(iotest.HalfReader(bytes.NewReader(data)), maxSize, v), whole)

		for i, p := range whole.packets {
			span := spans[i]
			// Canonical form: re-encoding reproduces the bytes read, except that
			// a non-minimal remaining length is written minimally, and
			// a 3.1 CONNACK is written without a session present flag.
			if ca, ok := p.(*packet.Connack); ok && v == packet.V31 && ca.SessionPresent {
				span = append([]byte(nil), span...)
				span[len(span)-2] = 0
				ca.SessionPresent = false
			}
			if cp, ok := p.(*packet.Connect); v == packet.V5 || ok && cp.ProtocolLevel == byte(packet.V5) {
				// 5.0 has encodings of the same packet the encoder
				// never writes: properties in any order, a Success
				// reason written out, an empty property list. A CONNECT
				// is 5.0 by its own protocol level, whatever the
				// connection's version before it.
				checkStable(t, p, v)
				continue
			}
			enc := packet.Encode(p, v)
			_, bodyLen, err := packet.ReadHeader(bytes.NewReader(span))
			if err != nil {
				t.Fatal(err)
			}
			_, encLen, err := packet.ReadHeader(bytes.NewReader(enc))
			if err != nil {
				t.Fatalf("re-reading header of % x: %v", enc, err)
			}
			if enc[0] != span[0] || encLen != bodyLen || !bytes.Equal(enc[len(enc)-encLen:], span[len(span)-bodyLen:]) {
				t.Fatalf("%T re-encoded as\n% x\nread from\n% x", p, enc, span)
			}
			// Round-trip stability: decode(encode(p)) == p.
			p2, err := packet.Read(bytes.NewReader(enc), len(enc), v)
			if err != nil {
				t.Fatalf("decoding re-encoded %#v: %v", p, err)
			}
			if !reflect.DeepEqual(p2, p) {
				t.Fatalf("round trip: %#v became %#v", p, p2)
			}
		}

		// A maximum below the announced length is refused from the fixed
		// header alone: nothing of the body is read, so nothing is allocated
		// for it.
		hr := bytes.NewReader(data)
		if _, n, err := packet.ReadHeader(hr); err == nil && n >= 2 {
			header := len(data) - hr.Len()
			limit := 1 + int(data[0])%(n-1) // in [1, n-1]
			cr := &countingReader{r: bytes.NewReader(data)}
			p, err := packet.Read(cr, limit, v)
			if r, ok := packet.ReasonOf(err); !ok || r != packet.PacketTooLarge || p != nil {
				t.Fatalf("Read(max %d) of remaining length %d = %v, %v; want PacketTooLarge", limit, n, p, err)
			}
			if cr.n != header {
				t.Fatalf("Read(max %d) consumed %d bytes, want the %d-byte header only", limit, cr.n, header)
			}
		}
	})
}

// checkStable checks that p, decoded at v, encodes to bytes that decode to
// p again and re-encode to the same bytes (decode, encode, decode is
// stable).
func checkStable(t *testing.T, p packet.Packet, v packet.Version) {
	t.Helper()
	enc := packet.Encode(p, v)
	p2, err := packet.Read(bytes.NewReader(enc), len(enc), v)
	if err != nil {
		t.Fatalf("decoding re-encoded %#v\n% x: %v", p, enc, err)
	}
	if !reflect.DeepEqual(p2, p) {
		t.Fatalf("round trip: %#v became %#v", p, p2)
	}
	if enc2 := packet.Encode(p2, v); !bytes.Equal(enc2, enc) {
		t.Fatalf("re-encoding is not stable:\n% x\n% x", enc, enc2)
	}
	if pub, ok := p.(*packet.Publish); ok && pub.Size(v) != len(enc) {
		t.Fatalf("Size(%d) = %d, encoded %d bytes", v, pub.Size(v), len(enc))
	}
}

// matchRef is a reference matcher written from section 4.7 for valid filters
// and topic names.
func matchRef(f, t string) bool {
	if strings.HasPrefix(t, "$") && (strings.HasPrefix(f, "+") || strings.HasPrefix(f, "#")) {
		return false
	}
	fl, tl := strings.Split(f, "/"), strings.Split(t, "/")
	for i, l := range fl {
		if l == "#" {
			return true // '#' is last in a valid filter and matches the parent too
		}
		if i >= len(tl) || (l != "+" && l != tl[i]) {
			return false
		}
	}
	return len(fl) == len(tl)
}

func FuzzMatchTopic(f *testing.F) {
	seeds := [][2]string{
		{"sport/tennis/player1/#", "sport/tennis/player1"},
		{"sport/#", "sport"},
		{"+", "/finance"},
		{"+/+", "/finance"},
		{"/+", "/finance"},
		{"#", "$SYS/monitor/Clients"},
		{"+/monitor/Clients", "$SYS/monitor/Clients"},
		{"$SYS/#", "$SYS/monitor/Clients"},
		{"sport/+/#", "sport/x/y"},
		{"a//b", "a//b"},
		{"a/#/b", "a/x/b"},
		{"", ""},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, filter, topic string) {
		got := packet.MatchTopic(filter, topic) // must not panic on any input
		validF, validT := packet.ValidTopicFilter(filter), packet.ValidTopicName(topic)
		if validF && validT {
			if want := matchRef(filter, topic); got != want {
				t.Fatalf("MatchTopic(%q, %q) = %v, reference says %v", filter, topic, got, want)
			}
		}
		if validT {
			// A topic name is a valid filter that matches itself and only
			// names equal to it.
			if !packet.ValidTopicFilter(topic) {
				t.Fatalf("valid topic name %q is not a valid filter", topic)
			}
			if !packet.MatchTopic(topic, topic) {
				t.Fatalf("MatchTopic(%q, itself) = false", topic)
			}
			if validF && !strings.ContainsAny(filter, "+#") && got != (filter == topic) {
				t.Fatalf("MatchTopic(%q, %q) = %v without wildcards", filter, topic, got)
			}
		}
	})
}

// FuzzDecodeProperties holds DecodeProperties, which the broker feeds
// property blocks read back from its store, to never panicking, and to
// reading back what AppendProperties wrote from what it decoded.
func FuzzDecodeProperties(f *testing.F) {
	one := byte(1)
	exp := uint32(60)
	f.Add(packet.AppendProperties(nil, nil))
	f.Add(packet.AppendProperties(nil, &packet.Properties{PayloadFormat: &one, MessageExpiry: &exp,
		ContentType: "text/plain", ResponseTopic: "r/t", CorrelationData: []byte{0, 1},
		User: []packet.UserProperty{{Key: "k", Value: "v"}, {Key: "k", Value: "w"}}}))
	f.Add([]byte{3, 0x23, 0, 0})                       // topic alias 0
	f.Add([]byte{8, 0x03, 0, 1, 'x', 0x03, 0, 1, 'y'}) // content type twice
	f.Add([]byte{5, 0x11, 0, 0, 0, 1})                 // not a PUBLISH property
	f.Add([]byte{0x80})                                // truncated length
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := packet.DecodeProperties(data, packet.PUBLISH)
		if err != nil {
			return
		}
		b := packet.AppendProperties(nil, p)
		q, err := packet.DecodeProperties(b, packet.PUBLISH)
		if err != nil {
			t.Fatalf("re-encoded %x does not decode: %v", b, err)
		}
		if !bytes.Equal(packet.AppendProperties(nil, q), b) {
			t.Fatalf("not stable: %x", b)
		}
	})
}
