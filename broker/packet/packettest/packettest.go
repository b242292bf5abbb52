// Package packettest holds hand-written MQTT 3.1.1, 3.1 and 5.0 wire
// fixtures for the packet codec, shared by the codec's own tests and by broker tests that
// replay the same bytes over a connection (as net/http/httptest serves
// net/http tests). It imports only the codec and the standard library and is
// never linked into the edged binary.
//
// Every Raw was written by hand from the MQTT 3.1.1 specification (OASIS
// Standard, 29 October 2014) or, for Valid5 and Invalid5, the MQTT 5.0
// specification (OASIS Standard, 7 March 2019), not produced by the
// encoder, so a test that compares the encoder's output with Raw can fail.
// Valid and Invalid are decoded at packet.V311 (a CONNECT at the version it
// names), Valid5 and Invalid5 at packet.V5.
//
// # Slice convention
//
// Packet values are what packet.Read returns, compared with reflect.DeepEqual:
//
//   - Byte fields decoded from the wire (Publish.Payload, Will.Payload,
//     Connect.Password) are never nil once present: an empty field is
//     []byte{}. Connect.Password is nil only when the password flag is 0,
//     and Connect.Username is nil only when the user name flag is 0 (an
//     empty user name is a pointer to "").
//
//   - Subscribe.Subscriptions, Unsubscribe.Filters and Suback.Reasons
//     are never empty in a valid packet.
//
//   - Properties (5.0) are nil when a packet has none, never an empty
//     *packet.Properties; an absent numeric property is a nil pointer.
//
// The encoder treats a nil and an empty Publish.Payload or Will.Payload
// alike, so either encodes to Raw.
package packettest

import "github.com/edged/edged/broker/packet"

// Case is a well-formed packet: Raw is its complete wire encoding (fixed
// header included) and Packet is what decoding Raw yields.
type Case struct {
	Name   string
	Raw    []byte
	Packet packet.Packet
	// Version is the protocol version Raw is decoded and encoded at: zero,
	// as in Valid, decodes and encodes the 3.1.1 way (a CONNECT names its
	// own), V5 in Valid5.
	Version packet.Version
}

// BadCase is a packet the decoder refuses with an *packet.Error of the given
// Reason. Raw is complete: its remaining length matches the bytes that follow
// (except where the fixed header itself is the fault), so reading it never
// hits end of input.
type BadCase struct {
	Name   string
	Raw    []byte
	Reason packet.Reason
}

func ptr(s string) *string { return &s }

// pattern returns n deterministic payload bytes.
func pattern(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i % 251)
	}
	return p
}

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// Valid holds well-formed packets of all fourteen types.
var Valid = []Case{
	// CONNECT [MQTT-3.1].
	{
		Name:   "CONNECT 3.1.1 clean session",
		Raw:    []byte("\x10\x0e\x00\x04MQTT\x04\x02\x00\x3c\x00\x02c1"),
		Packet: &packet.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, CleanSession: true, KeepAlive: 60, ClientID: "c1"},
	},
	{
		Name:   "CONNECT 3.1.1 empty client id keepalive 0",
		Raw:    []byte("\x10\x0c\x00\x04MQTT\x04\x02\x00\x00\x00\x00"),
		Packet: &packet.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, CleanSession: true},
	},
	{
		Name:   "CONNECT 3.1.1 persistent session max keepalive",
		Raw:    []byte("\x10\x12\x00\x04MQTT\x04\x00\xff\xff\x00\x06dev-42"),
		Packet: &packet.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, KeepAlive: 65535, ClientID: "dev-42"},
	},
	{
		Name:   "CONNECT 3.1 MQIsdp",
		Raw:    []byte("\x10\x11\x00\x06MQIsdp\x03\x02\x00\x1e\x00\x03abc"),
		Packet: &packet.Connect{ProtocolName: "MQIsdp", ProtocolLevel: 3, CleanSession: true, KeepAlive: 30, ClientID: "abc"},
	},
	{
		Name: "CONNECT will QoS 1 retain, user name, password",
		Raw:  []byte("\x10\x24\x00\x04MQTT\x04\xee\x00\x0a\x00\x02id\x00\x04will\x00\x03bye\x00\x04user\x00\x03pwd"),
		Packet: &packet.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, CleanSession: true, KeepAlive: 10, ClientID: "id",
			Will:     &packet.Will{Topic: "will", Payload: []byte("bye"), QoS: 1, Retain: true},
			Username: ptr("user"), Password: []byte("pwd")},
	},
	{
		Name: "CONNECT will QoS 2 empty will message",
		Raw:  []byte("\x10\x12\x00\x04MQTT\x04\x14\x00\x00\x00\x01x\x00\x01w\x00\x00"),
		Packet: &packet.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: "x",
			Will: &packet.Will{Topic: "w", Payload: []byte{}, QoS: 2}},
	},
	{
		Name: "CONNECT will QoS 0 retain binary will message",
		Raw:  []byte("\x10\x16\x00\x04MQTT\x04\x26\x00\x3c\x00\x01x\x00\x03a/b\x00\x02\x00\xff"),
		Packet: &packet.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, CleanSession: true, KeepAlive: 60, ClientID: "x",
			Will: &packet.Will{Topic: "a/b", Payload: []byte{0x00, 0xff}, Retain: true}},
	},
	{
		Name: "CONNECT user name only",
		Raw:  []byte("\x10\x10\x00\x04MQTT\x04\x82\x00\x3c\x00\x01x\x00\x01u"),
		Packet: &packet.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, CleanSession: true, KeepAlive: 60, ClientID: "x",
			Username: ptr("u")},
	},
	{
		Name: "CONNECT empty user name and empty password",
		Raw:  []byte("\x10\x11\x00\x04MQTT\x04\xc2\x00\x3c\x00\x01x\x00\x00\x00\x00"),
		Packet: &packet.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, CleanSession: true, KeepAlive: 60, ClientID: "x",
			Username: ptr(""), Password: []byte{}},
	},
	{
		Name: "CONNECT 3.1 MQIsdp will QoS 2 retain, user name, password",
		Raw:  []byte("\x10\x2a\x00\x06MQIsdp\x03\xf6\x00\x0a\x00\x05old31\x00\x03w/t\x00\x04gone\x00\x02me\x00\x06secret"),
		Packet: &packet.Connect{ProtocolName: "MQIsdp", ProtocolLevel: 3, CleanSession: true, KeepAlive: 10, ClientID: "old31",
			Will:     &packet.Will{Topic: "w/t", Payload: []byte("gone"), QoS: 2, Retain: true},
			Username: ptr("me"), Password: []byte("secret")},
	},
	{
		// U+FEFF must not be skipped or stripped [MQTT-1.5.3-3].
		Name:   "CONNECT client id with BOM and 2-byte UTF-8",
		Raw:    []byte("\x10\x11\x00\x04MQTT\x04\x02\x00\x3c\x00\x05\xef\xbb\xbf\xc3\xa9"),
		Packet: &packet.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, CleanSession: true, KeepAlive: 60, ClientID: "\ufeff\u00e9"},
	},
	{
		Name:   "CONNECT client id with 4-byte UTF-8",
		Raw:    []byte("\x10\x10\x00\x04MQTT\x04\x02\x00\x3c\x00\x04\xf0\x9f\x98\x80"),
		Packet: &packet.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, CleanSession: true, KeepAlive: 60, ClientID: "\U0001F600"},
	},

	// CONNACK [MQTT-3.2].
	{Name: "CONNACK accepted", Raw: []byte("\x20\x02\x00\x00"), Packet: &packet.Connack{Reason: packet.Success}},
	{Name: "CONNACK accepted session present", Raw: []byte("\x20\x02\x01\x00"), Packet: &packet.Connack{SessionPresent: true, Reason: packet.Success}},
	{Name: "CONNACK refused protocol version", Raw: []byte("\x20\x02\x00\x01"), Packet: &packet.Connack{Reason: packet.UnsupportedProtocolVersion}},
	{Name: "CONNACK refused identifier", Raw: []byte("\x20\x02\x00\x02"), Packet: &packet.Connack{Reason: packet.ClientIdentifierNotValid}},
	{Name: "CONNACK refused server unavailable", Raw: []byte("\x20\x02\x00\x03"), Packet: &packet.Connack{Reason: packet.ServerUnavailable}},
	{Name: "CONNACK refused bad user name or password", Raw: []byte("\x20\x02\x00\x04"), Packet: &packet.Connack{Reason: packet.BadUserNameOrPassword}},
	{Name: "CONNACK refused not authorized", Raw: []byte("\x20\x02\x00\x05"), Packet: &packet.Connack{Reason: packet.NotAuthorized}},

	// PUBLISH [MQTT-3.3].
	{
		Name:   "PUBLISH QoS 0",
		Raw:    []byte("\x30\x07\x00\x03a/bhi"),
		Packet: &packet.Publish{Topic: "a/b", Payload: []byte("hi")},
	},
	{
		Name:   "PUBLISH QoS 0 retain empty payload",
		Raw:    []byte("\x31\x05\x00\x03a/b"),
		Packet: &packet.Publish{Retain: true, Topic: "a/b", Payload: []byte{}},
	},
	{
		Name:   "PUBLISH QoS 1",
		Raw:    []byte("\x32\x06\x00\x01t\x00\x01x"),
		Packet: &packet.Publish{QoS: 1, Topic: "t", PacketID: 1, Payload: []byte("x")},
	},
	{
		Name:   "PUBLISH QoS 1 dup",
		Raw:    []byte("\x3a\x06\x00\x01t\x00\x02x"),
		Packet: &packet.Publish{Dup: true, QoS: 1, Topic: "t", PacketID: 2, Payload: []byte("x")},
	},
	{
		Name:   "PUBLISH QoS 1 retain",
		Raw:    []byte("\x33\x06\x00\x01t\x01\x00x"),
		Packet: &packet.Publish{QoS: 1, Retain: true, Topic: "t", PacketID: 256, Payload: []byte("x")},
	},
	{
		Name:   "PUBLISH QoS 2",
		Raw:    []byte("\x34\x0b\x00\x03a/b\x12\x34data"),
		Packet: &packet.Publish{QoS: 2, Topic: "a/b", PacketID: 0x1234, Payload: []byte("data")},
	},
	{
		Name:   "PUBLISH QoS 2 dup retain max packet id empty payload",
		Raw:    []byte("\x3d\x05\x00\x01t\xff\xff"),
		Packet: &packet.Publish{Dup: true, QoS: 2, Retain: true, Topic: "t", PacketID: 65535, Payload: []byte{}},
	},
	{
		// The payload is application data, not UTF-8 [MQTT-3.3.3].
		Name:   "PUBLISH binary payload",
		Raw:    []byte("\x30\x08\x00\x01t\x00\xff\xfe\x80\x00"),
		Packet: &packet.Publish{Topic: "t", Payload: []byte{0x00, 0xff, 0xfe, 0x80, 0x00}},
	},
	{
		Name:   "PUBLISH $SYS topic",
		Raw:    []byte("\x30\x0c\x00\x09$SYS/temp1"),
		Packet: &packet.Publish{Topic: "$SYS/temp", Payload: []byte("1")},
	},
	{
		Name:   "PUBLISH topic with UTF-8 and space",
		Raw:    []byte("\x30\x08\x00\x05\xc3\xbc/ a0"),
		Packet: &packet.Publish{Topic: "\u00fc/ a", Payload: []byte("0")},
	},
	{
		Name:   "PUBLISH topic slash only",
		Raw:    []byte("\x30\x03\x00\x01/"),
		Packet: &packet.Publish{Topic: "/", Payload: []byte{}},
	},
	{
		Name:   "PUBLISH remaining length 127",
		Raw:    cat([]byte("\x30\x7f\x00\x01t"), pattern(124)),
		Packet: &packet.Publish{Topic: "t", Payload: pattern(124)},
	},
	{
		Name:   "PUBLISH remaining length 128",
		Raw:    cat([]byte("\x30\x80\x01\x00\x01t"), pattern(125)),
		Packet: &packet.Publish{Topic: "t", Payload: pattern(125)},
	},
	{
		Name:   "PUBLISH 200-byte payload retain",
		Raw:    cat([]byte("\x31\xcd\x01\x00\x03a/b"), pattern(200)),
		Packet: &packet.Publish{Retain: true, Topic: "a/b", Payload: pattern(200)},
	},
	{
		// 20005 = 0x25 + 0x1c*128 + 0x01*16384.
		Name:   "PUBLISH QoS 1 20000-byte payload",
		Raw:    cat([]byte("\x32\xa5\x9c\x01\x00\x01t\x00\x07"), pattern(20000)),
		Packet: &packet.Publish{QoS: 1, Topic: "t", PacketID: 7, Payload: pattern(20000)},
	},

	// PUBACK, PUBREC, PUBREL, PUBCOMP [MQTT-3.4] to [MQTT-3.7].
	{Name: "PUBACK", Raw: []byte("\x40\x02\x00\x01"), Packet: &packet.Puback{PacketID: 1}},
	{Name: "PUBACK max packet id", Raw: []byte("\x40\x02\xff\xff"), Packet: &packet.Puback{PacketID: 65535}},
	{Name: "PUBREC", Raw: []byte("\x50\x02\x12\x34"), Packet: &packet.Pubrec{PacketID: 0x1234}},
	{Name: "PUBREL", Raw: []byte("\x62\x02\x00\x01"), Packet: &packet.Pubrel{PacketID: 1}},
	{Name: "PUBCOMP", Raw: []byte("\x70\x02\xab\xcd"), Packet: &packet.Pubcomp{PacketID: 0xabcd}},

	// SUBSCRIBE [MQTT-3.8].
	{
		Name:   "SUBSCRIBE one filter",
		Raw:    []byte("\x82\x06\x00\x01\x00\x01a\x00"),
		Packet: &packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "a"}}},
	},
	{
		Name: "SUBSCRIBE three filters",
		Raw:  []byte("\x82\x1c\x00\x0a\x00\x03a/b\x00\x00\x01#\x02\x00\x0dsport/+/score\x01"),
		Packet: &packet.Subscribe{PacketID: 10, Subscriptions: []packet.Subscription{
			{Filter: "a/b", QoS: 0}, {Filter: "#", QoS: 2}, {Filter: "sport/+/score", QoS: 1}}},
	},
	{
		Name:   "SUBSCRIBE $SYS/#",
		Raw:    []byte("\x82\x0b\x00\x02\x00\x06$SYS/#\x01"),
		Packet: &packet.Subscribe{PacketID: 2, Subscriptions: []packet.Subscription{{Filter: "$SYS/#", QoS: 1}}},
	},
	{
		// The decoder leaves filter validity to the broker, which answers
		// SUBACK 0x80 instead of closing the connection.
		Name:   "SUBSCRIBE invalid filter left to the broker",
		Raw:    []byte("\x82\x0a\x00\x03\x00\x05a/#/b\x00"),
		Packet: &packet.Subscribe{PacketID: 3, Subscriptions: []packet.Subscription{{Filter: "a/#/b"}}},
	},

	// SUBACK [MQTT-3.9].
	{Name: "SUBACK one code", Raw: []byte("\x90\x03\x00\x01\x00"), Packet: &packet.Suback{PacketID: 1, Reasons: []packet.Reason{0}}},
	{
		Name:   "SUBACK all codes with failure",
		Raw:    []byte("\x90\x06\x00\x02\x00\x01\x02\x80"),
		Packet: &packet.Suback{PacketID: 2, Reasons: []packet.Reason{0, 1, 2, packet.UnspecifiedError}},
	},
	{Name: "SUBACK failure only", Raw: []byte("\x90\x03\x00\x03\x80"), Packet: &packet.Suback{PacketID: 3, Reasons: []packet.Reason{0x80}}},

	// UNSUBSCRIBE, UNSUBACK [MQTT-3.10], [MQTT-3.11].
	{
		Name:   "UNSUBSCRIBE one filter",
		Raw:    []byte("\xa2\x05\x00\x01\x00\x01a"),
		Packet: &packet.Unsubscribe{PacketID: 1, Filters: []string{"a"}},
	},
	{
		Name:   "UNSUBSCRIBE two filters",
		Raw:    []byte("\xa2\x0a\x00\x05\x00\x03a/b\x00\x01#"),
		Packet: &packet.Unsubscribe{PacketID: 5, Filters: []string{"a/b", "#"}},
	},
	{Name: "UNSUBACK", Raw: []byte("\xb0\x02\x00\x07"), Packet: &packet.Unsuback{PacketID: 7}},

	// PINGREQ, PINGRESP, DISCONNECT [MQTT-3.12] to [MQTT-3.14].
	{Name: "PINGREQ", Raw: []byte("\xc0\x00"), Packet: &packet.Pingreq{}},
	{Name: "PINGRESP", Raw: []byte("\xd0\x00"), Packet: &packet.Pingresp{}},
	{Name: "DISCONNECT", Raw: []byte("\xe0\x00"), Packet: &packet.Disconnect{}},
}

const (
	malformed   = packet.MalformedPacket
	protocolErr = packet.ProtocolError
	unsupported = packet.UnsupportedProtocolVersion
)

// Invalid holds packets the decoder must refuse, one or more for every
// refusal in decode.go.
var Invalid = []BadCase{
	// Reserved fixed header flags [MQTT-2.2.2-1] [MQTT-2.2.2-2].
	{"CONNECT flags 0001", []byte("\x11\x0e\x00\x04MQTT\x04\x02\x00\x3c\x00\x02c1"), malformed},
	{"CONNACK flags 1000", []byte("\x28\x02\x00\x00"), malformed},
	{"PUBACK flags 0010", []byte("\x42\x02\x00\x01"), malformed},
	{"PUBREC flags 0001", []byte("\x51\x02\x00\x01"), malformed},
	{"PUBREL flags 0000", []byte("\x60\x02\x00\x01"), malformed},
	{"PUBREL flags 0011", []byte("\x63\x02\x00\x01"), malformed},
	{"PUBCOMP flags 0100", []byte("\x74\x02\x00\x01"), malformed},
	{"SUBSCRIBE flags 0000", []byte("\x80\x06\x00\x01\x00\x01a\x00"), malformed},
	{"SUBSCRIBE flags 1010", []byte("\x8a\x06\x00\x01\x00\x01a\x00"), malformed},
	{"SUBACK flags 0010", []byte("\x92\x03\x00\x01\x00"), malformed},
	{"UNSUBSCRIBE flags 0000", []byte("\xa0\x05\x00\x01\x00\x01a"), malformed},
	{"UNSUBSCRIBE flags 0011", []byte("\xa3\x05\x00\x01\x00\x01a"), malformed},
	{"UNSUBACK flags 0010", []byte("\xb2\x02\x00\x01"), malformed},
	{"PINGREQ flags 0001", []byte("\xc1\x00"), malformed},
	{"PINGRESP flags 1000", []byte("\xd8\x00"), malformed},
	{"DISCONNECT flags 0010", []byte("\xe2\x00"), malformed},

	// Reserved packet types 0 and 15 [MQTT-2.2.1].
	{"reserved type 0", []byte("\x00\x00"), malformed},
	{"reserved type 0 with flags", []byte("\x0f\x00"), malformed},
	{"reserved type 15", []byte("\xf0\x00"), malformed},
	{"reserved type 15 with flags", []byte("\xff\x00"), malformed},
	{"AUTH at 3.1.1 is reserved type 15", []byte("\xf0\x02\x18\x00"), malformed},

	// Remaining length of more than four bytes [MQTT-2.2.3].
	{"remaining length 5 bytes", []byte("\x30\xff\xff\xff\xff\x7f"), malformed},
	{"remaining length 5 bytes zero value", []byte("\xc0\x80\x80\x80\x80\x00"), malformed},

	// Bodies too short for their fields.
	{"PUBACK no packet id", []byte("\x40\x00"), malformed},
	{"PUBACK 1-byte packet id", []byte("\x40\x01\x00"), malformed},
	{"PUBREC no packet id", []byte("\x50\x00"), malformed},
	{"PUBREL no packet id", []byte("\x62\x00"), malformed},
	{"PUBCOMP no packet id", []byte("\x70\x01\x01"), malformed},
	{"UNSUBACK no packet id", []byte("\xb0\x00"), malformed},
	{"CONNECT empty body", []byte("\x10\x00"), malformed},
	{"CONNECT protocol name longer than packet", []byte("\x10\x04\x00\x04MQ"), malformed},
	{"CONNECT no protocol level", []byte("\x10\x06\x00\x04MQTT"), malformed},
	{"CONNECT no connect flags", []byte("\x10\x07\x00\x04MQTT\x04"), malformed},
	{"CONNECT 1-byte keep alive", []byte("\x10\x09\x00\x04MQTT\x04\x02\x00"), malformed},
	{"CONNECT no client id", []byte("\x10\x0a\x00\x04MQTT\x04\x02\x00\x3c"), malformed},
	{"CONNECT client id longer than packet", []byte("\x10\x0e\x00\x04MQTT\x04\x02\x00\x3c\x00\x05ab"), malformed},
	{"CONNECT will flag but no will topic", []byte("\x10\x0d\x00\x04MQTT\x04\x06\x00\x3c\x00\x01x"), malformed},
	{"CONNECT will flag but no will message", []byte("\x10\x10\x00\x04MQTT\x04\x06\x00\x3c\x00\x01x\x00\x01w"), malformed},
	{"CONNECT will message longer than packet", []byte("\x10\x13\x00\x04MQTT\x04\x06\x00\x3c\x00\x01x\x00\x01w\x00\x05a"), malformed},
	{"CONNECT user name flag but no user name", []byte("\x10\x0d\x00\x04MQTT\x04\x82\x00\x3c\x00\x01x"), malformed},
	{"CONNECT password flag but no password", []byte("\x10\x10\x00\x04MQTT\x04\xc2\x00\x3c\x00\x01x\x00\x01u"), malformed},
	{"CONNACK empty body", []byte("\x20\x00"), malformed},
	{"CONNACK no return code", []byte("\x20\x01\x00"), malformed},
	{"PUBLISH empty body", []byte("\x30\x00"), malformed},
	{"PUBLISH 1-byte topic length", []byte("\x30\x01\x00"), malformed},
	{"PUBLISH topic longer than packet", []byte("\x30\x03\x00\x05a"), malformed},
	{"PUBLISH QoS 1 no packet id", []byte("\x32\x03\x00\x01t"), malformed},
	{"PUBLISH QoS 2 1-byte packet id", []byte("\x34\x04\x00\x01t\x00"), malformed},
	{"SUBSCRIBE empty body", []byte("\x82\x00"), malformed},
	{"SUBSCRIBE 1-byte packet id", []byte("\x82\x01\x00"), malformed},
	{"SUBSCRIBE filter without QoS byte", []byte("\x82\x05\x00\x01\x00\x01a"), malformed},
	{"SUBSCRIBE filter longer than packet", []byte("\x82\x05\x00\x01\x00\x05a"), malformed},
	{"SUBSCRIBE second filter 1-byte length", []byte("\x82\x07\x00\x01\x00\x01a\x00\x00"), malformed},
	{"SUBACK empty body", []byte("\x90\x00"), malformed},
	{"SUBACK no return code", []byte("\x90\x02\x00\x01"), malformed},
	{"UNSUBSCRIBE empty body", []byte("\xa2\x00"), malformed},
	{"UNSUBSCRIBE filter longer than packet", []byte("\xa2\x04\x00\x01\x00\x05"), malformed},
	{"UNSUBSCRIBE 1-byte filter length", []byte("\xa2\x06\x00\x01\x00\x01a\x00"), malformed},

	// Bytes past the end of the packet.
	{"CONNECT trailing byte", []byte("\x10\x0f\x00\x04MQTT\x04\x02\x00\x3c\x00\x02c1\x00"), malformed},
	{"CONNACK trailing byte", []byte("\x20\x03\x00\x00\x00"), malformed},
	{"PUBACK trailing byte", []byte("\x40\x03\x00\x01\x00"), malformed},
	{"PUBREC trailing byte", []byte("\x50\x03\x00\x01\x00"), malformed},
	{"PUBREL trailing byte", []byte("\x62\x03\x00\x01\x00"), malformed},
	{"PUBCOMP trailing bytes", []byte("\x70\x04\x00\x01\x00\x01"), malformed},
	{"UNSUBACK trailing byte", []byte("\xb0\x03\x00\x01\x00"), malformed},
	{"PINGREQ with body", []byte("\xc0\x01\x00"), malformed},
	{"PINGRESP with body", []byte("\xd0\x01\x00"), malformed},
	{"DISCONNECT with body", []byte("\xe0\x01\x00"), malformed},

	// Packet identifier 0 [MQTT-2.3.1-1].
	{"PUBLISH QoS 1 packet id 0", []byte("\x32\x05\x00\x01t\x00\x00"), malformed},
	{"PUBLISH QoS 2 packet id 0", []byte("\x34\x06\x00\x01t\x00\x00x"), malformed},
	{"PUBACK packet id 0", []byte("\x40\x02\x00\x00"), malformed},
	{"PUBREC packet id 0", []byte("\x50\x02\x00\x00"), malformed},
	{"PUBREL packet id 0", []byte("\x62\x02\x00\x00"), malformed},
	{"PUBCOMP packet id 0", []byte("\x70\x02\x00\x00"), malformed},
	{"SUBSCRIBE packet id 0", []byte("\x82\x06\x00\x00\x00\x01a\x00"), malformed},
	{"SUBACK packet id 0", []byte("\x90\x03\x00\x00\x00"), malformed},
	{"UNSUBSCRIBE packet id 0", []byte("\xa2\x05\x00\x00\x00\x01a"), malformed},
	{"UNSUBACK packet id 0", []byte("\xb0\x02\x00\x00"), malformed},

	// CONNECT flags [MQTT-3.1.2-3] [MQTT-3.1.2-11] [MQTT-3.1.2-13]
	// [MQTT-3.1.2-14] [MQTT-3.1.2-15] [MQTT-3.1.2-22].
	{"CONNECT reserved flag", []byte("\x10\x0e\x00\x04MQTT\x04\x03\x00\x3c\x00\x02c1"), malformed},
	{"CONNECT will QoS 3", []byte("\x10\x12\x00\x04MQTT\x04\x1e\x00\x3c\x00\x01x\x00\x01w\x00\x00"), malformed},
	{"CONNECT will QoS 1 without will flag", []byte("\x10\x0d\x00\x04MQTT\x04\x0a\x00\x3c\x00\x01x"), malformed},
	{"CONNECT will QoS 2 without will flag", []byte("\x10\x0d\x00\x04MQTT\x04\x12\x00\x3c\x00\x01x"), malformed},
	{"CONNECT will QoS 3 without will flag", []byte("\x10\x0d\x00\x04MQTT\x04\x1a\x00\x3c\x00\x01x"), malformed},
	{"CONNECT will retain without will flag", []byte("\x10\x0d\x00\x04MQTT\x04\x22\x00\x3c\x00\x01x"), malformed},
	{"CONNECT password without user name", []byte("\x10\x10\x00\x04MQTT\x04\x42\x00\x3c\x00\x01x\x00\x01p"), malformed},

	// Protocol name and level [MQTT-3.1.2-1] [MQTT-3.1.2-2].
	{"CONNECT protocol name mqtt", []byte("\x10\x0d\x00\x04mqtt\x04\x02\x00\x3c\x00\x01x"), protocolErr},
	{"CONNECT protocol name HTTP", []byte("\x10\x0d\x00\x04HTTP\x04\x02\x00\x3c\x00\x01x"), protocolErr},
	{"CONNECT empty protocol name", []byte("\x10\x09\x00\x00\x04\x02\x00\x3c\x00\x01x"), protocolErr},
	{"CONNECT protocol name MQIsdpX", []byte("\x10\x10\x00\x07MQIsdpX\x03\x02\x00\x3c\x00\x01x"), protocolErr},
	{"CONNECT MQTT level 3", []byte("\x10\x0d\x00\x04MQTT\x03\x02\x00\x3c\x00\x01x"), unsupported},
	{"CONNECT MQTT level 6", []byte("\x10\x0e\x00\x04MQTT\x06\x02\x00\x3c\x00\x00\x01x"), unsupported},
	{"CONNECT MQTT level 0", []byte("\x10\x0d\x00\x04MQTT\x00\x02\x00\x3c\x00\x01x"), unsupported},
	{"CONNECT MQTT level 255", []byte("\x10\x0d\x00\x04MQTT\xff\x02\x00\x3c\x00\x01x"), unsupported},
	{"CONNECT MQIsdp level 4", []byte("\x10\x0f\x00\x06MQIsdp\x04\x02\x00\x3c\x00\x01x"), unsupported},

	// UTF-8 strings [MQTT-1.5.3-1] [MQTT-1.5.3-2].
	{"CONNECT protocol name invalid UTF-8", []byte("\x10\x0d\x00\x04MQ\xffT\x04\x02\x00\x3c\x00\x01x"), malformed},
	{"CONNECT client id invalid UTF-8", []byte("\x10\x0d\x00\x04MQTT\x04\x02\x00\x3c\x00\x01\xff"), malformed},
	{"CONNECT client id surrogate U+D800", []byte("\x10\x0f\x00\x04MQTT\x04\x02\x00\x3c\x00\x03\xed\xa0\x80"), malformed},
	{"CONNECT client id U+0000", []byte("\x10\x0f\x00\x04MQTT\x04\x02\x00\x3c\x00\x03a\x00b"), malformed},
	{"CONNECT client id overlong encoding", []byte("\x10\x0e\x00\x04MQTT\x04\x02\x00\x3c\x00\x02\xc0\xaf"), malformed},
	{"CONNECT client id above U+10FFFF", []byte("\x10\x10\x00\x04MQTT\x04\x02\x00\x3c\x00\x04\xf4\x90\x80\x80"), malformed},
	{"CONNECT client id truncated sequence", []byte("\x10\x0d\x00\x04MQTT\x04\x02\x00\x3c\x00\x01\xc3"), malformed},
	{"CONNECT will topic invalid UTF-8", []byte("\x10\x12\x00\x04MQTT\x04\x06\x00\x3c\x00\x01x\x00\x01\xff\x00\x00"), malformed},
	{"CONNECT will topic U+0000", []byte("\x10\x12\x00\x04MQTT\x04\x06\x00\x3c\x00\x01x\x00\x01\x00\x00\x00"), malformed},
	{"CONNECT will topic wildcard", []byte("\x10\x14\x00\x04MQTT\x04\x06\x00\x3c\x00\x01x\x00\x03a/#\x00\x00"), malformed},
	{"CONNECT will topic empty", []byte("\x10\x11\x00\x04MQTT\x04\x06\x00\x3c\x00\x01x\x00\x00\x00\x00"), malformed},
	{"CONNECT user name invalid UTF-8", []byte("\x10\x10\x00\x04MQTT\x04\x82\x00\x3c\x00\x01x\x00\x01\xff"), malformed},
	{"CONNECT user name U+0000", []byte("\x10\x10\x00\x04MQTT\x04\x82\x00\x3c\x00\x01x\x00\x01\x00"), malformed},
	{"CONNECT user name surrogate U+DFFF", []byte("\x10\x12\x00\x04MQTT\x04\x82\x00\x3c\x00\x01x\x00\x03\xed\xbf\xbf"), malformed},

	// PUBLISH [MQTT-3.3.1-2] [MQTT-3.3.1-4] [MQTT-3.3.2-2] [MQTT-4.7.3-1].
	{"PUBLISH QoS 3", []byte("\x36\x05\x00\x01t\x00\x01"), malformed},
	{"PUBLISH QoS 3 dup retain", []byte("\x3f\x05\x00\x01t\x00\x01"), malformed},
	{"PUBLISH QoS 0 dup", []byte("\x38\x04\x00\x01tx"), malformed},
	{"PUBLISH QoS 0 dup retain", []byte("\x39\x04\x00\x01tx"), malformed},
	{"PUBLISH topic with +", []byte("\x30\x05\x00\x03a/+"), malformed},
	{"PUBLISH topic #", []byte("\x30\x03\x00\x01#"), malformed},
	{"PUBLISH QoS 1 topic with #", []byte("\x32\x07\x00\x03a/#\x00\x01"), malformed},
	{"PUBLISH topic with + inside a level", []byte("\x30\x05\x00\x03a+b"), malformed},
	{"PUBLISH empty topic", []byte("\x30\x04\x00\x00hi"), malformed},
	{"PUBLISH QoS 1 empty topic", []byte("\x32\x04\x00\x00\x00\x01"), malformed},
	{"PUBLISH topic U+0000", []byte("\x30\x05\x00\x03a\x00b"), malformed},
	{"PUBLISH topic invalid UTF-8", []byte("\x30\x04\x00\x02\xc3\x28"), malformed},
	{"PUBLISH topic surrogate", []byte("\x30\x05\x00\x03\xed\xa0\x80"), malformed},

	// SUBSCRIBE payload [MQTT-3-8.3-4] [MQTT-3.8.3-3].
	{"SUBSCRIBE QoS byte 3", []byte("\x82\x06\x00\x01\x00\x01a\x03"), malformed},
	{"SUBSCRIBE reserved bit 2", []byte("\x82\x06\x00\x01\x00\x01a\x04"), malformed},
	{"SUBSCRIBE reserved bit 7", []byte("\x82\x06\x00\x01\x00\x01a\x80"), malformed},
	{"SUBSCRIBE reserved bit 6 with QoS 1", []byte("\x82\x06\x00\x01\x00\x01a\x41"), malformed},
	{"SUBSCRIBE second filter QoS 3", []byte("\x82\x0a\x00\x01\x00\x01a\x01\x00\x01b\x03"), malformed},
	{"SUBSCRIBE filter invalid UTF-8", []byte("\x82\x06\x00\x01\x00\x01\xff\x00"), malformed},
	{"SUBSCRIBE filter U+0000", []byte("\x82\x06\x00\x01\x00\x01\x00\x00"), malformed},
	{"SUBSCRIBE filter surrogate", []byte("\x82\x08\x00\x01\x00\x03\xed\xa0\x80\x00"), malformed},
	{"SUBSCRIBE no filter", []byte("\x82\x02\x00\x01"), protocolErr},

	// UNSUBSCRIBE payload [MQTT-3.10.3-2].
	{"UNSUBSCRIBE no filter", []byte("\xa2\x02\x00\x01"), protocolErr},
	{"UNSUBSCRIBE filter invalid UTF-8", []byte("\xa2\x05\x00\x01\x00\x01\xff"), malformed},
	{"UNSUBSCRIBE filter U+0000", []byte("\xa2\x05\x00\x01\x00\x01\x00"), malformed},

	// CONNACK [MQTT-3.2.2.1] [MQTT-3.2.2-4] [MQTT-3.2.2.3].
	{"CONNACK reserved flag bit 1", []byte("\x20\x02\x02\x00"), malformed},
	{"CONNACK reserved flag bit 7", []byte("\x20\x02\x80\x00"), malformed},
	{"CONNACK all flags", []byte("\x20\x02\xff\x00"), malformed},
	{"CONNACK return code 6", []byte("\x20\x02\x00\x06"), malformed},
	{"CONNACK return code 255", []byte("\x20\x02\x00\xff"), malformed},
	{"CONNACK session present with refusal", []byte("\x20\x02\x01\x05"), malformed},
	{"CONNACK session present with bad protocol version", []byte("\x20\x02\x01\x01"), malformed},

	// SUBACK return codes [MQTT-3.9.3-2].
	{"SUBACK return code 3", []byte("\x90\x03\x00\x01\x03"), malformed},
	{"SUBACK return code 0x81", []byte("\x90\x03\x00\x01\x81"), malformed},
	{"SUBACK bad third code", []byte("\x90\x05\x00\x01\x00\x01\x7f"), malformed},
	{"SUBACK return code 0xff after failure", []byte("\x90\x04\x00\x01\x80\xff"), malformed},
}
