package serialio_test

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/edged/edged/serialio"
)

func seq(from, to int) []byte {
	var b []byte
	for i := from; i <= to; i++ {
		b = append(b, byte(i))
	}
	return b
}

func cat(bs ...[]byte) []byte { return bytes.Join(bs, nil) }

// cobsVectors are the examples of the COBS article on Wikipedia.
var cobsVectors = []struct {
	name     string
	dec, enc []byte
}{
	{"empty", nil, []byte{0x01}},
	{"zero", []byte{0x00}, []byte{0x01, 0x01}},
	{"two zeros", []byte{0x00, 0x00}, []byte{0x01, 0x01, 0x01}},
	{"zero data zero", []byte{0x00, 0x11, 0x00}, []byte{0x01, 0x02, 0x11, 0x01}},
	{"mixed", []byte{0x11, 0x22, 0x00, 0x33}, []byte{0x03, 0x11, 0x22, 0x02, 0x33}},
	{"no zero", []byte{0x11, 0x22, 0x33, 0x44}, []byte{0x05, 0x11, 0x22, 0x33, 0x44}},
	{"trailing zeros", []byte{0x11, 0x00, 0x00, 0x00}, []byte{0x02, 0x11, 0x01, 0x01, 0x01}},
	{"254 non-zero", seq(1, 254), cat([]byte{0xFF}, seq(1, 254))},
	{"zero then 254", cat([]byte{0}, seq(1, 254)), cat([]byte{0x01, 0xFF}, seq(1, 254))},
	{"255 non-zero", seq(1, 255), cat([]byte{0xFF}, seq(1, 254), []byte{0x02, 0xFF})},
	{"254 then zero", cat(seq(2, 255), []byte{0}), cat([]byte{0xFF}, seq(2, 255), []byte{0x01, 0x01})},
	{"253 zero one", cat(seq(3, 255), []byte{0, 1}), cat([]byte{0xFE}, seq(3, 255), []byte{0x02, 0x01})},
}

func TestCOBS(t *testing.T) {
	for _, tc := range cobsVectors {
		t.Run(tc.name, func(t *testing.T) {
			enc := serialio.AppendCOBS(nil, tc.dec)
			if !bytes.Equal(enc, tc.enc) {
				t.Fatalf("encode = % x, want % x", enc, tc.enc)
			}
			if len(enc) > serialio.MaxEncodedLen(len(tc.dec)) {
				t.Fatalf("encoded %d bytes, over MaxEncodedLen %d", len(enc), serialio.MaxEncodedLen(len(tc.dec)))
			}
			dec, err := serialio.DecodeCOBS(nil, tc.enc)
			if err != nil || !bytes.Equal(dec, tc.dec) {
				t.Fatalf("decode = % x, %v; want % x", dec, err, tc.dec)
			}
		})
	}
}

func TestDecodeCOBSInvalid(t *testing.T) {
	for _, in := range [][]byte{{0x00}, {0x03, 0x11}, {0x02, 0x00}, {0x05, 0x11, 0x22, 0x00, 0x33}} {
		if _, err := serialio.DecodeCOBS(nil, in); !errors.Is(err, serialio.ErrInvalidCOBS) {
			t.Errorf("DecodeCOBS(% x) err = %v, want ErrInvalidCOBS", in, err)
		}
	}
}

// crcBitwise is the textbook bit-at-a-time CRC-16/CCITT-FALSE.
func crcBitwise(p []byte) uint16 {
	crc := uint16(0xFFFF)
	for _, b := range p {
		crc ^= uint16(b) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

func TestCRC16(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint16
	}{
		{"123456789", 0x29B1},
		{"", 0xFFFF},
		{"A", 0xB915},
		{"\x00", 0xE1F0},
	} {
		if got := serialio.CRC16([]byte(tc.in)); got != tc.want {
			t.Errorf("CRC16(%q) = %#04x, want %#04x", tc.in, got, tc.want)
		}
	}
	for n := range 300 {
		p := seq(0, n)
		if got, want := serialio.CRC16(p), crcBitwise(p); got != want {
			t.Fatalf("CRC16(seq %d) = %#04x, bitwise %#04x", n, got, want)
		}
	}
}

// mqttPacket encodes an MQTT control packet: first byte, remaining length,
// rest.
func mqttPacket(first byte, rest []byte) []byte {
	b := []byte{first}
	n := len(rest)
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if n == 0 {
			break
		}
	}
	return append(b, rest...)
}

func publish(topic string, payload []byte) []byte {
	rest := []byte{byte(len(topic) >> 8), byte(len(topic))}
	rest = append(rest, topic...)
	return mqttPacket(0x30, append(rest, payload...))
}

var (
	pingreq    = []byte{0xC0, 0x00}
	disconnect = []byte{0xE0, 0x00}
)

func connect(clientID string) []byte {
	rest := []byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0x00, 0, 60, byte(len(clientID) >> 8), byte(len(clientID))}
	return mqttPacket(0x10, append(rest, clientID...))
}

// frameVectors are valid frames, shared by the round-trip tests, the fuzz
// seeds and the benchmarks.
var frameVectors = []struct {
	name    string
	channel byte
	body    []byte
}{
	{"pingreq ch0", 0, pingreq},
	{"connect ch7", 7, connect("sensor-7")},
	{"publish with zeros", 3, publish("a/b", make([]byte, 40))},
	{"publish 300 bytes", 254, publish("t", bytes.Repeat([]byte{0xAB}, 300))},
	{"publish 2-byte length", 1, publish("x", seq(0, 255))},
	{"reset", serialio.ControlChannel, []byte{serialio.OpReset, 4}},
}

func decodeAll(t testing.TB, d *serialio.Decoder, in []byte) (frames []serialio.Frame, errs []error) {
	t.Helper()
	d.Feed(in, func(f serialio.Frame, err error) {
		if err != nil {
			errs = append(errs, err)
			return
		}
		frames = append(frames, serialio.Frame{Channel: f.Channel, Body: bytes.Clone(f.Body)})
	})
	return frames, errs
}

func TestFrameRoundTrip(t *testing.T) {
	for _, tc := range frameVectors {
		t.Run(tc.name, func(t *testing.T) {
			wire := serialio.AppendFrame(nil, tc.channel, tc.body)
			if len(wire) > serialio.MaxWireLen(len(tc.body)) {
				t.Fatalf("wire length %d over MaxWireLen %d", len(wire), serialio.MaxWireLen(len(tc.body)))
			}
			if wire[0] != 0 || wire[len(wire)-1] != 0 || bytes.IndexByte(wire[1:len(wire)-1], 0) >= 0 {
				t.Fatalf("bad delimiting: % x", wire)
			}
			// Whole, byte by byte, and twice in one buffer.
			for _, split := range []int{0, 1} {
				d := serialio.NewDecoder(0)
				var frames []serialio.Frame
				if split == 0 {
					frames, _ = decodeAll(t, d, cat(wire, wire))
				} else {
					for _, b := range cat(wire, wire) {
						f, _ := decodeAll(t, d, []byte{b})
						frames = append(frames, f...)
					}
				}
				if len(frames) != 2 {
					t.Fatalf("split %d: got %d frames, want 2", split, len(frames))
				}
				for _, f := range frames {
					if f.Channel != tc.channel || !bytes.Equal(f.Body, tc.body) {
						t.Fatalf("got ch %d % x, want ch %d % x", f.Channel, f.Body, tc.channel, tc.body)
					}
				}
				if s := d.Stats(); s.Frames != 2 || s.Dropped() != 0 {
					t.Fatalf("stats %+v", s)
				}
			}
		})
	}
}

// rawFrame COBS-encodes decoded frame bytes given verbatim, with delimiters.
func rawFrame(dec []byte) []byte {
	return append(serialio.AppendCOBS([]byte{0}, dec), 0)
}

func withCRC(b []byte) []byte {
	c := serialio.CRC16(b)
	return append(bytes.Clone(b), byte(c>>8), byte(c))
}

func TestDecoderDrops(t *testing.T) {
	valid := serialio.AppendFrame(nil, 1, pingreq)
	badCRC := bytes.Clone(valid)
	badCRC[3] ^= 0x40 // inside the body
	for _, tc := range []struct {
		name string
		in   []byte
		want error
		stat func(serialio.DecoderStats) uint64
	}{
		{"truncated cobs", []byte{0, 0x05, 0x11, 0x22, 0}, serialio.ErrInvalidCOBS, func(s serialio.DecoderStats) uint64 { return s.InvalidCOBS }},
		{"too short", rawFrame([]byte{1, 2, 3}), serialio.ErrFrameTooShort, func(s serialio.DecoderStats) uint64 { return s.TooShort }},
		{"too large", serialio.AppendFrame(nil, 1, publish("t", make([]byte, 100))), serialio.ErrFrameTooLarge, func(s serialio.DecoderStats) uint64 { return s.TooLarge }},
		{"bad crc", badCRC, serialio.ErrCRC, func(s serialio.DecoderStats) uint64 { return s.CRCErrors }},
		{"length too long", rawFrame(withCRC([]byte{1, 0x30, 5, 0, 1, 't'})), serialio.ErrLengthMismatch, func(s serialio.DecoderStats) uint64 { return s.LengthMismatch }},
		{"length too short", rawFrame(withCRC([]byte{1, 0xC0, 0, 0})), serialio.ErrLengthMismatch, func(s serialio.DecoderStats) uint64 { return s.LengthMismatch }},
		{"length truncated varint", rawFrame(withCRC([]byte{1, 0x30, 0x80})), serialio.ErrLengthMismatch, func(s serialio.DecoderStats) uint64 { return s.LengthMismatch }},
		{"length 5-byte varint", rawFrame(withCRC([]byte{1, 0x30, 0x80, 0x80, 0x80, 0x80, 0x01})), serialio.ErrLengthMismatch, func(s serialio.DecoderStats) uint64 { return s.LengthMismatch }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := serialio.NewDecoder(64)
			// The bad frame, then a valid one: the decoder must resync.
			frames, errs := decodeAll(t, d, cat([]byte{0, 0, 0}, tc.in, valid))
			if len(errs) != 1 || !errors.Is(errs[0], tc.want) {
				t.Fatalf("errors %v, want [%v]", errs, tc.want)
			}
			if len(frames) != 1 || !bytes.Equal(frames[0].Body, pingreq) {
				t.Fatalf("frames after the bad one: %v", frames)
			}
			if s := d.Stats(); tc.stat(s) != 1 || s.Dropped() != 1 || s.Frames != 1 {
				t.Fatalf("stats %+v", s)
			}
		})
	}
}

func TestDecoderCRCChannel(t *testing.T) {
	wire := serialio.AppendFrame(nil, 9, pingreq)
	wire[len(wire)-2] ^= 1 // low CRC byte
	d := serialio.NewDecoder(0)
	var got serialio.Frame
	d.Feed(wire, func(f serialio.Frame, err error) {
		if errors.Is(err, serialio.ErrCRC) {
			got = f
		}
	})
	if got.Channel != 9 {
		t.Fatalf("claimed channel %d, want 9", got.Channel)
	}
}

func TestDecoderMaxFrameBoundary(t *testing.T) {
	for _, extra := range []int{0, 1} {
		body := publish("t", make([]byte, 64-3-5+extra)) // 5: header, topic length, topic
		d := serialio.NewDecoder(64)
		frames, errs := decodeAll(t, d, serialio.AppendFrame(nil, 0, body))
		if extra == 0 && (len(frames) != 1 || len(errs) != 0) {
			t.Fatalf("%d-byte frame at limit 64: frames %d errs %v", len(body)+3, len(frames), errs)
		}
		if extra == 1 && (len(frames) != 0 || len(errs) != 1 || !errors.Is(errs[0], serialio.ErrFrameTooLarge)) {
			t.Fatalf("%d-byte frame at limit 64: frames %d errs %v", len(body)+3, len(frames), errs)
		}
	}
}

func ExampleAppendFrame() {
	wire := serialio.AppendFrame(nil, 0, []byte{0xC0, 0x00}) // PINGREQ on channel 0
	fmt.Printf("% x\n", wire)
	d := serialio.NewDecoder(0)
	d.Feed(wire, func(f serialio.Frame, err error) {
		fmt.Println(f.Channel, f.Body, err)
	})
	// Output:
	// 00 01 02 c0 03 da c8 00
	// 0 [192 0] <nil>
}
