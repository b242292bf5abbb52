package persist

import (
	"errors"
	"fmt"
)

// ErrInvalidOp is returned (wrapped, to the done callback) for a Commit
// call with an op the store cannot store: an empty name or one longer than
// 65,535 bytes (client id, topic, queue name), a QoS above 2, a retain
// handling above 2, a subscription identifier above MaxSubscriptionID (or
// 0 in Enqueue.SubIDs), a nil or unknown op. None of the call's ops is applied; other calls are not
// affected. An MQTT packet that passed the codec never makes one.
var ErrInvalidOp = errors.New("invalid op")

var errInvalidOp = ErrInvalidOp

// validate reports caller errors in an op that would make it impossible to
// store or to load again. Commit refuses the whole call (group) with such
// an op, before it is applied, so that nothing is acknowledged that is
// not stored; the transaction of other calls is not affected.
func validate(op Op) error {
	bad := func(what string) error { return fmt.Errorf("%w %T: %s", errInvalidOp, op, what) }
	key := func(s string) bool { return len(s) > 0 && len(s) <= maxNameSize }
	switch o := op.(type) {
	case PutMessage:
		if o.Msg.QoS > 2 {
			return bad("qos > 2")
		}
	case Enqueue:
		if !key(o.ClientID) {
			return bad("client id length")
		}
		if o.QoS > 2 {
			return bad("qos > 2")
		}
		for _, id := range o.SubIDs {
			if id == 0 || id > MaxSubscriptionID {
				return bad("subscription identifier out of range")
			}
		}
	case SetInflight:
		if !key(o.ClientID) {
			return bad("client id length")
		}
	case Dequeue:
		if !key(o.ClientID) {
			return bad("client id length")
		}
	case PutSession:
		if !key(o.ClientID) {
			return bad("client id length")
		}
	case PutSubscription:
		if !key(o.ClientID) {
			return bad("client id length")
		}
		if o.Sub.QoS > 2 {
			return bad("qos > 2")
		}
		if len(o.Sub.Filter) == 0 || len(o.Sub.Filter) > maxNameSize {
			return bad("filter length")
		}
		if o.Sub.RetainHandling > 2 {
			return bad("retain handling > 2")
		}
		if o.Sub.ID > MaxSubscriptionID {
			return bad("subscription identifier out of range")
		}
	case DeleteSubscription:
		if !key(o.ClientID) {
			return bad("client id length")
		}
	case SetOwner:
		if !key(o.ClientID) {
			return bad("client id length")
		}
	case SetWill:
		if !key(o.ClientID) {
			return bad("client id length")
		}
		if o.Will != nil && !key(o.Will.Msg.Topic) {
			return bad("will topic length")
		}
		if o.Will != nil && o.Will.Msg.QoS > 2 {
			return bad("qos > 2")
		}
	case DeleteSession:
		if !key(o.ClientID) {
			return bad("client id length")
		}
	case PutInbound:
		if !key(o.ClientID) {
			return bad("client id length")
		}
	case DeleteInbound:
		if !key(o.ClientID) {
			return bad("client id length")
		}
	case PutRetained:
		if !key(o.Msg.Topic) {
			return bad("topic length")
		}
		if o.Msg.QoS > 2 {
			return bad("qos > 2")
		}
	case DeleteRetained:
		if !key(o.Topic) {
			return bad("topic length")
		}
	case QueueAppend:
		if !key(o.Queue) {
			return bad("queue name length")
		}
		if o.Msg.QoS > 2 {
			return bad("qos > 2")
		}
	case QueueDelete:
		if !key(o.Queue) {
			return bad("queue name length")
		}
	case expireOp, asideOp, expiredRetainedOp:
	case nil:
		return bad("nil")
	default:
		return bad("unknown type")
	}
	return nil
}

// expiredRetainedOp is the internal op by which Load deletes the expired
// retained messages it left out: keys[i] is deleted if it still holds
// raws[i], the record Load read.
type expiredRetainedOp struct{ keys, raws [][]byte }

func (expiredRetainedOp) isOp() {}

// expireOp is the internal op behind ExpireQueues and Queue.Expire.
type expireOp struct {
	queue   string // "" for every queue
	now     int64  // Unix nanoseconds
	expired *int64
}

func (expireOp) isOp() {}

// expiredBefore returns the Message.Time below which entries of a queue
// with limits l are expired at now, or 0 if they never expire. Entries with
// a Time ≤ 0 (unknown) never expire.
func expiredBefore(l QueueLimits, now int64) int64 {
	if l.MaxAge <= 0 {
		return 0
	}
	return now - int64(l.MaxAge)
}

func isExpired(t, before int64) bool { return t > 0 && t < before }
