package packet

import "strconv"

// Type is an MQTT control packet type, the high nibble of the first byte.
type Type byte

// The control packet types: fourteen of MQTT 3.1.1 and AUTH of 5.0.
const (
	CONNECT     Type = 1
	CONNACK     Type = 2
	PUBLISH     Type = 3
	PUBACK      Type = 4
	PUBREC      Type = 5
	PUBREL      Type = 6
	PUBCOMP     Type = 7
	SUBSCRIBE   Type = 8
	SUBACK      Type = 9
	UNSUBSCRIBE Type = 10
	UNSUBACK    Type = 11
	PINGREQ     Type = 12
	PINGRESP    Type = 13
	DISCONNECT  Type = 14
	AUTH        Type = 15 // MQTT 5.0 only
)

// Version is a protocol version, as the protocol level byte of CONNECT
// carries it. A connection's packets after CONNECT are decoded and encoded
// for the version its CONNECT named.
type Version byte

// The protocol versions edged speaks.
const (
	V31  Version = 3 // MQTT 3.1, protocol name "MQIsdp"
	V311 Version = 4 // MQTT 3.1.1
	V5   Version = 5 // MQTT 5.0
)

var typeNames = [...]string{"RESERVED", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC",
	"PUBREL", "PUBCOMP", "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ",
	"PINGRESP", "DISCONNECT", "AUTH"}

// String returns the packet type's name.
func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return "TYPE(" + strconv.Itoa(int(t)) + ")"
}

// Packet is one MQTT control packet.
type Packet interface {
	// Type returns the control packet type.
	Type() Type
	// AppendTo appends the packet's wire encoding at protocol version v
	// to b and returns the extended slice. Fields of a later version than
	// v are not encoded.
	AppendTo(b []byte, v Version) []byte
}

// Will is the will message of a CONNECT.
type Will struct {
	Topic   string
	Payload []byte
	QoS     byte
	Retain  bool
	// Properties are the will properties (5.0): will delay interval,
	// payload format, message expiry, content type, response topic,
	// correlation data, user properties. Nil before 5.0.
	Properties *Properties
}

// Connect is a CONNECT packet.
type Connect struct {
	// ProtocolName is "MQTT" (3.1.1) or "MQIsdp" (3.1).
	ProtocolName string
	// ProtocolLevel is 5 for 5.0, 4 for 3.1.1 and 3 for 3.1 (a Version).
	ProtocolLevel byte
	// CleanSession is Clean Session before 5.0 and Clean Start in 5.0.
	CleanSession bool
	KeepAlive    uint16 // seconds; 0 disables keepalive
	ClientID     string
	Will         *Will // nil when the will flag is 0
	Username     *string
	Password     []byte // nil when the password flag is 0
	// Properties are the CONNECT properties (5.0); nil before 5.0.
	Properties *Properties
}

// Connack is a CONNACK packet. Reason is the 5.0 reason code; before 5.0
// it is encoded as the 3.1.1 return code of the same meaning (see
// Reason.ConnackCode) and decoded back.
type Connack struct {
	SessionPresent bool
	Reason         Reason
	Properties     *Properties // 5.0 only
}

// Publish is a PUBLISH packet.
type Publish struct {
	Dup      bool
	QoS      byte
	Retain   bool
	Topic    string
	PacketID uint16 // 0 for QoS 0
	Payload  []byte
	// Properties are the PUBLISH properties (5.0); nil before 5.0 and
	// when a 5.0 PUBLISH has none. The 3.1.1 path never allocates them.
	Properties *Properties
}

// The four acknowledgements of a QoS 1 or 2 PUBLISH share their shape. In
// 5.0 the reason code and properties may be omitted on the wire when the
// reason is Success and there are no properties [MQTT-3.4.2.1]; the encoder
// does so.

// Puback is a PUBACK packet.
type Puback struct {
	PacketID   uint16
	Reason     Reason      // 5.0 only
	Properties *Properties // 5.0 only
}

// Pubrec is a PUBREC packet.
type Pubrec struct {
	PacketID   uint16
	Reason     Reason      // 5.0 only
	Properties *Properties // 5.0 only
}

// Pubrel is a PUBREL packet.
type Pubrel struct {
	PacketID   uint16
	Reason     Reason      // 5.0 only
	Properties *Properties // 5.0 only
}

// Pubcomp is a PUBCOMP packet.
type Pubcomp struct {
	PacketID   uint16
	Reason     Reason      // 5.0 only
	Properties *Properties // 5.0 only
}

// Subscription is one topic filter of a SUBSCRIBE with its options. Before
// 5.0 only Filter and QoS exist on the wire.
type Subscription struct {
	Filter            string
	QoS               byte
	NoLocal           bool // 5.0
	RetainAsPublished bool // 5.0
	RetainHandling    byte // 5.0: 0 send at subscribe, 1 only if new, 2 never
}

// Subscribe is a SUBSCRIBE packet.
type Subscribe struct {
	PacketID      uint16
	Subscriptions []Subscription
	// Properties (5.0): subscription identifier, user properties.
	Properties *Properties
}

// Suback is a SUBACK packet. Each reason is the granted QoS (GrantedQoS0,
// 1 or 2) or a failure (>= 0x80). Before 5.0 the only failure on the wire is
// 0x80 (UnspecifiedError); the encoder maps every failure to it.
type Suback struct {
	PacketID   uint16
	Reasons    []Reason
	Properties *Properties // 5.0 only
}

// Unsubscribe is an UNSUBSCRIBE packet.
type Unsubscribe struct {
	PacketID   uint16
	Filters    []string
	Properties *Properties // 5.0 only
}

// Unsuback is an UNSUBACK packet. Reasons, one per filter, exist in 5.0
// only.
type Unsuback struct {
	PacketID   uint16
	Reasons    []Reason    // 5.0 only
	Properties *Properties // 5.0 only
}

// Pingreq is a PINGREQ packet.
type Pingreq struct{}

// Pingresp is a PINGRESP packet.
type Pingresp struct{}

// Disconnect is a DISCONNECT packet. Before 5.0 it has no body.
type Disconnect struct {
	Reason     Reason      // 5.0 only
	Properties *Properties // 5.0 only
}

// Auth is an AUTH packet (5.0 only).
type Auth struct {
	Reason     Reason
	Properties *Properties
}

// Type implements Packet.
func (*Connect) Type() Type { return CONNECT }

// Type implements Packet.
func (*Connack) Type() Type { return CONNACK }

// Type implements Packet.
func (*Publish) Type() Type { return PUBLISH }

// Type implements Packet.
func (*Puback) Type() Type { return PUBACK }

// Type implements Packet.
func (*Pubrec) Type() Type { return PUBREC }

// Type implements Packet.
func (*Pubrel) Type() Type { return PUBREL }

// Type implements Packet.
func (*Pubcomp) Type() Type { return PUBCOMP }

// Type implements Packet.
func (*Subscribe) Type() Type { return SUBSCRIBE }

// Type implements Packet.
func (*Suback) Type() Type { return SUBACK }

// Type implements Packet.
func (*Unsubscribe) Type() Type { return UNSUBSCRIBE }

// Type implements Packet.
func (*Unsuback) Type() Type { return UNSUBACK }

// Type implements Packet.
func (*Pingreq) Type() Type { return PINGREQ }

// Type implements Packet.
func (*Pingresp) Type() Type { return PINGRESP }

// Type implements Packet.
func (*Disconnect) Type() Type { return DISCONNECT }

// Type implements Packet.
func (*Auth) Type() Type { return AUTH }

var (
	_ Packet = (*Connect)(nil)
	_ Packet = (*Connack)(nil)
	_ Packet = (*Publish)(nil)
	_ Packet = (*Puback)(nil)
	_ Packet = (*Pubrec)(nil)
	_ Packet = (*Pubrel)(nil)
	_ Packet = (*Pubcomp)(nil)
	_ Packet = (*Subscribe)(nil)
	_ Packet = (*Suback)(nil)
	_ Packet = (*Unsubscribe)(nil)
	_ Packet = (*Unsuback)(nil)
	_ Packet = (*Pingreq)(nil)
	_ Packet = (*Pingresp)(nil)
	_ Packet = (*Disconnect)(nil)
	_ Packet = (*Auth)(nil)
)
