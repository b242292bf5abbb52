package packet

// MaxRemainingLength is the largest remaining length the variable-length
// encoding can express (268,435,455 bytes) [MQTT-2.2.3].
const MaxRemainingLength = 268435455

// appendHeader appends a fixed header.
func appendHeader(b []byte, first byte, remaining int) []byte {
	b = append(b, first)
	return appendVarint(b, remaining)
}

func appendVarint(b []byte, n int) []byte {
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if n == 0 {
			return b
		}
	}
}

func appendString(b []byte, s string) []byte {
	b = append(b, byte(len(s)>>8), byte(len(s)))
	return append(b, s...)
}

func appendBytes(b []byte, p []byte) []byte {
	b = append(b, byte(len(p)>>8), byte(len(p)))
	return append(b, p...)
}

func appendUint16(b []byte, v uint16) []byte { return append(b, byte(v>>8), byte(v)) }

// AppendTo implements Packet. Strings longer than 65,535 bytes cannot be
// encoded; callers validate them first (the decoder never produces them).
func (p *Connect) AppendTo(b []byte) []byte {
	n := 2 + len(p.ProtocolName) + 1 + 1 + 2 + 2 + len(p.ClientID)
	var flags byte
	if p.CleanSession {
		flags |= 0x02
	}
	if p.Will != nil {
		flags |= 0x04 | p.Will.QoS<<3
		if p.Will.Retain {
			flags |= 0x20
		}
		n += 2 + len(p.Will.Topic) + 2 + len(p.Will.Payload)
	}
	if p.Username != nil {
		flags |= 0x80
		n += 2 + len(*p.Username)
	}
	if p.Password != nil {
		flags |= 0x40
		n += 2 + len(p.Password)
	}
	b = appendHeader(b, byte(CONNECT)<<4, n)
	b = appendString(b, p.ProtocolName)
	b = append(b, p.ProtocolLevel, flags)
	b = appendUint16(b, p.KeepAlive)
	b = appendString(b, p.ClientID)
	if p.Will != nil {
		b = appendString(b, p.Will.Topic)
		b = appendBytes(b, p.Will.Payload)
	}
	if p.Username != nil {
		b = appendString(b, *p.Username)
	}
	if p.Password != nil {
		b = appendBytes(b, p.Password)
	}
	return b
}

// AppendTo implements Packet.
func (p *Connack) AppendTo(b []byte) []byte {
	var f byte
	if p.SessionPresent {
		f = 1
	}
	return append(b, byte(CONNACK)<<4, 2, f, byte(p.Code))
}

// Header returns the first byte of the packet's fixed header.
func (p *Publish) Header() byte {
	h := byte(PUBLISH)<<4 | p.QoS<<1
	if p.Dup {
		h |= 0x08
	}
	if p.Retain {
		h |= 0x01
	}
	return h
}

// Size returns the length of the packet's wire encoding.
func (p *Publish) Size() int {
	n := p.remaining()
	return 1 + varintLen(n) + n
}

func (p *Publish) remaining() int {
	n := 2 + len(p.Topic) + len(p.Payload)
	if p.QoS > 0 {
		n += 2
	}
	return n
}

// AppendTo implements Packet.
func (p *Publish) AppendTo(b []byte) []byte {
	b = appendHeader(b, p.Header(), p.remaining())
	b = appendString(b, p.Topic)
	if p.QoS > 0 {
		b = appendUint16(b, p.PacketID)
	}
	return append(b, p.Payload...)
}

func appendAck(b []byte, first byte, id uint16) []byte {
	return append(b, first, 2, byte(id>>8), byte(id))
}

// AppendTo implements Packet.
func (p *Puback) AppendTo(b []byte) []byte { return appendAck(b, byte(PUBACK)<<4, p.PacketID) }

// AppendTo implements Packet.
func (p *Pubrec) AppendTo(b []byte) []byte { return appendAck(b, byte(PUBREC)<<4, p.PacketID) }

// AppendTo implements Packet. PUBREL's fixed header flags are 0010
// [MQTT-3.6.1-1].
func (p *Pubrel) AppendTo(b []byte) []byte { return appendAck(b, byte(PUBREL)<<4|0x02, p.PacketID) }

// AppendTo implements Packet.
func (p *Pubcomp) AppendTo(b []byte) []byte { return appendAck(b, byte(PUBCOMP)<<4, p.PacketID) }

// AppendTo implements Packet.
func (p *Unsuback) AppendTo(b []byte) []byte { return appendAck(b, byte(UNSUBACK)<<4, p.PacketID) }

// AppendTo implements Packet. SUBSCRIBE's fixed header flags are 0010
// [MQTT-3.8.1-1].
func (p *Subscribe) AppendTo(b []byte) []byte {
	n := 2
	for _, s := range p.Subscriptions {
		n += 2 + len(s.Filter) + 1
	}
	b = appendHeader(b, byte(SUBSCRIBE)<<4|0x02, n)
	b = appendUint16(b, p.PacketID)
	for _, s := range p.Subscriptions {
		b = appendString(b, s.Filter)
		b = append(b, s.QoS)
	}
	return b
}

// AppendTo implements Packet.
func (p *Suback) AppendTo(b []byte) []byte {
	b = appendHeader(b, byte(SUBACK)<<4, 2+len(p.ReturnCodes))
	b = appendUint16(b, p.PacketID)
	return append(b, p.ReturnCodes...)
}

// AppendTo implements Packet. UNSUBSCRIBE's fixed header flags are 0010
// [MQTT-3.10.1-1].
func (p *Unsubscribe) AppendTo(b []byte) []byte {
	n := 2
	for _, f := range p.Filters {
		n += 2 + len(f)
	}
	b = appendHeader(b, byte(UNSUBSCRIBE)<<4|0x02, n)
	b = appendUint16(b, p.PacketID)
	for _, f := range p.Filters {
		b = appendString(b, f)
	}
	return b
}

// AppendTo implements Packet.
func (*Pingreq) AppendTo(b []byte) []byte { return append(b, byte(PINGREQ)<<4, 0) }

// AppendTo implements Packet.
func (*Pingresp) AppendTo(b []byte) []byte { return append(b, byte(PINGRESP)<<4, 0) }

// AppendTo implements Packet.
func (*Disconnect) AppendTo(b []byte) []byte { return append(b, byte(DISCONNECT)<<4, 0) }

// Encode returns the wire encoding of p.
func Encode(p Packet) []byte { return p.AppendTo(nil) }

func varintLen(n int) int {
	switch {
	case n < 128:
		return 1
	case n < 16384:
		return 2
	case n < 2097152:
		return 3
	}
	return 4
}
