package packet

import (
	"io"
	"strconv"
	"unicode/utf8"
)

// ReadHeader reads a fixed header: the first byte and the remaining length.
// It returns io.EOF only when r ends before the first byte.
func ReadHeader(r io.Reader) (first byte, remaining int, err error) {
	readByte := func() (byte, error) {
		if br, ok := r.(io.ByteReader); ok {
			return br.ReadByte()
		}
		var buf [1]byte
		_, err := io.ReadFull(r, buf[:])
		return buf[0], err
	}
	first, err = readByte()
	if err != nil {
		return 0, 0, err
	}
	mult := 1
	for i := 0; ; i++ {
		if i == 4 {
			// At most four bytes [MQTT-2.2.3].
			return 0, 0, malformed("remaining length longer than four bytes")
		}
		d, err := readByte()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, 0, err
		}
		remaining += int(d&0x7f) * mult
		if d&0x80 == 0 {
			break
		}
		mult *= 128
	}
	return first, remaining, nil
}

// Read reads one packet from r. The remaining length is checked against
// maxSize before the body is allocated; a larger packet yields an *Error with
// Reason PacketTooLarge and nothing of its body is read. maxSize <= 0 means
// MaxRemainingLength.
//
// The packet is decoded for protocol version v (see Decode).
func Read(r io.Reader, maxSize int, v Version) (Packet, error) {
	first, n, err := ReadHeader(r)
	if err != nil {
		return nil, err
	}
	if maxSize <= 0 {
		maxSize = MaxRemainingLength
	}
	if n > maxSize {
		return nil, &Error{Reason: PacketTooLarge, Msg: "remaining length " + strconv.Itoa(n) +
			" exceeds the maximum of " + strconv.Itoa(maxSize)}
	}
	// Refuse an invalid type before reading its body.
	if t := Type(first >> 4); t < CONNECT || t > DISCONNECT && (t != AUTH || v != V5) {
		return nil, malformed("reserved packet type " + strconv.Itoa(int(t)))
	}
	body, err := readBody(r, n)
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return Decode(first, body, v)
}

// bodyChunk is what Read allocates for a body before its bytes arrive.
const bodyChunk = 4 << 10

// readBody reads an n-byte body. The buffer grows (doubling, up to n) as
// bytes arrive instead of being allocated at n from the header alone: a
// peer announcing a large packet and sending nothing more makes the reader
// hold 4 KiB, not the announced size.
func readBody(r io.Reader, n int) ([]byte, error) {
	body := make([]byte, min(n, bodyChunk))
	got := 0
	for {
		k, err := io.ReadFull(r, body[got:])
		got += k
		if err != nil {
			return nil, err
		}
		if got == n {
			return body, nil
		}
		grown := make([]byte, min(2*len(body), n))
		copy(grown, body)
		body = grown
	}
}

// Decode decodes the packet whose fixed header's first byte is first and
// whose variable header and payload are body. The returned packet may alias
// body: a Publish's payload, a Will's payload and a Connect's password do.
// On error the packet is nil.
//
// Every packet but CONNECT is decoded for protocol version v: V5 for MQTT
// 5.0, anything else for 3.1.1 and 3.1 (which share their wire format after
// CONNECT). A CONNECT is decoded for the version its protocol level names,
// whatever v is.
func Decode(first byte, body []byte, v Version) (Packet, error) {
	p, err := decode(first, body, v)
	if err != nil {
		return nil, err
	}
	return p, nil
}

func decode(first byte, body []byte, v Version) (Packet, error) {
	t := Type(first >> 4)
	flags := first & 0x0f
	// Fixed header flags are reserved except for PUBLISH [MQTT-2.2.2-1]
	// [MQTT-2.2.2-2].
	switch t {
	case PUBLISH:
	case PUBREL, SUBSCRIBE, UNSUBSCRIBE:
		if flags != 0x02 {
			return nil, malformed(t.String() + " with fixed header flags other than 0010")
		}
	default:
		if flags != 0 {
			return nil, malformed(t.String() + " with non-zero fixed header flags")
		}
	}
	d := decoder{b: body}
	if v == V5 {
		return d.decode5(t, flags)
	}
	switch t {
	case CONNECT:
		return d.connect()
	case CONNACK:
		return d.connack()
	case PUBLISH:
		return d.publish(flags)
	case PUBACK:
		id, err := d.ack(t)
		return &Puback{PacketID: id}, err
	case PUBREC:
		id, err := d.ack(t)
		return &Pubrec{PacketID: id}, err
	case PUBREL:
		id, err := d.ack(t)
		return &Pubrel{PacketID: id}, err
	case PUBCOMP:
		id, err := d.ack(t)
		return &Pubcomp{PacketID: id}, err
	case SUBSCRIBE:
		return d.subscribe()
	case SUBACK:
		return d.suback()
	case UNSUBSCRIBE:
		return d.unsubscribe()
	case UNSUBACK:
		id, err := d.ack(t)
		return &Unsuback{PacketID: id}, err
	case PINGREQ:
		return &Pingreq{}, d.empty(t)
	case PINGRESP:
		return &Pingresp{}, d.empty(t)
	case DISCONNECT:
		// A 3.1.1 DISCONNECT has no body [MQTT-3.14]; reason codes
		// and properties are 5.0 only.
		return &Disconnect{}, d.empty(t)
	}
	// AUTH exists in 5.0 only: at 3.1.1 type 15 is reserved [MQTT-2.2.1].
	return nil, malformed("reserved packet type " + strconv.Itoa(int(t)))
}

// decoder walks a packet body. Every method fails instead of reading past
// the end.
type decoder struct {
	b   []byte
	off int
}

func (d *decoder) left() int { return len(d.b) - d.off }

func (d *decoder) byte1(what string) (byte, error) {
	if d.left() < 1 {
		return 0, malformed("packet ends before " + what)
	}
	c := d.b[d.off]
	d.off++
	return c, nil
}

func (d *decoder) uint16(what string) (uint16, error) {
	if d.left() < 2 {
		return 0, malformed("packet ends before " + what)
	}
	v := uint16(d.b[d.off])<<8 | uint16(d.b[d.off+1])
	d.off += 2
	return v, nil
}

func (d *decoder) uint32(what string) (uint32, error) {
	if d.left() < 4 {
		return 0, malformed("packet ends before " + what)
	}
	b := d.b[d.off : d.off+4]
	d.off += 4
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]), nil
}

// varint reads a variable byte integer of at most four bytes, in its
// shortest form [MQTT-1.5.5-1]: a longer encoding of the same value (a last
// byte of 0 after a continuation) is malformed, so a property identifier
// cannot hide as 0x8b 0x00 and re-encoding reproduces the input. (The fixed
// header's remaining length is read leniently by ReadHeader, as before.)
func (d *decoder) varint(what string) (int, error) {
	v, mult := 0, 1
	for i := 0; ; i++ {
		if i == 4 {
			return 0, malformed(what + " longer than four bytes") // [MQTT-1.5.5-1]
		}
		if d.left() < 1 {
			return 0, malformed("packet ends inside " + what)
		}
		c := d.b[d.off]
		d.off++
		v += int(c&0x7f) * mult
		if c&0x80 == 0 {
			if c == 0 && i > 0 {
				return 0, malformed(what + " not in its shortest form")
			}
			return v, nil
		}
		mult *= 128
	}
}

func (d *decoder) bytes(what string) ([]byte, error) {
	n, err := d.uint16(what + " length")
	if err != nil {
		return nil, err
	}
	if d.left() < int(n) {
		return nil, malformed(what + " longer than the packet")
	}
	p := d.b[d.off : d.off+int(n) : d.off+int(n)]
	d.off += int(n)
	return p, nil
}

// str reads a UTF-8 encoded string [MQTT-1.5.3].
func (d *decoder) str(what string) (string, error) {
	p, err := d.bytes(what)
	if err != nil {
		return "", err
	}
	if err := checkUTF8(p, what); err != nil {
		return "", err
	}
	return string(p), nil
}

// checkUTF8 refuses ill-formed UTF-8, including encoded surrogates
// [MQTT-1.5.3-1], and U+0000 [MQTT-1.5.3-2].
func checkUTF8(p []byte, what string) error {
	for _, c := range p {
		if c == 0 {
			return malformed(what + " contains U+0000")
		}
	}
	if !utf8.Valid(p) {
		return malformed(what + " is not well-formed UTF-8")
	}
	return nil
}

func (d *decoder) end(t Type) error {
	if d.left() != 0 {
		return malformed(t.String() + " has " + strconv.Itoa(d.left()) + " bytes past its end")
	}
	return nil
}

func (d *decoder) empty(t Type) error { return d.end(t) }

// packetID reads the packet identifier of a packet of type t, which is
// never 0 [MQTT-2.3.1-1].
func (d *decoder) packetID(t Type) (uint16, error) {
	id, err := d.uint16("packet identifier")
	if err == nil && id == 0 {
		err = malformed(t.String() + " with packet identifier 0")
	}
	return id, err
}

func (d *decoder) ack(t Type) (uint16, error) {
	id, err := d.uint16("packet identifier")
	if err != nil {
		return 0, err
	}
	if err := d.end(t); err != nil {
		return 0, err
	}
	if id == 0 {
		// Packet identifiers are non-zero [MQTT-2.3.1-1].
		return 0, malformed(t.String() + " with packet identifier 0")
	}
	return id, nil
}

func (d *decoder) connect() (Packet, error) {
	p := &Connect{}
	if _, err := d.connectInto(p); err != nil {
		e, ok := err.(*Error)
		if v := Version(p.ProtocolLevel); ok && e.Reason != UnsupportedProtocolVersion && (v == V31 || v == V311 || v == V5) {
			// Past a protocol level edged speaks: the server may answer
			// in that version (see Error.Version). A copy: the error
			// may be shared.
			ce := *e
			ce.Version = v
			return nil, &ce
		}
		return nil, err
	}
	return p, nil
}

func (d *decoder) connectInto(p *Connect) (Packet, error) {
	var err error
	if p.ProtocolName, err = d.str("protocol name"); err != nil {
		return nil, err
	}
	if p.ProtocolLevel, err = d.byte1("protocol level"); err != nil {
		return nil, err
	}
	switch {
	case p.ProtocolName == "MQTT" && p.ProtocolLevel == 4:
	case p.ProtocolName == "MQTT" && p.ProtocolLevel == 5:
	case p.ProtocolName == "MQIsdp" && p.ProtocolLevel == 3:
		// MQTT 3.1, accepted for old clients.
	case p.ProtocolName == "MQTT" || p.ProtocolName == "MQIsdp":
		// Answered with CONNACK 0x01 [MQTT-3.1.2-2].
		return nil, &Error{Reason: UnsupportedProtocolVersion,
			Msg: "protocol level " + strconv.Itoa(int(p.ProtocolLevel))}
	default:
		// The server MAY disconnect [MQTT-3.1.2-1]; edged does.
		return nil, violation("protocol name " + strconv.Quote(p.ProtocolName))
	}
	flags, err := d.byte1("connect flags")
	if err != nil {
		return nil, err
	}
	if flags&0x01 != 0 {
		return nil, malformed("reserved connect flag set") // [MQTT-3.1.2-3]
	}
	p.CleanSession = flags&0x02 != 0
	willFlag := flags&0x04 != 0
	willQoS := flags >> 3 & 0x03
	willRetain := flags&0x20 != 0
	hasPassword := flags&0x40 != 0
	hasUser := flags&0x80 != 0
	if !willFlag && (willQoS != 0 || willRetain) {
		return nil, malformed("will QoS or retain set without will flag") // [MQTT-3.1.2-11] [MQTT-3.1.2-13] [MQTT-3.1.2-15]
	}
	if willQoS == 3 {
		return nil, malformed("will QoS 3") // [MQTT-3.1.2-14]
	}
	v5 := p.ProtocolLevel == byte(V5)
	if hasPassword && !hasUser && !v5 {
		// 5.0 allows a password without a user name [MQTT-3.1.2.9].
		return nil, malformed("password flag set without user name flag") // [MQTT-3.1.2-22]
	}
	if p.KeepAlive, err = d.uint16("keep alive"); err != nil {
		return nil, err
	}
	if v5 {
		if p.Properties, err = d.properties(CONNECT); err != nil {
			return nil, err
		}
		if pr := p.Properties; pr != nil && len(pr.AuthData) > 0 && pr.AuthMethod == "" {
			// "It is a Protocol Error to include Authentication Data if
			// there is no Authentication Method" [MQTT-3.1.2.11.10].
			return nil, violation("authentication data without authentication method")
		}
	}
	if p.ClientID, err = d.str("client identifier"); err != nil {
		return nil, err
	}
	if willFlag {
		w := &Will{QoS: willQoS, Retain: willRetain}
		if v5 {
			if w.Properties, err = d.properties(willProps); err != nil {
				return nil, err
			}
		}
		if w.Topic, err = d.str("will topic"); err != nil {
			return nil, err
		}
		if !ValidTopicName(w.Topic) {
			return nil, malformed("will topic " + strconv.Quote(w.Topic) + " is not a valid topic name")
		}
		if w.Payload, err = d.bytes("will message"); err != nil {
			return nil, err
		}
		p.Will = w
	}
	if hasUser {
		u, err := d.str("user name")
		if err != nil {
			return nil, err
		}
		p.Username = &u
	}
	if hasPassword {
		pw, err := d.bytes("password")
		if err != nil {
			return nil, err
		}
		if pw == nil {
			pw = []byte{}
		}
		p.Password = pw
	}
	return p, d.end(CONNECT)
}

func (d *decoder) connack() (Packet, error) {
	f, err := d.byte1("connack flags")
	if err != nil {
		return nil, err
	}
	if f&^0x01 != 0 {
		return nil, malformed("reserved connack flags set") // [MQTT-3.2.2.1]
	}
	c, err := d.byte1("connack return code")
	if err != nil {
		return nil, err
	}
	if c > 5 {
		return nil, malformed("connack return code " + strconv.Itoa(int(c)))
	}
	if c != 0 && f != 0 {
		return nil, malformed("session present with a refusal") // [MQTT-3.2.2-4]
	}
	return &Connack{SessionPresent: f == 1, Reason: connackReasons[c]}, d.end(CONNACK)
}

func (d *decoder) publish(flags byte) (Packet, error) {
	p := &Publish{Dup: flags&0x08 != 0, QoS: flags >> 1 & 0x03, Retain: flags&0x01 != 0}
	if p.QoS == 3 {
		return nil, malformed("PUBLISH with QoS 3") // [MQTT-3.3.1-4]
	}
	if p.QoS == 0 && p.Dup {
		return nil, malformed("PUBLISH with QoS 0 and DUP set") // [MQTT-3.3.1-2]
	}
	var err error
	if p.Topic, err = d.str("topic name"); err != nil {
		return nil, err
	}
	if !ValidTopicName(p.Topic) {
		// No wildcards in a topic name [MQTT-3.3.2-2], at least one
		// character [MQTT-4.7.3-1].
		return nil, malformed("topic name " + strconv.Quote(p.Topic) + " is not valid")
	}
	if p.QoS > 0 {
		if p.PacketID, err = d.packetID(PUBLISH); err != nil {
			return nil, err
		}
	}
	p.Payload = d.b[d.off:len(d.b):len(d.b)]
	d.off = len(d.b)
	return p, nil
}

func (d *decoder) subscribe() (Packet, error) {
	id, err := d.packetID(SUBSCRIBE)
	if err != nil {
		return nil, err
	}
	p := &Subscribe{PacketID: id}
	for d.left() > 0 {
		var s Subscription
		// Filters are checked by the broker, which refuses an invalid one
		// with a SUBACK failure rather than closing the connection.
		if s.Filter, err = d.str("topic filter"); err != nil {
			return nil, err
		}
		q, err := d.byte1("requested QoS")
		if err != nil {
			return nil, err
		}
		if q > 2 {
			return nil, malformed("requested QoS byte " + strconv.Itoa(int(q))) // [MQTT-3-8.3-4]
		}
		s.QoS = q
		p.Subscriptions = append(p.Subscriptions, s)
	}
	if len(p.Subscriptions) == 0 {
		return nil, violation("SUBSCRIBE with no topic filter") // [MQTT-3.8.3-3]
	}
	return p, nil
}

func (d *decoder) suback() (Packet, error) {
	id, err := d.packetID(SUBACK)
	if err != nil {
		return nil, err
	}
	codes := d.b[d.off:]
	d.off = len(d.b)
	if len(codes) == 0 {
		return nil, malformed("SUBACK with no return code")
	}
	p := &Suback{PacketID: id, Reasons: make([]Reason, len(codes))}
	for i, c := range codes {
		if c > 2 && c != byte(UnspecifiedError) {
			return nil, malformed("SUBACK return code " + strconv.Itoa(int(c))) // [MQTT-3.9.3-2]
		}
		p.Reasons[i] = Reason(c)
	}
	return p, nil
}

func (d *decoder) unsubscribe() (Packet, error) {
	id, err := d.packetID(UNSUBSCRIBE)
	if err != nil {
		return nil, err
	}
	p := &Unsubscribe{PacketID: id}
	for d.left() > 0 {
		f, err := d.str("topic filter")
		if err != nil {
			return nil, err
		}
		p.Filters = append(p.Filters, f)
	}
	if len(p.Filters) == 0 {
		return nil, violation("UNSUBSCRIBE with no topic filter") // [MQTT-3.10.3-2]
	}
	return p, nil
}
