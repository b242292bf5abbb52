package packet

import "strconv"

// PropertyID is the identifier byte of an MQTT 5.0 property [MQTT-2.2.2.2].
type PropertyID byte

// The MQTT 5.0 properties, table 2-4.
const (
	PropPayloadFormat        PropertyID = 0x01 // byte: PUBLISH, will
	PropMessageExpiry        PropertyID = 0x02 // four-byte int: PUBLISH, will
	PropContentType          PropertyID = 0x03 // string: PUBLISH, will
	PropResponseTopic        PropertyID = 0x08 // string: PUBLISH, will
	PropCorrelationData      PropertyID = 0x09 // binary: PUBLISH, will
	PropSubscriptionID       PropertyID = 0x0B // varint: PUBLISH (repeatable), SUBSCRIBE
	PropSessionExpiry        PropertyID = 0x11 // four-byte int: CONNECT, CONNACK, DISCONNECT
	PropAssignedClientID     PropertyID = 0x12 // string: CONNACK
	PropServerKeepAlive      PropertyID = 0x13 // two-byte int: CONNACK
	PropAuthMethod           PropertyID = 0x15 // string: CONNECT, CONNACK, AUTH
	PropAuthData             PropertyID = 0x16 // binary: CONNECT, CONNACK, AUTH
	PropRequestProblemInfo   PropertyID = 0x17 // byte: CONNECT
	PropWillDelay            PropertyID = 0x18 // four-byte int: will
	PropRequestResponseInfo  PropertyID = 0x19 // byte: CONNECT
	PropResponseInfo         PropertyID = 0x1A // string: CONNACK
	PropServerReference      PropertyID = 0x1C // string: CONNACK, DISCONNECT
	PropReasonString         PropertyID = 0x1F // string: CONNACK, PUBACK..PUBCOMP, SUBACK, UNSUBACK, DISCONNECT, AUTH
	PropReceiveMaximum       PropertyID = 0x21 // two-byte int: CONNECT, CONNACK
	PropTopicAliasMaximum    PropertyID = 0x22 // two-byte int: CONNECT, CONNACK
	PropTopicAlias           PropertyID = 0x23 // two-byte int: PUBLISH
	PropMaximumQoS           PropertyID = 0x24 // byte: CONNACK
	PropRetainAvailable      PropertyID = 0x25 // byte: CONNACK
	PropUserProperty         PropertyID = 0x26 // string pair, repeatable: every packet with properties
	PropMaximumPacketSize    PropertyID = 0x27 // four-byte int: CONNECT, CONNACK
	PropWildcardSubAvailable PropertyID = 0x28 // byte: CONNACK
	PropSubIDAvailable       PropertyID = 0x29 // byte: CONNACK
	PropSharedSubAvailable   PropertyID = 0x2A // byte: CONNACK
)

// UserProperty is one user property, a name/value string pair. Their order
// is kept [MQTT-3.3.2-18].
type UserProperty struct {
	Key, Value string
}

// Properties are the MQTT 5.0 properties of one packet (or of a will). A
// numeric property that was absent is a nil pointer, so absent and zero
// stay apart; an absent string or binary property is empty. Which
// properties a packet may carry is checked by the decoder: a property not
// allowed in the packet, or a non-repeatable one given twice, is a
// protocol error.
type Properties struct {
	PayloadFormat        *byte
	MessageExpiry        *uint32 // seconds
	ContentType          string
	ResponseTopic        string
	CorrelationData      []byte
	SubscriptionIDs      []uint32 // 1..268,435,455; one in SUBSCRIBE, any number in PUBLISH
	SessionExpiry        *uint32  // seconds; 0xFFFFFFFF never expires
	AssignedClientID     string
	ServerKeepAlive      *uint16
	AuthMethod           string
	AuthData             []byte
	RequestProblemInfo   *byte
	WillDelay            *uint32
	RequestResponseInfo  *byte
	ResponseInfo         string
	ServerReference      string
	ReasonString         string
	ReceiveMaximum       *uint16 // 0 is a protocol error
	TopicAliasMaximum    *uint16
	TopicAlias           *uint16 // 0 is a protocol error
	MaximumQoS           *byte
	RetainAvailable      *byte
	User                 []UserProperty
	MaximumPacketSize    *uint32 // 0 is a protocol error
	WildcardSubAvailable *byte
	SubIDAvailable       *byte
	SharedSubAvailable   *byte
}

// willProps stands for the will properties of a CONNECT in the
// allowed-packet sets below: packet type 0 is reserved, so its bit is free.
const willProps Type = 0

// propKind is the data type of a property [MQTT-2.2.2.2].
type propKind byte

const (
	kindByte propKind = iota + 1
	kindUint16
	kindUint32
	kindVarint
	kindString
	kindBinary
	kindPair
)

// propInfo says what a property is and where it may appear.
type propInfo struct {
	kind    propKind
	allowed uint16 // bit t set: allowed in packet type t (bit 0: will)
	bool01  bool   // a byte whose only valid values are 0 and 1
}

func in(ts ...Type) uint16 {
	var m uint16
	for _, t := range ts {
		m |= 1 << t
	}
	return m
}

// props is table 2-4: every property, its data type and the packets that
// may carry it. An identifier not in the table is unknown.
var props = [0x2B]propInfo{
	PropPayloadFormat:        {kindByte, in(PUBLISH, willProps), true},
	PropMessageExpiry:        {kindUint32, in(PUBLISH, willProps), false},
	PropContentType:          {kindString, in(PUBLISH, willProps), false},
	PropResponseTopic:        {kindString, in(PUBLISH, willProps), false},
	PropCorrelationData:      {kindBinary, in(PUBLISH, willProps), false},
	PropSubscriptionID:       {kindVarint, in(PUBLISH, SUBSCRIBE), false},
	PropSessionExpiry:        {kindUint32, in(CONNECT, CONNACK, DISCONNECT), false},
	PropAssignedClientID:     {kindString, in(CONNACK), false},
	PropServerKeepAlive:      {kindUint16, in(CONNACK), false},
	PropAuthMethod:           {kindString, in(CONNECT, CONNACK, AUTH), false},
	PropAuthData:             {kindBinary, in(CONNECT, CONNACK, AUTH), false},
	PropRequestProblemInfo:   {kindByte, in(CONNECT), true},
	PropWillDelay:            {kindUint32, in(willProps), false},
	PropRequestResponseInfo:  {kindByte, in(CONNECT), true},
	PropResponseInfo:         {kindString, in(CONNACK), false},
	PropServerReference:      {kindString, in(CONNACK, DISCONNECT), false},
	PropReasonString:         {kindString, in(CONNACK, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK, DISCONNECT, AUTH), false},
	PropReceiveMaximum:       {kindUint16, in(CONNECT, CONNACK), false},
	PropTopicAliasMaximum:    {kindUint16, in(CONNECT, CONNACK), false},
	PropTopicAlias:           {kindUint16, in(PUBLISH), false},
	PropMaximumQoS:           {kindByte, in(CONNACK), true},
	PropRetainAvailable:      {kindByte, in(CONNACK), true},
	PropUserProperty:         {kindPair, in(CONNECT, CONNACK, PUBLISH, willProps, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, DISCONNECT, AUTH), false},
	PropMaximumPacketSize:    {kindUint32, in(CONNECT, CONNACK), false},
	PropWildcardSubAvailable: {kindByte, in(CONNACK), true},
	PropSubIDAvailable:       {kindByte, in(CONNACK), true},
	PropSharedSubAvailable:   {kindByte, in(CONNACK), true},
}

// MaxSubscriptionID is the largest subscription identifier, the largest
// variable byte integer [MQTT-3.3.2.3.8].
const MaxSubscriptionID = MaxRemainingLength

// isEmpty reports whether p carries no property.
func (p *Properties) isEmpty() bool {
	return p.PayloadFormat == nil && p.MessageExpiry == nil && p.ContentType == "" &&
		p.ResponseTopic == "" && len(p.CorrelationData) == 0 && len(p.SubscriptionIDs) == 0 &&
		p.SessionExpiry == nil && p.AssignedClientID == "" && p.ServerKeepAlive == nil &&
		p.AuthMethod == "" && len(p.AuthData) == 0 && p.RequestProblemInfo == nil &&
		p.WillDelay == nil && p.RequestResponseInfo == nil && p.ResponseInfo == "" &&
		p.ServerReference == "" && p.ReasonString == "" && p.ReceiveMaximum == nil &&
		p.TopicAliasMaximum == nil && p.TopicAlias == nil && p.MaximumQoS == nil &&
		p.RetainAvailable == nil && len(p.User) == 0 && p.MaximumPacketSize == nil &&
		p.WildcardSubAvailable == nil && p.SubIDAvailable == nil && p.SharedSubAvailable == nil
}

// properties reads a property length and the properties of a packet of
// type t (willProps for will properties) [MQTT-2.2.2]. It returns nil when
// there are none. Strings and binary data are checked and, for binary data,
// alias the packet body.
func (d *decoder) properties(t Type) (*Properties, error) {
	n, err := d.varint("property length")
	if err != nil {
		return nil, err
	}
	if n > d.left() {
		return nil, malformed("property length longer than the packet")
	}
	if n == 0 {
		return nil, nil
	}
	what := t.String()
	if t == willProps {
		what = "will"
	}
	end := d.off + n
	sub := decoder{b: d.b[:end], off: d.off}
	d.off = end
	p := &Properties{}
	var seen uint64
	for sub.left() > 0 {
		idv, err := sub.varint("property identifier")
		if err != nil {
			return nil, err
		}
		if idv >= len(props) || props[idv].kind == 0 {
			// An identifier not valid for the packet type is a
			// malformed packet [MQTT-2.2.2.2].
			return nil, malformed("unknown property identifier 0x" + strconv.FormatUint(uint64(idv), 16) + " in " + what)
		}
		id := PropertyID(idv)
		info := props[id]
		if info.allowed&(1<<t) == 0 {
			return nil, malformed("property " + id.String() + " not allowed in " + what) // [MQTT-2.2.2.2]
		}
		repeatable := id == PropUserProperty || (id == PropSubscriptionID && t == PUBLISH)
		if seen&(1<<id) != 0 && !repeatable {
			// "It is a Protocol Error to include the <property> more
			// than once" (every non-repeatable property, ch. 3).
			return nil, violation("property " + id.String() + " more than once in " + what)
		}
		seen |= 1 << id
		switch info.kind {
		case kindByte:
			v, err := sub.byte1(id.String())
			if err != nil {
				return nil, err
			}
			if info.bool01 && v > 1 {
				// "It is a Protocol Error to include a value other
				// than 0 or 1" [MQTT-3.1.2.11.6] [MQTT-3.1.2.11.7]
				// [MQTT-3.2.2.3.4] [MQTT-3.2.2.3.5] [MQTT-3.2.2.3.11]
				// [MQTT-3.2.2.3.12] [MQTT-3.2.2.3.13]; a payload format
				// indicator is 0 or 1 [MQTT-3.3.2.3.2].
				return nil, violation("property " + id.String() + " value " + strconv.Itoa(int(v)))
			}
			switch id {
			case PropPayloadFormat:
				p.PayloadFormat = &v
			case PropRequestProblemInfo:
				p.RequestProblemInfo = &v
			case PropRequestResponseInfo:
				p.RequestResponseInfo = &v
			case PropMaximumQoS:
				p.MaximumQoS = &v
			case PropRetainAvailable:
				p.RetainAvailable = &v
			case PropWildcardSubAvailable:
				p.WildcardSubAvailable = &v
			case PropSubIDAvailable:
				p.SubIDAvailable = &v
			case PropSharedSubAvailable:
				p.SharedSubAvailable = &v
			}
		case kindUint16:
			v, err := sub.uint16(id.String())
			if err != nil {
				return nil, err
			}
			if v == 0 && (id == PropReceiveMaximum || id == PropTopicAlias) {
				// Receive maximum 0 [MQTT-3.1.2.11.3] [MQTT-3.2.2.3.3] and
				// topic alias 0 [MQTT-3.3.2-8] are protocol errors.
				return nil, violation("property " + id.String() + " 0")
			}
			switch id {
			case PropServerKeepAlive:
				p.ServerKeepAlive = &v
			case PropReceiveMaximum:
				p.ReceiveMaximum = &v
			case PropTopicAliasMaximum:
				p.TopicAliasMaximum = &v
			case PropTopicAlias:
				p.TopicAlias = &v
			}
		case kindUint32:
			v, err := sub.uint32(id.String())
			if err != nil {
				return nil, err
			}
			if v == 0 && id == PropMaximumPacketSize {
				// [MQTT-3.1.2.11.4] [MQTT-3.2.2.3.6]
				return nil, violation("property " + id.String() + " 0")
			}
			switch id {
			case PropMessageExpiry:
				p.MessageExpiry = &v
			case PropSessionExpiry:
				p.SessionExpiry = &v
			case PropWillDelay:
				p.WillDelay = &v
			case PropMaximumPacketSize:
				p.MaximumPacketSize = &v
			}
		case kindVarint: // PropSubscriptionID, the only one
			v, err := sub.varint(id.String())
			if err != nil {
				return nil, err
			}
			if v == 0 {
				// "It is a Protocol Error if the Subscription
				// Identifier has a value of 0" [MQTT-3.3.2.3.8]
				// [MQTT-3.8.2.1.2].
				return nil, violation("subscription identifier 0")
			}
			p.SubscriptionIDs = append(p.SubscriptionIDs, uint32(v))
		case kindString:
			s, err := sub.str(id.String())
			if err != nil {
				return nil, err
			}
			switch id {
			case PropContentType:
				p.ContentType = s
			case PropResponseTopic:
				p.ResponseTopic = s
			case PropAssignedClientID:
				p.AssignedClientID = s
			case PropAuthMethod:
				p.AuthMethod = s
			case PropResponseInfo:
				p.ResponseInfo = s
			case PropServerReference:
				p.ServerReference = s
			case PropReasonString:
				p.ReasonString = s
			}
		case kindBinary:
			b, err := sub.bytes(id.String())
			if err != nil {
				return nil, err
			}
			switch id {
			case PropCorrelationData:
				p.CorrelationData = b
			case PropAuthData:
				p.AuthData = b
			}
		case kindPair:
			k, err := sub.str("user property name")
			if err != nil {
				return nil, err
			}
			v, err := sub.str("user property value")
			if err != nil {
				return nil, err
			}
			p.User = append(p.User, UserProperty{k, v})
		}
	}
	if p.ResponseTopic != "" && !ValidTopicName(p.ResponseTopic) {
		// The response topic is a topic name: no wildcards
		// [MQTT-3.3.2-14].
		return nil, malformed("response topic " + strconv.Quote(p.ResponseTopic) + " is not a valid topic name")
	}
	if p.isEmpty() {
		return nil, nil
	}
	return p, nil
}

var propNames = [...]string{
	PropPayloadFormat: "payload format indicator", PropMessageExpiry: "message expiry interval",
	PropContentType: "content type", PropResponseTopic: "response topic",
	PropCorrelationData: "correlation data", PropSubscriptionID: "subscription identifier",
	PropSessionExpiry: "session expiry interval", PropAssignedClientID: "assigned client identifier",
	PropServerKeepAlive: "server keep alive", PropAuthMethod: "authentication method",
	PropAuthData: "authentication data", PropRequestProblemInfo: "request problem information",
	PropWillDelay: "will delay interval", PropRequestResponseInfo: "request response information",
	PropResponseInfo: "response information", PropServerReference: "server reference",
	PropReasonString: "reason string", PropReceiveMaximum: "receive maximum",
	PropTopicAliasMaximum: "topic alias maximum", PropTopicAlias: "topic alias",
	PropMaximumQoS: "maximum QoS", PropRetainAvailable: "retain available",
	PropUserProperty: "user property", PropMaximumPacketSize: "maximum packet size",
	PropWildcardSubAvailable: "wildcard subscription available",
	PropSubIDAvailable:       "subscription identifier available",
	PropSharedSubAvailable:   "shared subscription available",
}

// String returns the property's name.
func (id PropertyID) String() string {
	if int(id) < len(propNames) && propNames[id] != "" {
		return propNames[id]
	}
	return "property 0x" + strconv.FormatUint(uint64(id), 16)
}

// size returns the length of the encoded properties, without the property
// length itself. A nil p has none.
func (p *Properties) size() int {
	if p == nil {
		return 0
	}
	n := 0
	if p.PayloadFormat != nil {
		n += 2
	}
	if p.MessageExpiry != nil {
		n += 5
	}
	if p.ContentType != "" {
		n += 3 + len(p.ContentType)
	}
	if p.ResponseTopic != "" {
		n += 3 + len(p.ResponseTopic)
	}
	if len(p.CorrelationData) > 0 {
		n += 3 + len(p.CorrelationData)
	}
	for _, id := range p.SubscriptionIDs {
		n += 1 + varintLen(int(id))
	}
	if p.SessionExpiry != nil {
		n += 5
	}
	if p.AssignedClientID != "" {
		n += 3 + len(p.AssignedClientID)
	}
	if p.ServerKeepAlive != nil {
		n += 3
	}
	if p.AuthMethod != "" {
		n += 3 + len(p.AuthMethod)
	}
	if len(p.AuthData) > 0 {
		n += 3 + len(p.AuthData)
	}
	if p.RequestProblemInfo != nil {
		n += 2
	}
	if p.WillDelay != nil {
		n += 5
	}
	if p.RequestResponseInfo != nil {
		n += 2
	}
	if p.ResponseInfo != "" {
		n += 3 + len(p.ResponseInfo)
	}
	if p.ServerReference != "" {
		n += 3 + len(p.ServerReference)
	}
	if p.ReasonString != "" {
		n += 3 + len(p.ReasonString)
	}
	if p.ReceiveMaximum != nil {
		n += 3
	}
	if p.TopicAliasMaximum != nil {
		n += 3
	}
	if p.TopicAlias != nil {
		n += 3
	}
	if p.MaximumQoS != nil {
		n += 2
	}
	if p.RetainAvailable != nil {
		n += 2
	}
	for _, u := range p.User {
		n += 5 + len(u.Key) + len(u.Value)
	}
	if p.MaximumPacketSize != nil {
		n += 5
	}
	if p.WildcardSubAvailable != nil {
		n += 2
	}
	if p.SubIDAvailable != nil {
		n += 2
	}
	if p.SharedSubAvailable != nil {
		n += 2
	}
	return n
}

// propsLen returns the encoded length of p including its property length.
func (p *Properties) propsLen() int {
	n := p.size()
	return varintLen(n) + n
}

// appendProps appends the property length and the properties, in
// identifier order, user properties in their order. Empty strings and
// binary data are absent properties and are not written. The encoder does
// not check which properties the packet may carry: that is the caller's.
func appendProps(b []byte, p *Properties) []byte {
	b = appendVarint(b, p.size())
	if p == nil {
		return b
	}
	b = appendByteProp(b, PropPayloadFormat, p.PayloadFormat)
	b = appendUint32Prop(b, PropMessageExpiry, p.MessageExpiry)
	b = appendStringProp(b, PropContentType, p.ContentType)
	b = appendStringProp(b, PropResponseTopic, p.ResponseTopic)
	if len(p.CorrelationData) > 0 {
		b = appendBytes(append(b, byte(PropCorrelationData)), p.CorrelationData)
	}
	for _, id := range p.SubscriptionIDs {
		b = appendVarint(append(b, byte(PropSubscriptionID)), int(id))
	}
	b = appendUint32Prop(b, PropSessionExpiry, p.SessionExpiry)
	b = appendStringProp(b, PropAssignedClientID, p.AssignedClientID)
	b = appendUint16Prop(b, PropServerKeepAlive, p.ServerKeepAlive)
	b = appendStringProp(b, PropAuthMethod, p.AuthMethod)
	if len(p.AuthData) > 0 {
		b = appendBytes(append(b, byte(PropAuthData)), p.AuthData)
	}
	b = appendByteProp(b, PropRequestProblemInfo, p.RequestProblemInfo)
	b = appendUint32Prop(b, PropWillDelay, p.WillDelay)
	b = appendByteProp(b, PropRequestResponseInfo, p.RequestResponseInfo)
	b = appendStringProp(b, PropResponseInfo, p.ResponseInfo)
	b = appendStringProp(b, PropServerReference, p.ServerReference)
	b = appendStringProp(b, PropReasonString, p.ReasonString)
	b = appendUint16Prop(b, PropReceiveMaximum, p.ReceiveMaximum)
	b = appendUint16Prop(b, PropTopicAliasMaximum, p.TopicAliasMaximum)
	b = appendUint16Prop(b, PropTopicAlias, p.TopicAlias)
	b = appendByteProp(b, PropMaximumQoS, p.MaximumQoS)
	b = appendByteProp(b, PropRetainAvailable, p.RetainAvailable)
	for _, u := range p.User {
		b = append(b, byte(PropUserProperty))
		b = appendString(b, u.Key)
		b = appendString(b, u.Value)
	}
	b = appendUint32Prop(b, PropMaximumPacketSize, p.MaximumPacketSize)
	b = appendByteProp(b, PropWildcardSubAvailable, p.WildcardSubAvailable)
	b = appendByteProp(b, PropSubIDAvailable, p.SubIDAvailable)
	b = appendByteProp(b, PropSharedSubAvailable, p.SharedSubAvailable)
	return b
}

func appendByteProp(b []byte, id PropertyID, v *byte) []byte {
	if v == nil {
		return b
	}
	return append(b, byte(id), *v)
}

func appendUint16Prop(b []byte, id PropertyID, v *uint16) []byte {
	if v == nil {
		return b
	}
	return append(b, byte(id), byte(*v>>8), byte(*v))
}

func appendUint32Prop(b []byte, id PropertyID, v *uint32) []byte {
	if v == nil {
		return b
	}
	return append(b, byte(id), byte(*v>>24), byte(*v>>16), byte(*v>>8), byte(*v))
}

func appendStringProp(b []byte, id PropertyID, s string) []byte {
	if s == "" {
		return b
	}
	return appendString(append(b, byte(id)), s)
}

// AppendProperties appends p as a property block, its property length
// followed by the properties, as a packet carries it; a nil p is the block
// of no property (one zero byte). It does not check which properties a
// packet may carry. The block is what DecodeProperties reads back, so a
// caller can keep a message's properties as bytes (the store does).
func AppendProperties(b []byte, p *Properties) []byte { return appendProps(b, p) }

// DecodeProperties decodes a property block written by AppendProperties
// (or taken from a packet) with the rules of packet type t: properties
// not allowed in t, repeated or with invalid values are errors, as in
// Decode. b must hold exactly one block. It returns nil when the block has
// no property. Binary properties alias b.
func DecodeProperties(b []byte, t Type) (*Properties, error) {
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
