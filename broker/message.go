package broker

import (
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
	origin  string // the bridge it came from, if any; not persisted
}

func (m *message) size() int64 { return int64(len(m.topic) + len(m.payload)) }

func (m *message) record() persist.Message {
	return persist.Message{Topic: m.topic, Payload: m.payload, QoS: m.qos, Retain: m.retain, Time: m.time}
}

func messageFromRecord(id uint64, r *persist.Message) *message {
	return &message{id: id, topic: r.Topic, payload: r.Payload, qos: r.QoS, retain: r.Retain, time: r.Time}
}

// outMsg is a message on its way to one session: queued, or in flight with
// a packet id.
type outMsg struct {
	msg    *message
	qos    byte   // delivery QoS: min(published, granted)
	pid    uint16 // 0 until sent
	pubrel bool   // QoS 2: PUBREC received, PUBREL sent
	retain bool   // sent because of a new subscription to a retained topic
}

func (o *outMsg) publish(dup bool) *packet.Publish {
	return &packet.Publish{Dup: dup, QoS: o.qos, Retain: o.retain, Topic: o.msg.topic, PacketID: o.pid, Payload: o.msg.payload}
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
