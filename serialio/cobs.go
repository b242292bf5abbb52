package serialio

// MaxEncodedLen returns the largest number of bytes COBS can encode n bytes
// into, not counting the 0x00 delimiters: n plus one byte per 254, plus one.
func MaxEncodedLen(n int) int {
	return n + n/254 + 1
}

// AppendCOBS appends the COBS encoding of src to dst and returns the extended
// slice. The encoding contains no 0x00 byte; delimiters are not added.
func AppendCOBS(dst, src []byte) []byte {
	var e cobsEncoder
	e.begin(dst)
	for _, b := range src {
		e.put(b)
	}
	return e.end()
}

// DecodeCOBS appends the decoding of the COBS block src (without delimiters)
// to dst and returns the extended slice. It returns ErrInvalidCOBS if src
// contains a 0x00 byte or a code byte points past its end.
func DecodeCOBS(dst, src []byte) ([]byte, error) {
	for i := 0; i < len(src); {
		code := int(src[i])
		if code == 0 || i+code > len(src) {
			return dst, ErrInvalidCOBS
		}
		for _, b := range src[i+1 : i+code] {
			if b == 0 {
				return dst, ErrInvalidCOBS
			}
		}
		dst = append(dst, src[i+1:i+code]...)
		i += code
		if code != 0xFF && i < len(src) {
			dst = append(dst, 0)
		}
	}
	return dst, nil
}

// cobsEncoder encodes a byte at a time, so a frame's channel, body and CRC
// are encoded without being copied together first.
type cobsEncoder struct {
	dst     []byte
	codeIdx int  // index in dst of the current block's code byte
	code    byte // 1 + data bytes in the current block
}

func (e *cobsEncoder) begin(dst []byte) {
	e.codeIdx = len(dst)
	e.dst = append(dst, 0)
	e.code = 1
}

func (e *cobsEncoder) next() {
	e.dst[e.codeIdx] = e.code
	e.codeIdx = len(e.dst)
	e.dst = append(e.dst, 0)
	e.code = 1
}

func (e *cobsEncoder) put(b byte) {
	if e.code == 0xFF {
		// A full block is closed lazily, so input that ends right after
		// 254 non-zero bytes gets no trailing empty block (canonical COBS).
		e.next()
	}
	if b == 0 {
		e.next()
		return
	}
	e.dst = append(e.dst, b)
	e.code++
}

func (e *cobsEncoder) end() []byte {
	e.dst[e.codeIdx] = e.code
	return e.dst
}
