package broker

import (
	"time"

	"github.com/edged/edged/broker/packet"
	"github.com/edged/edged/persist"
)

// message is an application message inside the broker. It is immutable once
// routed and shared by every session it is delivered to.
type message struct {
	id      uint64 // store-wide id; 0 if never persisted
	topic   string
	payload []byte
	qos     byte // as published
	retain  bool // as published
	time    int64
	// ext holds what MQTT 5.0 adds to a message, and the bridge it came
	// from; nil for a message a 3.1.x client published (the 3.1.1 path
	// pays one pointer, and the struct keeps its size class).
	ext *msgExt
}

// origin returns the bridge the message came from, if any.
func (m *message) origin() string {
	if m.ext == nil {
		return ""
	}
	return m.ext.origin
}

// msgExt is the MQTT 5.0 part of a message.
type msgExt struct {
	// props are the properties forwarded to 5.0 subscribers: payload
	// format, message expiry, content type, response topic, correlation
	// data and user properties in order [MQTT-3.3.2-17] [MQTT-3.3.2-18].
	// Never a topic alias or subscription identifiers, which belong to one
	// connection. nil if the PUBLISH had none.
	props *packet.Properties
	// enc is props as a property block (packet.AppendProperties), the
	// store's persist.Message.Properties; nil when props is nil.
	enc []byte
	// expiry is when the message expires (receipt plus its Message Expiry
	// Interval), Unix nanoseconds; 0 never.
	expiry int64
	// from is the client id of the 5.0 connection that published it, for
	// No Local subscriptions [MQTT-3.8.3-3]; not persisted.
	from string
	// origin is the bridge the message came from, if any; not persisted.
	origin string
}

// newMsgExt returns the 5.0 part of a message a 5.0 client published with
// properties p at now (Unix nanoseconds) from client id from.
func newMsgExt(p *packet.Properties, now int64, from string) *msgExt {
	x := &msgExt{from: from}
	if p == nil {
		return x
	}
	fp := *p
	fp.TopicAlias, fp.SubscriptionIDs = nil, nil
	if fp.MessageExpiry != nil {
		x.expiry = now + int64(*fp.MessageExpiry)*int64(time.Second)
	}
	// The decoder admits no other property in a PUBLISH.
	if fp.PayloadFormat != nil || fp.MessageExpiry != nil || fp.ContentType != "" ||
		fp.ResponseTopic != "" || len(fp.CorrelationData) > 0 || len(fp.User) > 0 {
		x.props = &fp
		x.enc = packet.AppendProperties(nil, &fp)
	}
	return x
}

// willAt returns will message m as published at now (Unix nanoseconds):
// its Message Expiry Interval counts from its publication, not from the
// CONNECT that carried it (MQTT 5.0 section 3.1.3.2.4). m is not changed.
func (m *message) willAt(now int64) *message {
	if m.ext == nil || m.ext.props == nil || m.ext.props.MessageExpiry == nil {
		return m
	}
	w, x := *m, *m.ext
	x.expiry = now + int64(*x.props.MessageExpiry)*int64(time.Second)
	w.ext = &x
	return &w
}

func (m *message) size() int64 {
	n := int64(len(m.topic) + len(m.payload))
	if m.ext != nil {
		n += int64(len(m.ext.enc))
	}
	return n
}

// expired reports whether m has a message expiry interval that has passed
// at now (Unix nanoseconds).
func (m *message) expired(now int64) bool {
	return m.ext != nil && m.ext.expiry != 0 && now >= m.ext.expiry
}

func (m *message) record() persist.Message {
	r := persist.Message{Topic: m.topic, Payload: m.payload, QoS: m.qos, Retain: m.retain, Time: m.time}
	if m.ext != nil {
		r.Properties, r.Expiry = m.ext.enc, m.ext.expiry
	}
	return r
}

func messageFromRecord(id uint64, r *persist.Message) *message {
	m := &message{id: id, topic: r.Topic, payload: r.Payload, qos: r.QoS, retain: r.Retain, time: r.Time}
	if len(r.Properties) > 0 || r.Expiry != 0 {
		x := &msgExt{expiry: r.Expiry}
		if len(r.Properties) > 0 {
			// The store holds what the broker encoded; a block that no
			// longer decodes (damage the checksums missed) loses its
			// properties, not its message.
			if p, err := packet.DecodeProperties(r.Properties, packet.PUBLISH); err == nil && p != nil {
				x.props, x.enc = p, r.Properties
			}
		}
		m.ext = x
	}
	return m
}

// pubProps returns the properties of m as forwarded to one 5.0
// subscriber at now: its own, the remaining message expiry interval
// [MQTT-3.3.2-6] and the identifiers of the matching subscriptions
// [MQTT-3.3.4-3]. nil when there are none. The result is the caller's.
func (m *message) pubProps(ids []uint32, now int64) *packet.Properties {
	if (m.ext == nil || (m.ext.props == nil && m.ext.expiry == 0)) && len(ids) == 0 {
		return nil
	}
	p := &packet.Properties{}
	if m.ext != nil {
		if m.ext.props != nil {
			*p = *m.ext.props
		}
		if m.ext.expiry != 0 {
			// Rounded up: a message forwarded with 0 left would read as
			// one that expires at once.
			left := max((m.ext.expiry-now+int64(time.Second)-1)/int64(time.Second), 0)
			v := uint32(min(left, int64(^uint32(0))))
			p.MessageExpiry = &v
		}
	}
	p.SubscriptionIDs = ids
	return p
}

// outMsg is a message on its way to one session: queued, or in flight with
// a packet id.
type outMsg struct {
	msg    *message
	qos    byte   // delivery QoS: min(published, granted)
	pid    uint16 // 0 until sent
	pubrel bool   // QoS 2: PUBREC received, PUBREL sent
	retain bool   // the retain flag it is sent with
	// ids are the identifiers of the session's subscriptions that matched
	// (5.0); nil if none. A pointer keeps a 3.1.1 delivery small.
	ids *[]uint32
}

func newOutMsg(m *message, qos byte, retain bool, ids []uint32) *outMsg {
	om := &outMsg{msg: m, qos: qos, retain: retain}
	if len(ids) > 0 {
		om.ids = &ids
	}
	return om
}

func (o *outMsg) subIDs() []uint32 {
	if o.ids == nil {
		return nil
	}
	return *o.ids
}

func (o *outMsg) publish(dup bool) *packet.Publish {
	p := &packet.Publish{Dup: dup, QoS: o.qos, Retain: o.retain, Topic: o.msg.topic, PacketID: o.pid, Payload: o.msg.payload}
	if o.msg.ext != nil || o.ids != nil {
		p.Properties = o.msg.pubProps(o.subIDs(), time.Now().UnixNano())
	}
	return p
}

// msgQueue is a FIFO of outMsgs that reuses its backing array.
type msgQueue struct {
	items []*outMsg
	head  int
	bytes int64
}

func (q *msgQueue) len() int { return len(q.items) - q.head }

func (q *msgQueue) push(o *outMsg) {
	q.items = append(q.items, o)
	q.bytes += o.msg.size()
}

func (q *msgQueue) pop() *outMsg {
	o := q.items[q.head]
	q.items[q.head] = nil
	q.head++
	q.bytes -= o.msg.size()
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	} else if q.head > 64 && q.head*2 > len(q.items) {
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	return o
}

func (q *msgQueue) clear() {
	q.items, q.head, q.bytes = nil, 0, 0
}
