// Package packet is edged's MQTT wire codec for 3.1 ("MQIsdp"), 3.1.1 and
// 5.0: one Go type per control packet (AUTH included), encoding with
// AppendTo or Encode and decoding with Read or Decode.
//
// The codec is what a remote peer feeds directly, so it is written to be
// fuzzed and table-tested with no server around it. It imports only the
// standard library, starts no goroutines, logs nothing and does no I/O
// beyond the io.Reader it is handed.
//
// # Versions
//
// Every call names the protocol Version of the connection: a connection's
// packets after CONNECT are encoded and decoded for the version its CONNECT
// named. 3.1 and 3.1.1 share one wire format after CONNECT (V31 differs only
// in that a CONNACK carries no session present flag); anything but V5 is
// treated as 3.1.1. A CONNECT is decoded for the protocol level it carries,
// whatever the caller passes, and encoded for its own ProtocolLevel.
//
// The packet types carry the 5.0 fields; encoding at an earlier version
// leaves them out. Reason codes are typed (Reason) for every version: a
// CONNACK's Reason is written as the 3.1.1 return code of the same meaning
// (Reason.ConnackCode) and read back, a SUBACK failure is written as 0x80.
// In 5.0 an acknowledgement, DISCONNECT or AUTH whose reason is Success and
// which has no properties is written in its short form, and the short forms
// are read.
//
// Properties (5.0) are a *Properties, nil when a packet has none. A numeric
// property is a pointer, so absent and zero stay apart; an empty string or
// binary property is absent and is not written. User properties keep their
// order. Binary properties, like payloads, alias the decoded body.
//
// # Limits
//
// Read checks the remaining length against a caller-supplied maximum before
// it allocates the body, and grows the body buffer as bytes arrive, so a
// peer cannot make the broker allocate more than it sent by announcing a
// large packet. Callers pass a small maximum until CONNECT has completed.
// Nothing inside a packet (property length, string and binary lengths,
// counts) is allocated from a length the peer announced: every length is
// checked against the bytes present first.
//
// # Errors
//
// Every malformed input yields an *Error whose Reason says what kind of
// failure it is: MalformedPacket when the bytes do not parse (unknown
// property, property not allowed in the packet, bad UTF-8, truncated or
// over-long variable byte integer, lengths past the packet), ProtocolError
// when they parse but break a rule (a property given twice, a value the
// property forbids such as receive maximum 0 or topic alias 0, a reason code
// the packet may not carry), PacketTooLarge, UnsupportedProtocolVersion. The
// broker maps it to a CONNACK or DISCONNECT reason or to closing the
// connection with errors.As. Checks that need the connection's state (topic
// alias maximum, receive maximum, a subscription identifier in a PUBLISH
// from a client [MQTT-3.3.4-6]) are the broker's. Decoding never panics;
// the fuzz targets in this package hold it to that, at every version.
//
// Normative statements of the MQTT 3.1.1 specification (OASIS Standard,
// 29 October 2014) and of MQTT 5.0 (OASIS Standard, 7 March 2019) are cited
// as [MQTT-x.y.z-n] next to the code that enforces them; a 5.0 rule without
// a normative id is cited by its section, [MQTT-x.y.z.w].
package packet
