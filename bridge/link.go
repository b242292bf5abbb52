package bridge

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edged/edged/broker/packet"
	"github.com/edged/edged/persist"
)

// link is one upstream connection, whatever its protocol version: paho
// for MQTT 3.1.1 (pahoLink), edged's own codec for 5.0 (link5). The
// connection loop and the forwarder use only this, so the durable queue's
// semantics are the same for both: a token completes when the upstream
// acknowledged the publish (QoS 1/2) or it was written (QoS 0).
type link interface {
	// publish sends a message. props are the 5.0 PUBLISH properties (a
	// 3.1.1 link ignores them). errTooLarge: the upstream's maximum packet
	// size does not allow it; nothing was sent.
	publish(topic string, qos byte, retain bool, payload []byte, props *packet.Properties) (mqtt.Token, error)
	// subscribe subscribes the in rules' filters; a refused filter is an
	// ErrSubscribeRefused.
	subscribe(ctx context.Context, cs *connState, subs map[string]byte) error
	// receiveMax is the most QoS 1/2 publishes the upstream takes
	// unacknowledged (its 5.0 Receive Maximum; 65535 for 3.1.1).
	receiveMax() int
	// packetID returns the packet id a QoS 2 publish's token was sent
	// with (0 if none), to release it on the next connection.
	packetID(tok mqtt.Token) uint16
	// open reports whether the connection is still up.
	open() bool
	// disconnect sends DISCONNECT, waiting up to quiesce ms for what is
	// being written (0: close at once), and closes the connection.
	disconnect(quiesce uint)
	// version is the protocol version spoken.
	version() packet.Version
}

// errTooLarge is returned by link.publish when a message is larger than the
// upstream's Maximum Packet Size.
var errTooLarge = errors.New("bridge: message larger than the upstream's maximum packet size")

// refusedError completes the token of a publish the upstream refused with
// a 5.0 reason code of 0x80 or more in its PUBACK or PUBREC: the message
// will not be taken by sending it again, so it is dropped and counted.
type refusedError struct{ reason packet.Reason }

func (e *refusedError) Error() string {
	return fmt.Sprintf("bridge: upstream refused the message: %v (0x%02x)", e.reason, byte(e.reason))
}

// pahoLink is a 3.1.1 connection through paho.mqtt.golang.
type pahoLink struct{ c mqtt.Client }

func (l pahoLink) publish(topic string, qos byte, retain bool, payload []byte, _ *packet.Properties) (mqtt.Token, error) {
	return l.c.Publish(topic, qos, retain, payload), nil
}

func (l pahoLink) subscribe(ctx context.Context, cs *connState, subs map[string]byte) error {
	t := l.c.SubscribeMultiple(subs, nil)
	if err := waitToken(ctx, t, cs); err != nil {
		return err
	}
	for f, code := range t.(*mqtt.SubscribeToken).Result() {
		if code == 0x80 {
			return fmt.Errorf("subscribing to %q: %w", f, ErrSubscribeRefused)
		}
	}
	return nil
}

func (pahoLink) receiveMax() int { return 65535 }

func (pahoLink) packetID(tok mqtt.Token) uint16 {
	if pt, ok := tok.(*mqtt.PublishToken); ok {
		return pt.MessageID()
	}
	return 0
}

func (l pahoLink) open() bool              { return l.c.IsConnectionOpen() }
func (l pahoLink) disconnect(quiesce uint) { l.c.Disconnect(quiesce) }
func (pahoLink) version() packet.Version   { return packet.V311 }

// outProps returns the 5.0 properties to forward e with at now: its own,
// with the Message Expiry Interval set to what is left of it
// [MQTT-3.3.2-6], rounded up so a message with time left is never sent
// with an interval of 0. expired reports that e has expired and must be
// dropped instead [MQTT-3.3.2-5]. A block that does not decode is
// forwarded without properties (it was written by edged, so this is a
// bug, logged). high says e is from the high queue, for dedupValue.
func (br *Bridge) outProps(e *persist.Entry, high bool, now time.Time, v5 bool) (p *packet.Properties, expired bool) {
	if e.Msg.Expired(now.UnixNano()) {
		return nil, true
	}
	if !v5 {
		return nil, false
	}
	if len(e.Msg.Properties) > 0 {
		var err error
		if p, err = packet.DecodeProperties(e.Msg.Properties, packet.PUBLISH); err != nil {
			br.log.Error("queued message has undecodable properties; forwarding it without them", "topic", e.Msg.Topic, "error", err)
			p = nil
		}
	}
	// Properties that belong to one connection are never forwarded.
	if p != nil {
		p.TopicAlias, p.SubscriptionIDs = nil, nil
	}
	if br.cfg.DedupProperty != "" {
		if p == nil {
			p = &packet.Properties{}
		}
		// After the publisher's own, which keep their order.
		p.User = append(p.User, packet.UserProperty{Key: br.cfg.DedupProperty, Value: dedupValue(br.cfg.ClientID, high, e.Seq)})
	}
	if e.Msg.Expiry != 0 {
		left := time.Duration(e.Msg.Expiry - now.UnixNano())
		secs := uint32(min((left+time.Second-1)/time.Second, time.Duration(^uint32(0))))
		if p == nil {
			p = &packet.Properties{}
		}
		p.MessageExpiry = &secs
	}
	return p, false
}

// dedupValue is the dedup_property value of the entry seq of a queue:
// <client_id>:<seq> for the normal queue and <client_id>:high:<seq> for
// the high one. Each queue's Seqs are never reused, but the two queues
// count independently, so the high queue's values carry its name: no value
// is sent for two different messages. The normal queue's form is the one
// a bridge without priority rules always sent.
func dedupValue(clientID string, high bool, seq uint64) string {
	if high {
		return clientID + ":high:" + strconv.FormatUint(seq, 10)
	}
	return clientID + ":" + strconv.FormatUint(seq, 10)
}
