package bridge

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/edged/edged/broker/packet"
	"github.com/edged/edged/persist"
)

// Direction is the direction of a topic rule.
type Direction string

// The directions of a topic rule.
const (
	Out  Direction = "out"  // local to upstream
	In   Direction = "in"   // upstream to local
	Both Direction = "both" // both ways; a message never goes back the way it came
)

// Protocols of Config.Protocol.
const (
	Protocol311  = "3.1.1"
	Protocol5    = "5"
	ProtocolAuto = "auto"
)

// Start policies (Config.Start).
const (
	StartAlways = "always"
	StartLazy   = "lazy"
)

// Failover policies (Config.Failover).
const (
	FailoverPriority   = "priority"
	FailoverRoundRobin = "round-robin"
)

// Config configures one bridge. The `bridges:` entries of the configuration
// file decode into it directly, by the yaml tags (config:"size" marks a
// byte count written with a KiB, MiB or GiB suffix); the zero value of
// every field other than Name, Address and Topics means the default
// written next to it.
type Config struct {
	// Name identifies the bridge in logs, in $SYS/broker/bridge/<name>/ and
	// in the name of its durable queue. It must not change while its queue
	// holds messages, and must not contain '/', '+' or '#'.
	Name string `yaml:"name"`
	// Address is tcp://host:port or tls://host:port: the one upstream
	// broker. Set it or Addresses.
	Address string `yaml:"address"`
	// Addresses are upstream brokers to fail over between, tried in order
	// (see Failover). They share the one queue: a switch loses and
	// reorders nothing (the new connection starts from the queue's head).
	Addresses []string `yaml:"addresses"`
	// Failover is FailoverPriority (default: after a failure the next
	// address is tried; while not on the first, it is checked every
	// PrimaryRetry and used again once it accepts connections) or
	// FailoverRoundRobin (each reconnection moves on to the next address).
	Failover string `yaml:"failover"`
	// PrimaryRetry is how often, at most, a bridge connected to another
	// address checks whether the first one is back (FailoverPriority).
	// Default 1m.
	PrimaryRetry time.Duration `yaml:"primary_retry"`
	// Protocol is the MQTT version spoken upstream: Protocol311 (default,
	// with Mosquitto's bridge mode when the upstream accepts it),
	// Protocol5, or ProtocolAuto, which tries 5.0 and uses 3.1.1 from then
	// on when the upstream refuses it (CONNACK 0x84, or the 3.1.1 return
	// code 0x01), or closes a 5.0 connection before its CONNACK and then
	// accepts 3.1.1 (an upstream that is merely down does not make it
	// fall back). A restart of edged tries 5.0 again.
	Protocol string `yaml:"protocol"`
	// SessionExpiry is the MQTT 5.0 session expiry interval asked for the
	// persistent upstream session of a bridge with in rules (so commands
	// sent while the link is down are kept for it that long). Default 24h;
	// whole seconds, at most 136 years (0xFFFFFFFF s, which never expires).
	// Not used over 3.1.1, where the session is clean session 0.
	SessionExpiry time.Duration `yaml:"session_expiry"`
	// ClientID is the upstream client id. Default "edged-<hostname>-<name>".
	// With in rules the upstream session is persistent (clean session 0),
	// so the id must be stable.
	ClientID string `yaml:"client_id"`
	// DedupProperty, if set, is the name of a user property added over
	// MQTT 5.0 to every forwarded message, valued "<client_id>:<seq>"
	// ("<client_id>:high:<seq>" for the high queue): the queue's sequence
	// number, increasing, never reused and kept across restarts, so a consumer in the cloud can drop the duplicates
	// at-least-once delivery makes after a reconnect (a resent message
	// carries the same value). Not sent over 3.1.1, which has no
	// properties. Default "" (off).
	DedupProperty string `yaml:"dedup_property"`
	// Username and Password authenticate to the upstream broker.
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// TLS configures tls:// addresses; nil uses the system roots.
	TLS *TLSConfig `yaml:"tls"`
	// Start is StartAlways (default: connected all the time) or StartLazy
	// for metered links: the bridge connects when its queues hold
	// LazyThreshold messages, when a priority: high message is queued, or
	// when LazyInterval passed since it last disconnected, and disconnects
	// once it had nothing to send for IdleTimeout. In rules receive only
	// while it is connected (their upstream session keeps the rest).
	Start string `yaml:"start"`
	// LazyThreshold is the queue length that makes a lazy bridge connect.
	// Default 1000.
	LazyThreshold int64 `yaml:"lazy_threshold"`
	// LazyInterval is the longest a lazy bridge stays disconnected.
	// Default 1h.
	LazyInterval time.Duration `yaml:"lazy_interval"`
	// IdleTimeout is how long a lazy bridge stays connected with nothing
	// to send. Default 1m.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// KeepAlive is the MQTT keepalive upstream. A ping unanswered for
	// PingTimeout drops the connection, which is how a half-open link is
	// detected. Default 30s.
	KeepAlive time.Duration `yaml:"keepalive"`
	// PingTimeout is how long a PINGRESP may take. Default KeepAlive/2,
	// at most 10s.
	PingTimeout time.Duration `yaml:"ping_timeout"`
	// ConnectTimeout bounds dialling, the TLS handshake and CONNACK.
	// Default 10s.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// Backoff bounds the delay between reconnection attempts: it doubles
	// from Min to Max, with jitter, and returns to Min after a connection
	// stayed up for StableAfter. Defaults 1s and 2m.
	Backoff Backoff `yaml:"backoff"`
	// StableAfter is how long a connection must stay up before the backoff
	// is reset. Default 30s.
	StableAfter time.Duration `yaml:"stable_after"`
	// RateLimit caps upstream publishes per second (a token bucket), for
	// metered links. 0 means link speed.
	RateLimit int `yaml:"rate_limit"`
	// ByteRateLimit caps the topic and payload bytes published upstream
	// per second (a token bucket with a second's worth of burst), beside
	// RateLimit. 0 means link speed.
	ByteRateLimit int `yaml:"byte_rate_limit"`
	// Window is the most QoS 1/2 publishes awaiting their acknowledgement
	// upstream; after a reconnect at most Window messages are sent twice.
	// Default 64; at most 65535.
	Window int `yaml:"window"`
	// Topics are the forwarding rules, with Mosquitto's semantics: a local
	// message on LocalPrefix+T, where T matches Pattern, goes upstream as
	// RemotePrefix+T (out rules), and back for in rules. The first
	// matching rule of a direction wins.
	Topics []Rule `yaml:"topics"`
	// Queue bounds the durable queue of out messages (see OpenQueues).
	Queue persist.QueueLimits `yaml:"queue"`
	// NotificationTopic receives a retained "1" when the bridge connects
	// and, as its will, a retained "0" when it goes away. Default
	// "<remote_prefix of the first rule>edged/<client_id>/state"; "-"
	// disables it.
	NotificationTopic string `yaml:"notification_topic"`
	// SysInterval is how often $SYS/broker/bridge/<name>/... is published
	// (and how often expired queue entries are deleted). Default 10s;
	// negative disables it.
	SysInterval time.Duration `yaml:"-"`
	// Logger receives the bridge's logs. Nil discards them.
	Logger *slog.Logger `yaml:"-"`
}

// TLSConfig is the TLS section of a bridge. Files are read by New.
type TLSConfig struct {
	CAFile     string `yaml:"ca_file"`   // PEM CA bundle to verify the server; empty: system roots
	CertFile   string `yaml:"cert_file"` // PEM client certificate, with KeyFile
	KeyFile    string `yaml:"key_file"`
	ServerName string `yaml:"server_name"` // to verify instead of the address's host
}

// Backoff bounds reconnection delays.
type Backoff struct {
	Min time.Duration `yaml:"min"`
	Max time.Duration `yaml:"max"`
}

// Rule is one topic rule.
type Rule struct {
	Pattern      string    `yaml:"pattern"`
	Direction    Direction `yaml:"direction"`
	QoS          byte      `yaml:"qos"` // the highest QoS used on this rule's messages
	LocalPrefix  string    `yaml:"local_prefix"`
	RemotePrefix string    `yaml:"remote_prefix"`
	// Priority (out rules) is PriorityNormal ("" too) or PriorityHigh:
	// high messages have their own queue, appended in the same commit,
	// and are sent before any normal backlog; order is kept within a
	// priority.
	Priority string `yaml:"priority"`
	// OfflineQoS0 (out rules) is what becomes of the rule's messages that
	// go upstream at QoS 0 while the link is down: OfflineQueue ("" too:
	// queued like the others), OfflineDrop (not queued, counted as
	// dropped) or OfflineLatest (only the newest message per topic is
	// kept, in memory, and queued when the link is up).
	OfflineQoS0 string `yaml:"offline_qos0"`
}

// Priorities of an out rule (Rule.Priority).
const (
	PriorityNormal = "normal"
	PriorityHigh   = "high"
)

// What becomes of QoS 0 messages while the link is down (Rule.OfflineQoS0).
const (
	OfflineQueue  = "queue"
	OfflineDrop   = "drop"
	OfflineLatest = "latest"
)

// QueueName is the name of the durable queue of bridge name in the store:
// the one place that names it.
func QueueName(name string) string { return "bridge/" + name }

// HighQueueName is the name of the queue of bridge name's priority: high
// messages. A bridge name has no '/', so it is no other bridge's queue.
func HighQueueName(name string) string { return QueueName(name) + "/high" }

// withDefaults returns c with its zero values replaced by the defaults.
func (c Config) withDefaults() Config {
	if c.ClientID == "" {
		host, _ := os.Hostname()
		c.ClientID = "edged-" + host + "-" + c.Name
	}
	if len(c.Addresses) == 0 && c.Address != "" {
		c.Addresses = []string{c.Address}
	}
	if c.Failover == "" {
		c.Failover = FailoverPriority
	}
	if c.PrimaryRetry == 0 {
		c.PrimaryRetry = time.Minute
	}
	if c.Start == "" {
		c.Start = StartAlways
	}
	if c.LazyThreshold == 0 {
		c.LazyThreshold = 1000
	}
	if c.LazyInterval == 0 {
		c.LazyInterval = time.Hour
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = time.Minute
	}
	if c.Protocol == "" {
		c.Protocol = Protocol311
	}
	if c.SessionExpiry == 0 {
		c.SessionExpiry = 24 * time.Hour
	}
	if c.KeepAlive == 0 {
		c.KeepAlive = 30 * time.Second
	}
	if c.PingTimeout == 0 {
		c.PingTimeout = min(c.KeepAlive/2, 10*time.Second)
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = 10 * time.Second
	}
	if c.Backoff.Min == 0 {
		c.Backoff.Min = time.Second
	}
	if c.Backoff.Max == 0 {
		c.Backoff.Max = max(2*time.Minute, c.Backoff.Min)
	}
	if c.StableAfter == 0 {
		c.StableAfter = 30 * time.Second
	}
	if c.Window == 0 {
		c.Window = 64
	}
	if c.Queue.Overflow == "" {
		c.Queue.Overflow = persist.DropOldest
	}
	if c.NotificationTopic == "" {
		prefix := ""
		if len(c.Topics) > 0 {
			prefix = c.Topics[0].RemotePrefix
		}
		c.NotificationTopic = prefix + "edged/" + c.ClientID + "/state"
	}
	if c.SysInterval == 0 {
		c.SysInterval = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports every invalid field, joined; each error is a
// *FieldError wrapping ErrInvalidConfig. Defaults are applied first, so a
// zero field is valid where it has a default.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, &FieldError{Key: key, Err: fmt.Errorf(format, args...)})
	}
	if c.Name == "" {
		bad("name", "is required")
	} else if strings.ContainsAny(c.Name, "/+#\x00") {
		bad("name", "must not contain '/', '+', '#' or NUL, got %q", c.Name)
	}
	switch {
	case c.Address != "" && len(c.Addresses) > 0 && !(len(c.Addresses) == 1 && c.Addresses[0] == c.Address):
		bad("addresses", "set address or addresses, not both")
	case len(c.Addresses) == 0:
		bad("address", "is required (or addresses)")
	}
	key := "address"
	for i, a := range c.Addresses {
		if c.Address == "" {
			key = fmt.Sprintf("addresses[%d]", i)
		}
		if _, useTLS, err := parseAddress(a); err != nil {
			bad(key, "%v", err)
		} else if c.TLS != nil && !useTLS {
			bad("tls", "is set but address %q is not tls://", a)
		}
		if slices.Index(c.Addresses, a) < i {
			bad(key, "%q is listed twice", a)
		}
	}
	switch c.Failover {
	case FailoverPriority, FailoverRoundRobin:
	default:
		bad("failover", "must be priority or round-robin, got %q", c.Failover)
	}
	switch c.Start {
	case StartAlways, StartLazy:
	default:
		bad("start", "must be always or lazy, got %q", c.Start)
	}
	if c.LazyThreshold < 1 {
		bad("lazy_threshold", "must be at least 1, got %d", c.LazyThreshold)
	}
	if c.LazyInterval < 0 {
		bad("lazy_interval", "must not be negative, got %s", c.LazyInterval)
	}
	if c.IdleTimeout < 0 {
		bad("idle_timeout", "must not be negative, got %s", c.IdleTimeout)
	}
	if c.PrimaryRetry < 0 {
		bad("primary_retry", "must not be negative, got %s", c.PrimaryRetry)
	}
	switch c.Protocol {
	case Protocol311, Protocol5, ProtocolAuto:
	default:
		bad("protocol", "must be 5, 3.1.1 or auto, got %q", c.Protocol)
	}
	if c.SessionExpiry < time.Second || c.SessionExpiry > time.Duration(^uint32(0))*time.Second {
		bad("session_expiry", "must be between 1s and %s, got %s", time.Duration(^uint32(0))*time.Second, c.SessionExpiry)
	}
	if len(c.DedupProperty) > 65535 || strings.ContainsRune(c.DedupProperty, 0) {
		bad("dedup_property", "must be at most 65535 bytes without NUL")
	}
	if len(c.ClientID) > 65535 || strings.ContainsRune(c.ClientID, 0) {
		bad("client_id", "must be at most 65535 bytes without NUL")
	}
	if c.Password != "" && c.Username == "" {
		bad("password", "needs a username")
	}
	if c.TLS != nil {
		if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
			bad("tls.key_file", "cert_file and key_file go together")
		}
	}
	if c.KeepAlive < time.Second || c.KeepAlive > 65535*time.Second {
		bad("keepalive", "must be between 1s and 18h12m15s, got %s", c.KeepAlive)
	}
	if c.PingTimeout < 0 {
		bad("ping_timeout", "must not be negative")
	}
	if c.ConnectTimeout < 0 {
		bad("connect_timeout", "must not be negative")
	}
	if c.Backoff.Min < 0 {
		bad("backoff.min", "must not be negative, got %s", c.Backoff.Min)
	}
	if c.Backoff.Max < c.Backoff.Min {
		bad("backoff.max", "must be at least backoff.min (%s), got %s", c.Backoff.Min, c.Backoff.Max)
	}
	if c.StableAfter < 0 {
		bad("stable_after", "must not be negative")
	}
	if c.RateLimit < 0 {
		bad("rate_limit", "must not be negative, got %d", c.RateLimit)
	}
	if c.ByteRateLimit < 0 {
		bad("byte_rate_limit", "must not be negative, got %d", c.ByteRateLimit)
	}
	if c.Window < 1 || c.Window > 65535 {
		bad("window", "must be between 1 and 65535, got %d", c.Window)
	}
	if len(c.Topics) == 0 {
		bad("topics", "at least one topic rule is required")
	}
	for i, r := range c.Topics {
		p := fmt.Sprintf("topics[%d].", i)
		switch r.Direction {
		case Out, In, Both:
		default:
			bad(p+"direction", "must be out, in or both, got %q", r.Direction)
		}
		if r.QoS > 2 {
			bad(p+"qos", "must be 0, 1 or 2, got %d", r.QoS)
		}
		switch r.Priority {
		case "", PriorityNormal:
		case PriorityHigh:
			if r.Direction == In {
				bad(p+"priority", "applies to out rules only")
			}
		default:
			bad(p+"priority", "must be normal or high, got %q", r.Priority)
		}
		switch r.OfflineQoS0 {
		case "", OfflineQueue:
		case OfflineDrop, OfflineLatest:
			if r.Direction == In {
				bad(p+"offline_qos0", "applies to out rules only")
			}
		default:
			bad(p+"offline_qos0", "must be drop, queue or latest, got %q", r.OfflineQoS0)
		}
		if r.Pattern == "" {
			bad(p+"pattern", "is required")
			continue
		}
		if !packet.ValidTopicFilter(r.LocalPrefix + r.Pattern) {
			bad(p+"pattern", "local_prefix + pattern %q is not a valid topic filter", r.LocalPrefix+r.Pattern)
		}
		if !packet.ValidTopicFilter(r.RemotePrefix + r.Pattern) {
			bad(p+"pattern", "remote_prefix + pattern %q is not a valid topic filter", r.RemotePrefix+r.Pattern)
		}
		if strings.ContainsAny(r.LocalPrefix, "+#") {
			bad(p+"local_prefix", "must not contain wildcards, got %q", r.LocalPrefix)
		}
		if strings.ContainsAny(r.RemotePrefix, "+#") {
			bad(p+"remote_prefix", "must not contain wildcards, got %q", r.RemotePrefix)
		}
	}
	if c.Queue.MaxMessages < 0 {
		bad("queue.max_messages", "must not be negative, got %d", c.Queue.MaxMessages)
	}
	if c.Queue.MaxBytes < 0 {
		bad("queue.max_bytes", "must not be negative, got %d", c.Queue.MaxBytes)
	}
	if c.Queue.MaxAge < 0 {
		bad("queue.max_age", "must not be negative, got %s", c.Queue.MaxAge)
	}
	switch c.Queue.Overflow {
	case persist.DropOldest, persist.DropNewest:
	default:
		bad("queue.overflow", "must be drop-oldest or drop-newest, got %q", c.Queue.Overflow)
	}
	if c.NotificationTopic != "-" && !packet.ValidTopicName(c.NotificationTopic) {
		bad("notification_topic", "%q is not a valid topic name", c.NotificationTopic)
	}
	return errors.Join(errs...)
}

// parseAddress splits tcp://host:port or tls://host:port.
func parseAddress(addr string) (hostport string, useTLS bool, err error) {
	u, err := url.Parse(addr)
	if err != nil {
		return "", false, fmt.Errorf("want tcp://host:port or tls://host:port, got %q", addr)
	}
	switch u.Scheme {
	case "tcp", "mqtt":
	case "tls", "ssl", "mqtts":
		useTLS = true
	default:
		return "", false, fmt.Errorf("want tcp://host:port or tls://host:port, got %q", addr)
	}
	if u.Path != "" || u.RawQuery != "" || u.User != nil {
		return "", false, fmt.Errorf("want tcp://host:port or tls://host:port, got %q", addr)
	}
	if _, port, err := net.SplitHostPort(u.Host); err != nil || port == "" || u.Hostname() == "" {
		return "", false, fmt.Errorf("want tcp://host:port or tls://host:port, got %q", addr)
	}
	return u.Host, useTLS, nil
}
