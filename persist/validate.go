package persist

import (
	"errors"
	"fmt"
)

// maxKeySize is bbolt's key size limit; client ids, topics and queue names
// are keys.
const maxKeySize = 32768

var errInvalidOp = errors.New("invalid op")

// validate reports caller errors in an op that would make it impossible to
// store or to load again. Both stores skip such an op (and log it) instead
// of failing the whole transaction, which holds other clients' commits.
func validate(op Op) error {
	bad := func(what string) error { return fmt.Errorf("%w %T: %s", errInvalidOp, op, what) }
	key := func(s string) bool { return len(s) > 0 && len(s) <= maxKeySize }
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
		if len(o.Sub.Filter) == 0 || len(o.Sub.Filter) > 65535 {
			return bad("filter length")
		}
	case DeleteSubscription:
		if !key(o.ClientID) {
			return bad("client id length")
		}
	case SetOwner:
		if !key(o.ClientID) {
			return bad("client id length")
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
	case expireOp:
	case nil:
		return bad("nil")
	default:
		return bad("unknown type")
	}
	return nil
}

// expireOp is the internal op behind ExpireQueues.
type expireOp struct {
	now     int64 // Unix nanoseconds
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
