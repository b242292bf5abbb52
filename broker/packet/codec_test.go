package packet_test

// The fixtures live in packettest so broker tests can replay them. Decoded
// values are compared with reflect.DeepEqual, so the nil-versus-empty
// convention matters; packettest's package comment states it (decoded byte
// fields are []byte{} when empty, nil only when absent).

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/edged/edged/broker/packet"
	"github.com/edged/edged/broker/packet/packettest"
)

// countingReader counts the bytes read through it. It deliberately does not
// implement io.ByteReader, so ReadHeader takes its io.ReadFull path.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// readers returns the ways a test feeds raw to packet.Read: whole (a
// bytes.Reader, which is an io.ByteReader), one byte per Read (a serial
// trickle), and one byte per Read with io.EOF arriving with the last byte.
func readers(raw []byte) map[string]io.Reader {
	return map[string]io.Reader{
		"whole":       bytes.NewReader(raw),
		"one byte":    iotest.OneByteReader(bytes.NewReader(raw)),
		"half":        iotest.HalfReader(bytes.NewReader(raw)),
		"eof in data": iotest.DataErrReader(iotest.OneByteReader(bytes.NewReader(raw))),
	}
}

func TestReadValid(t *testing.T) {
	for _, tc := range allValid() {
		t.Run(tc.Name, func(t *testing.T) {
			for name, r := range readers(tc.Raw) {
				cr := &countingReader{r: r}
				got, err := packet.Read(cr, 0, tc.Version)
				if err != nil {
					t.Fatalf("%s: Read: %v", name, err)
				}
				if !reflect.DeepEqual(got, tc.Packet) {
					t.Errorf("%s: Read =\n%#v\nwant\n%#v", name, got, tc.Packet)
				}
				if cr.n != len(tc.Raw) {
					t.Errorf("%s: Read consumed %d bytes, want %d", name, cr.n, len(tc.Raw))
				}
				if got.Type() != packet.Type(tc.Raw[0]>>4) {
					t.Errorf("%s: Type() = %v, want %v", name, got.Type(), packet.Type(tc.Raw[0]>>4))
				}
			}
		})
	}
}

func TestDecodeValid(t *testing.T) {
	for _, tc := range allValid() {
		t.Run(tc.Name, func(t *testing.T) {
			first, n, err := packet.ReadHeader(bytes.NewReader(tc.Raw))
			if err != nil {
				t.Fatal(err)
			}
			body := tc.Raw[len(tc.Raw)-n:]
			got, err := packet.Decode(first, body, tc.Version)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !reflect.DeepEqual(got, tc.Packet) {
				t.Errorf("Decode =\n%#v\nwant\n%#v", got, tc.Packet)
			}
		})
	}
}

func TestEncodeValid(t *testing.T) {
	for _, tc := range allValid() {
		t.Run(tc.Name, func(t *testing.T) {
			if got := packet.Encode(tc.Packet, tc.Version); !bytes.Equal(got, tc.Raw) {
				t.Errorf("Encode =\n% x\nwant\n% x", got, tc.Raw)
			}
			prefix := []byte("prefix")
			got := tc.Packet.AppendTo(prefix[:len(prefix):len(prefix)], tc.Version)
			if !bytes.Equal(got[:len(prefix)], prefix) || !bytes.Equal(got[len(prefix):], tc.Raw) {
				t.Errorf("AppendTo did not append to its argument: % x", got)
			}
			if p, ok := tc.Packet.(*packet.Publish); ok {
				if p.Header() != tc.Raw[0] {
					t.Errorf("Header() = %#x, want %#x", p.Header(), tc.Raw[0])
				}
				if p.Size(tc.Version) != len(tc.Raw) {
					t.Errorf("Size() = %d, want %d", p.Size(tc.Version), len(tc.Raw))
				}
			}
		})
	}
}

// TestEncodeNilEmpty pins the convention that nil and empty payloads encode
// alike.
func TestEncodeNilEmpty(t *testing.T) {
	a := packet.Encode(&packet.Publish{Topic: "t"}, packet.V311)
	b := packet.Encode(&packet.Publish{Topic: "t", Payload: []byte{}}, packet.V311)
	if !bytes.Equal(a, b) || !bytes.Equal(a, []byte("\x30\x03\x00\x01t")) {
		t.Errorf("nil payload % x, empty payload % x", a, b)
	}
	w1 := packet.Encode(&packet.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, Will: &packet.Will{Topic: "w"}}, packet.V311)
	w2 := packet.Encode(&packet.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, Will: &packet.Will{Topic: "w", Payload: []byte{}}}, packet.V311)
	if !bytes.Equal(w1, w2) {
		t.Errorf("nil will payload % x, empty will payload % x", w1, w2)
	}
}

func TestReadInvalid(t *testing.T) {
	for _, tc := range allInvalid() {
		t.Run(tc.Name, func(t *testing.T) {
			for name, r := range readers(tc.Raw) {
				p, err := packet.Read(r, 0, tc.Version)
				var perr *packet.Error
				if !errors.As(err, &perr) {
					t.Fatalf("%s: Read = %#v, %v; want *packet.Error", name, p, err)
				}
				if perr.Reason != tc.Reason {
					t.Errorf("%s: Reason = %v (%s), want %v", name, perr.Reason, perr.Msg, tc.Reason)
				}
				if r, ok := packet.ReasonOf(fmt.Errorf("reading packet: %w", err)); !ok || r != tc.Reason {
					t.Errorf("%s: ReasonOf(wrapped) = %v, %v", name, r, ok)
				}
			}
		})
	}
}

// TestReadErrorReturnsNilPacket: on error, Read and Decode return a nil
// Packet, so a caller cannot act on a half-decoded or trailing-garbage packet
// by checking p != nil.
func TestReadErrorReturnsNilPacket(t *testing.T) {
	for _, tc := range allInvalid() {
		if p, err := packet.Read(bytes.NewReader(tc.Raw), 0, tc.Version); err != nil && p != nil {
			t.Errorf("%s: Read = %#v, %v; want a nil Packet with the error", tc.Name, p, err)
		}
	}
}

// TestInvalidTableConsistent checks that each Invalid Raw is a complete
// packet, so a case cannot pass by failing for an unintended reason such as
// a miscounted remaining length.
func TestInvalidTableConsistent(t *testing.T) {
	for _, tc := range allInvalid() {
		r := bytes.NewReader(tc.Raw)
		_, n, err := packet.ReadHeader(r)
		if err != nil {
			if tc.Reason != packet.MalformedPacket {
				t.Errorf("%s: ReadHeader: %v", tc.Name, err)
			}
			continue
		}
		if n != r.Len() {
			t.Errorf("%s: remaining length %d but %d bytes follow the header", tc.Name, n, r.Len())
		}
	}
}

func TestDecodeInvalid(t *testing.T) {
	for _, tc := range allInvalid() {
		t.Run(tc.Name, func(t *testing.T) {
			r := bytes.NewReader(tc.Raw)
			first, n, err := packet.ReadHeader(r)
			if err != nil {
				t.Skip("fixed header itself is invalid")
			}
			body := tc.Raw[len(tc.Raw)-n:]
			_, err = packet.Decode(first, body, tc.Version)
			if reason, ok := packet.ReasonOf(err); !ok || reason != tc.Reason {
				t.Errorf("Decode error = %v, want reason %v", err, tc.Reason)
			}
		})
	}
}

// TestReadStream reads every Valid packet back to back from one stream, as a
// connection's reader goroutine does, then sees a clean io.EOF.
func TestReadStream(t *testing.T) {
	var stream []byte
	for _, tc := range allValid() {
		stream = append(stream, tc.Raw...)
	}
	for name, r := range readers(stream) {
		for _, tc := range allValid() {
			got, err := packet.Read(r, 0, tc.Version)
			if err != nil {
				t.Fatalf("%s: %s: %v", name, tc.Name, err)
			}
			if !reflect.DeepEqual(got, tc.Packet) {
				t.Fatalf("%s: %s: got %#v", name, tc.Name, got)
			}
		}
		if _, err := packet.Read(r, 0, packet.V311); err != io.EOF {
			t.Errorf("%s: Read at end of stream = %v, want io.EOF", name, err)
		}
	}
}

func TestReadEmpty(t *testing.T) {
	for name, r := range readers(nil) {
		if p, err := packet.Read(r, 0, packet.V311); err != io.EOF || p != nil {
			t.Errorf("%s: Read(empty) = %v, %v; want nil, io.EOF", name, p, err)
		}
	}
}

// TestReadTruncated cuts every Valid packet short: any non-empty prefix ends
// with io.ErrUnexpectedEOF, never a codec error.
func TestReadTruncated(t *testing.T) {
	for _, tc := range allValid() {
		t.Run(tc.Name, func(t *testing.T) {
			cuts := make([]int, 0, len(tc.Raw))
			if len(tc.Raw) <= 300 {
				for i := 1; i < len(tc.Raw); i++ {
					cuts = append(cuts, i)
				}
			} else {
				cuts = append(cuts, 1, 2, 3, 4, 5, len(tc.Raw)/2, len(tc.Raw)-1)
			}
			for _, cut := range cuts {
				for name, r := range readers(tc.Raw[:cut]) {
					p, err := packet.Read(r, 0, tc.Version)
					if err != io.ErrUnexpectedEOF || p != nil {
						t.Fatalf("%s: Read(first %d of %d bytes) = %v, %v; want io.ErrUnexpectedEOF",
							name, cut, len(tc.Raw), p, err)
					}
				}
			}
		})
	}
}

func TestReadPacketTooLarge(t *testing.T) {
	for _, tc := range allValid() {
		_, n, err := packet.ReadHeader(bytes.NewReader(tc.Raw))
		if err != nil {
			t.Fatal(err)
		}
		if n < 2 {
			continue // maxSize 0 means the protocol maximum
		}
		t.Run(tc.Name, func(t *testing.T) {
			header := len(tc.Raw) - n
			for _, max := range []int{1, n / 2, n - 1} {
				cr := &countingReader{r: bytes.NewReader(tc.Raw)}
				p, err := packet.Read(cr, max, tc.Version)
				if r, ok := packet.ReasonOf(err); !ok || r != packet.PacketTooLarge || p != nil {
					t.Fatalf("Read(max %d) of remaining length %d = %v, %v; want PacketTooLarge", max, n, p, err)
				}
				if cr.n != header {
					t.Errorf("Read(max %d) consumed %d bytes, want only the %d-byte fixed header", max, cr.n, header)
				}
			}
			// A packet exactly at the maximum is accepted.
			if p, err := packet.Read(bytes.NewReader(tc.Raw), n, tc.Version); err != nil || !reflect.DeepEqual(p, tc.Packet) {
				t.Errorf("Read(max %d) = %v, %v", n, p, err)
			}
		})
	}
}

// TestReadPacketTooLargeNoAllocation announces the largest remaining length
// and checks that Read refuses it without allocating the body.
func TestReadPacketTooLargeNoAllocation(t *testing.T) {
	raw := []byte("\x30\xff\xff\xff\x7f")
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	cr := &countingReader{r: bytes.NewReader(raw)}
	_, err := packet.Read(cr, 1024, packet.V311)
	runtime.ReadMemStats(&after)
	if r, ok := packet.ReasonOf(err); !ok || r != packet.PacketTooLarge {
		t.Fatalf("Read = %v, want PacketTooLarge", err)
	}
	if cr.n != len(raw) {
		t.Errorf("consumed %d bytes, want %d", cr.n, len(raw))
	}
	if d := after.TotalAlloc - before.TotalAlloc; d > 1<<20 {
		t.Errorf("Read allocated %d bytes refusing a too-large packet", d)
	}
}

// TestReadReservedTypeSkipsBody checks that a reserved type is refused from
// its fixed header, before its body is read.
func TestReadReservedTypeSkipsBody(t *testing.T) {
	for _, raw := range [][]byte{[]byte("\x00\x02\x00\x01"), []byte("\xf0\x03abc")} {
		cr := &countingReader{r: bytes.NewReader(raw)}
		_, err := packet.Read(cr, 0, packet.V311)
		if r, ok := packet.ReasonOf(err); !ok || r != packet.MalformedPacket {
			t.Errorf("Read(% x) = %v, want MalformedPacket", raw, err)
		}
		if cr.n != 2 {
			t.Errorf("Read(% x) consumed %d bytes, want 2", raw, cr.n)
		}
	}
}

func TestReadMaxSizeDefault(t *testing.T) {
	raw := packettest.Valid[0].Raw
	for _, max := range []int{0, -1} {
		if _, err := packet.Read(bytes.NewReader(raw), max, packet.V311); err != nil {
			t.Errorf("Read(max %d): %v", max, err)
		}
	}
}

// TestReadHeaderRemainingLength covers the boundaries of the variable length
// encoding [MQTT-2.2.3], table 2.4.
func TestReadHeaderRemainingLength(t *testing.T) {
	tests := []struct {
		enc  string
		want int
	}{
		{"\x00", 0},
		{"\x01", 1},
		{"\x7f", 127},
		{"\x80\x01", 128},
		{"\xff\x7f", 16383},
		{"\x80\x80\x01", 16384},
		{"\xff\xff\x7f", 2097151},
		{"\x80\x80\x80\x01", 2097152},
		{"\xff\xff\xff\x7f", 268435455},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.want), func(t *testing.T) {
			raw := append([]byte{0x30}, tt.enc...)
			raw = append(raw, "rest"...)
			for name, r := range readers(raw) {
				cr := &countingReader{r: r}
				first, n, err := packet.ReadHeader(cr)
				if err != nil || first != 0x30 || n != tt.want {
					t.Errorf("%s: ReadHeader = %#x, %d, %v; want 0x30, %d", name, first, n, err, tt.want)
				}
				if cr.n != 1+len(tt.enc) {
					t.Errorf("%s: consumed %d bytes, want %d", name, cr.n, 1+len(tt.enc))
				}
			}
			if tt.want > 2097152 {
				return // encoding it would allocate 256 MiB
			}
			var p packet.Packet = &packet.Pingreq{}
			if tt.want > 2 {
				p = &packet.Suback{PacketID: 1, Reasons: make([]packet.Reason, tt.want-2)}
			} else if tt.want != 0 {
				return
			}
			enc := packet.Encode(p, packet.V311)
			if got := string(enc[1 : 1+len(tt.enc)]); got != tt.enc {
				t.Errorf("encoded remaining length % x, want % x", got, tt.enc)
			}
			if len(enc) != 1+len(tt.enc)+tt.want {
				t.Errorf("encoded %d bytes, want %d", len(enc), 1+len(tt.enc)+tt.want)
			}
		})
	}
}

func TestReadHeaderErrors(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		want error // nil means a MalformedPacket *Error
	}{
		{"empty", "", io.EOF},
		{"first byte only", "\x30", io.ErrUnexpectedEOF},
		{"continuation then end", "\x30\x80", io.ErrUnexpectedEOF},
		{"three continuations then end", "\x30\xff\xff\xff", io.ErrUnexpectedEOF},
		{"five bytes", "\x30\xff\xff\xff\xff\x01", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for name, r := range readers([]byte(tt.raw)) {
				cr := &countingReader{r: r}
				_, _, err := packet.ReadHeader(cr)
				if tt.want != nil {
					if err != tt.want {
						t.Errorf("%s: err = %v, want %v", name, err, tt.want)
					}
					continue
				}
				if r, ok := packet.ReasonOf(err); !ok || r != packet.MalformedPacket {
					t.Errorf("%s: err = %v, want MalformedPacket", name, err)
				}
				if cr.n != 5 {
					t.Errorf("%s: consumed %d bytes, want 5 (no fifth length byte)", name, cr.n)
				}
			}
		})
	}
}

// TestReadIOError passes a reader's own error through unchanged.
func TestReadIOError(t *testing.T) {
	boom := errors.New("boom")
	for _, raw := range []string{"", "\x30", "\x30\x05\x00"} {
		r := io.MultiReader(bytes.NewReader([]byte(raw)), iotest.ErrReader(boom))
		if _, err := packet.Read(r, 0, packet.V311); !errors.Is(err, boom) {
			t.Errorf("Read(% x then error) = %v, want boom", raw, err)
		}
		if _, ok := packet.ReasonOf(boom); ok {
			t.Error("ReasonOf(non-codec error) = true")
		}
	}
}

// TestDecodedSlicesCapped checks that byte slices aliasing the body have
// their capacity cut, so appending to one cannot overwrite the next field.
func TestDecodedSlicesCapped(t *testing.T) {
	raw := []byte("\x10\x24\x00\x04MQTT\x04\xee\x00\x0a\x00\x02id\x00\x04will\x00\x03bye\x00\x04user\x00\x03pwd")
	body := append([]byte(nil), raw[2:]...)
	p, err := packet.Decode(raw[0], body, packet.V311)
	if err != nil {
		t.Fatal(err)
	}
	c := p.(*packet.Connect)
	_ = append(c.Will.Payload, "XXXXXXXX"...)
	_ = append(c.Password, "XXXXXXXX"...)
	if !bytes.Equal(body, raw[2:]) {
		t.Errorf("appending to a decoded field changed the body: % x", body)
	}
	pub, err := packet.Decode(0x30, []byte("\x00\x01tab"), packet.V311)
	if err != nil {
		t.Fatal(err)
	}
	if pl := pub.(*packet.Publish).Payload; cap(pl) != len(pl) {
		t.Errorf("Publish payload cap %d, len %d", cap(pl), len(pl))
	}
}

func TestStrings(t *testing.T) {
	// Every reason code of table 2-6 has its own name; 0x00 is "success".
	codes := []byte{0x00, 0x01, 0x02, 0x04, 0x10, 0x11, 0x18, 0x19}
	for c := 0x80; c <= 0xa2; c++ {
		codes = append(codes, byte(c))
	}
	seen := map[string]bool{}
	for _, c := range codes {
		s := packet.Reason(c).String()
		if s == "" || strings.HasPrefix(s, "reason 0x") || seen[s] {
			t.Errorf("Reason(%#x).String() = %q", c, s)
		}
		seen[s] = true
		if packet.Reason(c).Error() != s {
			t.Errorf("Reason(%#x).Error() = %q, want %q", c, packet.Reason(c).Error(), s)
		}
	}
	if s := packet.Reason(0x03).String(); s != "reason 0x3" {
		t.Errorf("Reason(3).String() = %q", s)
	}
	if packet.NormalDisconnection.String() != "success" || packet.GrantedQoS0.String() != "success" {
		t.Errorf("0x00 is %q", packet.NormalDisconnection.String())
	}
	e := &packet.Error{Reason: packet.ProtocolError, Msg: "x"}
	if e.Error() != "protocol error: x" {
		t.Errorf("Error() = %q", e.Error())
	}
	for id := packet.PropertyID(0); id < 0x30; id++ {
		if s := id.String(); s == "" {
			t.Errorf("PropertyID(%#x).String() empty", byte(id))
		}
	}
	if packet.PropUserProperty.String() != "user property" {
		t.Errorf("PropUserProperty = %q", packet.PropUserProperty.String())
	}
	for ty, want := range map[packet.Type]string{0: "RESERVED", packet.CONNECT: "CONNECT",
		packet.SUBACK: "SUBACK", packet.DISCONNECT: "DISCONNECT", packet.AUTH: "AUTH", 16: "TYPE(16)"} {
		if ty.String() != want {
			t.Errorf("Type(%d).String() = %q, want %q", byte(ty), ty.String(), want)
		}
	}
}

// allValid returns the 3.1.1 and 3.1 fixtures and the 5.0 ones.
func allValid() []packettest.Case {
	return append(append([]packettest.Case(nil), packettest.Valid...), packettest.Valid5...)
}

// badCase is a packettest.BadCase with the version it is decoded at.
type badCase struct {
	packettest.BadCase
	Version packet.Version
}

// allInvalid returns the 3.1.1 and 3.1 bad fixtures (at V311) and the 5.0
// ones (at V5).
func allInvalid() []badCase {
	var cs []badCase
	for _, c := range packettest.Invalid {
		cs = append(cs, badCase{c, packet.V311})
	}
	for _, c := range packettest.Invalid5 {
		cs = append(cs, badCase{c, packet.V5})
	}
	return cs
}
