package serialio

// Wire constants of the cobs-crc16 framing (serialio/WIRE.md).
const (
	// ControlChannel is the channel byte of link-control frames.
	ControlChannel byte = 255
	// OpReset is the link-control opcode RESET c (gateway to sensor): edged
	// has torn down logical connection c and the sensor should CONNECT again.
	OpReset byte = 0x01
	// MinFrameLen is the shortest valid decoded frame: channel, one body
	// byte and the CRC.
	MinFrameLen = 4
	// DefaultMaxFrame is the default limit on a decoded frame (channel, body
	// and CRC), in bytes.
	DefaultMaxFrame = 4096
)

// Frame is one decoded frame: the channel and the body, without the CRC.
type Frame struct {
	// Channel is 0-254 for a logical MQTT connection, 255 for link control.
	Channel byte
	// Body is one MQTT packet (channels 0-254) or an opcode and its
	// arguments (channel 255).
	Body []byte
}

// AppendFrame appends a complete wire frame to dst: 0x00, the COBS encoding
// of channel, body and the big-endian CRC-16 of both, and 0x00. It does not
// check that body is one MQTT packet.
func AppendFrame(dst []byte, channel byte, body []byte) []byte {
	dst = append(dst, 0)
	crc := crcUpdate(crcInit, []byte{channel})
	crc = crcUpdate(crc, body)
	var e cobsEncoder
	e.begin(dst)
	e.put(channel)
	for _, b := range body {
		e.put(b)
	}
	e.put(byte(crc >> 8))
	e.put(byte(crc))
	return append(e.end(), 0)
}

// MaxWireLen returns the most bytes a frame with an n-byte body occupies on
// the wire, delimiters included.
func MaxWireLen(n int) int {
	return MaxEncodedLen(n+3) + 2
}

// ParseFrame checks a COBS-decoded frame (channel, body, CRC) and returns it
// without the CRC. It returns ErrFrameTooShort, ErrCRC (with Channel set to
// the claimed channel) or ErrLengthMismatch. Body aliases raw.
func ParseFrame(raw []byte) (Frame, error) {
	if len(raw) < MinFrameLen {
		return Frame{}, ErrFrameTooShort
	}
	n := len(raw) - 2
	f := Frame{Channel: raw[0], Body: raw[1:n]}
	if CRC16(raw[:n]) != uint16(raw[n])<<8|uint16(raw[n+1]) {
		return f, ErrCRC
	}
	if f.Channel != ControlChannel {
		total, ok, err := packetLen(f.Body)
		if err != nil || !ok || total != len(f.Body) {
			return f, ErrLengthMismatch
		}
	}
	return f, nil
}

// DecoderStats counts what a Decoder saw.
type DecoderStats struct {
	Frames         uint64 // valid frames emitted
	InvalidCOBS    uint64 // dropped: not valid COBS
	TooShort       uint64 // dropped: under MinFrameLen decoded bytes
	TooLarge       uint64 // dropped: over the maximum frame size
	CRCErrors      uint64 // dropped: CRC mismatch
	LengthMismatch uint64 // dropped: MQTT remaining length disagrees
}

// Dropped returns the number of dropped frames of every kind.
func (s DecoderStats) Dropped() uint64 {
	return s.InvalidCOBS + s.TooShort + s.TooLarge + s.CRCErrors + s.LengthMismatch
}

// Decoder turns a byte stream into frames incrementally, decoding COBS as the
// bytes arrive so that its buffer never exceeds the maximum frame size. A
// Decoder is not safe for concurrent use.
type Decoder struct {
	max      int
	buf      []byte
	n        int  // data bytes left in the current COBS block
	code     byte // code byte of the current block; 0 before the first
	inFrame  bool // bytes seen since the last 0x00
	overflow bool
	stats    DecoderStats
}

// NewDecoder returns a Decoder that drops frames longer than maxFrame
// decoded bytes (channel, body and CRC); maxFrame <= 0 means DefaultMaxFrame.
func NewDecoder(maxFrame int) *Decoder {
	if maxFrame <= 0 {
		maxFrame = DefaultMaxFrame
	}
	return &Decoder{max: maxFrame, buf: make([]byte, 0, maxFrame)}
}

// Feed consumes p. For each 0x00 that ends a non-empty frame it calls emit
// once: with a valid frame and a nil error, or with the reason the frame was
// dropped (ErrInvalidCOBS, ErrFrameTooShort, ErrFrameTooLarge, ErrCRC,
// ErrLengthMismatch). For ErrCRC and ErrLengthMismatch the Frame holds the
// claimed channel and body. Frame.Body is valid only during the call. Empty
// frames (0x00 0x00) are ignored.
func (d *Decoder) Feed(p []byte, emit func(Frame, error)) {
	for _, b := range p {
		if b == 0 {
			d.end(emit)
			continue
		}
		d.inFrame = true
		if d.overflow {
			continue
		}
		if d.n == 0 {
			// b is a code byte; the previous block, unless full, ended
			// with an implied zero.
			if d.code != 0 && d.code != 0xFF {
				d.add(0)
			}
			d.code = b
			d.n = int(b) - 1
			continue
		}
		d.add(b)
		d.n--
	}
}

func (d *Decoder) add(b byte) {
	if len(d.buf) == d.max {
		d.overflow = true
		return
	}
	d.buf = append(d.buf, b)
}

func (d *Decoder) end(emit func(Frame, error)) {
	if !d.inFrame {
		return
	}
	var (
		f   Frame
		err error
	)
	switch {
	case d.overflow:
		err = ErrFrameTooLarge
		d.stats.TooLarge++
	case d.n != 0:
		err = ErrInvalidCOBS
		d.stats.InvalidCOBS++
	default:
		f, err = ParseFrame(d.buf)
		switch err {
		case nil:
			d.stats.Frames++
		case ErrFrameTooShort:
			d.stats.TooShort++
		case ErrCRC:
			d.stats.CRCErrors++
		case ErrLengthMismatch:
			d.stats.LengthMismatch++
		}
	}
	emit(f, err)
	d.Reset()
}

// Reset discards a partly received frame.
func (d *Decoder) Reset() {
	d.buf = d.buf[:0]
	d.n, d.code = 0, 0
	d.inFrame, d.overflow = false, false
}

// Stats returns the counts so far.
func (d *Decoder) Stats() DecoderStats {
	return d.stats
}
