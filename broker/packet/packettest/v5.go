package packettest

import "github.com/edged/edged/broker/packet"

// MQTT 5.0 fixtures, written by hand from the MQTT 5.0 specification (OASIS
// Standard, 7 March 2019), chapters 2 and 3. Properties are listed in
// identifier order in Raw, the order the encoder writes them; the decoder
// takes any order.

func b8(v byte) *byte      { return &v }
func u16(v uint16) *uint16 { return &v }
func u32(v uint32) *uint32 { return &v }
func str(s string) *string { return &s }

// Valid5 holds well-formed MQTT 5.0 packets of all fifteen types, decoded
// and encoded at packet.V5.
var Valid5 = []Case{
	// CONNECT [MQTT-3.1].
	{
		Name:    "CONNECT 5.0 minimal",
		Raw:     []byte("\x10\x0e\x00\x04MQTT\x05\x02\x00\x3c\x00\x00\x01x"),
		Packet:  &packet.Connect{ProtocolName: "MQTT", ProtocolLevel: 5, CleanSession: true, KeepAlive: 60, ClientID: "x"},
		Version: packet.V5,
	},
	{
		// 5.0 allows a password without a user name [MQTT-3.1.2.9].
		Name: "CONNECT 5.0 properties, will properties, password without user name",
		Raw: cat([]byte("\x10\x6e\x00\x04MQTT\x05\x4e\x00\x0a"),
			[]byte("\x24"+
				"\x11\x00\x00\x0e\x10"+ // session expiry 3600
				"\x15\x00\x02pw"+ // authentication method
				"\x16\x00\x01z"+ // authentication data
				"\x17\x00"+ // request problem information 0
				"\x19\x01"+ // request response information 1
				"\x21\x00\x14"+ // receive maximum 20
				"\x22\x00\x05"+ // topic alias maximum 5
				"\x26\x00\x01a\x00\x01b"+ // user property a=b
				"\x27\x00\x01\x00\x00"), // maximum packet size 65536
			[]byte("\x00\x02c5"),
			[]byte("\x2c"+
				"\x01\x01"+ // payload format 1
				"\x02\x00\x00\x00\x3c"+ // message expiry 60
				"\x03\x00\x04text"+ // content type
				"\x08\x00\x03r/t"+ // response topic
				"\x09\x00\x02\x01\x02"+ // correlation data
				"\x18\x00\x00\x00\x1e"+ // will delay 30
				"\x26\x00\x01k\x00\x01v"+ // user property k=v
				"\x26\x00\x01k\x00\x01w"), // and k=w, in order
			[]byte("\x00\x03w/t\x00\x03bye\x00\x02pw")),
		Packet: &packet.Connect{ProtocolName: "MQTT", ProtocolLevel: 5, CleanSession: true, KeepAlive: 10, ClientID: "c5",
			Properties: &packet.Properties{SessionExpiry: u32(3600), AuthMethod: "pw", AuthData: []byte("z"),
				RequestProblemInfo: b8(0), RequestResponseInfo: b8(1), ReceiveMaximum: u16(20),
				TopicAliasMaximum: u16(5), User: []packet.UserProperty{{Key: "a", Value: "b"}},
				MaximumPacketSize: u32(65536)},
			Will: &packet.Will{Topic: "w/t", Payload: []byte("bye"), QoS: 1, Properties: &packet.Properties{
				PayloadFormat: b8(1), MessageExpiry: u32(60), ContentType: "text", ResponseTopic: "r/t",
				CorrelationData: []byte{1, 2}, WillDelay: u32(30),
				User: []packet.UserProperty{{Key: "k", Value: "v"}, {Key: "k", Value: "w"}}}},
			Password: []byte("pw")},
		Version: packet.V5,
	},
	{
		Name: "CONNECT 5.0 user name and will without properties",
		Raw:  []byte("\x10\x18\x00\x04MQTT\x05\xa4\x00\x00\x00\x00\x01x\x00\x00\x01w\x00\x01m\x00\x01u"),
		Packet: &packet.Connect{ProtocolName: "MQTT", ProtocolLevel: 5, ClientID: "x",
			Will: &packet.Will{Topic: "w", Payload: []byte("m"), Retain: true}, Username: str("u")},
		Version: packet.V5,
	},

	// CONNACK [MQTT-3.2].
	{Name: "CONNACK 5.0 accepted", Raw: []byte("\x20\x03\x00\x00\x00"), Packet: &packet.Connack{}, Version: packet.V5},
	{
		Name:    "CONNACK 5.0 unsupported protocol version",
		Raw:     []byte("\x20\x03\x00\x84\x00"),
		Packet:  &packet.Connack{Reason: packet.UnsupportedProtocolVersion},
		Version: packet.V5,
	},
	{
		Name: "CONNACK 5.0 session present, every CONNACK property",
		Raw: []byte("\x20\x43\x01\x00\x40" +
			"\x11\x00\x00\x00\x00" + // session expiry 0
			"\x12\x00\x03abc" + // assigned client identifier
			"\x13\x00\x3c" + // server keep alive 60
			"\x15\x00\x01m" + // authentication method
			"\x16\x00\x01d" + // authentication data
			"\x1a\x00\x02ri" + // response information
			"\x1c\x00\x02sr" + // server reference
			"\x1f\x00\x02ok" + // reason string
			"\x21\x00\x0a" + // receive maximum 10
			"\x22\x00\x00" + // topic alias maximum 0
			"\x24\x01" + // maximum QoS 1
			"\x25\x00" + // retain available 0
			"\x26\x00\x01x\x00\x00" + // user property x=""
			"\x27\x00\x00\x10\x00" + // maximum packet size 4096
			"\x28\x01" + // wildcard subscription available
			"\x29\x00" + // subscription identifiers available
			"\x2a\x01"), // shared subscription available
		Packet: &packet.Connack{SessionPresent: true, Properties: &packet.Properties{
			SessionExpiry: u32(0), AssignedClientID: "abc", ServerKeepAlive: u16(60), AuthMethod: "m",
			AuthData: []byte("d"), ResponseInfo: "ri", ServerReference: "sr", ReasonString: "ok",
			ReceiveMaximum: u16(10), TopicAliasMaximum: u16(0), MaximumQoS: b8(1), RetainAvailable: b8(0),
			User: []packet.UserProperty{{Key: "x"}}, MaximumPacketSize: u32(4096),
			WildcardSubAvailable: b8(1), SubIDAvailable: b8(0), SharedSubAvailable: b8(1)}},
		Version: packet.V5,
	},

	// PUBLISH [MQTT-3.3].
	{
		Name:    "PUBLISH 5.0 QoS 0 no properties",
		Raw:     []byte("\x30\x08\x00\x03a/b\x00hi"),
		Packet:  &packet.Publish{Topic: "a/b", Payload: []byte("hi")},
		Version: packet.V5,
	},
	{
		Name: "PUBLISH 5.0 QoS 1 every PUBLISH property",
		Raw: []byte("\x32\x44\x00\x03a/b\x00\x07\x38" +
			"\x01\x01" + // payload format 1
			"\x02\x00\x00\x00\x3c" + // message expiry 60
			"\x03\x00\x0atext/plain" + // content type
			"\x08\x00\x05reply" + // response topic
			"\x09\x00\x03\x01\x02\x03" + // correlation data
			"\x0b\x05" + // subscription identifier 5
			"\x0b\xff\x7f" + // subscription identifier 16383
			"\x23\x00\x02" + // topic alias 2
			"\x26\x00\x01a\x00\x011" + // user property a=1
			"\x26\x00\x01a\x00\x012" + // user property a=2
			"data"),
		Packet: &packet.Publish{QoS: 1, Topic: "a/b", PacketID: 7, Payload: []byte("data"), Properties: &packet.Properties{
			PayloadFormat: b8(1), MessageExpiry: u32(60), ContentType: "text/plain", ResponseTopic: "reply",
			CorrelationData: []byte{1, 2, 3}, SubscriptionIDs: []uint32{5, 16383}, TopicAlias: u16(2),
			User: []packet.UserProperty{{Key: "a", Value: "1"}, {Key: "a", Value: "2"}}}},
		Version: packet.V5,
	},
	{
		// A zero-length topic name with a topic alias [MQTT-3.3.2.3.4].
		Name:    "PUBLISH 5.0 QoS 2 retain empty topic with topic alias",
		Raw:     []byte("\x35\x09\x00\x00\x00\x01\x03\x23\x00\x01x"),
		Packet:  &packet.Publish{QoS: 2, Retain: true, PacketID: 1, Payload: []byte("x"), Properties: &packet.Properties{TopicAlias: u16(1)}},
		Version: packet.V5,
	},
	{
		Name:    "PUBLISH 5.0 largest subscription identifier",
		Raw:     []byte("\x30\x09\x00\x01t\x05\x0b\xff\xff\xff\x7f"),
		Packet:  &packet.Publish{Topic: "t", Payload: []byte{}, Properties: &packet.Properties{SubscriptionIDs: []uint32{packet.MaxSubscriptionID}}},
		Version: packet.V5,
	},

	// PUBACK, PUBREC, PUBREL, PUBCOMP [MQTT-3.4] to [MQTT-3.7]: the reason
	// code is omitted when it is Success without properties, the property
	// length when there are no properties.
	{Name: "PUBACK 5.0 success omitted", Raw: []byte("\x40\x02\x00\x01"), Packet: &packet.Puback{PacketID: 1}, Version: packet.V5},
	{
		Name:    "PUBACK 5.0 no matching subscribers",
		Raw:     []byte("\x40\x03\x00\x01\x10"),
		Packet:  &packet.Puback{PacketID: 1, Reason: packet.NoMatchingSubscribers},
		Version: packet.V5,
	},
	{
		Name:    "PUBACK 5.0 not authorized",
		Raw:     []byte("\x40\x03\xff\xff\x87"),
		Packet:  &packet.Puback{PacketID: 65535, Reason: packet.NotAuthorized},
		Version: packet.V5,
	},
	{
		Name:    "PUBREC 5.0 unspecified error with reason string",
		Raw:     []byte("\x50\x08\x00\x02\x80\x04\x1f\x00\x01e"),
		Packet:  &packet.Pubrec{PacketID: 2, Reason: packet.UnspecifiedError, Properties: &packet.Properties{ReasonString: "e"}},
		Version: packet.V5,
	},
	{
		Name:    "PUBREL 5.0 packet identifier not found",
		Raw:     []byte("\x62\x03\x00\x03\x92"),
		Packet:  &packet.Pubrel{PacketID: 3, Reason: packet.PacketIdentifierNotFound},
		Version: packet.V5,
	},
	{
		Name:    "PUBCOMP 5.0 success with user property",
		Raw:     []byte("\x70\x0b\x00\x04\x00\x07\x26\x00\x01k\x00\x01v"),
		Packet:  &packet.Pubcomp{PacketID: 4, Properties: &packet.Properties{User: []packet.UserProperty{{Key: "k", Value: "v"}}}},
		Version: packet.V5,
	},

	// SUBSCRIBE [MQTT-3.8].
	{
		Name: "SUBSCRIBE 5.0 options and subscription identifier",
		Raw: []byte("\x82\x26\x00\x0a\x0a\x0b\x80\x01\x26\x00\x01u\x00\x01v" +
			"\x00\x03a/b\x2d" + // QoS 1, no local, retain as published, retain handling 2
			"\x00\x01#\x12" + // QoS 2, retain handling 1
			"\x00\x0c$share/g/x/+\x00"),
		Packet: &packet.Subscribe{PacketID: 10, Properties: &packet.Properties{SubscriptionIDs: []uint32{128},
			User: []packet.UserProperty{{Key: "u", Value: "v"}}},
			Subscriptions: []packet.Subscription{
				{Filter: "a/b", QoS: 1, NoLocal: true, RetainAsPublished: true, RetainHandling: 2},
				{Filter: "#", QoS: 2, RetainHandling: 1},
				{Filter: "$share/g/x/+"}}},
		Version: packet.V5,
	},

	// SUBACK [MQTT-3.9].
	{
		Name: "SUBACK 5.0 granted and refused with reason string",
		Raw:  []byte("\x90\x0d\x00\x0a\x05\x1f\x00\x02no\x01\x02\x87\xa2\x00"),
		Packet: &packet.Suback{PacketID: 10, Properties: &packet.Properties{ReasonString: "no"},
			Reasons: []packet.Reason{packet.GrantedQoS1, packet.GrantedQoS2, packet.NotAuthorized,
				packet.WildcardSubscriptionsNotSupported, packet.GrantedQoS0}},
		Version: packet.V5,
	},

	// UNSUBSCRIBE, UNSUBACK [MQTT-3.10], [MQTT-3.11].
	{
		Name: "UNSUBSCRIBE 5.0 with user property",
		Raw:  []byte("\xa2\x12\x00\x05\x07\x26\x00\x01a\x00\x01b\x00\x03a/b\x00\x01#"),
		Packet: &packet.Unsubscribe{PacketID: 5, Filters: []string{"a/b", "#"},
			Properties: &packet.Properties{User: []packet.UserProperty{{Key: "a", Value: "b"}}}},
		Version: packet.V5,
	},
	{
		Name:    "UNSUBACK 5.0 reasons",
		Raw:     []byte("\xb0\x05\x00\x05\x00\x00\x11"),
		Packet:  &packet.Unsuback{PacketID: 5, Reasons: []packet.Reason{packet.Success, packet.NoSubscriptionExisted}},
		Version: packet.V5,
	},

	// PINGREQ, PINGRESP [MQTT-3.12], [MQTT-3.13].
	{Name: "PINGREQ 5.0", Raw: []byte("\xc0\x00"), Packet: &packet.Pingreq{}, Version: packet.V5},
	{Name: "PINGRESP 5.0", Raw: []byte("\xd0\x00"), Packet: &packet.Pingresp{}, Version: packet.V5},

	// DISCONNECT [MQTT-3.14].
	{Name: "DISCONNECT 5.0 normal", Raw: []byte("\xe0\x00"), Packet: &packet.Disconnect{}, Version: packet.V5},
	{
		Name:    "DISCONNECT 5.0 with will message",
		Raw:     []byte("\xe0\x01\x04"),
		Packet:  &packet.Disconnect{Reason: packet.DisconnectWithWill},
		Version: packet.V5,
	},
	{
		Name: "DISCONNECT 5.0 use another server",
		Raw:  []byte("\xe0\x0f\x9c\x0d\x11\x00\x00\x00\x00\x1c\x00\x01s\x1f\x00\x01r"),
		Packet: &packet.Disconnect{Reason: packet.UseAnotherServer, Properties: &packet.Properties{
			SessionExpiry: u32(0), ServerReference: "s", ReasonString: "r"}},
		Version: packet.V5,
	},

	// AUTH [MQTT-3.15].
	{Name: "AUTH 5.0 success omitted", Raw: []byte("\xf0\x00"), Packet: &packet.Auth{}, Version: packet.V5},
	{
		Name: "AUTH 5.0 continue authentication",
		Raw:  []byte("\xf0\x0f\x18\x0d\x15\x00\x05SCRAM\x16\x00\x02hi"),
		Packet: &packet.Auth{Reason: packet.ContinueAuthentication, Properties: &packet.Properties{
			AuthMethod: "SCRAM", AuthData: []byte("hi")}},
		Version: packet.V5,
	},
}

// Invalid5 holds MQTT 5.0 packets the decoder must refuse at packet.V5.
var Invalid5 = []BadCase{
	// Properties [MQTT-2.2.2]: unknown or not allowed identifiers are
	// malformed [MQTT-2.2.2.2], a non-repeatable property twice and values
	// the property forbids are protocol errors.
	{"PUBLISH 5.0 message expiry twice", []byte("\x30\x0e\x00\x01t\x0a\x02\x00\x00\x00\x01\x02\x00\x00\x00\x02"), protocolErr},
	{"PUBLISH 5.0 session expiry not allowed", []byte("\x30\x09\x00\x01t\x05\x11\x00\x00\x00\x01"), malformed},
	{"PUBLISH 5.0 unknown property 0x04", []byte("\x30\x06\x00\x01t\x02\x04\x00"), malformed},
	{"PUBLISH 5.0 unknown property 0x7f", []byte("\x30\x06\x00\x01t\x02\x7f\x00"), malformed},
	{"PUBLISH 5.0 property identifier 0", []byte("\x30\x06\x00\x01t\x02\x00\x00"), malformed},
	{"PUBLISH 5.0 topic alias 0", []byte("\x30\x07\x00\x01t\x03\x23\x00\x00"), protocolErr},
	{"PUBLISH 5.0 topic alias twice", []byte("\x30\x0a\x00\x01t\x06\x23\x00\x01\x23\x00\x02"), protocolErr},
	{"PUBLISH 5.0 subscription identifier 0", []byte("\x30\x06\x00\x01t\x02\x0b\x00"), protocolErr},
	{"PUBLISH 5.0 payload format 2", []byte("\x30\x06\x00\x01t\x02\x01\x02"), protocolErr},
	{"PUBLISH 5.0 content type invalid UTF-8", []byte("\x30\x08\x00\x01t\x04\x03\x00\x01\xff"), malformed},
	{"PUBLISH 5.0 content type U+0000", []byte("\x30\x08\x00\x01t\x04\x03\x00\x01\x00"), malformed},
	{"PUBLISH 5.0 user property name U+0000", []byte("\x30\x0b\x00\x01t\x07\x26\x00\x01\x00\x00\x01v"), malformed},
	{"PUBLISH 5.0 user property value invalid UTF-8", []byte("\x30\x0b\x00\x01t\x07\x26\x00\x01k\x00\x01\xff"), malformed},
	{"PUBLISH 5.0 user property without value", []byte("\x30\x08\x00\x01t\x04\x26\x00\x01k"), malformed},
	{"PUBLISH 5.0 subscription identifier five bytes", []byte("\x30\x0a\x00\x01t\x06\x0b\xff\xff\xff\xff\x7f"), malformed},
	{"PUBLISH 5.0 subscription identifier truncated", []byte("\x30\x06\x00\x01t\x02\x0b\x80"), malformed},
	{"PUBLISH 5.0 message expiry truncated", []byte("\x30\x07\x00\x01t\x03\x02\x00\x00"), malformed},
	{"PUBLISH 5.0 property length past the packet", []byte("\x30\x06\x00\x01t\x05\x01\x01"), malformed},
	{"PUBLISH 5.0 property length truncated", []byte("\x30\x04\x00\x01t\x80"), malformed},
	{"PUBLISH 5.0 property length five bytes", []byte("\x30\x08\x00\x01t\x80\x80\x80\x80\x01"), malformed},
	{"PUBLISH 5.0 property length not shortest", []byte("\x30\x05\x00\x01t\x80\x00"), malformed},
	{"PUBLISH 5.0 property identifier not shortest", []byte("\x30\x07\x00\x01t\x03\x81\x00\x01"), malformed},
	{"PUBLISH 5.0 subscription identifier not shortest", []byte("\x30\x07\x00\x01t\x03\x0b\x81\x00"), malformed},
	{"PUBLISH 5.0 property length huge", []byte("\x30\x07\x00\x01t\xff\xff\xff\x7f"), malformed},
	{"PUBLISH 5.0 no property length", []byte("\x30\x03\x00\x01t"), malformed},
	{"PUBLISH 5.0 QoS 1 no property length", []byte("\x32\x05\x00\x01t\x00\x01"), malformed},
	{"PUBLISH 5.0 empty topic without topic alias", []byte("\x30\x03\x00\x00\x00"), protocolErr},
	{"PUBLISH 5.0 topic with wildcard", []byte("\x30\x05\x00\x02a#\x00"), malformed},
	{"PUBLISH 5.0 response topic with wildcard", []byte("\x30\x0a\x00\x01t\x06\x08\x00\x03a/#"), malformed},
	{"PUBLISH 5.0 correlation data past the property length", []byte("\x30\x09\x00\x01t\x02\x09\x00\x02ab"), malformed},
	{"PUBLISH 5.0 QoS 3", []byte("\x36\x06\x00\x01t\x00\x01\x00"), malformed},

	// CONNECT [MQTT-3.1.2.11].
	{"CONNECT 5.0 receive maximum 0", []byte("\x10\x11\x00\x04MQTT\x05\x02\x00\x3c\x03\x21\x00\x00\x00\x01x"), protocolErr},
	{"CONNECT 5.0 maximum packet size 0", []byte("\x10\x13\x00\x04MQTT\x05\x02\x00\x3c\x05\x27\x00\x00\x00\x00\x00\x01x"), protocolErr},
	{"CONNECT 5.0 request problem information 2", []byte("\x10\x10\x00\x04MQTT\x05\x02\x00\x3c\x02\x17\x02\x00\x01x"), protocolErr},
	{"CONNECT 5.0 request response information 2", []byte("\x10\x10\x00\x04MQTT\x05\x02\x00\x3c\x02\x19\x02\x00\x01x"), protocolErr},
	{"CONNECT 5.0 session expiry twice", []byte("\x10\x18\x00\x04MQTT\x05\x02\x00\x3c\x0a\x11\x00\x00\x00\x01\x11\x00\x00\x00\x02\x00\x01x"), protocolErr},
	{"CONNECT 5.0 topic alias not allowed", []byte("\x10\x11\x00\x04MQTT\x05\x02\x00\x3c\x03\x23\x00\x01\x00\x01x"), malformed},
	{"CONNECT 5.0 will delay not allowed in CONNECT", []byte("\x10\x13\x00\x04MQTT\x05\x02\x00\x3c\x05\x18\x00\x00\x00\x01\x00\x01x"), malformed},
	{"CONNECT 5.0 session expiry not allowed in will", []byte("\x10\x19\x00\x04MQTT\x05\x06\x00\x3c\x00\x00\x01x\x05\x11\x00\x00\x00\x01\x00\x01w\x00\x00"), malformed},
	{"CONNECT 5.0 will payload format 2", []byte("\x10\x16\x00\x04MQTT\x05\x06\x00\x3c\x00\x00\x01x\x02\x01\x02\x00\x01w\x00\x00"), protocolErr},
	{"CONNECT 5.0 will without will properties", []byte("\x10\x11\x00\x04MQTT\x05\x06\x00\x3c\x00\x00\x01x\x00\x01w"), malformed},
	{"CONNECT 5.0 authentication data without method", []byte("\x10\x12\x00\x04MQTT\x05\x02\x00\x3c\x04\x16\x00\x01d\x00\x01x"), protocolErr},
	{"CONNECT 5.0 user property truncated", []byte("\x10\x13\x00\x04MQTT\x05\x02\x00\x3c\x05\x26\x00\x01k\x00\x00\x01x"), malformed},
	{"CONNECT 5.0 no property length", []byte("\x10\x0a\x00\x04MQTT\x05\x02\x00\x3c"), malformed},
	{"CONNECT 5.0 reserved flag", []byte("\x10\x0e\x00\x04MQTT\x05\x03\x00\x3c\x00\x00\x01x"), malformed},

	// CONNACK [MQTT-3.2].
	{"CONNACK 5.0 maximum QoS 2", []byte("\x20\x05\x00\x00\x02\x24\x02"), protocolErr},
	{"CONNACK 5.0 retain available 2", []byte("\x20\x05\x00\x00\x02\x25\x02"), protocolErr},
	{"CONNACK 5.0 wildcard subscription available 2", []byte("\x20\x05\x00\x00\x02\x28\x02"), protocolErr},
	{"CONNACK 5.0 subscription identifiers available 2", []byte("\x20\x05\x00\x00\x02\x29\x02"), protocolErr},
	{"CONNACK 5.0 shared subscription available 2", []byte("\x20\x05\x00\x00\x02\x2a\x02"), protocolErr},
	{"CONNACK 5.0 receive maximum 0", []byte("\x20\x06\x00\x00\x03\x21\x00\x00"), protocolErr},
	{"CONNACK 5.0 maximum packet size 0", []byte("\x20\x08\x00\x00\x05\x27\x00\x00\x00\x00"), protocolErr},
	{"CONNACK 5.0 reason code 0x8E", []byte("\x20\x03\x00\x8e\x00"), protocolErr},
	{"CONNACK 5.0 reason code 0x01", []byte("\x20\x03\x00\x01\x00"), protocolErr},
	{"CONNACK 5.0 session present with refusal", []byte("\x20\x03\x01\x80\x00"), malformed},
	{"CONNACK 5.0 reserved flag", []byte("\x20\x03\x02\x00\x00"), malformed},
	{"CONNACK 5.0 no property length", []byte("\x20\x02\x00\x00"), malformed},
	{"CONNACK 5.0 topic alias not allowed", []byte("\x20\x06\x00\x00\x03\x23\x00\x01"), malformed},

	// Acknowledgements [MQTT-3.4.2.1] to [MQTT-3.7.2.1].
	{"PUBACK 5.0 reason code 0x8E", []byte("\x40\x03\x00\x01\x8e"), protocolErr},
	{"PUBREC 5.0 reason code 0x92", []byte("\x50\x03\x00\x01\x92"), protocolErr},
	{"PUBREL 5.0 reason code 0x10", []byte("\x62\x03\x00\x01\x10"), protocolErr},
	{"PUBCOMP 5.0 reason code 0x80", []byte("\x70\x03\x00\x01\x80"), protocolErr},
	{"PUBACK 5.0 subscription identifier not allowed", []byte("\x40\x06\x00\x01\x00\x02\x0b\x01"), malformed},
	{"PUBACK 5.0 reason string twice", []byte("\x40\x0c\x00\x01\x00\x08\x1f\x00\x01a\x1f\x00\x01b"), protocolErr},
	{"PUBACK 5.0 trailing byte after properties", []byte("\x40\x05\x00\x01\x00\x00\x00"), malformed},
	{"PUBACK 5.0 packet id 0", []byte("\x40\x03\x00\x00\x00"), malformed},
	{"PUBREL 5.0 flags 0000", []byte("\x60\x03\x00\x01\x00"), malformed},

	// SUBSCRIBE [MQTT-3.8].
	{"SUBSCRIBE 5.0 retain handling 3", []byte("\x82\x07\x00\x01\x00\x00\x01a\x30"), protocolErr},
	{"SUBSCRIBE 5.0 reserved option bit 6", []byte("\x82\x07\x00\x01\x00\x00\x01a\x40"), malformed},
	{"SUBSCRIBE 5.0 reserved option bit 7", []byte("\x82\x07\x00\x01\x00\x00\x01a\x81"), malformed},
	{"SUBSCRIBE 5.0 QoS 3", []byte("\x82\x07\x00\x01\x00\x00\x01a\x03"), protocolErr},
	{"SUBSCRIBE 5.0 no local on shared subscription", []byte("\x82\x10\x00\x01\x00\x00\x0a$share/g/a\x04"), protocolErr},
	{"SUBSCRIBE 5.0 subscription identifier twice", []byte("\x82\x0b\x00\x01\x04\x0b\x01\x0b\x02\x00\x01a\x00"), protocolErr},
	{"SUBSCRIBE 5.0 subscription identifier 0", []byte("\x82\x09\x00\x01\x02\x0b\x00\x00\x01a\x00"), protocolErr},
	{"SUBSCRIBE 5.0 topic alias not allowed", []byte("\x82\x0a\x00\x01\x03\x23\x00\x01\x00\x01a\x00"), malformed},
	{"SUBSCRIBE 5.0 no filter", []byte("\x82\x03\x00\x01\x00"), protocolErr},
	{"SUBSCRIBE 5.0 filter without options", []byte("\x82\x06\x00\x01\x00\x00\x01a"), malformed},

	// SUBACK, UNSUBSCRIBE, UNSUBACK [MQTT-3.9] to [MQTT-3.11].
	{"SUBACK 5.0 reason code 0x10", []byte("\x90\x04\x00\x01\x00\x10"), protocolErr},
	{"SUBACK 5.0 reason code 0x03", []byte("\x90\x04\x00\x01\x00\x03"), protocolErr},
	{"SUBACK 5.0 no reason code", []byte("\x90\x03\x00\x01\x00"), malformed},
	{"UNSUBSCRIBE 5.0 no filter", []byte("\xa2\x03\x00\x01\x00"), protocolErr},
	{"UNSUBSCRIBE 5.0 filter invalid UTF-8", []byte("\xa2\x06\x00\x01\x00\x00\x01\xff"), malformed},
	{"UNSUBACK 5.0 reason code 0x01", []byte("\xb0\x04\x00\x01\x00\x01"), protocolErr},
	{"UNSUBACK 5.0 no reason code", []byte("\xb0\x03\x00\x01\x00"), malformed},
	{"UNSUBACK 5.0 no property length", []byte("\xb0\x02\x00\x01"), malformed},

	// DISCONNECT, AUTH [MQTT-3.14], [MQTT-3.15].
	{"DISCONNECT 5.0 reason code 0x84", []byte("\xe0\x01\x84"), protocolErr},
	{"DISCONNECT 5.0 topic alias not allowed", []byte("\xe0\x05\x00\x03\x23\x00\x01"), malformed},
	{"DISCONNECT 5.0 property length past the packet", []byte("\xe0\x03\x00\x05\x1f"), malformed},
	{"DISCONNECT 5.0 trailing byte", []byte("\xe0\x03\x00\x00\x00"), malformed},
	{"AUTH 5.0 reason code 0x87", []byte("\xf0\x01\x87"), protocolErr},
	{"AUTH 5.0 continue without method", []byte("\xf0\x01\x18"), protocolErr},
	{"AUTH 5.0 flags 0001", []byte("\xf1\x00"), malformed},
	{"AUTH 5.0 message expiry not allowed", []byte("\xf0\x07\x18\x05\x02\x00\x00\x00\x01"), malformed},
	{"PINGREQ 5.0 with body", []byte("\xc0\x01\x00"), malformed},
}
