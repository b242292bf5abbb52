package packet

import "strconv"

// Type is an MQTT control packet type, the high nibble of the first byte.
type Type byte

// The fourteen control packet types of MQTT 3.1.1.
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
)

var typeNames = [...]string{"RESERVED", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC",
	"PUBREL", "PUBCOMP", "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ",
	"PINGRESP", "DISCONNECT"}

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
	// AppendTo appends the packet's wire encoding to b and returns the
	// extended slice.
	AppendTo(b []byte) []byte
}

// Will is the will message of a CONNECT.
type Will struct {
	Topic   string
	Payload []byte
	QoS     byte
	Retain  bool
}

// Connect is a CONNECT packet.
type Connect struct {
	// ProtocolName is "MQTT" (3.1.1) or "MQIsdp" (3.1).
	ProtocolName string
	// ProtocolLevel is 4 for 3.1.1 and 3 for 3.1.
	ProtocolLevel byte
	CleanSession  bool
	KeepAlive     uint16 // seconds; 0 disables keepalive
	ClientID      string
	Will          *Will // nil when the will flag is 0
	Username      *string
	Password      []byte // nil when the password flag is 0
}

// Connack is a CONNACK packet.
type Connack struct {
	SessionPresent bool
	Code           ConnackCode
}

// Publish is a PUBLISH packet.
type Publish struct {
	Dup      bool
	QoS      byte
	Retain   bool
	Topic    string
	PacketID uint16 // 0 for QoS 0
	Payload  []byte
}

// Puback is a PUBACK packet.
type Puback struct{ PacketID uint16 }

// Pubrec is a PUBREC packet.
type Pubrec struct{ PacketID uint16 }

// Pubrel is a PUBREL packet.
type Pubrel struct{ PacketID uint16 }

// Pubcomp is a PUBCOMP packet.
type Pubcomp struct{ PacketID uint16 }

// Subscription is one topic filter of a SUBSCRIBE with its requested QoS.
type Subscription struct {
	Filter string
	QoS    byte
}

// Subscribe is a SUBSCRIBE packet.
type Subscribe struct {
	PacketID      uint16
	Subscriptions []Subscription
}

// Suback is a SUBACK packet. Each return code is the granted QoS (0-2) or
// SubackFailure.
type Suback struct {
	PacketID    uint16
	ReturnCodes []byte
}

// Unsubscribe is an UNSUBSCRIBE packet.
type Unsubscribe struct {
	PacketID uint16
	Filters  []string
}

// Unsuback is an UNSUBACK packet.
type Unsuback struct{ PacketID uint16 }

// Pingreq is a PINGREQ packet.
type Pingreq struct{}

// Pingresp is a PINGRESP packet.
type Pingresp struct{}

// Disconnect is a DISCONNECT packet.
type Disconnect struct{}

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
)
