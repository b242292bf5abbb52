package main

import (
	_ "embed"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/edged/edged/broker"
	"github.com/edged/edged/broker/auth"
	"github.com/edged/edged/cmd/edged/internal/status"
	"github.com/edged/edged/serialio"
)

// defaultConfig is what edged runs without -c: a broker on 127.0.0.1:1883
// with anonymous access and its data in ./edged-data.
//
//go:embed default.yaml
var defaultConfig []byte

// Config is the whole configuration file. The keys are the contract of
// configs/edged.yaml, which lists every key with its default.
type Config struct {
	DataDir     string            `yaml:"data_dir"`
	MemoryLimit Size              `yaml:"memory_limit"`
	Log         LogConfig         `yaml:"log"`
	Listeners   []ListenerConfig  `yaml:"listeners"`
	Serial      []SerialConfig    `yaml:"serial"`
	Auth        AuthConfig        `yaml:"auth"`
	Persistence PersistenceConfig `yaml:"persistence"`
	Limits      LimitsConfig      `yaml:"limits"`
	Bridges     []BridgeConfig    `yaml:"bridges"`
	HTTP        status.Config     `yaml:"http"`
	// SysInterval is how often $SYS topics are published (edged's key).
	SysInterval time.Duration `yaml:"sys_interval"`
}

// LogConfig is the log section.
type LogConfig struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

// ListenerConfig is one network listener.
type ListenerConfig struct {
	Name           string `yaml:"name"`
	Address        string `yaml:"address"`
	AllowAnonymous *bool  `yaml:"allow_anonymous"`
	// MaxConnections is edged's key: clients connected through this
	// listener, within limits.max_connections. 0 = only the global limit.
	MaxConnections int              `yaml:"max_connections"`
	TLS            *TLSConfig       `yaml:"tls"`
	WebSocket      *WebSocketConfig `yaml:"websocket"`
}

// TLSConfig is a listener's TLS section.
type TLSConfig struct {
	CertFile     string `yaml:"cert_file"`
	KeyFile      string `yaml:"key_file"`
	ClientCAFile string `yaml:"client_ca_file"`
}

// WebSocketConfig is a listener's websocket section.
type WebSocketConfig struct {
	Path string `yaml:"path"`
}

// SerialConfig is one serial port.
type SerialConfig struct {
	Name           string  `yaml:"name"`
	Device         string  `yaml:"device"`
	Baud           int     `yaml:"baud"`
	DataBits       int     `yaml:"data_bits"`
	Parity         string  `yaml:"parity"`
	StopBits       float64 `yaml:"stop_bits"`
	Framing        string  `yaml:"framing"`
	MaxFrame       Size    `yaml:"max_frame"`
	AllowAnonymous *bool   `yaml:"allow_anonymous"`
}

// AuthConfig is the auth section.
type AuthConfig struct {
	PasswordFile string `yaml:"password_file"`
	ACLFile      string `yaml:"acl_file"`
}

// PersistenceConfig is the persistence section.
type PersistenceConfig struct {
	Sync      string `yaml:"sync"`
	MaxDBSize Size   `yaml:"max_db_size"`
}

// LimitsConfig is the limits section.
type LimitsConfig struct {
	MaxConnections    int           `yaml:"max_connections"`
	MaxPacketSize     Size          `yaml:"max_packet_size"`
	MaxInflight       int           `yaml:"max_inflight"`
	MaxQueuedMessages int           `yaml:"max_queued_messages"`
	MaxQueuedBytes    Size          `yaml:"max_queued_bytes"`
	MaxSubscriptions  int           `yaml:"max_subscriptions"`
	SessionExpiry     time.Duration `yaml:"session_expiry"`
	// MaxWriteQueue is edged's key: packets waiting in one connection's
	// writer before QoS 0 is dropped / the client is a slow consumer.
	MaxWriteQueue int `yaml:"max_write_queue"`
	// edged's keys against hostile clients; see broker.Limits.
	MaxWriteQueueBytes              Size          `yaml:"max_write_queue_bytes"`
	MaxConnectionsPerAddress        int           `yaml:"max_connections_per_address"`
	MaxPendingConnections           int           `yaml:"max_pending_connections"`
	MaxPendingConnectionsPerAddress int           `yaml:"max_pending_connections_per_address"`
	MaxKeepalive                    time.Duration `yaml:"max_keepalive"`
	ConnectTimeout                  time.Duration `yaml:"connect_timeout"`
}

// BridgeConfig is one bridge to an upstream broker.
type BridgeConfig struct {
	Name      string         `yaml:"name"`
	Address   string         `yaml:"address"`
	ClientID  string         `yaml:"client_id"`
	Username  string         `yaml:"username"`
	Password  string         `yaml:"password"`
	TLS       *BridgeTLS     `yaml:"tls"`
	KeepAlive time.Duration  `yaml:"keepalive"`
	Backoff   BackoffConfig  `yaml:"backoff"`
	RateLimit int            `yaml:"rate_limit"`
	Topics    []BridgeTopic  `yaml:"topics"`
	Queue     BridgeQueueCfg `yaml:"queue"`

	// The bridge tuning keys, with bridge.Config's defaults.
	PingTimeout       time.Duration `yaml:"ping_timeout"`       // PINGRESP wait; default keepalive/2, at most 10s
	ConnectTimeout    time.Duration `yaml:"connect_timeout"`    // dial, TLS and CONNACK; default 10s
	StableAfter       time.Duration `yaml:"stable_after"`       // up this long resets the backoff; default 30s
	Window            int           `yaml:"window"`             // QoS 1/2 publishes in flight upstream; default 64
	NotificationTopic string        `yaml:"notification_topic"` // retained 1/0 state upstream; "-" disables
}

// BridgeTLS is a bridge's TLS section.
type BridgeTLS struct {
	CAFile     string `yaml:"ca_file"`
	CertFile   string `yaml:"cert_file"`
	KeyFile    string `yaml:"key_file"`
	ServerName string `yaml:"server_name"`
}

// BackoffConfig is a bridge's reconnect backoff.
type BackoffConfig struct {
	Min time.Duration `yaml:"min"`
	Max time.Duration `yaml:"max"`
}

// BridgeTopic is one bridge topic rule.
type BridgeTopic struct {
	Pattern      string `yaml:"pattern"`
	Direction    string `yaml:"direction"`
	QoS          int    `yaml:"qos"`
	LocalPrefix  string `yaml:"local_prefix"`
	RemotePrefix string `yaml:"remote_prefix"`
}

// BridgeQueueCfg is a bridge's queue bounds.
type BridgeQueueCfg struct {
	MaxMessages int64         `yaml:"max_messages"`
	MaxBytes    Size          `yaml:"max_bytes"`
	MaxAge      time.Duration `yaml:"max_age"`
	Overflow    string        `yaml:"overflow"`
}

// loadConfig reads, decodes and validates a configuration file; with an
// empty path it uses the embedded default.
func loadConfig(path string) (*Config, error) {
	name, data := "(embedded default)", defaultConfig
	if path != "" {
		var err error
		if data, err = os.ReadFile(path); err != nil {
			return nil, fmt.Errorf("reading config: %w", err)
		}
		name = path
	}
	return parseConfig(name, data)
}

func parseConfig(name string, data []byte) (*Config, error) {
	cfg := &Config{}
	lines, err := decodeYAML(name, data, cfg)
	if lines == nil {
		return nil, err // a syntax error: nothing to validate
	}
	cfg.applyDefaults()
	// Report decoding and validation problems together, so one run of
	// check-config shows everything to fix.
	if err := errors.Join(err, cfg.validate(name, lines)); err != nil {
		return nil, err
	}
	return cfg, nil
}

func (c *Config) applyDefaults() {
	if c.DataDir == "" {
		c.DataDir = "./edged-data"
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
	if c.Persistence.Sync == "" {
		c.Persistence.Sync = "batch"
	}
	if c.Persistence.MaxDBSize == 0 {
		c.Persistence.MaxDBSize = 1 << 30
	}
	if c.SysInterval == 0 {
		c.SysInterval = 10 * time.Second
	}
	l := &c.Limits
	if l.MaxConnections == 0 {
		l.MaxConnections = broker.DefaultMaxConnections
	}
	if l.MaxPacketSize == 0 {
		l.MaxPacketSize = broker.DefaultMaxPacketSize
	}
	if l.MaxInflight == 0 {
		l.MaxInflight = broker.DefaultMaxInflight
	}
	if l.MaxQueuedMessages == 0 {
		l.MaxQueuedMessages = broker.DefaultMaxQueuedMessages
	}
	if l.MaxQueuedBytes == 0 {
		l.MaxQueuedBytes = broker.DefaultMaxQueuedBytes
	}
	if l.MaxWriteQueue == 0 {
		l.MaxWriteQueue = broker.DefaultMaxWriteQueue
	}
	if l.MaxSubscriptions == 0 {
		l.MaxSubscriptions = broker.DefaultMaxSubscriptions
	}
	if l.MaxWriteQueueBytes == 0 {
		l.MaxWriteQueueBytes = broker.DefaultMaxWriteQueueBytes
	}
	if l.MaxConnectionsPerAddress == 0 {
		l.MaxConnectionsPerAddress = broker.DefaultMaxConnectionsPerAddress
	}
	if l.MaxPendingConnections == 0 {
		l.MaxPendingConnections = broker.DefaultMaxPendingConnections
	}
	if l.MaxPendingConnectionsPerAddress == 0 {
		l.MaxPendingConnectionsPerAddress = broker.DefaultMaxPendingPerAddress
	}
	if l.ConnectTimeout == 0 {
		l.ConnectTimeout = broker.DefaultConnectTimeout
	}
	yes := true
	for i := range c.Listeners {
		l := &c.Listeners[i]
		if l.Name == "" {
			l.Name = fmt.Sprintf("listener%d", i)
		}
		if l.AllowAnonymous == nil {
			v := defaultAllowAnonymous(l.Address)
			l.AllowAnonymous = &v
		}
		if l.WebSocket != nil && l.WebSocket.Path == "" {
			l.WebSocket.Path = "/mqtt"
		}
	}
	for i := range c.Serial {
		// Whoever is wired to a UART has physical access.
		if c.Serial[i].AllowAnonymous == nil {
			c.Serial[i].AllowAnonymous = &yes
		}
	}
}

// validate reports every invalid value with the line of its key.
func (c *Config) validate(file string, lines map[string]int) error {
	var errs []error
	bad := func(key, format string, args ...any) {
		line, k := lines[key], key
		for line == 0 && strings.Contains(k, ".") {
			k = k[:strings.LastIndex(k, ".")]
			line = lines[k]
		}
		errs = append(errs, &ConfigError{File: file, Line: line, Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "must be debug, info, warn or error, got %q", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format", "must be text or json, got %q", c.Log.Format)
	}
	if c.MemoryLimit < 0 {
		bad("memory_limit", "must not be negative")
	}
	switch c.Persistence.Sync {
	case "batch", "always", "off":
	default:
		bad("persistence.sync", "must be batch, always or off, got %q", c.Persistence.Sync)
	}
	if c.Persistence.MaxDBSize < 1<<20 {
		bad("persistence.max_db_size", "must be at least 1MiB, got %s", c.Persistence.MaxDBSize)
	}
	if len(c.Listeners) == 0 && len(c.Serial) == 0 {
		bad("listeners", "at least one listener or serial port is required")
	}
	names := map[string]bool{}
	for i, l := range c.Listeners {
		p := fmt.Sprintf("listeners[%d]", i)
		if names[l.Name] {
			bad(p+".name", "duplicate listener name %q", l.Name)
		}
		names[l.Name] = true
		if _, _, err := net.SplitHostPort(l.Address); err != nil {
			bad(p+".address", "want host:port, got %q", l.Address)
		}
		if l.TLS != nil {
			if l.TLS.CertFile == "" {
				bad(p+".tls.cert_file", "is required for a TLS listener")
			}
			if l.TLS.KeyFile == "" {
				bad(p+".tls.key_file", "is required for a TLS listener")
			}
		}
		if l.MaxConnections < 0 {
			bad(p+".max_connections", "must not be negative, got %d", l.MaxConnections)
		}
		if l.WebSocket != nil && !strings.HasPrefix(l.WebSocket.Path, "/") {
			bad(p+".websocket.path", "must start with /, got %q", l.WebSocket.Path)
		}
	}
	for i, sc := range c.Serial {
		p := fmt.Sprintf("serial[%d]", i)
		if sc.Name == "" {
			bad(p+".name", "is required")
		} else if names[sc.Name] {
			bad(p+".name", "duplicate listener or serial port name %q", sc.Name)
		}
		names[sc.Name] = true
		v := sc.serialio()
		v.Name = "" // unnamed, serialio reports the bare joined list
		for _, e := range flatten(v.Validate()) {
			// serialio reports "invalid serial configuration: key: problem".
			msg := strings.TrimPrefix(e.Error(), serialio.ErrInvalidConfig.Error()+": ")
			key, problem, ok := strings.Cut(msg, ": ")
			if !ok {
				bad(p, "%s", msg)
				continue
			}
			bad(join(p, key), "%s", problem)
		}
	}
	// The auth files are read here too, so check-config reports their
	// problems (each as file:line) before a deployment.
	var hasUser func(string) bool
	if c.Auth.PasswordFile != "" {
		if pw, err := auth.LoadPasswords(c.Auth.PasswordFile); err != nil {
			bad("auth.password_file", "%v", err)
			hasUser = func(string) bool { return true } // reported above
		} else {
			hasUser = pw.Has
		}
	}
	for _, e := range flatten(c.HTTP.Validate(loopbackAddress, hasUser)) {
		var fe *broker.FieldError
		if errors.As(e, &fe) {
			bad("http."+fe.Key, "%v", fe.Err)
		} else {
			bad("http", "%v", e)
		}
	}
	if c.Auth.ACLFile != "" {
		if _, err := auth.LoadACL(c.Auth.ACLFile); err != nil {
			bad("auth.acl_file", "%v", err)
		}
	}
	validateBridges(c.Bridges, bad)
	if err := c.brokerLimits().Validate(); err != nil {
		for _, e := range flatten(err) {
			var fe *broker.FieldError
			if errors.As(e, &fe) {
				bad("limits."+fe.Key, "%v", fe.Err)
			} else {
				bad("limits", "%v", e)
			}
		}
	}
	if c.Limits.ConnectTimeout < 0 {
		bad("limits.connect_timeout", "must not be negative, got %s", c.Limits.ConnectTimeout)
	}
	if c.SysInterval < 0 {
		bad("sys_interval", "must not be negative")
	}
	return errors.Join(errs...)
}

// flatten undoes errors.Join, recursively.
func flatten(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

// serialio converts a serial section to the serialio package's Config.
func (sc SerialConfig) serialio() serialio.Config {
	return serialio.Config{
		Name:     sc.Name,
		Device:   sc.Device,
		Baud:     sc.Baud,
		DataBits: sc.DataBits,
		Parity:   sc.Parity,
		StopBits: sc.StopBits,
		Framing:  sc.Framing,
		MaxFrame: int(min(sc.MaxFrame, 1<<30)),
	}
}

func (c *Config) brokerLimits() broker.Limits {
	l := c.Limits
	return broker.Limits{
		MaxConnections:    l.MaxConnections,
		MaxPacketSize:     int(min(l.MaxPacketSize, 1<<30)),
		MaxInflight:       l.MaxInflight,
		MaxQueuedMessages: l.MaxQueuedMessages,
		MaxQueuedBytes:    int64(l.MaxQueuedBytes),
		MaxWriteQueue:     l.MaxWriteQueue,
		MaxSubscriptions:  l.MaxSubscriptions,
		SessionExpiry:     l.SessionExpiry,

		MaxWriteQueueBytes:       int64(l.MaxWriteQueueBytes),
		MaxConnectionsPerAddress: l.MaxConnectionsPerAddress,
		MaxPendingConnections:    l.MaxPendingConnections,
		MaxPendingPerAddress:     l.MaxPendingConnectionsPerAddress,
		MaxKeepalive:             l.MaxKeepalive,
	}
}
