package serialio

// MQTT control packet types (first byte, upper nibble) that the link layer
// looks at. The link does not otherwise interpret packets.
const (
	mqttConnect    byte = 0x10
	mqttDisconnect byte = 0xE0
)

// packetLen parses the MQTT fixed header at the start of b and returns the
// total packet length (header plus remaining length). ok is false if b does
// not yet hold the whole fixed header. err is ErrMalformedPacket if the
// remaining length uses more than 4 bytes [MQTT-2.2.3].
func packetLen(b []byte) (total int, ok bool, err error) {
	rem, mul := 0, 1
	for i := 1; i < len(b); i++ {
		if i > 4 {
			return 0, false, ErrMalformedPacket
		}
		rem += int(b[i]&0x7F) * mul
		if b[i]&0x80 == 0 {
			return 1 + i + rem, true, nil
		}
		mul <<= 7
	}
	if len(b) > 4 {
		return 0, false, ErrMalformedPacket
	}
	return 0, false, nil
}
