package serialio_test

import (
	"bytes"
	"testing"

	"github.com/edged/edged/serialio"
)

// FuzzDecoder checks that the decoder never panics, that every emitted
// frame is accounted for in its stats, and the resync property: garbage
// followed by 0x00 and a valid frame always yields that frame.
func FuzzDecoder(f *testing.F) {
	for i, tc := range frameVectors {
		f.Add(serialio.AppendFrame(nil, tc.channel, tc.body), uint8(i), uint8(0))
	}
	f.Add([]byte{0x05, 0x11, 0x22}, uint8(1), uint8(1))
	f.Add(bytes.Repeat([]byte{0xFF}, 300), uint8(2), uint8(3))
	f.Add([]byte{}, uint8(0), uint8(7))
	f.Fuzz(func(t *testing.T, garbage []byte, pick, chunk uint8) {
		tc := frameVectors[int(pick)%len(frameVectors)]
		valid := serialio.AppendFrame(nil, tc.channel, tc.body)
		in := append(append(bytes.Clone(garbage), 0), valid...)
		d := serialio.NewDecoder(128 + len(tc.body))
		var last *serialio.Frame
		var emitted uint64
		emit := func(fr serialio.Frame, err error) {
			emitted++
			if err == nil {
				last = &serialio.Frame{Channel: fr.Channel, Body: bytes.Clone(fr.Body)}
			} else {
				last = nil
			}
		}
		step := int(chunk)%17 + 1
		for len(in) > 0 {
			n := min(step, len(in))
			d.Feed(in[:n], emit)
			in = in[n:]
		}
		if last == nil || last.Channel != tc.channel || !bytes.Equal(last.Body, tc.body) {
			t.Fatalf("valid frame after garbage % x not decoded: %+v", garbage, last)
		}
		if s := d.Stats(); s.Frames+s.Dropped() != emitted {
			t.Fatalf("stats %+v do not account for %d emitted", s, emitted)
		}
	})
}

// FuzzCOBS checks the COBS round trip and that DecodeCOBS never panics.
func FuzzCOBS(f *testing.F) {
	for _, tc := range cobsVectors {
		f.Add(tc.dec)
		f.Add(tc.enc)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		enc := serialio.AppendCOBS(nil, in)
		if bytes.IndexByte(enc, 0) >= 0 {
			t.Fatalf("encoding of % x contains 0x00: % x", in, enc)
		}
		if len(enc) > serialio.MaxEncodedLen(len(in)) {
			t.Fatalf("encoded %d bytes to %d, over MaxEncodedLen", len(in), len(enc))
		}
		dec, err := serialio.DecodeCOBS(nil, enc)
		if err != nil || !bytes.Equal(dec, in) {
			t.Fatalf("round trip of % x: % x, %v", in, dec, err)
		}
		_, _ = serialio.DecodeCOBS(nil, in) // must not panic
	})
}
