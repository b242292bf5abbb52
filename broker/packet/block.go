package packet

// A property block is the encoded properties of one packet as they appear
// on the wire: the property length (a variable byte integer) followed by
// the properties [MQTT-2.2.2]. persist stores a 5.0 message's PUBLISH
// properties in this form (persist.Message.Properties), so a message can be
// forwarded without the store knowing the codec.

// AppendPropertyBlock appends p's property block to b: the property length
// and the properties, as a packet of any type would carry them. A nil p
// appends the empty block (a single 0).
func AppendPropertyBlock(b []byte, p *Properties) []byte { return appendProps(b, p) }

// DecodePropertyBlock decodes a property block of a packet of type t (for
// example PUBLISH), checking what the decoder checks for such a packet, and
// requires it to span all of b. An empty block, or an empty b, yields nil
// properties. Binary properties alias b.
func DecodePropertyBlock(b []byte, t Type) (*Properties, error) {
	if len(b) == 0 {
		return nil, nil
	}
	d := decoder{b: b}
	p, err := d.properties(t)
	if err != nil {
		return nil, err
	}
	if d.left() != 0 {
		return nil, malformed("bytes after the property block")
	}
	return p, nil
}
