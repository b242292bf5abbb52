package packet

import (
	"errors"
	"strconv"
)

// Reason is an MQTT 5 reason code [MQTT-2.4]. The codec also uses it to
// classify a decoding failure (an *Error carries one), and a CONNACK and
// SUBACK carry one for every protocol version: before 5.0 the encoder maps
// it to the return code of the same meaning.
type Reason byte

// The MQTT 5.0 reason codes, table 2-6. Several names share a value; which
// applies depends on the packet.
const (
	Success                             Reason = 0x00 // CONNACK, PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK, AUTH
	NormalDisconnection                 Reason = 0x00 // DISCONNECT
	GrantedQoS0                         Reason = 0x00 // SUBACK
	GrantedQoS1                         Reason = 0x01 // SUBACK
	GrantedQoS2                         Reason = 0x02 // SUBACK
	DisconnectWithWill                  Reason = 0x04 // DISCONNECT
	NoMatchingSubscribers               Reason = 0x10 // PUBACK, PUBREC
	NoSubscriptionExisted               Reason = 0x11 // UNSUBACK
	ContinueAuthentication              Reason = 0x18 // AUTH
	ReAuthenticate                      Reason = 0x19 // AUTH
	UnspecifiedError                    Reason = 0x80
	MalformedPacket                     Reason = 0x81 // the bytes do not form a valid packet
	ProtocolError                       Reason = 0x82 // a valid packet that breaks a rule of the protocol
	ImplementationSpecificError         Reason = 0x83
	UnsupportedProtocolVersion          Reason = 0x84 // CONNACK; 3.1.1 return code 0x01
	ClientIdentifierNotValid            Reason = 0x85 // CONNACK; 3.1.1 return code 0x02
	BadUserNameOrPassword               Reason = 0x86 // CONNACK; 3.1.1 return code 0x04
	NotAuthorized                       Reason = 0x87 // 3.1.1 CONNACK return code 0x05
	ServerUnavailable                   Reason = 0x88 // CONNACK; 3.1.1 return code 0x03
	ServerBusy                          Reason = 0x89
	Banned                              Reason = 0x8A
	ServerShuttingDown                  Reason = 0x8B
	BadAuthenticationMethod             Reason = 0x8C
	KeepAliveTimeout                    Reason = 0x8D
	SessionTakenOver                    Reason = 0x8E
	TopicFilterInvalid                  Reason = 0x8F
	TopicNameInvalid                    Reason = 0x90
	PacketIdentifierInUse               Reason = 0x91
	PacketIdentifierNotFound            Reason = 0x92
	ReceiveMaximumExceeded              Reason = 0x93
	TopicAliasInvalid                   Reason = 0x94
	PacketTooLarge                      Reason = 0x95 // also: the remaining length exceeds the reader's maximum
	MessageRateTooHigh                  Reason = 0x96
	QuotaExceeded                       Reason = 0x97
	AdministrativeAction                Reason = 0x98
	PayloadFormatInvalid                Reason = 0x99
	RetainNotSupported                  Reason = 0x9A
	QoSNotSupported                     Reason = 0x9B
	UseAnotherServer                    Reason = 0x9C
	ServerMoved                         Reason = 0x9D
	SharedSubscriptionsNotSupported     Reason = 0x9E
	ConnectionRateExceeded              Reason = 0x9F
	MaximumConnectTime                  Reason = 0xA0
	SubscriptionIdentifiersNotSupported Reason = 0xA1
	WildcardSubscriptionsNotSupported   Reason = 0xA2
)

var reasonNames = map[Reason]string{
	Success:                             "success",
	GrantedQoS1:                         "granted QoS 1",
	GrantedQoS2:                         "granted QoS 2",
	DisconnectWithWill:                  "disconnect with will message",
	NoMatchingSubscribers:               "no matching subscribers",
	NoSubscriptionExisted:               "no subscription existed",
	ContinueAuthentication:              "continue authentication",
	ReAuthenticate:                      "re-authenticate",
	UnspecifiedError:                    "unspecified error",
	MalformedPacket:                     "malformed packet",
	ProtocolError:                       "protocol error",
	ImplementationSpecificError:         "implementation specific error",
	UnsupportedProtocolVersion:          "unsupported protocol version",
	ClientIdentifierNotValid:            "client identifier not valid",
	BadUserNameOrPassword:               "bad user name or password",
	NotAuthorized:                       "not authorized",
	ServerUnavailable:                   "server unavailable",
	ServerBusy:                          "server busy",
	Banned:                              "banned",
	ServerShuttingDown:                  "server shutting down",
	BadAuthenticationMethod:             "bad authentication method",
	KeepAliveTimeout:                    "keep alive timeout",
	SessionTakenOver:                    "session taken over",
	TopicFilterInvalid:                  "topic filter invalid",
	TopicNameInvalid:                    "topic name invalid",
	PacketIdentifierInUse:               "packet identifier in use",
	PacketIdentifierNotFound:            "packet identifier not found",
	ReceiveMaximumExceeded:              "receive maximum exceeded",
	TopicAliasInvalid:                   "topic alias invalid",
	PacketTooLarge:                      "packet too large",
	MessageRateTooHigh:                  "message rate too high",
	QuotaExceeded:                       "quota exceeded",
	AdministrativeAction:                "administrative action",
	PayloadFormatInvalid:                "payload format invalid",
	RetainNotSupported:                  "retain not supported",
	QoSNotSupported:                     "QoS not supported",
	UseAnotherServer:                    "use another server",
	ServerMoved:                         "server moved",
	SharedSubscriptionsNotSupported:     "shared subscriptions not supported",
	ConnectionRateExceeded:              "connection rate exceeded",
	MaximumConnectTime:                  "maximum connect time",
	SubscriptionIdentifiersNotSupported: "subscription identifiers not supported",
	WildcardSubscriptionsNotSupported:   "wildcard subscriptions not supported",
}

// String returns the reason's name as the specification gives it. 0x00 is
// "success" whatever its packet calls it.
func (r Reason) String() string {
	if s, ok := reasonNames[r]; ok {
		return s
	}
	return "reason 0x" + strconv.FormatUint(uint64(r), 16)
}

// Error implements error, so a refusal (an authenticator's answer, for
// instance) can travel as an error value.
func (r Reason) Error() string { return r.String() }

// IsFailure reports whether r is an error reason (0x80 and above).
func (r Reason) IsFailure() bool { return r >= 0x80 }

// ConnackCode returns the MQTT 3.1.1 CONNACK return code of the same
// meaning [MQTT-3.2.2.3]: 0x00 accepted, 0x01 unacceptable protocol
// version, 0x02 identifier rejected, 0x04 bad user name or password, 0x05
// not authorized, and 0x03 server unavailable for every other refusal.
func (r Reason) ConnackCode() byte {
	switch r {
	case Success:
		return 0x00
	case UnsupportedProtocolVersion:
		return 0x01
	case ClientIdentifierNotValid:
		return 0x02
	case BadUserNameOrPassword:
		return 0x04
	case NotAuthorized:
		return 0x05
	}
	return 0x03
}

// connackReasons maps 3.1.1 CONNACK return codes 0..5 to reasons.
var connackReasons = [...]Reason{Success, UnsupportedProtocolVersion, ClientIdentifierNotValid,
	ServerUnavailable, BadUserNameOrPassword, NotAuthorized}

// reasonSet is a set of reason codes, one bit per value.
type reasonSet [4]uint64

func (s *reasonSet) has(r Reason) bool { return s[r>>6]&(1<<(r&63)) != 0 }

func newReasonSet(rs ...Reason) reasonSet {
	var s reasonSet
	for _, r := range rs {
		s[r>>6] |= 1 << (r & 63)
	}
	return s
}

// The reason codes each 5.0 packet may carry, table 2-6 and the packets'
// own tables ([MQTT-3.2.2.2], [MQTT-3.4.2.1] to [MQTT-3.7.2.1],
// [MQTT-3.9.3], [MQTT-3.11.3], [MQTT-3.14.2.1], [MQTT-3.15.2.1]).
var validReasons = [16]reasonSet{
	CONNACK: newReasonSet(Success, UnspecifiedError, MalformedPacket, ProtocolError,
		ImplementationSpecificError, UnsupportedProtocolVersion, ClientIdentifierNotValid,
		BadUserNameOrPassword, NotAuthorized, ServerUnavailable, ServerBusy, Banned,
		BadAuthenticationMethod, TopicNameInvalid, PacketTooLarge, QuotaExceeded,
		PayloadFormatInvalid, RetainNotSupported, QoSNotSupported, UseAnotherServer, ServerMoved,
		ConnectionRateExceeded),
	PUBACK: newReasonSet(Success, NoMatchingSubscribers, UnspecifiedError, ImplementationSpecificError,
		NotAuthorized, TopicNameInvalid, PacketIdentifierInUse, QuotaExceeded, PayloadFormatInvalid),
	PUBREC: newReasonSet(Success, NoMatchingSubscribers, UnspecifiedError, ImplementationSpecificError,
		NotAuthorized, TopicNameInvalid, PacketIdentifierInUse, QuotaExceeded, PayloadFormatInvalid),
	PUBREL:  newReasonSet(Success, PacketIdentifierNotFound),
	PUBCOMP: newReasonSet(Success, PacketIdentifierNotFound),
	SUBACK: newReasonSet(GrantedQoS0, GrantedQoS1, GrantedQoS2, UnspecifiedError,
		ImplementationSpecificError, NotAuthorized, TopicFilterInvalid, PacketIdentifierInUse,
		QuotaExceeded, SharedSubscriptionsNotSupported, SubscriptionIdentifiersNotSupported,
		WildcardSubscriptionsNotSupported),
	UNSUBACK: newReasonSet(Success, NoSubscriptionExisted, UnspecifiedError, ImplementationSpecificError,
		NotAuthorized, TopicFilterInvalid, PacketIdentifierInUse),
	DISCONNECT: newReasonSet(NormalDisconnection, DisconnectWithWill, UnspecifiedError, MalformedPacket,
		ProtocolError, ImplementationSpecificError, NotAuthorized, ServerBusy, ServerShuttingDown,
		KeepAliveTimeout, SessionTakenOver, TopicFilterInvalid, TopicNameInvalid,
		ReceiveMaximumExceeded, TopicAliasInvalid, PacketTooLarge, MessageRateTooHigh, QuotaExceeded,
		AdministrativeAction, PayloadFormatInvalid, RetainNotSupported, QoSNotSupported,
		UseAnotherServer, ServerMoved, SharedSubscriptionsNotSupported, ConnectionRateExceeded,
		MaximumConnectTime, SubscriptionIdentifiersNotSupported, WildcardSubscriptionsNotSupported),
	AUTH: newReasonSet(Success, ContinueAuthentication, ReAuthenticate),
}

// ValidFor reports whether r is a reason code packet type t may carry in
// MQTT 5.0.
func (r Reason) ValidFor(t Type) bool { return t < 16 && validReasons[t].has(r) }

// Error is returned for every packet the codec refuses.
type Error struct {
	Reason Reason
	Msg    string
	// Version is the protocol level of a CONNECT the error was found in
	// after its protocol level was read (0 otherwise): a 5.0 server may
	// answer a malformed 5.0 CONNECT with a CONNACK that says why before
	// it closes [MQTT-4.13.1-1], which a 3.1.1 CONNACK cannot.
	Version Version
}

// Error implements error.
func (e *Error) Error() string { return e.Reason.String() + ": " + e.Msg }

func malformed(msg string) error { return &Error{Reason: MalformedPacket, Msg: msg} }
func violation(msg string) error { return &Error{Reason: ProtocolError, Msg: msg} }

// ConnectVersionOf returns the Version of an *Error in err's chain (see
// Error.Version), 0 if none.
func ConnectVersionOf(err error) Version {
	var e *Error
	if errors.As(err, &e) {
		return e.Version
	}
	return 0
}

// ReasonOf returns the Reason of an *Error in err's chain, and false if err
// is not a codec error (an I/O error, for instance).
func ReasonOf(err error) (Reason, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason, true
	}
	return 0, false
}
