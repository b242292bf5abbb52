package packet

import (
	"strconv"
	"strings"
)

// decode5 decodes a packet of an MQTT 5.0 connection (ch. 3 of MQTT 5.0).
func (d *decoder) decode5(t Type, flags byte) (Packet, error) {
	switch t {
	case CONNECT:
		return d.connect()
	case CONNACK:
		return d.connack5()
	case PUBLISH:
		return d.publish5(flags)
	case PUBACK:
		id, r, pr, err := d.ack5(t)
		if err != nil {
			return nil, err
		}
		return &Puback{PacketID: id, Reason: r, Properties: pr}, nil
	case PUBREC:
		id, r, pr, err := d.ack5(t)
		if err != nil {
			return nil, err
		}
		return &Pubrec{PacketID: id, Reason: r, Properties: pr}, nil
	case PUBREL:
		id, r, pr, err := d.ack5(t)
		if err != nil {
			return nil, err
		}
		return &Pubrel{PacketID: id, Reason: r, Properties: pr}, nil
	case PUBCOMP:
		id, r, pr, err := d.ack5(t)
		if err != nil {
			return nil, err
		}
		return &Pubcomp{PacketID: id, Reason: r, Properties: pr}, nil
	case SUBSCRIBE:
		return d.subscribe5()
	case SUBACK:
		id, pr, rs, err := d.reasonList(t)
		if err != nil {
			return nil, err
		}
		return &Suback{PacketID: id, Reasons: rs, Properties: pr}, nil
	case UNSUBSCRIBE:
		return d.unsubscribe5()
	case UNSUBACK:
		id, pr, rs, err := d.reasonList(t)
		if err != nil {
			return nil, err
		}
		return &Unsuback{PacketID: id, Reasons: rs, Properties: pr}, nil
	case PINGREQ:
		return &Pingreq{}, d.empty(t)
	case PINGRESP:
		return &Pingresp{}, d.empty(t)
	case DISCONNECT:
		r, pr, err := d.reasonProps(t)
		if err != nil {
			return nil, err
		}
		return &Disconnect{Reason: r, Properties: pr}, nil
	case AUTH:
		r, pr, err := d.reasonProps(t)
		if err != nil {
			return nil, err
		}
		if r != Success || pr != nil {
			if pr == nil || pr.AuthMethod == "" {
				// An AUTH carries the authentication method
				// [MQTT-3.15.2.2.2]; "It is a Protocol Error to omit
				// the Authentication Method".
				return nil, violation("AUTH without authentication method")
			}
		}
		return &Auth{Reason: r, Properties: pr}, nil
	}
	return nil, malformed("reserved packet type " + strconv.Itoa(int(t)))
}

// reason reads a reason code and checks it is one packet type t may carry.
// A reason code the packet may not carry is a protocol error: the packet
// parses, but its sender broke [MQTT-3.4.2-1] and its siblings (Mosquitto
// answers the same).
func (d *decoder) reason(t Type) (Reason, error) {
	c, err := d.byte1(t.String() + " reason code")
	if err != nil {
		return 0, err
	}
	r := Reason(c)
	if !r.ValidFor(t) {
		return 0, violation(t.String() + " reason code 0x" + strconv.FormatUint(uint64(c), 16))
	}
	return r, nil
}

func (d *decoder) connack5() (Packet, error) {
	f, err := d.byte1("connack flags")
	if err != nil {
		return nil, err
	}
	if f&^0x01 != 0 {
		return nil, malformed("reserved connack flags set") // [MQTT-3.2.2-1]
	}
	p := &Connack{SessionPresent: f == 1}
	if p.Reason, err = d.reason(CONNACK); err != nil {
		return nil, err
	}
	if p.Reason != Success && p.SessionPresent {
		return nil, malformed("session present with a refusal") // [MQTT-3.2.2-6]
	}
	if p.Properties, err = d.properties(CONNACK); err != nil {
		return nil, err
	}
	return p, d.end(CONNACK)
}

func (d *decoder) publish5(flags byte) (Packet, error) {
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
	if p.Topic != "" && !ValidTopicName(p.Topic) {
		return nil, malformed("topic name " + strconv.Quote(p.Topic) + " is not valid") // [MQTT-3.3.2-2]
	}
	if p.QoS > 0 {
		if p.PacketID, err = d.uint16("packet identifier"); err != nil {
			return nil, err
		}
		if p.PacketID == 0 {
			return nil, malformed("PUBLISH with packet identifier 0") // [MQTT-2.3.1-1]
		}
	}
	if p.Properties, err = d.properties(PUBLISH); err != nil {
		return nil, err
	}
	if p.Topic == "" && (p.Properties == nil || p.Properties.TopicAlias == nil) {
		// "It is a Protocol Error if the Topic Name is zero length and
		// there is no Topic Alias" [MQTT-3.3.2.3.4].
		return nil, violation("PUBLISH with an empty topic name and no topic alias")
	}
	p.Payload = d.b[d.off:len(d.b):len(d.b)]
	d.off = len(d.b)
	return p, nil
}

// ack5 decodes PUBACK, PUBREC, PUBREL and PUBCOMP: the reason code is
// absent when the remaining length is 2 (Success), the property length
// when it is 3 [MQTT-3.4.2.1] [MQTT-3.4.2.2.1].
func (d *decoder) ack5(t Type) (uint16, Reason, *Properties, error) {
	id, err := d.uint16("packet identifier")
	if err != nil {
		return 0, 0, nil, err
	}
	if id == 0 {
		return 0, 0, nil, malformed(t.String() + " with packet identifier 0") // [MQTT-2.3.1-1]
	}
	r, pr, err := d.reasonProps(t)
	return id, r, pr, err
}

// reasonProps reads an optional reason code and optional properties, the
// rest of an acknowledgement, DISCONNECT [MQTT-3.14.2.1] or AUTH
// [MQTT-3.15.2.1]: both absent means Success and no properties.
func (d *decoder) reasonProps(t Type) (Reason, *Properties, error) {
	if d.left() == 0 {
		return Success, nil, nil
	}
	r, err := d.reason(t)
	if err != nil {
		return 0, nil, err
	}
	if d.left() == 0 {
		return r, nil, nil
	}
	pr, err := d.properties(t)
	if err != nil {
		return 0, nil, err
	}
	return r, pr, d.end(t)
}

// reasonList decodes SUBACK and UNSUBACK: packet identifier, properties,
// and one reason code per filter, at least one [MQTT-3.9.3] [MQTT-3.11.3].
func (d *decoder) reasonList(t Type) (uint16, *Properties, []Reason, error) {
	id, err := d.uint16("packet identifier")
	if err != nil {
		return 0, nil, nil, err
	}
	if id == 0 {
		return 0, nil, nil, malformed(t.String() + " with packet identifier 0") // [MQTT-2.3.1-1]
	}
	pr, err := d.properties(t)
	if err != nil {
		return 0, nil, nil, err
	}
	codes := d.b[d.off:]
	if len(codes) == 0 {
		return 0, nil, nil, malformed(t.String() + " with no reason code")
	}
	rs := make([]Reason, len(codes))
	for i := range codes {
		if rs[i], err = d.reason(t); err != nil {
			return 0, nil, nil, err
		}
	}
	return id, pr, rs, nil
}

func (d *decoder) subscribe5() (Packet, error) {
	id, err := d.uint16("packet identifier")
	if err != nil {
		return nil, err
	}
	if id == 0 {
		return nil, malformed("SUBSCRIBE with packet identifier 0") // [MQTT-2.3.1-1]
	}
	p := &Subscribe{PacketID: id}
	if p.Properties, err = d.properties(SUBSCRIBE); err != nil {
		return nil, err
	}
	for d.left() > 0 {
		var s Subscription
		if s.Filter, err = d.str("topic filter"); err != nil {
			return nil, err
		}
		o, err := d.byte1("subscription options")
		if err != nil {
			return nil, err
		}
		if o&0xc0 != 0 {
			return nil, malformed("reserved subscription option bits set") // [MQTT-3.8.3-5]
		}
		s.QoS = o & 0x03
		s.NoLocal = o&0x04 != 0
		s.RetainAsPublished = o&0x08 != 0
		s.RetainHandling = o >> 4 & 0x03
		if s.QoS == 3 {
			// "It is a Protocol Error if the Maximum QoS field has the
			// value 3" [MQTT-3.8.3.1].
			return nil, violation("subscription QoS 3")
		}
		if s.RetainHandling == 3 {
			// "It is a Protocol Error to send a Retain Handling value
			// of 3" [MQTT-3.8.3.1].
			return nil, violation("retain handling 3")
		}
		if s.NoLocal && strings.HasPrefix(s.Filter, "$share/") {
			// "It is a Protocol Error to set the No Local bit to 1 on a
			// Shared Subscription" [MQTT-3.8.3-4].
			return nil, violation("no local on shared subscription " + strconv.Quote(s.Filter))
		}
		p.Subscriptions = append(p.Subscriptions, s)
	}
	if len(p.Subscriptions) == 0 {
		return nil, violation("SUBSCRIBE with no topic filter") // [MQTT-3.8.3-2]
	}
	return p, nil
}

func (d *decoder) unsubscribe5() (Packet, error) {
	id, err := d.uint16("packet identifier")
	if err != nil {
		return nil, err
	}
	if id == 0 {
		return nil, malformed("UNSUBSCRIBE with packet identifier 0") // [MQTT-2.3.1-1]
	}
	p := &Unsubscribe{PacketID: id}
	if p.Properties, err = d.properties(UNSUBSCRIBE); err != nil {
		return nil, err
	}
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
