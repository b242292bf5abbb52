package persist

// This file holds persist's own record types and the operations a caller
// commits. They deliberately do not reuse the MQTT codec's types: the disk
// format must not change when the wire structs do.

// Message is an application message as it is stored.
type Message struct {
	Topic   string
	Payload []byte
	QoS     byte  // QoS it was published with
	Retain  bool  // retain flag it was published with
	Time    int64 // when the broker received it, Unix nanoseconds
	// Properties is the encoded MQTT 5.0 property block of the PUBLISH,
	// as the codec (broker/packet) writes it, without the properties that
	// belong to one connection (topic alias, subscription identifiers).
	// persist never parses it. nil for a message published over 3.1.x: it
	// stays nil through the store, and an empty non-nil block stays empty
	// and non-nil, so the broker may tell them apart.
	Properties []byte
	// Expiry is when the message expires, Unix nanoseconds (the receive
	// time plus its Message Expiry Interval); 0 never. See Expired.
	Expiry int64
}

// Size is the number of bytes a message counts against byte limits: its
// topic, payload and properties.
func (m *Message) Size() int64 { return int64(len(m.Topic) + len(m.Payload) + len(m.Properties)) }

// Expired reports whether the message has expired at now (Unix
// nanoseconds): it has an Expiry and now is past it.
func (m *Message) Expired(now int64) bool { return m.Expiry != 0 && now >= m.Expiry }

// Subscription is one topic filter of a persistent session. Seq is the
// caller's key for it, unique within the session (see PutSubscription).
// The options after QoS are MQTT 5.0's (all zero for a 3.1.x one).
type Subscription struct {
	Seq    uint64
	Filter string
	QoS    byte
	// NoLocal: messages published by this session's client are not
	// delivered to it.
	NoLocal bool
	// RetainAsPublished: forwarded messages keep their retain flag.
	RetainAsPublished bool
	// RetainHandling is 0 (send retained messages on subscribe), 1 (only
	// for a new subscription) or 2 (never); 3 is invalid.
	RetainHandling byte
	// ID is the subscription identifier, 1 to MaxSubscriptionID; 0 none.
	ID uint32
}

// MaxSubscriptionID is the largest subscription identifier (a Variable
// Byte Integer of up to 4 bytes).
const MaxSubscriptionID = 268_435_455

// Queued is one message in a session's outbound queue: waiting to be sent,
// or sent (PacketID != 0) and not yet acknowledged.
type Queued struct {
	MsgID    uint64  // the message's store-wide id, as in PutMessage
	Msg      Message // the message body, shared by every session it is queued to
	QoS      byte    // the QoS it is delivered with to this session
	PacketID uint16  // 0 until the message is sent; then the id it was sent with
	Pubrel   bool    // QoS 2 only: PUBREC received, PUBREL sent, awaiting PUBCOMP
	Retain   bool    // the retain flag it is delivered with (a retained message for a new subscription)
	// SubIDs are the subscription identifiers of the session's
	// subscriptions that matched the message, to be sent with it
	// [MQTT-3.3.4-3]; nil if none (always for 3.1.x sessions).
	SubIDs []uint32
}

// Session is a persistent session (clean session 0) as stored.
type Session struct {
	ClientID string
	// Subs holds the subscriptions in ascending Seq order.
	Subs []Subscription
	// LastSeen is when the client last disconnected, Unix seconds; 0 while
	// it is connected. The broker uses it to expire abandoned sessions.
	LastSeen int64
	// Queue holds the sent messages at the head of the session's outbound
	// queue: the leading entries (ascending MsgID) with a PacketID, which
	// the broker re-sends on resume. The broker sends in queue order, so
	// sent entries precede waiting ones; Load reads no further.
	Queue []Queued
	// Waiting and WaitingBytes are the count and Message.Size total of the
	// rest of the queue, which Load does not read: ReadSessionQueue does,
	// as the client drains it.
	Waiting      int64
	WaitingBytes int64
	// Inbound holds the packet ids of QoS 2 messages received from the
	// client whose PUBREL has not arrived yet, ascending.
	Inbound []uint16
	// Owner is whom the session belongs to; nil for a session stored
	// before owners were recorded (SetOwner).
	Owner *Owner
	// Version is the protocol level the client last connected with (3 for
	// MQTT 3.1, 4 for 3.1.1, 5 for 5.0), as PutSession stored it; 0 for a
	// session stored before format 3 or by a caller that did not say,
	// which is treated as 3.1.1.
	Version byte
	// ExpiryInterval is the MQTT 5.0 Session Expiry Interval in seconds.
	// It applies only when Version is 5 or more: a 3.1.x session (Version
	// below 5) has no expiry interval and never expires by itself, as
	// before format 3 (limits.session_expiry may still end it). ExpiryNever
	// (0xFFFFFFFF) never expires (MQTT 5.0 section 3.1.2.11.2). See
	// ExpiresAfter.
	ExpiryInterval uint32
	// Will is the will message stored for the session (SetWill), or nil.
	Will *Will
}

// ExpiryNever is the Session Expiry Interval of a session that does not
// expire (0xFFFFFFFF).
const ExpiryNever = ^uint32(0)

// ExpiresAfter returns how long after its client disconnects the session
// expires, and false if it never does: a session of Version below 5 or
// with ExpiryInterval ExpiryNever. Load returns sessions past their expiry
// like any other: the broker decides (it may publish their wills first).
func (s *Session) ExpiresAfter() (seconds uint32, ok bool) {
	if s.Version < 5 || s.ExpiryInterval == ExpiryNever {
		return 0, false
	}
	return s.ExpiryInterval, true
}

// Will is a will message stored with a session, so that a delayed will
// (MQTT 5.0 Will Delay Interval) is not lost by a restart. Msg holds the
// will's topic, payload, QoS, retain flag and properties (the will
// properties as the codec writes them, which persist does not parse); its
// Time and Expiry are the caller's (usually 0).
type Will struct {
	Msg Message
	// Due is when the will is to be published, Unix nanoseconds; 0 means
	// no time was set (for example the client was still connected when it
	// was stored, and the broker decides at start-up).
	Due int64
}

// Owner identifies the client a persistent session belongs to: only a
// client with the same identity resumes it.
type Owner struct {
	Username    string
	HasUsername bool // false: the client connected without a user name
}

// Snapshot is everything Load returns at start-up.
type Snapshot struct {
	Sessions []Session
	Retained []Message
	// NextMsgID is larger than every MsgID ever committed; the caller
	// allocates new ids from it.
	NextMsgID uint64
}

// Op is one mutation in a Commit. The ops of one Commit are applied in one
// transaction, in order.
type Op interface{ isOp() }

// PutMessage stores a message once under ID. Enqueue ops in the same or a
// later commit reference it; it is deleted when its last reference is
// removed by Dequeue or DeleteSession. A PutMessage with no Enqueue in the
// same commit is a caller error.
type PutMessage struct {
	ID  uint64
	Msg Message
}

// Enqueue appends a reference to message MsgID to a session's queue,
// delivered with QoS, the retain flag Retain and the subscription
// identifiers SubIDs (each 1 to MaxSubscriptionID).
type Enqueue struct {
	ClientID string
	MsgID    uint64
	QoS      byte
	Retain   bool
	SubIDs   []uint32
}

// SetInflight records that a queued message was sent with PacketID, or
// (Pubrel) that its PUBREC arrived and PUBREL was sent.
type SetInflight struct {
	ClientID string
	MsgID    uint64
	PacketID uint16
	Pubrel   bool
}

// Dequeue removes a message from a session's queue: it was acknowledged,
// dropped by a limit, or expired.
type Dequeue struct {
	ClientID string
	MsgID    uint64
}

// PutSession creates a session or sets its info record: LastSeen, Version
// and ExpiryInterval, all three (see Session; a caller that leaves Version
// 0 stores a 3.1.1-like session that never expires). Its subscriptions,
// queue, inbound state, owner and will are kept.
type PutSession struct {
	ClientID       string
	LastSeen       int64
	Version        byte
	ExpiryInterval uint32
}

// PutSubscription creates a session's subscription Seq or replaces it.
// The caller assigns Seq (unique within the session, for example a counter)
// and keeps it to delete the subscription: one SUBSCRIBE writes only the
// filters it names, and a filter of any length (up to MQTT's 65,535 bytes)
// is a value, never a bbolt key.
type PutSubscription struct {
	ClientID string
	Sub      Subscription
}

// DeleteSubscription removes a session's subscription Seq.
type DeleteSubscription struct {
	ClientID string
	Seq      uint64
}

// SetOwner records whom a session belongs to, creating the session if
// needed. It is kept until the session is deleted.
type SetOwner struct {
	ClientID string
	Owner    Owner
}

// SetWill stores the will of a session, replacing any, creating the
// session if needed; a nil Will removes it (and creates nothing). It is
// kept until removed or the session is deleted.
type SetWill struct {
	ClientID string
	Will     *Will
}

// DeleteSession removes a session with its queue, inbound state and will.
type DeleteSession struct {
	ClientID string
}

// PutInbound records a QoS 2 packet id received from a client, awaiting
// PUBREL.
type PutInbound struct {
	ClientID string
	PacketID uint16
}

// DeleteInbound removes a QoS 2 packet id when its PUBREL arrived.
type DeleteInbound struct {
	ClientID string
	PacketID uint16
}

// PutRetained stores the retained message for Msg.Topic, replacing any.
type PutRetained struct {
	Msg Message
}

// DeleteRetained removes the retained message of a topic.
type DeleteRetained struct {
	Topic string
}

// QueueAppend appends a message to the queue named Queue (a bridge
// queue; build it with Queue.Append). The queue's limits (DB.Queue) are applied in the same
// transaction.
type QueueAppend struct {
	Queue string
	Msg   Message
}

// QueueDelete removes entry Seq from the queue named Queue (see Queue.Delete).
type QueueDelete struct {
	Queue string
	Seq   uint64
}

func (PutMessage) isOp()         {}
func (Enqueue) isOp()            {}
func (SetInflight) isOp()        {}
func (Dequeue) isOp()            {}
func (PutSession) isOp()         {}
func (PutSubscription) isOp()    {}
func (DeleteSubscription) isOp() {}
func (DeleteSession) isOp()      {}
func (SetOwner) isOp()           {}
func (SetWill) isOp()            {}
func (PutInbound) isOp()         {}
func (DeleteInbound) isOp()      {}
func (PutRetained) isOp()        {}
func (DeleteRetained) isOp()     {}
func (QueueAppend) isOp()        {}
func (QueueDelete) isOp()        {}
