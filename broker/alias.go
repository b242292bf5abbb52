package broker

import (
	"time"
	"unicode/utf8"

	"github.com/edged/edged/broker/packet"
)

// What MQTT 5.0 adds to a connection's PUBLISH packets, both ways: topic
// aliases, the checks of an inbound PUBLISH's properties, and taking its
// properties into the message.

// aliases is one connection's topic aliases in one direction: alias n
// (1..len(topics)) stands for topics[n-1]. Inbound it is the reader's,
// outbound the writer's; each is bounded by the topic alias maximum of
// that direction and is dropped with the connection [MQTT-3.3.2-7].
type aliases struct {
	topics []string
	byName map[string]uint16 // outbound only
	next   uint16            // outbound: the alias to assign or replace next, 0-based
}

// connAliases are a 5.0 connection's topic aliases: in is the reader's,
// out the writer's; outMax, set at CONNECT, is how many edged may assign
// (0: none).
type connAliases struct {
	in, out aliases
	outMax  uint16
}

// publish5 applies what MQTT 5.0 adds to an inbound PUBLISH before it is
// authorized and routed: the topic alias (resolving an empty topic name),
// the subscription identifier a client must not send, and the properties
// taken into m. It returns the reason to refuse the message with
// (PayloadFormatInvalid) or Success, and a closeReason other than
// closeNone when the connection is closed.
func (c *conn) publish5(p *packet.Publish, m *message) (packet.Reason, closeReason) {
	pr := p.Properties
	if pr != nil {
		if len(pr.SubscriptionIDs) > 0 {
			// [MQTT-3.3.4-6]
			return 0, c.disconnect5(packet.ProtocolError, "PUBLISH with a subscription identifier")
		}
		if a := pr.TopicAlias; a != nil {
			max := c.s.cfg.Limits.TopicAliasMaximum
			if int(*a) > max {
				// Over the Topic Alias Maximum edged's CONNACK gave (0 when
				// none) [MQTT-3.3.2-9] [MQTT-3.3.2-10]; 0 the decoder refuses
				// [MQTT-3.3.2-8].
				return 0, c.disconnect5(packet.TopicAliasInvalid, "topic alias over the maximum")
			}
			if c.alias.in.topics == nil {
				c.alias.in.topics = make([]string, max)
			}
			if p.Topic == "" {
				t := c.alias.in.topics[*a-1]
				if t == "" {
					// An alias the client never set [MQTT-3.3.2.3.4].
					return 0, c.disconnect5(packet.ProtocolError, "unknown topic alias")
				}
				m.topic = t
			} else {
				c.alias.in.topics[*a-1] = p.Topic
			}
		}
	}
	now := time.Now().UnixNano()
	m.time = now
	m.ext = newMsgExt(pr, now, c.info.ClientID)
	if pr != nil && pr.PayloadFormat != nil && *pr.PayloadFormat == 1 && !utf8.Valid(p.Payload) {
		// Optional check [MQTT-3.3.2.3.2]; edged makes it, as Mosquitto
		// does: the message is not routed.
		return packet.PayloadFormatInvalid, closeNone
	}
	return packet.Success, closeNone
}

// disconnect5 sends a 5.0 DISCONNECT with reason r, lets the writer flush
// it and closes the connection as a protocol violation.
func (c *conn) disconnect5(r packet.Reason, why string) closeReason {
	c.log.Info("closing connection", "error", why, "reason", r.Error())
	c.sendDisconnect(r, why, closeProtocol)
	return closeProtocol
}

// minAliasTopic is the shortest topic edged replaces with an alias: the
// alias property costs 3 bytes, so a shorter topic gains nothing.
const minAliasTopic = 4

// aliasOut rewrites an outbound PUBLISH to use a topic alias when the
// client allows them (its CONNECT's Topic Alias Maximum, capped by
// Limits.TopicAliasMaximum): the first PUBLISH of a topic carries the topic
// and a new alias, the later ones an empty topic and the alias
// [MQTT-3.3.2-12]. When every alias is taken, the oldest assignment is
// reassigned (round robin). Writer only: the mapping follows the order the
// packets are written in. p is the connection's own packet; its properties
// are copied before they change, since they may be shared.
func (c *conn) aliasOut(p *packet.Publish) {
	if len(p.Topic) < minAliasTopic {
		return
	}
	a := &c.alias.out
	np := &packet.Properties{}
	if p.Properties != nil {
		*np = *p.Properties
	}
	if n, ok := a.byName[p.Topic]; ok {
		np.TopicAlias = &n
		p.Topic, p.Properties = "", np
		return
	}
	if a.topics == nil {
		a.topics = make([]string, c.alias.outMax)
		a.byName = make(map[string]uint16, c.alias.outMax)
	}
	i := a.next
	a.next = (a.next + 1) % uint16(len(a.topics))
	if old := a.topics[i]; old != "" {
		delete(a.byName, old)
	}
	a.topics[i] = p.Topic
	n := i + 1
	a.byName[p.Topic] = n
	np.TopicAlias = &n
	p.Properties = np
}
