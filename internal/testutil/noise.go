package testutil

import (
	"bytes"
	"math/rand/v2"
)

// Spoil is what SpoilFrame did to a frame.
type Spoil int

const (
	FlippedBit   Spoil = iota // one bit flipped, never into 0x00
	DroppedByte               // one byte dropped
	GarbageBurst              // a burst of non-zero bytes inserted
)

// SpoilFrame returns a spoilt copy of enc, one COBS-encoded frame without
// its 0x00 delimiters, the way a bad line spoils it: a flipped bit, a
// dropped byte or a burst of 1 to maxBurst non-zero bytes inside the frame.
// It never makes a 0x00, so the delimiters stay where they were, and it
// tries again until valid (the receiver's check of a frame) reports the
// result invalid, so that every spoilt frame is exactly one frame the
// receiver drops.
func SpoilFrame(rng *rand.Rand, enc []byte, maxBurst int, valid func(enc []byte) bool) ([]byte, Spoil) {
	for {
		out := bytes.Clone(enc)
		kind := Spoil(rng.IntN(3))
		switch kind {
		case FlippedBit:
			i := rng.IntN(len(out))
			for {
				if b := out[i] ^ 1<<rng.IntN(8); b != 0 {
					out[i] = b
					break
				}
			}
		case DroppedByte:
			if len(out) < 2 {
				continue
			}
			i := rng.IntN(len(out))
			out = append(out[:i], out[i+1:]...)
		case GarbageBurst:
			i := rng.IntN(len(out) + 1)
			burst := make([]byte, 1+rng.IntN(maxBurst))
			for j := range burst {
				burst[j] = byte(1 + rng.IntN(255))
			}
			out = append(out[:i], append(burst, out[i:]...)...)
		}
		if !valid(out) {
			return out, kind
		}
	}
}
