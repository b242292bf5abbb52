package packet

import "errors"

// Reason classifies a decoding failure. The values are the MQTT 5.0 reason
// codes of the same meaning, so the broker can reuse them when it speaks 5.0.
type Reason byte

// Reasons a packet is refused.
const (
	// MalformedPacket: the bytes do not form a valid packet.
	MalformedPacket Reason = 0x81
	// ProtocolError: a valid packet that breaks a rule of the protocol.
	ProtocolError Reason = 0x82
	// UnsupportedProtocolVersion: a CONNECT with a protocol level the
	// broker does not speak; answered with CONNACK 0x01 [MQTT-3.1.2-2].
	UnsupportedProtocolVersion Reason = 0x84
	// ClientIdentifierNotValid: a CONNECT whose client id is refused;
	// answered with CONNACK 0x02.
	ClientIdentifierNotValid Reason = 0x85
	// PacketTooLarge: the remaining length exceeds the caller's maximum.
	PacketTooLarge Reason = 0x95
)

// String returns the reason's name.
func (r Reason) String() string {
	switch r {
	case MalformedPacket:
		return "malformed packet"
	case ProtocolError:
		return "protocol error"
	case UnsupportedProtocolVersion:
		return "unsupported protocol version"
	case ClientIdentifierNotValid:
		return "client identifier not valid"
	case PacketTooLarge:
		return "packet too large"
	}
	return "unknown reason"
}

// Error is returned for every packet the codec refuses.
type Error struct {
	Reason Reason
	Msg    string
}

// Error implements error.
func (e *Error) Error() string { return e.Reason.String() + ": " + e.Msg }

func malformed(msg string) error { return &Error{Reason: MalformedPacket, Msg: msg} }
func violation(msg string) error { return &Error{Reason: ProtocolError, Msg: msg} }

// ReasonOf returns the Reason of an *Error in err's chain, and false if err
// is not a codec error (an I/O error, for instance).
func ReasonOf(err error) (Reason, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason, true
	}
	return 0, false
}

// ConnackCode is the return code of a CONNACK [MQTT-3.2.2.3].
type ConnackCode byte

// CONNACK return codes of MQTT 3.1.1, table 3.1.
const (
	Accepted                   ConnackCode = 0x00
	RefusedProtocolVersion     ConnackCode = 0x01
	RefusedIdentifierRejected  ConnackCode = 0x02
	RefusedServerUnavailable   ConnackCode = 0x03
	RefusedBadUsernamePassword ConnackCode = 0x04
	RefusedNotAuthorized       ConnackCode = 0x05
)

// Error implements error, so a refusal can travel as an error value.
func (c ConnackCode) Error() string {
	switch c {
	case Accepted:
		return "connection accepted"
	case RefusedProtocolVersion:
		return "connection refused: unacceptable protocol version"
	case RefusedIdentifierRejected:
		return "connection refused: identifier rejected"
	case RefusedServerUnavailable:
		return "connection refused: server unavailable"
	case RefusedBadUsernamePassword:
		return "connection refused: bad user name or password"
	case RefusedNotAuthorized:
		return "connection refused: not authorized"
	}
	return "connection refused: unknown code"
}

// SubackFailure is the SUBACK return code for a refused filter [MQTT-3.9.3].
const SubackFailure byte = 0x80
