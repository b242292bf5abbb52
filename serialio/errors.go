package serialio

import "errors"

// Errors reported by the frame decoder. A Decoder drops the frame, counts it
// and resynchronises at the next 0x00; these values say why.
var (
	// ErrInvalidCOBS is returned when a frame is not valid COBS: a code byte
	// points past the end of the frame.
	ErrInvalidCOBS = errors.New("invalid cobs encoding")
	// ErrFrameTooShort is returned when a decoded frame has fewer than 4
	// bytes (channel, one body byte, CRC).
	ErrFrameTooShort = errors.New("frame too short")
	// ErrFrameTooLarge is returned when a frame is longer than the configured
	// maximum, or when an outgoing MQTT packet would not fit in one.
	ErrFrameTooLarge = errors.New("frame too large")
	// ErrCRC is returned when a frame's CRC-16 does not match its contents.
	ErrCRC = errors.New("frame crc mismatch")
	// ErrLengthMismatch is returned when the MQTT remaining length in a
	// frame's body disagrees with the body's length, or cannot be parsed.
	ErrLengthMismatch = errors.New("mqtt remaining length disagrees with frame length")
)

// Errors returned by a conn's Read and Write after the link ended it. The
// broker treats each as a network loss.
var (
	// ErrPortLost is returned when the serial port failed (a USB adapter was
	// unplugged, a read or write error) and its conns were closed.
	ErrPortLost = errors.New("serial port lost")
	// ErrChannelReplaced is returned when a CONNECT arrived on the conn's
	// channel, which ends the old logical connection and starts a new one.
	ErrChannelReplaced = errors.New("channel replaced by a new connect")
	// ErrChannelReset is returned when a corrupt frame claimed the conn's
	// channel, so the conn was torn down and RESET sent to the sensor.
	ErrChannelReset = errors.New("channel reset after a corrupt frame")
	// ErrInputOverflow is returned when the broker did not read a conn's
	// input fast enough and its buffer limit was reached.
	ErrInputOverflow = errors.New("conn input buffer overflow")
)

// Errors returned by Write and Validate.
var (
	// ErrMalformedPacket is returned by a conn's Write when the byte stream
	// is not a sequence of MQTT packets (a remaining length over 4 bytes).
	ErrMalformedPacket = errors.New("malformed mqtt fixed header")
	// ErrInvalidConfig is returned (wrapped, naming the key) by
	// Config.Validate and Listen when a setting is out of range.
	ErrInvalidConfig = errors.New("invalid serial config")
)
