// Package packet is edged's MQTT 3.1.1 wire codec: one Go type per control
// packet, encoding with AppendTo and decoding with Read or Decode.
//
// The codec is what a remote peer feeds directly, so it is written to be
// fuzzed and table-tested with no server around it. It imports only the
// standard library, starts no goroutines, logs nothing and does no I/O
// beyond the io.Reader it is handed.
//
// # Limits
//
// Read checks the remaining length against a caller-supplied maximum before
// it allocates the body, so a peer cannot make the broker allocate more than
// the maximum by announcing a large packet. Callers pass a small maximum until
// CONNECT has completed.
//
// # Errors
//
// Every malformed input yields an *Error whose Reason says what kind of
// failure it is (malformed packet, protocol error, packet too large,
// unsupported protocol version). The broker maps it to a CONNACK return code
// or to closing the connection with errors.As. Decoding never panics; the
// fuzz targets in this package hold it to that.
//
// Normative statements of the MQTT 3.1.1 specification (OASIS Standard,
// 29 October 2014) are cited as [MQTT-x.y.z-n] next to the code that
// enforces them.
package packet
