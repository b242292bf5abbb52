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
}

// Size is the number of bytes a message counts against byte limits.
func (m *Message) Size() int64 { return int64(len(m.Topic) + len(m.Payload)) }

// Subscription is one topic filter of a persistent session. Seq is the
// caller's key for it, unique within the session (see PutSubscription).
type Subscription struct {
	Seq    uint64
	Filter string
	QoS    byte
}

// Queued is one message in a session's outbound queue: waiting to be sent,
// or sent (PacketID != 0) and not yet acknowledged.
type Queued struct {
	MsgID    uint64  // the message's store-wide id, as in PutMessage
	Msg      Message // the message body, shared by every session it is queued to
	QoS      byte    // the QoS it is delivered with to this session
	PacketID uint16  // 0 until the message is sent; then the id it was sent with
	Pubrel   bool    // QoS 2 only: PUBREC received, PUBREL sent, awaiting PUBCOMP
	Retain   bool    // the retain flag it is delivered with (a retained message for a new subscription)
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
// delivered with QoS and the retain flag Retain.
type Enqueue struct {
	ClientID string
	MsgID    uint64
	QoS      byte
	Retain   bool
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

// PutSession creates a session or sets its LastSeen. Its subscriptions,
// queue and inbound state are kept.
type PutSession struct {
	ClientID string
	LastSeen int64
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

// DeleteSession removes a session with its queue and inbound state.
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
func (PutInbound) isOp()         {}
func (DeleteInbound) isOp()      {}
func (PutRetained) isOp()        {}
func (DeleteRetained) isOp()     {}
func (QueueAppend) isOp()        {}
func (QueueDelete) isOp()        {}
