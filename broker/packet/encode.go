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
// A CONNECT is encoded for its own ProtocolLevel, whatever v is: 5 with
// properties and will properties, 3 and 4 without.
func (p *Connect) AppendTo(b []byte, _ Version) []byte {
	v5 := p.ProtocolLevel == byte(V5)
	n := 2 + len(p.ProtocolName) + 1 + 1 + 2 + 2 + len(p.ClientID)
	if v5 {
		n += p.Properties.propsLen()
	}
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
		if v5 {
			n += p.Will.Properties.propsLen()
		}
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
	if v5 {
		b = appendProps(b, p.Properties)
	}
	b = appendString(b, p.ClientID)
	if p.Will != nil {
		if v5 {
			b = appendProps(b, p.Will.Properties)
		}
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

// AppendTo implements Packet. Before 5.0 the reason is sent as the 3.1.1
// return code of the same meaning (Reason.ConnackCode). MQTT 3.1 has no
// session present flag: at V31 the flags byte is always 0.
func (p *Connack) AppendTo(b []byte, v Version) []byte {
	var f byte
	if p.SessionPresent && v != V31 {
		f = 1
	}
	if v != V5 {
		return append(b, byte(CONNACK)<<4, 2, f, p.Reason.ConnackCode())
	}
	b = appendHeader(b, byte(CONNACK)<<4, 2+p.Properties.propsLen())
	b = append(b, f, byte(p.Reason))
	return appendProps(b, p.Properties)
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

// Size returns the length of the packet's wire encoding at version v.
func (p *Publish) Size(v Version) int {
	n := p.remaining311()
	if v == V5 {
		n += p.Properties.propsLen()
	}
	return 1 + varintLen(n) + n
}

// remaining311 is the remaining length before 5.0. The 3.1.1 paths stay
// apart from the 5.0 ones so they inline as they did before 5.0.
func (p *Publish) remaining311() int {
	n := 2 + len(p.Topic) + len(p.Payload)
	if p.QoS > 0 {
		n += 2
	}
	return n
}

// AppendTo implements Packet.
func (p *Publish) AppendTo(b []byte, v Version) []byte {
	if v == V5 {
		return p.appendTo5(b)
	}
	b = appendHeader(b, p.Header(), p.remaining311())
	b = appendString(b, p.Topic)
	if p.QoS > 0 {
		b = appendUint16(b, p.PacketID)
	}
	return append(b, p.Payload...)
}

func (p *Publish) appendTo5(b []byte) []byte {
	b = appendHeader(b, p.Header(), p.remaining311()+p.Properties.propsLen())
	b = appendString(b, p.Topic)
	if p.QoS > 0 {
		b = appendUint16(b, p.PacketID)
	}
	b = appendProps(b, p.Properties)
	return append(b, p.Payload...)
}

// appendAck appends PUBACK, PUBREC, PUBREL or PUBCOMP. In 5.0 the reason
// code is left out when it is Success and there are no properties, and the
// property length when there are none [MQTT-3.4.2.1] [MQTT-3.4.2.2.1].
func appendAck(b []byte, first byte, id uint16, v Version, r Reason, pr *Properties) []byte {
	if v != V5 {
		return append(b, first, 2, byte(id>>8), byte(id))
	}
	if pr != nil && pr.isEmpty() {
		pr = nil
	}
	if r == Success && pr == nil {
		return append(b, first, 2, byte(id>>8), byte(id))
	}
	if pr == nil {
		return append(b, first, 3, byte(id>>8), byte(id), byte(r))
	}
	b = appendHeader(b, first, 3+pr.propsLen())
	b = append(b, byte(id>>8), byte(id), byte(r))
	return appendProps(b, pr)
}

// AppendTo implements Packet.
func (p *Puback) AppendTo(b []byte, v Version) []byte {
	return appendAck(b, byte(PUBACK)<<4, p.PacketID, v, p.Reason, p.Properties)
}

// AppendTo implements Packet.
func (p *Pubrec) AppendTo(b []byte, v Version) []byte {
	return appendAck(b, byte(PUBREC)<<4, p.PacketID, v, p.Reason, p.Properties)
}

// AppendTo implements Packet. PUBREL's fixed header flags are 0010
// [MQTT-3.6.1-1].
func (p *Pubrel) AppendTo(b []byte, v Version) []byte {
	return appendAck(b, byte(PUBREL)<<4|0x02, p.PacketID, v, p.Reason, p.Properties)
}

// AppendTo implements Packet.
func (p *Pubcomp) AppendTo(b []byte, v Version) []byte {
	return appendAck(b, byte(PUBCOMP)<<4, p.PacketID, v, p.Reason, p.Properties)
}

// AppendTo implements Packet. SUBSCRIBE's fixed header flags are 0010
// [MQTT-3.8.1-1]. Before 5.0 only the QoS of each subscription's options
// is sent.
func (p *Subscribe) AppendTo(b []byte, v Version) []byte {
	n := 2
	for _, s := range p.Subscriptions {
		n += 2 + len(s.Filter) + 1
	}
	if v == V5 {
		n += p.Properties.propsLen()
	}
	b = appendHeader(b, byte(SUBSCRIBE)<<4|0x02, n)
	b = appendUint16(b, p.PacketID)
	if v == V5 {
		b = appendProps(b, p.Properties)
	}
	for _, s := range p.Subscriptions {
		b = appendString(b, s.Filter)
		o := s.QoS
		if v == V5 {
			if s.NoLocal {
				o |= 0x04
			}
			if s.RetainAsPublished {
				o |= 0x08
			}
			o |= s.RetainHandling << 4
		}
		b = append(b, o)
	}
	return b
}

// AppendTo implements Packet. Before 5.0 every failure is sent as 0x80, the
// only failure return code of 3.1.1 [MQTT-3.9.3].
func (p *Suback) AppendTo(b []byte, v Version) []byte {
	if v != V5 {
		b = appendHeader(b, byte(SUBACK)<<4, 2+len(p.Reasons))
		b = appendUint16(b, p.PacketID)
		for _, r := range p.Reasons {
			if r.IsFailure() {
				r = UnspecifiedError
			}
			b = append(b, byte(r))
		}
		return b
	}
	b = appendHeader(b, byte(SUBACK)<<4, 2+p.Properties.propsLen()+len(p.Reasons))
	b = appendUint16(b, p.PacketID)
	b = appendProps(b, p.Properties)
	for _, r := range p.Reasons {
		b = append(b, byte(r))
	}
	return b
}

// AppendTo implements Packet. UNSUBSCRIBE's fixed header flags are 0010
// [MQTT-3.10.1-1].
func (p *Unsubscribe) AppendTo(b []byte, v Version) []byte {
	n := 2
	for _, f := range p.Filters {
		n += 2 + len(f)
	}
	if v == V5 {
		n += p.Properties.propsLen()
	}
	b = appendHeader(b, byte(UNSUBSCRIBE)<<4|0x02, n)
	b = appendUint16(b, p.PacketID)
	if v == V5 {
		b = appendProps(b, p.Properties)
	}
	for _, f := range p.Filters {
		b = appendString(b, f)
	}
	return b
}

// AppendTo implements Packet. Reasons and properties exist in 5.0 only.
func (p *Unsuback) AppendTo(b []byte, v Version) []byte {
	if v != V5 {
		return append(b, byte(UNSUBACK)<<4, 2, byte(p.PacketID>>8), byte(p.PacketID))
	}
	b = appendHeader(b, byte(UNSUBACK)<<4, 2+p.Properties.propsLen()+len(p.Reasons))
	b = appendUint16(b, p.PacketID)
	b = appendProps(b, p.Properties)
	for _, r := range p.Reasons {
		b = append(b, byte(r))
	}
	return b
}

// AppendTo implements Packet.
func (*Pingreq) AppendTo(b []byte, _ Version) []byte { return append(b, byte(PINGREQ)<<4, 0) }

// AppendTo implements Packet.
func (*Pingresp) AppendTo(b []byte, _ Version) []byte { return append(b, byte(PINGRESP)<<4, 0) }

// appendReasonProps appends a DISCONNECT or AUTH: empty when the reason is
// Success and there are no properties, the reason alone when there are no
// properties [MQTT-3.14.2.1] [MQTT-3.15.2.1].
func appendReasonProps(b []byte, first byte, r Reason, pr *Properties) []byte {
	if pr != nil && pr.isEmpty() {
		pr = nil
	}
	switch {
	case r == Success && pr == nil:
		return append(b, first, 0)
	case pr == nil:
		return append(b, first, 1, byte(r))
	}
	b = appendHeader(b, first, 1+pr.propsLen())
	b = append(b, byte(r))
	return appendProps(b, pr)
}

// AppendTo implements Packet. Before 5.0 a DISCONNECT has no body.
func (p *Disconnect) AppendTo(b []byte, v Version) []byte {
	if v != V5 {
		return append(b, byte(DISCONNECT)<<4, 0)
	}
	return appendReasonProps(b, byte(DISCONNECT)<<4, p.Reason, p.Properties)
}

// AppendTo implements Packet. AUTH exists in 5.0 only; it is encoded the
// 5.0 way whatever v is.
func (p *Auth) AppendTo(b []byte, _ Version) []byte {
	return appendReasonProps(b, byte(AUTH)<<4, p.Reason, p.Properties)
}

// Encode returns the wire encoding of p at version v.
func Encode(p Packet, v Version) []byte { return p.AppendTo(nil, v) }

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
