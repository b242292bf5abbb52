package broker

import (
	"net"

	"github.com/edged/edged/broker/packet"
)

// ClientInfo describes a connecting or connected client to an Authenticator
// or Authorizer.
type ClientInfo struct {
	ClientID string
	// Username is empty when HasUsername is false.
	Username    string
	HasUsername bool
	// Listener is the name of the listener the client connected through.
	Listener string
	Remote   net.Addr
	// Anonymous reports whether the listener allows clients without
	// credentials.
	Anonymous bool
}

// Authenticator decides whether a client may connect. It returns
// packet.Success, or the refusal to send in the CONNACK (usually
// packet.BadUserNameOrPassword or packet.NotAuthorized; before 5.0 it is
// sent as the 3.1.1 return code of the same meaning, 0x04 or 0x05).
// It is called on the connection's goroutine and may block briefly.
type Authenticator interface {
	Authenticate(c *ClientInfo, password []byte) packet.Reason
}

// Access is what a client wants to do with a topic.
type Access int

// Kinds of access an Authorizer decides on.
const (
	// Publish: the client publishes to a topic name (also its will).
	Publish Access = iota + 1
	// Subscribe: the client subscribes to a topic filter.
	Subscribe
	// Read: a message published to a topic name is about to be delivered
	// to the client (or queued for it) through a subscription granted
	// GrantSome. The ClientInfo is the session owner's: for an offline
	// session, the identity it last connected with.
	Read
)

// Authorizer decides whether a client may publish to a topic or subscribe
// to a filter. A refused PUBLISH is acknowledged and dropped (MQTT 3.1.1 has
// no way to report it); a refused filter gets SUBACK failure 0x80.
//
// An Authorizer that does not implement SubscriptionAuthorizer grants a
// filter with Allow(c, Subscribe, filter) as if every topic it can match
// were readable: messages through it are not checked again.
type Authorizer interface {
	Allow(c *ClientInfo, a Access, topic string) bool
}

// Grant is an answer to a subscription.
type Grant int

// Grants a SubscriptionAuthorizer returns.
const (
	// GrantNone refuses the filter: no topic it can match is readable
	// (SUBACK 0x80).
	GrantNone Grant = iota
	// GrantSome grants the filter because some topics it can match are
	// readable; each message through it is checked with Allow(c, Read,
	// topic) before it is delivered or queued, as Mosquitto does.
	GrantSome
	// GrantAll grants the filter because every topic it can match is
	// readable: messages through it need no check.
	GrantAll
)

// SubscriptionAuthorizer is an Authorizer that grants subscriptions whose
// filters are only partly readable, such as a dashboard's "#", leaving the
// rest to a check at delivery.
type SubscriptionAuthorizer interface {
	Authorizer
	AuthorizeSubscription(c *ClientInfo, filter string) Grant
}
