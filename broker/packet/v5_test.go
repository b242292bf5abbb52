package packet_test

import (
	"bytes"
	"reflect"
	"runtime"
	"strconv"
	"testing"

	"github.com/edged/edged/broker/packet"
)

// propRef is table 2-4 of MQTT 5.0, written again here from the
// specification (not from properties.go) so the decoder's table is checked
// against an independent copy: each property with one valid encoded value
// and the packets that may carry it ("will" for will properties).
var propRef = []struct {
	id      byte
	value   string
	allowed []string
}{
	{0x01, "\x01", []string{"PUBLISH", "will"}},
	{0x02, "\x00\x00\x00\x01", []string{"PUBLISH", "will"}},
	{0x03, "\x00\x01s", []string{"PUBLISH", "will"}},
	{0x08, "\x00\x01r", []string{"PUBLISH", "will"}},
	{0x09, "\x00\x01b", []string{"PUBLISH", "will"}},
	{0x0b, "\x01", []string{"PUBLISH", "SUBSCRIBE"}},
	{0x11, "\x00\x00\x00\x01", []string{"CONNECT", "CONNACK", "DISCONNECT"}},
	{0x12, "\x00\x01s", []string{"CONNACK"}},
	{0x13, "\x00\x01", []string{"CONNACK"}},
	{0x15, "\x00\x01m", []string{"CONNECT", "CONNACK", "AUTH"}},
	{0x16, "\x00\x01d", []string{"CONNECT", "CONNACK", "AUTH"}},
	{0x17, "\x01", []string{"CONNECT"}},
	{0x18, "\x00\x00\x00\x01", []string{"will"}},
	{0x19, "\x01", []string{"CONNECT"}},
	{0x1a, "\x00\x01s", []string{"CONNACK"}},
	{0x1c, "\x00\x01s", []string{"CONNACK", "DISCONNECT"}},
	{0x1f, "\x00\x01s", []string{"CONNACK", "PUBACK", "PUBREC", "PUBREL", "PUBCOMP", "SUBACK", "UNSUBACK", "DISCONNECT", "AUTH"}},
	{0x21, "\x00\x01", []string{"CONNECT", "CONNACK"}},
	{0x22, "\x00\x01", []string{"CONNECT", "CONNACK"}},
	{0x23, "\x00\x01", []string{"PUBLISH"}},
	{0x24, "\x01", []string{"CONNACK"}},
	{0x25, "\x01", []string{"CONNACK"}},
	{0x26, "\x00\x01k\x00\x01v", []string{"CONNECT", "CONNACK", "PUBLISH", "will", "PUBACK", "PUBREC", "PUBREL",
		"PUBCOMP", "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "DISCONNECT", "AUTH"}},
	{0x27, "\x00\x00\x00\x01", []string{"CONNECT", "CONNACK"}},
	{0x28, "\x01", []string{"CONNACK"}},
	{0x29, "\x01", []string{"CONNACK"}},
	{0x2a, "\x01", []string{"CONNACK"}},
}

// withProps builds a 5.0 packet of the named kind whose property block (or
// will property block) is props.
func withProps(kind string, props []byte) (byte, []byte) {
	pl := string(varint(len(props))) + string(props)
	switch kind {
	case "CONNECT":
		return 0x10, []byte("\x00\x04MQTT\x05\x02\x00\x3c" + pl + "\x00\x01x")
	case "will":
		return 0x10, []byte("\x00\x04MQTT\x05\x06\x00\x3c\x00\x00\x01x" + pl + "\x00\x01w\x00\x00")
	case "CONNACK":
		return 0x20, []byte("\x00\x00" + pl)
	case "PUBLISH":
		return 0x30, []byte("\x00\x01t" + pl + "payload")
	case "PUBACK":
		return 0x40, []byte("\x00\x01\x00" + pl)
	case "PUBREC":
		return 0x50, []byte("\x00\x01\x00" + pl)
	case "PUBREL":
		return 0x62, []byte("\x00\x01\x00" + pl)
	case "PUBCOMP":
		return 0x70, []byte("\x00\x01\x00" + pl)
	case "SUBSCRIBE":
		return 0x82, []byte("\x00\x01" + pl + "\x00\x01a\x00")
	case "SUBACK":
		return 0x90, []byte("\x00\x01" + pl + "\x00")
	case "UNSUBSCRIBE":
		return 0xa2, []byte("\x00\x01" + pl + "\x00\x01a")
	case "UNSUBACK":
		return 0xb0, []byte("\x00\x01" + pl + "\x00")
	case "DISCONNECT":
		return 0xe0, []byte("\x00" + pl)
	case "AUTH":
		return 0xf0, []byte("\x18" + pl)
	}
	panic(kind)
}

func varint(n int) []byte {
	var b []byte
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

// Every property in every packet that has properties: accepted where table
// 2-4 allows it, a malformed packet elsewhere [MQTT-2.2.2.2]; given twice,
// a protocol error unless it is a user property (or a subscription
// identifier in a PUBLISH); and identifiers outside the table are malformed.
func TestPropertyAllowedInPacket(t *testing.T) {
	kinds := []string{"CONNECT", "will", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL", "PUBCOMP",
		"SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "DISCONNECT", "AUTH"}
	known := map[byte]bool{}
	for _, pr := range propRef {
		known[pr.id] = true
		one := append([]byte{pr.id}, pr.value...)
		for _, kind := range kinds {
			allowed := false
			for _, k := range pr.allowed {
				allowed = allowed || k == kind
			}
			props := one
			if (kind == "AUTH" && pr.id != 0x15) || (pr.id == 0x16 && allowed) {
				// AUTH and authentication data need an authentication
				// method [MQTT-3.15.2.2.2] [MQTT-3.1.2.11.10]; it comes
				// after the property under test.
				props = append(append([]byte(nil), one...), "\x15\x00\x01m"...)
			}
			first, body := withProps(kind, props)
			_, err := packet.Decode(first, body, packet.V5)
			name := "property 0x" + strconv.FormatUint(uint64(pr.id), 16) + " in " + kind
			if allowed && err != nil {
				t.Errorf("%s: %v, want accepted", name, err)
			}
			if r, _ := packet.ReasonOf(err); !allowed && r != packet.MalformedPacket {
				t.Errorf("%s: %v, want a malformed packet", name, err)
			}
			if !allowed {
				continue
			}
			twice := append(append([]byte(nil), one...), props...)
			first, body = withProps(kind, twice)
			_, err = packet.Decode(first, body, packet.V5)
			repeatable := pr.id == 0x26 || (pr.id == 0x0b && kind == "PUBLISH")
			if r, _ := packet.ReasonOf(err); repeatable && err != nil || !repeatable && r != packet.ProtocolError {
				t.Errorf("%s twice: %v (repeatable %v)", name, err, repeatable)
			}
		}
	}
	for id := 0; id < 256; id++ {
		if known[byte(id)] {
			continue
		}
		first, body := withProps("PUBLISH", []byte{byte(id), 0, 0, 0, 0})
		if r, _ := packet.ReasonOf(mustFail(packet.Decode(first, body, packet.V5))); r != packet.MalformedPacket {
			t.Errorf("unknown property 0x%x: reason %v, want malformed", id, r)
		}
	}
}

func mustFail(_ packet.Packet, err error) error { return err }

// Byte properties whose only values are 0 and 1 refuse 2 and 255 with a
// protocol error; receive maximum, topic alias and maximum packet size 0
// too; topic alias maximum, session expiry and server keep alive 0 are
// fine.
func TestPropertyValues(t *testing.T) {
	for _, tc := range []struct {
		kind  string
		prop  string
		valid bool
	}{
		{"PUBLISH", "\x01\x00", true}, {"PUBLISH", "\x01\x02", false}, {"will", "\x01\xff", false},
		{"CONNECT", "\x17\x00", true}, {"CONNECT", "\x17\x02", false},
		{"CONNECT", "\x19\x00", true}, {"CONNECT", "\x19\x02", false},
		{"CONNACK", "\x24\x00", true}, {"CONNACK", "\x24\x02", false},
		{"CONNACK", "\x25\x02", false}, {"CONNACK", "\x28\x02", false},
		{"CONNACK", "\x29\x02", false}, {"CONNACK", "\x2a\xff", false},
		{"CONNECT", "\x21\x00\x00", false}, {"CONNACK", "\x21\x00\x00", false}, {"CONNECT", "\x21\xff\xff", true},
		{"PUBLISH", "\x23\x00\x00", false}, {"PUBLISH", "\x23\xff\xff", true},
		{"CONNECT", "\x27\x00\x00\x00\x00", false}, {"CONNACK", "\x27\x00\x00\x00\x00", false},
		{"CONNECT", "\x22\x00\x00", true}, {"CONNECT", "\x11\x00\x00\x00\x00", true},
		{"CONNACK", "\x13\x00\x00", true}, {"PUBLISH", "\x02\x00\x00\x00\x00", true},
		{"PUBLISH", "\x0b\x00", false}, {"SUBSCRIBE", "\x0b\x00", false},
		{"PUBLISH", "\x0b\xff\xff\xff\x7f", true},
	} {
		first, body := withProps(tc.kind, []byte(tc.prop))
		_, err := packet.Decode(first, body, packet.V5)
		r, _ := packet.ReasonOf(err)
		if tc.valid && err != nil || !tc.valid && r != packet.ProtocolError {
			t.Errorf("%s % x: %v, valid %v", tc.kind, tc.prop, err, tc.valid)
		}
	}
}

// Reason codes per packet, table 2-6: each packet accepts exactly its own.
func TestReasonCodesPerPacket(t *testing.T) {
	valid := map[packet.Type][]byte{
		packet.CONNACK: {0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x8c, 0x90,
			0x95, 0x97, 0x99, 0x9a, 0x9b, 0x9c, 0x9d, 0x9f},
		packet.PUBACK:   {0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99},
		packet.PUBREC:   {0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99},
		packet.PUBREL:   {0x00, 0x92},
		packet.PUBCOMP:  {0x00, 0x92},
		packet.SUBACK:   {0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8f, 0x91, 0x97, 0x9e, 0xa1, 0xa2},
		packet.UNSUBACK: {0x00, 0x11, 0x80, 0x83, 0x87, 0x8f, 0x91},
		packet.DISCONNECT: {0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8b, 0x8d, 0x8e, 0x8f, 0x90, 0x93,
			0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0x9b, 0x9c, 0x9d, 0x9e, 0x9f, 0xa0, 0xa1, 0xa2},
		packet.AUTH: {0x00, 0x18, 0x19},
	}
	for ty, codes := range valid {
		ok := map[byte]bool{}
		for _, c := range codes {
			ok[c] = true
		}
		for c := 0; c < 256; c++ {
			var first byte
			var body []byte
			switch ty {
			case packet.CONNACK:
				first, body = 0x20, []byte{0, byte(c), 0}
			case packet.SUBACK, packet.UNSUBACK:
				first, body = byte(ty)<<4, []byte{0, 1, 0, byte(c)}
			case packet.DISCONNECT:
				first, body = 0xe0, []byte{byte(c)}
			case packet.AUTH:
				first, body = 0xf0, []byte("\x00\x04\x15\x00\x01m")
				body[0] = byte(c)
			case packet.PUBREL:
				first, body = 0x62, []byte{0, 1, byte(c)}
			default:
				first, body = byte(ty)<<4, []byte{0, 1, byte(c)}
			}
			p, err := packet.Decode(first, body, packet.V5)
			r, _ := packet.ReasonOf(err)
			switch {
			case ok[byte(c)] && err != nil:
				t.Errorf("%v reason 0x%02x: %v, want accepted", ty, c, err)
			case !ok[byte(c)] && r != packet.ProtocolError:
				t.Errorf("%v reason 0x%02x: %v, want a protocol error", ty, c, err)
			}
			if ok[byte(c)] != packet.Reason(c).ValidFor(ty) {
				t.Errorf("Reason(0x%02x).ValidFor(%v) = %v", c, ty, !ok[byte(c)])
			}
			if err == nil {
				if enc := packet.Encode(p, packet.V5); !bytes.Equal(enc[2:], body) && !(c == 0 && len(enc) < len(body)+2) {
					t.Errorf("%v reason 0x%02x re-encoded as % x from % x", ty, c, enc, body)
				}
			}
		}
	}
}

// CONNACK reasons travel as 3.1.1 return codes and back [MQTT-3.2.2.3];
// a 3.1 CONNACK has no session present flag.
func TestConnackVersions(t *testing.T) {
	for _, tc := range []struct {
		reason packet.Reason
		code   byte
		back   packet.Reason
	}{
		{packet.Success, 0, packet.Success},
		{packet.UnsupportedProtocolVersion, 1, packet.UnsupportedProtocolVersion},
		{packet.ClientIdentifierNotValid, 2, packet.ClientIdentifierNotValid},
		{packet.ServerUnavailable, 3, packet.ServerUnavailable},
		{packet.ServerBusy, 3, packet.ServerUnavailable},
		{packet.Banned, 3, packet.ServerUnavailable},
		{packet.UnspecifiedError, 3, packet.ServerUnavailable},
		{packet.QuotaExceeded, 3, packet.ServerUnavailable},
		{packet.BadUserNameOrPassword, 4, packet.BadUserNameOrPassword},
		{packet.NotAuthorized, 5, packet.NotAuthorized},
	} {
		if got := tc.reason.ConnackCode(); got != tc.code {
			t.Errorf("%v.ConnackCode() = %d, want %d", tc.reason, got, tc.code)
		}
		enc := packet.Encode(&packet.Connack{Reason: tc.reason}, packet.V311)
		if want := []byte{0x20, 2, 0, tc.code}; !bytes.Equal(enc, want) {
			t.Errorf("%v at 3.1.1: % x, want % x", tc.reason, enc, want)
		}
		p, err := packet.Decode(enc[0], enc[2:], packet.V311)
		if err != nil || p.(*packet.Connack).Reason != tc.back {
			t.Errorf("%v: decoded %v, %v; want %v", tc.reason, p, err, tc.back)
		}
		enc5 := packet.Encode(&packet.Connack{Reason: tc.reason}, packet.V5)
		if want := []byte{0x20, 3, 0, byte(tc.reason), 0}; !bytes.Equal(enc5, want) {
			t.Errorf("%v at 5.0: % x, want % x", tc.reason, enc5, want)
		}
	}
	if enc := packet.Encode(&packet.Connack{SessionPresent: true}, packet.V31); !bytes.Equal(enc, []byte{0x20, 2, 0, 0}) {
		t.Errorf("3.1 CONNACK with session present: % x, want 20 02 00 00", enc)
	}
	if enc := packet.Encode(&packet.Connack{SessionPresent: true}, packet.V311); !bytes.Equal(enc, []byte{0x20, 2, 1, 0}) {
		t.Errorf("3.1.1 CONNACK with session present: % x, want 20 02 01 00", enc)
	}
}

// Encoding at 3.1.1 leaves every 5.0 field out: the bytes are those of the
// packet without them.
func TestEncodeEarlierVersionDropsV5Fields(t *testing.T) {
	exp := uint32(5)
	props := &packet.Properties{MessageExpiry: &exp, ReasonString: "r",
		User: []packet.UserProperty{{Key: "k", Value: "v"}}}
	for _, tc := range []struct {
		with, without packet.Packet
	}{
		{&packet.Publish{QoS: 1, PacketID: 1, Topic: "t", Payload: []byte("x"), Properties: props},
			&packet.Publish{QoS: 1, PacketID: 1, Topic: "t", Payload: []byte("x")}},
		{&packet.Puback{PacketID: 1, Reason: packet.NotAuthorized, Properties: props}, &packet.Puback{PacketID: 1}},
		{&packet.Pubrec{PacketID: 1, Reason: packet.QuotaExceeded}, &packet.Pubrec{PacketID: 1}},
		{&packet.Pubrel{PacketID: 1, Reason: packet.PacketIdentifierNotFound}, &packet.Pubrel{PacketID: 1}},
		{&packet.Pubcomp{PacketID: 1, Properties: props}, &packet.Pubcomp{PacketID: 1}},
		{&packet.Subscribe{PacketID: 1, Properties: props, Subscriptions: []packet.Subscription{
			{Filter: "a", QoS: 2, NoLocal: true, RetainAsPublished: true, RetainHandling: 2}}},
			&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "a", QoS: 2}}}},
		{&packet.Suback{PacketID: 1, Properties: props, Reasons: []packet.Reason{packet.GrantedQoS1,
			packet.NotAuthorized, packet.WildcardSubscriptionsNotSupported, packet.UnspecifiedError}},
			&packet.Suback{PacketID: 1, Reasons: []packet.Reason{1, 0x80, 0x80, 0x80}}},
		{&packet.Unsubscribe{PacketID: 1, Filters: []string{"a"}, Properties: props},
			&packet.Unsubscribe{PacketID: 1, Filters: []string{"a"}}},
		{&packet.Unsuback{PacketID: 1, Reasons: []packet.Reason{packet.NoSubscriptionExisted}, Properties: props},
			&packet.Unsuback{PacketID: 1}},
		{&packet.Disconnect{Reason: packet.SessionTakenOver, Properties: props}, &packet.Disconnect{}},
		{&packet.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: "c", Properties: props,
			Will: &packet.Will{Topic: "w", Properties: props}},
			&packet.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: "c", Will: &packet.Will{Topic: "w"}}},
	} {
		got, want := packet.Encode(tc.with, packet.V311), packet.Encode(tc.without, packet.V311)
		if !bytes.Equal(got, want) {
			t.Errorf("%T at 3.1.1: % x, want % x", tc.with, got, want)
		}
		if p, err := packet.Decode(got[0], got[2:], packet.V311); err != nil {
			t.Errorf("%T at 3.1.1 does not decode: %v", tc.with, err)
		} else if pub, ok := p.(*packet.Publish); ok && pub.Properties != nil {
			t.Errorf("3.1.1 PUBLISH decoded with properties")
		}
	}
}

// The 5.0 short forms: an acknowledgement, DISCONNECT or AUTH with reason
// Success and no properties (nil or empty) is written without reason code;
// with a reason but no properties, without property length.
func TestShortForms(t *testing.T) {
	empty := &packet.Properties{}
	for _, tc := range []struct {
		p    packet.Packet
		want string
	}{
		{&packet.Puback{PacketID: 1, Properties: empty}, "\x40\x02\x00\x01"},
		{&packet.Pubrel{PacketID: 1}, "\x62\x02\x00\x01"},
		{&packet.Pubcomp{PacketID: 1, Reason: packet.PacketIdentifierNotFound, Properties: empty}, "\x70\x03\x00\x01\x92"},
		{&packet.Disconnect{Properties: empty}, "\xe0\x00"},
		{&packet.Disconnect{Reason: packet.KeepAliveTimeout}, "\xe0\x01\x8d"},
		{&packet.Auth{Properties: empty}, "\xf0\x00"},
		{&packet.Publish{Topic: "t", Properties: empty}, "\x30\x04\x00\x01t\x00"},
		{&packet.Connack{Properties: empty}, "\x20\x03\x00\x00\x00"},
	} {
		if got := packet.Encode(tc.p, packet.V5); string(got) != tc.want {
			t.Errorf("%T: % x, want % x", tc.p, got, tc.want)
		}
	}
	// A DISCONNECT with Success and a property length of 0 written out is
	// valid input too [MQTT-3.14.2.1].
	if p, err := packet.Decode(0xe0, []byte{0, 0}, packet.V5); err != nil || !reflect.DeepEqual(p, &packet.Disconnect{}) {
		t.Errorf("DISCONNECT 00 00: %#v, %v", p, err)
	}
	if p, err := packet.Decode(0x40, []byte{0, 1, 0, 0}, packet.V5); err != nil || !reflect.DeepEqual(p, &packet.Puback{PacketID: 1}) {
		t.Errorf("PUBACK 00 01 00 00: %#v, %v", p, err)
	}
}

// Round trips at the varint boundaries: subscription identifiers and a
// property length past 127 (two-byte varint), user properties in order.
func TestRoundTripV5Boundaries(t *testing.T) {
	var users []packet.UserProperty
	for i := range 40 {
		users = append(users, packet.UserProperty{Key: "key" + strconv.Itoa(i%3), Value: strconv.Itoa(i)})
	}
	ids := []uint32{1, 127, 128, 16383, 16384, 2097151, 2097152, packet.MaxSubscriptionID}
	alias := uint16(65535)
	for _, p := range []packet.Packet{
		&packet.Publish{QoS: 2, PacketID: 9, Topic: "a/b", Payload: bytes.Repeat([]byte{7}, 300),
			Properties: &packet.Properties{SubscriptionIDs: ids, User: users, TopicAlias: &alias}},
		&packet.Subscribe{PacketID: 2, Properties: &packet.Properties{SubscriptionIDs: []uint32{2097152}, User: users},
			Subscriptions: []packet.Subscription{{Filter: "$share/g/#", QoS: 1, RetainHandling: 2, RetainAsPublished: true}}},
		&packet.Disconnect{Reason: packet.ServerShuttingDown, Properties: &packet.Properties{User: users}},
		&packet.Auth{Reason: packet.ReAuthenticate, Properties: &packet.Properties{AuthMethod: "m", AuthData: bytes.Repeat([]byte{1}, 200)}},
	} {
		enc := packet.Encode(p, packet.V5)
		got, err := packet.Read(bytes.NewReader(enc), 0, packet.V5)
		if err != nil {
			t.Fatalf("%T: %v", p, err)
		}
		if !reflect.DeepEqual(got, p) {
			t.Errorf("%T round trip:\n%#v\nwant\n%#v", p, got, p)
		}
		if pub, ok := p.(*packet.Publish); ok && pub.Size(packet.V5) != len(enc) {
			t.Errorf("Size(V5) = %d, encoded %d", pub.Size(packet.V5), len(enc))
		}
	}
}

// Decoding 5.0 allocates from the bytes present, not from lengths the peer
// announces: a property length of 256 MiB in a 10-byte packet costs what a
// 10-byte packet costs.
func TestV5DecodeAllocationBounded(t *testing.T) {
	body := []byte("\x00\x01t\xff\xff\xff\x7f\x26\x00")
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const n = 100
	for range n {
		if _, err := packet.Decode(0x30, body, packet.V5); err == nil {
			t.Fatal("accepted")
		}
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / n; per > 1024 {
		t.Fatalf("decoding a 9-byte body announcing 256 MiB of properties allocated %d bytes", per)
	}
	// Many user properties: allocation grows with the bytes, a small
	// multiple of them.
	var props []byte
	for range 5000 {
		props = append(props, "\x26\x00\x00\x00\x00"...)
	}
	big := append(append([]byte("\x00\x01t"), varint(len(props))...), props...)
	runtime.ReadMemStats(&before)
	p, err := packet.Decode(0x30, big, packet.V5)
	runtime.ReadMemStats(&after)
	if err != nil || len(p.(*packet.Publish).Properties.User) != 5000 {
		t.Fatalf("%v", err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > uint64(30*len(big)) {
		t.Errorf("decoding %d bytes of user properties allocated %d bytes", len(big), got)
	}
}
