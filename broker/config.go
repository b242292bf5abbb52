package broker

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/edged/edged/persist"
)

// Config configures a Server. The zero value of every field is usable: it
// means the default written next to the field.
type Config struct {
	// Limits protect a small device; see Limits.
	Limits Limits

	// Store persists sessions, queued messages and retained messages. Nil
	// keeps everything in memory only: acknowledgements then go out as soon
	// as a message is routed, and a restart loses all state.
	Store Store

	// Auth authenticates clients at CONNECT. Nil accepts every client on a
	// listener that allows anonymous access and refuses every client
	// elsewhere.
	Auth Authenticator

	// ACL authorizes publishes and subscriptions. Nil allows everything.
	ACL Authorizer

	// SysInterval is how often $SYS/broker/... topics are published.
	// Default 10s; negative disables them.
	SysInterval time.Duration

	// ConnectTimeout bounds the wait for CONNECT after a connection is
	// accepted, TLS handshake included; it is a deadline from accept, so a
	// client sending its CONNECT byte by byte cannot stretch it. Default
	// 10s.
	ConnectTimeout time.Duration

	// WriteTimeout bounds one flush of a connection's write queue; a client
	// that does not read for this long is disconnected. Default 30s.
	WriteTimeout time.Duration

	// Version is reported on $SYS/broker/version.
	Version string

	// Logger receives the broker's logs. Nil discards them.
	Logger *slog.Logger
}

// Limits bound what clients can make the broker hold. The yaml tags are
// the keys of the limits: section of edged's configuration file, which
// decodes into this struct directly; config:"size" marks a byte count that
// the file may write with a KiB, MiB or GiB suffix.
type Limits struct {
	// MaxConnections is the most concurrent client connections; further
	// CONNECTs are refused with return code 0x03. Default 1024; negative
	// means no limit.
	MaxConnections int `yaml:"max_connections"`
	// MaxConnectionsPerAddress is the most connected clients from one
	// source IP address, so that one host cannot take every connection;
	// further CONNECTs are refused with 0x03 (a takeover is always
	// allowed). Default 128; negative means no limit. Serial ports have no
	// address and are not counted.
	MaxConnectionsPerAddress int `yaml:"max_connections_per_address"`
	// MaxPendingConnections is the most connections that have not sent
	// CONNECT yet (including TLS handshakes and WebSocket HTTP requests);
	// a connection over it is closed at once, before anything is
	// allocated for it. Default 256; negative means no limit.
	MaxPendingConnections int `yaml:"max_pending_connections"`
	// MaxPendingPerAddress is the same bound per source IP address.
	// Default 32; negative means no limit.
	MaxPendingPerAddress int `yaml:"max_pending_connections_per_address"`
	// MaxKeepalive, if set, refuses a CONNECT whose keepalive is 0 or
	// longer than this with CONNACK 0x02, as Mosquitto's max_keepalive
	// does for MQTT 3.1.1 clients (which cannot be told another value): a
	// client with keepalive 0 is never timed out, so an idle or half-open
	// one holds its connection forever. Default 0: any keepalive.
	MaxKeepalive time.Duration `yaml:"max_keepalive"`
	// MaxPacketSize is the largest remaining length accepted, checked from
	// the fixed header before the body is read; a larger packet closes the
	// connection. Default 256 KiB.
	MaxPacketSize int `yaml:"max_packet_size" config:"size"`
	// MaxInflight is the most QoS 1 and 2 messages sent to one client and
	// not yet acknowledged. Default 32.
	MaxInflight int `yaml:"max_inflight"`
	// MaxQueuedMessages bounds the messages a session holds beyond its
	// inflight window (while the client is offline or slow). Default 10000.
	MaxQueuedMessages int `yaml:"max_queued_messages"`
	// MaxQueuedBytes bounds the same queue in bytes of topic and payload.
	// Default 16 MiB.
	MaxQueuedBytes int64 `yaml:"max_queued_bytes" config:"size"`
	// MaxSubscriptions is the most topic filters one client's session
	// holds; a SUBSCRIBE filter beyond it gets return code 0x80 (a filter
	// the session already has may still change its QoS). It bounds the
	// memory and store records one client can make the broker hold.
	// Default 1000; negative means no limit.
	MaxSubscriptions int `yaml:"max_subscriptions"`
	// MaxWriteQueue bounds the packets waiting in one connection's writer.
	// When it is full, QoS 0 messages to that client are dropped and
	// counted; anything else disconnects the client as a slow consumer
	// (its QoS 1 and 2 messages stay in its session). Default 1024.
	MaxWriteQueue int `yaml:"max_write_queue"`
	// MaxWriteQueueBytes bounds the same queue in bytes, like nats-server's
	// pending bytes per client: a QoS 0 message that would take the queue
	// over it is dropped. QoS 1 and 2 messages are bounded by the inflight
	// window (their payload is held by the session anyway), so they may
	// take the queue MaxInflight x MaxPacketSize beyond it; over that the
	// client is disconnected as a slow consumer. A packet is always
	// accepted into an empty queue. Default 1 MiB.
	MaxWriteQueueBytes int64 `yaml:"max_write_queue_bytes" config:"size"`
	// SessionExpiry removes persistent sessions whose client has been
	// offline this long. Zero keeps them forever.
	SessionExpiry time.Duration `yaml:"session_expiry"`
}

// Default limits.
const (
	DefaultMaxConnections    = 1024
	DefaultMaxPacketSize     = 256 << 10
	DefaultMaxInflight       = 32
	DefaultMaxQueuedMessages = 10000
	DefaultMaxQueuedBytes    = 16 << 20
	DefaultMaxWriteQueue     = 1024
	DefaultMaxSubscriptions  = 1000

	DefaultMaxConnectionsPerAddress = 128
	DefaultMaxPendingConnections    = 256
	DefaultMaxPendingPerAddress     = 32
	DefaultMaxWriteQueueBytes       = 1 << 20
	DefaultConnectTimeout           = 10 * time.Second
)

// FieldError is a configuration error about one key. Key is the key's name
// in the configuration file, relative to the struct validated (for example
// "max_inflight").
type FieldError struct {
	Key string
	Err error
}

// Error implements error.
func (e *FieldError) Error() string { return e.Key + ": " + e.Err.Error() }

// Unwrap returns the underlying error.
func (e *FieldError) Unwrap() error { return e.Err }

// Validate reports every invalid limit, joined.
func (l Limits) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, &FieldError{Key: key, Err: fmt.Errorf(format, args...)})
	}
	if l.MaxPacketSize < 0 || l.MaxPacketSize > 268435455 {
		bad("max_packet_size", "must be between 0 (default) and 256MiB, got %d", l.MaxPacketSize)
	} else if l.MaxPacketSize != 0 && l.MaxPacketSize < 64 {
		bad("max_packet_size", "must be at least 64 bytes, got %d", l.MaxPacketSize)
	}
	if l.MaxInflight < 0 || l.MaxInflight > 65535 {
		bad("max_inflight", "must be between 0 (default) and 65535, got %d", l.MaxInflight)
	}
	if l.MaxQueuedMessages < 0 {
		bad("max_queued_messages", "must not be negative, got %d", l.MaxQueuedMessages)
	}
	if l.MaxQueuedBytes < 0 {
		bad("max_queued_bytes", "must not be negative, got %d", l.MaxQueuedBytes)
	}
	if l.MaxWriteQueue < 0 {
		bad("max_write_queue", "must not be negative, got %d", l.MaxWriteQueue)
	}
	if l.MaxWriteQueueBytes < 0 {
		bad("max_write_queue_bytes", "must not be negative, got %d", l.MaxWriteQueueBytes)
	}
	if l.MaxKeepalive < 0 || l.MaxKeepalive > 65535*time.Second {
		bad("max_keepalive", "must be between 0 (none) and 65535s, got %s", l.MaxKeepalive)
	} else if l.MaxKeepalive%time.Second != 0 {
		bad("max_keepalive", "must be whole seconds (MQTT keepalive is in seconds), got %s", l.MaxKeepalive)
	}
	if l.SessionExpiry < 0 {
		bad("session_expiry", "must not be negative, got %s", l.SessionExpiry)
	}
	return errors.Join(errs...)
}

// WithDefaults returns l with its zero values replaced by the defaults
// written next to each field.
func (l Limits) WithDefaults() Limits {
	if l.MaxConnections == 0 {
		l.MaxConnections = DefaultMaxConnections
	}
	if l.MaxPacketSize == 0 {
		l.MaxPacketSize = DefaultMaxPacketSize
	}
	if l.MaxInflight == 0 {
		l.MaxInflight = DefaultMaxInflight
	}
	if l.MaxQueuedMessages == 0 {
		l.MaxQueuedMessages = DefaultMaxQueuedMessages
	}
	if l.MaxQueuedBytes == 0 {
		l.MaxQueuedBytes = DefaultMaxQueuedBytes
	}
	if l.MaxWriteQueue == 0 {
		l.MaxWriteQueue = DefaultMaxWriteQueue
	}
	if l.MaxSubscriptions == 0 {
		l.MaxSubscriptions = DefaultMaxSubscriptions
	}
	if l.MaxWriteQueueBytes == 0 {
		l.MaxWriteQueueBytes = DefaultMaxWriteQueueBytes
	}
	if l.MaxConnectionsPerAddress == 0 {
		l.MaxConnectionsPerAddress = DefaultMaxConnectionsPerAddress
	}
	if l.MaxPendingConnections == 0 {
		l.MaxPendingConnections = DefaultMaxPendingConnections
	}
	if l.MaxPendingPerAddress == 0 {
		l.MaxPendingPerAddress = DefaultMaxPendingPerAddress
	}
	return l
}

// withDefaults returns c with zero values replaced by defaults.
func (c Config) withDefaults() Config {
	c.Limits = c.Limits.WithDefaults()
	if c.SysInterval == 0 {
		c.SysInterval = 10 * time.Second
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 30 * time.Second
	}
	if c.Version == "" {
		c.Version = "dev"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Store is what the broker needs of persistent storage. persist.DB (bbolt)
// and persist.Memory implement it.
//
// The broker keeps the authoritative state in memory and hands the store
// every mutation that must outlive a restart. Commit must not block and
// must apply the ops of successive calls in call order; done is called
// later, from the store's own goroutine, once the ops are durable (or with
// the error that prevented it). The broker acknowledges a QoS 1 or 2
// PUBLISH only from done.
//
// Load returns each session's sent messages and only the count and bytes of
// the rest of its queue; the broker reads those with ReadSessionQueue as
// the client drains them (see session.spilled).
type Store interface {
	Load() (*persist.Snapshot, error)
	Commit(ops []persist.Op, done func(error))
	// ReadSessionQueue returns up to max entries of a session's queue
	// with a MsgID above afterMsgID, in order, as committed.
	ReadSessionQueue(clientID string, afterMsgID uint64, max int) ([]persist.Queued, error)
}
