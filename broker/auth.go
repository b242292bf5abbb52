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
// packet.Accepted, or the refusal to send in the CONNACK (usually
// packet.RefusedBadUsernamePassword or packet.RefusedNotAuthorized).
// It is called on the connection's goroutine and may block briefly.
type Authenticator interface {
	Authenticate(c *ClientInfo, password []byte) packet.ConnackCode
}

// Access is what a client wants to do with a topic.
type Access int

// Kinds of access an Authorizer decides on.
const (
	// Publish: the client publishes to a topic name (also its will).
	Publish Access = iota + 1
	// Subscribe: the client subscribes to a topic filter.
	Subscribe
)

// Authorizer decides whether a client may publish to a topic or subscribe
// to a filter. A refused PUBLISH is acknowledged and dropped (MQTT 3.1.1 has
// no way to report it); a refused filter gets SUBACK failure 0x80.
type Authorizer interface {
	Allow(c *ClientInfo, a Access, topic string) bool
}
