package main

import (
	"bufio"
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/edged/edged/bridge"
)

// This file implements `edged import-mosquitto`: it reads a mosquitto.conf
// (Mosquitto 2.x semantics) and writes the equivalent edged configuration,
// listing every directive it cannot carry over with its file and line.
// Password and ACL files are referenced as they are: edged reads both of
// Mosquitto's formats (broker/auth).

// mosqDirective is one line of a mosquitto.conf.
type mosqDirective struct {
	file string
	line int
	key  string
	args []string // the rest of the line split on white space
	rest string   // the rest of the line as written
	seq  int      // position among all directives read, include_dir files in place
}

func (d mosqDirective) where() string { return fmt.Sprintf("%s:%d", d.file, d.line) }

// readMosquittoConf reads a mosquitto.conf and the *.conf files of its
// include_dir directives, in the order Mosquitto reads them.
func readMosquittoConf(path string, depth int) ([]mosqDirective, error) {
	ds, err := readMosquittoFile(path, depth)
	for i := range ds {
		ds[i].seq = i
	}
	return ds, err
}

func readMosquittoFile(path string, depth int) ([]mosqDirective, error) {
	if depth > 8 {
		return nil, fmt.Errorf("%s: include_dir nested too deep", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []mosqDirective
	sc := bufio.NewScanner(io.LimitReader(f, 4<<20))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		l := strings.TrimSpace(sc.Text())
		if l == "" || l[0] == '#' {
			continue
		}
		key, rest, _ := strings.Cut(l, " ")
		if i := strings.IndexAny(key, "\t"); i >= 0 {
			key, rest = l[:i], l[i+1:]
		}
		rest = strings.TrimSpace(rest)
		d := mosqDirective{file: path, line: n, key: key, args: strings.Fields(rest), rest: rest}
		if key == "include_dir" && rest != "" {
			out = append(out, d) // kept, so that its line shows in errors
			files, err := filepath.Glob(filepath.Join(rest, "*.conf"))
			if err != nil {
				return nil, fmt.Errorf("%s: include_dir %s: %w", d.where(), rest, err)
			}
			sort.Strings(files) // Mosquitto reads them in alphabetical order
			for _, inc := range files {
				ds, err := readMosquittoFile(inc, depth+1)
				if err != nil {
					return nil, err
				}
				out = append(out, ds...)
			}
			continue
		}
		out = append(out, d)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return out, nil
}

// mosqListener is a listener being imported, with Mosquitto's settings
// that decide edged's.
type mosqListener struct {
	cfg        ListenerConfig
	port       string
	bind       string
	protocol   string
	cafile     string
	requireCrt bool
	anonymous  *bool // per_listener_settings true only
	pwFile     string
	aclFile    string
	defaultOne bool // from port/bind_address, not a listener line
	from       mosqDirective
}

// mosqBridge is a bridge being imported.
type mosqBridge struct {
	cfg           bridge.Config
	addresses     []string
	tls           bool
	notifications *bool
	from          mosqDirective
}

// mosqImport is the state of one import.
type mosqImport struct {
	listeners   []*mosqListener
	bridges     []*mosqBridge
	defaultL    *mosqListener // port/bind_address and listener options given before any listener
	perListener bool
	anonymous   *bool
	pwFile      string
	aclFile     string
	persistence bool
	cfg         Config
	notes       []mosqNote
}

type mosqNote struct {
	seq  int
	text string
}

func (m *mosqImport) note(d mosqDirective, format string, args ...any) {
	line := d.key
	if d.rest != "" {
		line += " " + d.rest
	}
	m.noteAt(d.seq, fmt.Sprintf("%s: %s: %s", d.where(), line, fmt.Sprintf(format, args...)))
}

// noteAt records a note about the directive at position seq; notes are
// listed in the order of the directives they are about.
func (m *mosqImport) noteAt(seq int, s string) {
	m.notes = append(m.notes, mosqNote{seq, s})
}

// current returns the listener that listener options apply to: the last
// listener line, or the default listener before any.
func (m *mosqImport) current() *mosqListener {
	if len(m.listeners) > 0 && !m.listeners[len(m.listeners)-1].defaultOne {
		return m.listeners[len(m.listeners)-1]
	}
	if m.defaultL == nil {
		m.defaultL = &mosqListener{port: "1883", defaultOne: true}
		m.listeners = append(m.listeners, m.defaultL)
	}
	return m.defaultL
}

// importMosquitto converts the directives of a mosquitto.conf.
func importMosquitto(ds []mosqDirective) (*Config, []string) {
	m := &mosqImport{}
	for _, d := range ds {
		if bridgeKeys[d.key] {
			if len(m.bridges) == 0 {
				m.note(d, "bridge option before any connection line; ignored")
				continue
			}
			m.bridgeOption(m.bridges[len(m.bridges)-1], d)
			continue
		}
		m.option(d)
	}
	m.finish()
	slices.SortStableFunc(m.notes, func(a, b mosqNote) int { return cmp.Compare(a.seq, b.seq) })
	var notes []string
	for _, n := range m.notes {
		notes = append(notes, n.text)
	}
	return &m.cfg, notes
}

// bridgeKeys are the directives that apply to the last connection.
var bridgeKeys = map[string]bool{}

func init() {
	for _, k := range strings.Fields(`address addresses topic remote_clientid clientid remote_username username
		remote_password password bridge_cafile bridge_capath bridge_certfile bridge_keyfile bridge_insecure
		bridge_protocol_version bridge_tls_version bridge_alpn bridge_identity bridge_psk keepalive_interval
		cleansession local_cleansession notifications notifications_local_only notification_topic
		restart_timeout idle_timeout start_type threshold try_private round_robin local_clientid
		local_username local_password bridge_attempt_unsubscribe bridge_outgoing_retain
		bridge_max_packet_size bridge_bind_address bridge_receive_maximum bridge_session_expiry_interval
		bridge_max_topic_alias bridge_require_ocsp`) {
		bridgeKeys[k] = true
	}
}

// mosquittoKeywords are directives of mosquitto.conf, to recognize one
// given to edged as its configuration.
var mosquittoKeywords = map[string]bool{}

func init() {
	for k := range bridgeKeys {
		mosquittoKeywords[k] = true
	}
	for _, k := range strings.Fields(`listener port bind_address protocol certfile keyfile cafile capath
		require_certificate allow_anonymous password_file acl_file persistence persistence_location
		persistence_file autosave_interval max_inflight_messages max_queued_messages max_queued_bytes
		max_packet_size message_size_limit persistent_client_expiration max_keepalive sys_interval log_dest
		log_type per_listener_settings include_dir connection pid_file user max_connections
		plugin auth_plugin tls_version use_identity_as_username socket_domain mount_point`) {
		mosquittoKeywords[k] = true
	}
}

// looksLikeMosquittoConf reports whether the file at path reads as a
// mosquitto.conf: its first directive is one of Mosquitto's, written as
// "key value" rather than YAML's "key: value".
func looksLikeMosquittoConf(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(io.LimitReader(f, 1<<20))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || l[0] == '#' {
			continue
		}
		key, _, _ := strings.Cut(strings.ReplaceAll(l, "\t", " "), " ")
		return mosquittoKeywords[key]
	}
	return false
}

func parseMosqBool(d mosqDirective) (bool, bool) {
	if len(d.args) != 1 {
		return false, false
	}
	switch d.args[0] {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	return false, false
}

func parseMosqInt(d mosqDirective) (int64, bool) {
	if len(d.args) != 1 {
		return 0, false
	}
	n, err := strconv.ParseInt(d.args[0], 10, 64)
	return n, err == nil
}

// parseMosqExpiry parses persistent_client_expiration: a number with
// h, d, w, m (month, 30 days) or y (year, 365 days).
func parseMosqExpiry(s string) (time.Duration, bool) {
	if len(s) < 2 {
		return 0, false
	}
	n, err := strconv.ParseInt(s[:len(s)-1], 10, 64)
	if err != nil || n <= 0 {
		return 0, false
	}
	unit := map[byte]time.Duration{'h': time.Hour, 'd': 24 * time.Hour, 'w': 7 * 24 * time.Hour,
		'm': 30 * 24 * time.Hour, 'y': 365 * 24 * time.Hour}[s[len(s)-1]]
	if unit == 0 || n > int64(1<<62)/int64(unit) {
		return 0, false
	}
	return time.Duration(n) * unit, true
}

// option handles a general or listener directive.
func (m *mosqImport) option(d mosqDirective) {
	bad := func() { m.note(d, "cannot read this value; not carried over") }
	switch d.key {
	// Listeners.
	case "listener":
		if len(d.args) < 1 || len(d.args) > 2 {
			bad()
			return
		}
		l := &mosqListener{port: d.args[0], from: d}
		if len(d.args) == 2 {
			l.bind = d.args[1]
		}
		if l.port == "0" && strings.HasPrefix(l.bind, "/") {
			m.note(d, "edged has no unix socket listeners; not carried over")
			return
		}
		m.listeners = append(m.listeners, l)
	case "port":
		if len(d.args) != 1 {
			bad()
			return
		}
		m.current()
		m.defaultL.port, m.defaultL.from = d.args[0], d
	case "bind_address":
		if len(d.args) != 1 {
			bad()
			return
		}
		m.current()
		m.defaultL.bind = d.args[0]
	case "protocol":
		switch d.rest {
		case "mqtt", "websockets":
			m.current().protocol = d.rest
		default:
			bad()
		}
		if d.rest == "websockets" {
			m.note(d, "edged serves MQTT over WebSocket on the path /mqtt only (websocket.path); Mosquitto accepts any path")
		}
	case "certfile":
		l := m.current()
		if l.cfg.TLS == nil {
			l.cfg.TLS = &TLSConfig{}
		}
		l.cfg.TLS.CertFile = d.rest
	case "keyfile":
		l := m.current()
		if l.cfg.TLS == nil {
			l.cfg.TLS = &TLSConfig{}
		}
		l.cfg.TLS.KeyFile = d.rest
	case "cafile":
		m.current().cafile = d.rest
	case "require_certificate":
		v, ok := parseMosqBool(d)
		if !ok {
			bad()
			return
		}
		m.current().requireCrt = v
	case "max_connections":
		n, ok := parseMosqInt(d)
		if !ok || n > 1<<31-1 {
			bad()
			return
		}
		if n > 0 {
			m.current().cfg.MaxConnections = int(n)
		}
	case "capath":
		m.note(d, "edged reads CA certificates from a file (client_ca_file), not a directory; not carried over")
	case "tls_version", "ciphers", "ciphers_tls1.3", "dhparamfile", "tls_engine", "tls_engine_kpass_sha1", "tls_keyform":
		m.note(d, "edged uses Go's TLS 1.2 and 1.3 with Go's cipher suites; not carried over")
	case "crlfile", "psk_hint", "psk_file", "ocsp_stapling":
		m.note(d, "edged does not support it; not carried over")
	case "use_identity_as_username", "use_subject_as_username":
		m.note(d, "edged does not take user names from client certificates; clients must log in with a user name and password")
	case "use_username_as_clientid", "mount_point", "socket_domain", "bind_interface", "http_dir",
		"max_qos", "max_topic_alias", "accept_protocol_versions", "allow_zero_length_clientid", "auto_id_prefix":
		m.note(d, "edged has no equivalent; not carried over")

	// Authentication.
	case "per_listener_settings":
		v, ok := parseMosqBool(d)
		if !ok {
			bad()
			return
		}
		m.perListener = v
	case "allow_anonymous":
		v, ok := parseMosqBool(d)
		if !ok {
			bad()
			return
		}
		if m.perListener {
			m.current().anonymous = &v
		} else {
			m.anonymous = &v
		}
	case "password_file":
		if m.perListener {
			m.current().pwFile = d.rest
		} else {
			m.pwFile = d.rest
		}
	case "acl_file":
		if m.perListener {
			m.current().aclFile = d.rest
		} else {
			m.aclFile = d.rest
		}
	case "plugin", "auth_plugin", "plugin_opt", "auth_opt", "global_plugin":
		m.note(d, "edged loads no plugins; not carried over")
	default:
		if strings.HasPrefix(d.key, "plugin_opt_") || strings.HasPrefix(d.key, "auth_opt_") {
			m.note(d, "edged loads no plugins; not carried over")
			return
		}
		m.general(d)
	}
}

// general handles the directives that are neither a listener's nor a
// bridge's.
func (m *mosqImport) general(d mosqDirective) {
	bad := func() { m.note(d, "cannot read this value; not carried over") }
	c := &m.cfg
	switch d.key {
	case "connection":
		if len(d.args) != 1 {
			bad()
			return
		}
		b := &mosqBridge{from: d}
		b.cfg.Name = d.args[0]
		m.bridges = append(m.bridges, b)
	case "persistence":
		v, ok := parseMosqBool(d)
		if !ok {
			bad()
			return
		}
		m.persistence = v
		if !v {
			m.note(d, "edged always persists sessions, queued and retained messages")
		}
	case "persistence_location":
		c.DataDir = strings.TrimSuffix(d.rest, "/")
		if c.DataDir == "" {
			c.DataDir = "/"
		}
	case "persistence_file":
		m.note(d, "edged's store is data_dir/edged.db; the contents of mosquitto.db are not imported")
	case "autosave_interval", "autosave_on_changes":
		m.note(d, "edged commits every message as it arrives (persistence.sync: batch); not needed")
	case "max_inflight_messages":
		n, ok := parseMosqInt(d)
		switch {
		case !ok || n < 0:
			bad()
		case n == 0:
			m.note(d, "0 (no limit) is not an edged value; edged's default, %d, applies", m.cfg.Limits.WithDefaults().MaxInflight)
		case n > 65535:
			m.note(d, "edged's limit is at most 65535; not carried over")
		default:
			c.Limits.MaxInflight = int(n)
		}
	case "max_queued_messages":
		n, ok := parseMosqInt(d)
		switch {
		case !ok || n < 0 || n > 1<<31-1:
			bad()
		case n == 0:
			m.note(d, "edged always bounds session queues; its default, %d messages, applies", m.cfg.Limits.WithDefaults().MaxQueuedMessages)
		default:
			c.Limits.MaxQueuedMessages = int(n)
		}
	case "max_queued_bytes":
		n, ok := parseMosqInt(d)
		switch {
		case !ok || n < 0:
			bad()
		case n > 0:
			c.Limits.MaxQueuedBytes = n
		}
	case "max_packet_size":
		n, ok := parseMosqInt(d)
		switch {
		case !ok || n < 0 || n > 268435455:
			bad()
		case n > 0 && n < 64:
			m.note(d, "edged needs at least 64 bytes; not carried over")
		case n > 0:
			c.Limits.MaxPacketSize = int(n)
		}
	case "message_size_limit":
		m.note(d, "edged limits whole packets (limits.max_packet_size), not payloads; not carried over")
	case "persistent_client_expiration":
		exp, ok := parseMosqExpiry(d.rest)
		if !ok {
			bad()
			return
		}
		c.Limits.SessionExpiry = exp
	case "max_keepalive":
		n, ok := parseMosqInt(d)
		switch {
		case !ok || n < 0 || n > 65535:
			bad()
		case n > 0:
			c.Limits.MaxKeepalive = time.Duration(n) * time.Second
		}
	case "sys_interval":
		n, ok := parseMosqInt(d)
		switch {
		case !ok || n < 0:
			bad()
		case n == 0:
			m.note(d, "edged always publishes $SYS; its default interval applies")
		default:
			c.SysInterval = time.Duration(n) * time.Second
		}
	case "memory_limit":
		m.note(d, "edged's memory_limit is a soft limit for the Go runtime, not a cap that refuses messages; not carried over")
	case "log_type":
		switch d.rest {
		case "debug", "all":
			c.Log.Level = "debug"
		case "none":
			c.Log.Level = "error"
			m.note(d, "edged always logs errors")
		}
	case "log_dest":
		switch {
		case d.rest == "stderr" || d.rest == "stdout":
		case strings.HasPrefix(d.rest, "syslog"):
			m.note(d, "edged logs to stderr, which systemd (journald) and procd (logd) collect; not carried over")
		default:
			m.note(d, "edged logs to stderr; not carried over")
		}
	case "log_timestamp", "log_timestamp_format", "connection_messages", "log_facility", "websockets_log_level":
		m.note(d, "edged's logs are structured (log.format text or json); not carried over")
	case "pid_file", "user":
		m.note(d, "not needed: edged runs in the foreground under systemd or procd, as the user they start it as")
	case "include_dir":
		// Its files were read in place.
	case "retain_available", "set_tcp_nodelay", "upgrade_outgoing_qos", "queue_qos0_messages",
		"allow_duplicate_messages", "check_retain_source", "clientid_prefixes", "websockets_headers_size",
		"max_inflight_bytes", "retry_interval", "store_clean_interval":
		m.note(d, "edged has no equivalent; not carried over")
	default:
		m.note(d, "unknown directive; not carried over")
	}
}

// bridgeOption handles a directive of a connection section.
func (m *mosqImport) bridgeOption(b *mosqBridge, d mosqDirective) {
	bad := func() { m.note(d, "cannot read this value; not carried over") }
	c := &b.cfg
	setTLS := func() *bridge.TLSConfig {
		if c.TLS == nil {
			c.TLS = &bridge.TLSConfig{}
		}
		return c.TLS
	}
	switch d.key {
	case "address", "addresses":
		if len(d.args) == 0 {
			bad()
			return
		}
		b.addresses = d.args
		if len(d.args) > 1 {
			m.note(d, "edged connects to one address; only %s is carried over", d.args[0])
		}
	case "topic":
		r, err := mosqTopic(d.args)
		if err != nil {
			m.note(d, "%v; not carried over", err)
			return
		}
		c.Topics = append(c.Topics, r)
	case "remote_clientid", "clientid":
		c.ClientID = d.rest
	case "remote_username", "username":
		c.Username = d.rest
	case "remote_password", "password":
		c.Password = d.rest
	case "bridge_cafile":
		setTLS().CAFile = d.rest
		b.tls = true
	case "bridge_capath":
		b.tls = true
		m.note(d, "edged reads CA certificates from a file (tls.ca_file); without one it verifies against the system's roots")
	case "bridge_certfile":
		setTLS().CertFile = d.rest
	case "bridge_keyfile":
		setTLS().KeyFile = d.rest
	case "bridge_insecure":
		if v, _ := parseMosqBool(d); v {
			m.note(d, "edged always verifies the upstream's certificate and host name; set tls.server_name if the name differs")
		}
	case "keepalive_interval":
		n, ok := parseMosqInt(d)
		if !ok || n < 1 || n > 65535 {
			bad()
			return
		}
		c.KeepAlive = time.Duration(n) * time.Second
	case "restart_timeout":
		var ns []int64
		for _, a := range d.args {
			n, err := strconv.ParseInt(a, 10, 64)
			if err != nil || n < 0 || n > 1<<31 {
				bad()
				return
			}
			ns = append(ns, n)
		}
		switch len(ns) {
		case 1:
			c.Backoff = bridge.Backoff{Min: time.Duration(ns[0]) * time.Second, Max: time.Duration(ns[0]) * time.Second}
		case 2:
			c.Backoff = bridge.Backoff{Min: time.Duration(ns[0]) * time.Second, Max: time.Duration(ns[1]) * time.Second}
		default:
			bad()
		}
	case "notifications":
		v, ok := parseMosqBool(d)
		if !ok {
			bad()
			return
		}
		b.notifications = &v
	case "notification_topic":
		c.NotificationTopic = d.rest
	case "notifications_local_only":
		m.note(d, "edged publishes the bridge state upstream (notification_topic) and locally on $SYS/broker/bridge/<name>/state")
	case "cleansession", "local_cleansession":
		m.note(d, "edged keeps a persistent upstream session when the bridge has in rules, a clean one otherwise; not carried over")
	case "try_private":
		if v, _ := parseMosqBool(d); !v {
			m.note(d, "edged tries Mosquitto's bridge mode first and falls back to plain MQTT 3.1.1 when refused")
		}
	case "bridge_protocol_version":
		if d.rest != "mqttv311" {
			m.note(d, "edged's bridges speak MQTT 3.1.1; not carried over")
		}
	case "start_type", "idle_timeout", "threshold":
		m.note(d, "edged's bridges connect at start and stay connected; not carried over")
	default:
		m.note(d, "edged has no equivalent; not carried over")
	}
}

// mosqTopic converts a bridge topic line:
// topic pattern [[[out | in | both] qos-level] local-prefix remote-prefix].
func mosqTopic(args []string) (bridge.Rule, error) {
	unquote := func(s string) string {
		if s == `""` {
			return ""
		}
		return s
	}
	r := bridge.Rule{Direction: bridge.Out}
	if len(args) == 0 || len(args) > 5 {
		return r, errors.New("want topic PATTERN [DIRECTION [QOS [LOCAL_PREFIX REMOTE_PREFIX]]]")
	}
	r.Pattern = unquote(args[0])
	if len(args) > 1 {
		switch args[1] {
		case "in", "out", "both":
			r.Direction = bridge.Direction(args[1])
		default:
			return r, fmt.Errorf("direction %q is not in, out or both", args[1])
		}
	}
	if len(args) > 2 {
		q, err := strconv.Atoi(args[2])
		if err != nil || q < 0 || q > 2 {
			return r, fmt.Errorf("qos %q is not 0, 1 or 2", args[2])
		}
		r.QoS = byte(q)
	}
	if len(args) == 4 {
		return r, errors.New("a local prefix goes with a remote prefix")
	}
	if len(args) == 5 {
		r.LocalPrefix, r.RemotePrefix = unquote(args[3]), unquote(args[4])
	}
	if r.Pattern == "" {
		// Mosquitto's empty pattern makes the prefixes the whole topics;
		// edged needs a pattern, which the two share as their last level.
		li, ri := strings.LastIndexByte(r.LocalPrefix, '/'), strings.LastIndexByte(r.RemotePrefix, '/')
		last := r.LocalPrefix[li+1:]
		if last == "" || last != r.RemotePrefix[ri+1:] {
			return r, errors.New("an empty pattern needs prefixes ending in the same topic level in edged")
		}
		r.Pattern, r.LocalPrefix, r.RemotePrefix = last, r.LocalPrefix[:li+1], r.RemotePrefix[:ri+1]
	}
	return r, nil
}

// finish turns the collected listeners and bridges into the edged
// configuration.
func (m *mosqImport) finish() {
	c := &m.cfg
	if len(m.listeners) == 0 {
		// Mosquitto 2 without a listener serves loopback only and lets
		// anonymous clients in ("local only mode").
		yes := true
		c.Listeners = append(c.Listeners, ListenerConfig{Name: "local", Address: "127.0.0.1:1883", AllowAnonymous: &yes})
		m.noteAt(math.MaxInt, "(no listener): Mosquitto's local only mode, 127.0.0.1:1883 with anonymous clients, is written as a listener")
	}
	pwFiles, aclFiles := map[string]bool{}, map[string]bool{}
	if m.pwFile != "" {
		pwFiles[m.pwFile] = true
	}
	if m.aclFile != "" {
		aclFiles[m.aclFile] = true
	}
	names := map[string]int{}
	for _, l := range m.listeners {
		lc := l.cfg
		host := l.bind
		if strings.Contains(host, ":") && !strings.HasPrefix(host, "[") {
			host = "[" + host + "]"
		}
		lc.Address = host + ":" + l.port
		if h, p, err := net.SplitHostPort(lc.Address); err == nil {
			lc.Address = net.JoinHostPort(h, p)
		}
		if l.protocol == "websockets" {
			lc.WebSocket = &WebSocketConfig{Path: "/mqtt"}
		}
		lc.Name = lc.transport() + "-" + l.port
		if names[lc.Name]++; names[lc.Name] > 1 {
			lc.Name += "-" + strconv.Itoa(names[lc.Name])
		}
		if lc.TLS != nil && l.cafile != "" {
			if l.requireCrt {
				lc.TLS.ClientCAFile = l.cafile
			} else {
				m.noteAt(l.from.seq, fmt.Sprintf("%s: cafile %s without require_certificate: edged does not ask for client certificates then; not carried over",
					l.from.where(), l.cafile))
			}
		}
		anon := false // Mosquitto 2's default
		if m.anonymous != nil {
			anon = *m.anonymous
		}
		if l.anonymous != nil {
			anon = *l.anonymous
		}
		lc.AllowAnonymous = &anon
		if l.pwFile != "" {
			pwFiles[l.pwFile] = true
		}
		if l.aclFile != "" {
			aclFiles[l.aclFile] = true
		}
		c.Listeners = append(c.Listeners, lc)
	}
	c.Auth.PasswordFile = oneFile(m, "password_file", pwFiles)
	c.Auth.ACLFile = oneFile(m, "acl_file", aclFiles)
	for _, b := range m.bridges {
		bc := b.cfg
		if len(b.addresses) == 0 {
			m.noteAt(b.from.seq, fmt.Sprintf("%s: connection %s has no address; not carried over", b.from.where(), bc.Name))
			continue
		}
		addr := b.addresses[0]
		if _, _, err := net.SplitHostPort(addr); err != nil {
			addr = net.JoinHostPort(addr, "1883") // Mosquitto's default port
		}
		scheme := "tcp://"
		if b.tls {
			scheme = "tls://"
		}
		bc.Address = scheme + addr
		if b.notifications != nil && !*b.notifications {
			bc.NotificationTopic = "-"
		} else if bc.NotificationTopic == "" {
			m.noteAt(b.from.seq, fmt.Sprintf("%s: connection %s: Mosquitto's notification topic $SYS/broker/connection/<client id>/state becomes edged's default, "+
				"<remote prefix>edged/<client id>/state; set notification_topic to keep the old one", b.from.where(), bc.Name))
		}
		if len(bc.Topics) == 0 {
			m.noteAt(b.from.seq, fmt.Sprintf("%s: connection %s has no topic line; edged needs at least one", b.from.where(), bc.Name))
		}
		c.Bridges = append(c.Bridges, bc)
	}
}

// oneFile returns the one auth file of a kind the listeners use; edged has
// one password file and one ACL file for all of them.
func oneFile(m *mosqImport, key string, files map[string]bool) string {
	var list []string
	for f := range files {
		list = append(list, f)
	}
	sort.Strings(list)
	if len(list) > 1 {
		m.noteAt(math.MaxInt, fmt.Sprintf("(per_listener_settings): edged has one %s for every listener; %s is used, not %s",
			key, list[0], strings.Join(list[1:], ", ")))
	}
	if len(list) == 0 {
		return ""
	}
	return list[0]
}

// importMosquittoCommand implements `edged import-mosquitto FILE`.
func importMosquittoCommand(args []string, _ *os.File, stdout, stderr io.Writer) int {
	if len(args) != 1 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintf(stderr, "edged import-mosquitto: want one FILE\n\n%s", commands["import-mosquitto"].usage)
		return 2
	}
	ds, err := readMosquittoConf(args[0], 0)
	if err != nil {
		fmt.Fprintf(stderr, "edged import-mosquitto: %v\n", err)
		return 1
	}
	cfg, notes := importMosquitto(ds)
	out, err := mosquittoYAML(args[0], cfg, notes)
	if err != nil {
		fmt.Fprintf(stderr, "edged import-mosquitto: %v\n", err)
		return 1
	}
	stdout.Write(out)
	// What the import could not make valid (a bridge without topic lines,
	// a port that is no number) is said now rather than at check-config.
	if _, err := parseConfigFiles("(output)", out, false); err != nil {
		fmt.Fprintln(stderr, "edged import-mosquitto: the output needs editing before edged accepts it:")
		for _, e := range flatten(err) {
			fmt.Fprintln(stderr, "  "+e.Error())
		}
	}
	if len(notes) > 0 {
		fmt.Fprintf(stderr, "edged import-mosquitto: %d setting(s) not carried over:\n", len(notes))
		for _, n := range notes {
			fmt.Fprintln(stderr, "  "+n)
		}
	}
	return 0
}

// mosquittoYAML writes the imported configuration: a header naming the
// source and what was not carried over, then the keys that were set.
func mosquittoYAML(source string, cfg *Config, notes []string) ([]byte, error) {
	var n yaml.Node
	if err := n.Encode(cfg); err != nil {
		return nil, err
	}
	tidyNode(&n, reflect.ValueOf(cfg), true)
	body, err := yaml.Marshal(&n)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# edged configuration imported from %s by edged import-mosquitto.\n", commentSafe(source))
	b.WriteString("# Keys not written take edged's defaults (configs/edged.yaml lists them).\n")
	b.WriteString("# Check it with: edged check-config -c FILE\n")
	if len(notes) > 0 {
		b.WriteString("#\n# Not carried over:\n")
		for _, s := range notes {
			b.WriteString("#   " + commentSafe(s) + "\n")
		}
	}
	b.WriteString("\n")
	b.Write(body)
	return b.Bytes(), nil
}

// commentSafe returns s quoted if it holds anything a YAML comment cannot
// (control characters, invalid UTF-8), as is.
func commentSafe(s string) string {
	if !utf8.ValidString(s) || strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return strconv.QuoteToGraphic(s)
	}
	return s
}
