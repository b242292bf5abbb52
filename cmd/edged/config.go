package main

import (
	"cmp"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/edged/edged/bridge"
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
	Bridges     []bridge.Config   `yaml:"bridges"`
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

// SerialConfig is one serial port: serialio's own Config, decoded
// directly by its yaml tags, and edged's allow_anonymous.
type SerialConfig struct {
	serialio.Config `yaml:",inline"`
	AllowAnonymous  *bool `yaml:"allow_anonymous"`
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

// LimitsConfig is the limits section: the broker's own Limits, decoded
// directly by their yaml tags, and connect_timeout (broker.Config's
// ConnectTimeout, which also bounds the TLS handshake and the WebSocket
// upgrade in cmd/edged).
type LimitsConfig struct {
	broker.Limits  `yaml:",inline"`
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
}

// loadConfig reads, decodes and validates a configuration file; with an
// empty path it uses the embedded default.
func loadConfig(path string) (*Config, error) {
	return loadConfigFiles(path, true)
}

// loadConfigFiles is loadConfig; files false skips reading the files the
// configuration names (see parseConfigFiles).
func loadConfigFiles(path string, files bool) (*Config, error) {
	name, data := "(embedded default)", defaultConfig
	if path != "" {
		var err error
		if data, err = os.ReadFile(path); err != nil {
			return nil, fmt.Errorf("reading config: %w", err)
		}
		name = path
	}
	return parseConfigFiles(name, data, files)
}

// parseConfig decodes and validates a configuration, reading the files it
// names (auth files, certificates, keys, CA bundles) as a start would.
func parseConfig(name string, data []byte) (*Config, error) {
	return parseConfigFiles(name, data, true)
}

// parseConfigFiles is parseConfig; with files false it checks the values
// only and reads none of the files the configuration names (check-config
// -skip-files, for a configuration written for another machine).
func parseConfigFiles(name string, data []byte, files bool) (*Config, error) {
	cfg := &Config{}
	lines, err := decodeYAML(name, data, cfg)
	if lines == nil {
		return nil, err // a syntax error: nothing to validate
	}
	cfg.applyDefaults()
	// Report decoding and validation problems together, so one run of
	// check-config shows everything to fix.
	if err := sortByLine(errors.Join(err, cfg.validate(name, lines, files))); err != nil {
		return nil, err
	}
	return cfg, nil
}

// sortByLine returns err's joined errors sorted by their line in the file
// (stable: problems on one line keep the order they were found in).
func sortByLine(err error) error {
	errs := flatten(err)
	line := func(e error) int {
		var ce *ConfigError
		if errors.As(e, &ce) {
			return ce.Line
		}
		return 0
	}
	slices.SortStableFunc(errs, func(a, b error) int { return cmp.Compare(line(a), line(b)) })
	return errors.Join(errs...)
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
	c.Limits.Limits = c.Limits.Limits.WithDefaults()
	l := &c.Limits
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

// validate reports every invalid value with the line of its key; with
// files it also reads the files the configuration names.
func (c *Config) validate(file string, lines map[string]int, files bool) error {
	var errs []error
	bad := func(key, format string, args ...any) {
		line, k := lines[key], key
		for line == 0 && strings.Contains(k, ".") {
			k = k[:strings.LastIndex(k, ".")]
			line = lines[k]
		}
		errs = append(errs, &ConfigError{File: file, Line: line, Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	// badErr reports each of the joined errors of a file the
	// configuration names (an auth file's bad lines), keeping them
	// wrapped.
	badErr := func(key string, err error) {
		for _, e := range flatten(err) {
			bad(key, "%v", e)
			errs[len(errs)-1].(*ConfigError).Err = e
		}
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
	if fi, err := os.Stat(c.DataDir); err == nil && !fi.IsDir() {
		bad("data_dir", "%s is not a directory", c.DataDir)
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
	// addrs holds the parsed address of each listener, to find two on one
	// address (the zero value, port 0, conflicts with nothing).
	addrs := make([]listenAddress, len(c.Listeners))
	for i, l := range c.Listeners {
		p := fmt.Sprintf("listeners[%d]", i)
		if names[l.Name] {
			bad(p+".name", "duplicate listener name %q", l.Name)
		}
		names[l.Name] = true
		if a, err := parseListenAddress(l.Address); err != nil {
			bad(p+".address", "%v", err)
		} else {
			for j, b := range addrs {
				if b.conflicts(a) {
					bad(p+".address", "%s: listener %s already uses %s (listeners[%d])",
						l.Address, c.Listeners[j].Name, c.Listeners[j].Address, j)
					break
				}
			}
			addrs[i] = a
		}
		if l.TLS != nil {
			if l.TLS.CertFile == "" {
				bad(p+".tls.cert_file", "is required for a TLS listener")
			}
			if l.TLS.KeyFile == "" {
				bad(p+".tls.key_file", "is required for a TLS listener")
			}
			if files && l.TLS.CertFile != "" && l.TLS.KeyFile != "" {
				checkKeyPair(bad, p+".tls.cert_file", l.TLS.CertFile, p+".tls.key_file", l.TLS.KeyFile)
			}
			if files && l.TLS.ClientCAFile != "" {
				checkCAFile(bad, p+".tls.client_ca_file", l.TLS.ClientCAFile)
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
		v := sc.Config
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
	if files && c.Auth.PasswordFile != "" {
		if pw, err := auth.LoadPasswords(c.Auth.PasswordFile); err != nil {
			badErr("auth.password_file", err)
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
	if files && c.Auth.ACLFile != "" {
		if _, err := auth.LoadACL(c.Auth.ACLFile); err != nil {
			badErr("auth.acl_file", err)
		}
	}
	validateBridges(c.Bridges, files, bad)
	if err := c.Limits.Validate(); err != nil {
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
