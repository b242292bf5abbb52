// Package status is edged's status page: one embedded HTTP listener with
// server-rendered pages for a technician's laptop or phone, a JSON API
// under /api/v1/ that the pages use, Prometheus metrics on /metrics, and
// /healthz and /readyz for supervisors and load balancers.
//
// Access. On a loopback address with no users configured, everything is
// open to whoever can reach the port (whoever runs a process on the
// machine, or comes through an SSH tunnel, is trusted as much as the
// machine). Otherwise every page and call needs HTTP basic auth by a user
// of auth.password_file named in http.users; a non-loopback address
// without users is refused at start. /healthz and /readyz are open
// everywhere: they reveal nothing but up or down.
//
// Actions (disconnect, delete a session, purge a bridge queue, reload the
// auth files) are POSTs that must carry the per-process token the pages
// embed (form field or X-CSRF-Token header) and, when the browser sends
// one, an Origin of this very host; the session cookie is SameSite=Strict.
// Every action is logged with the user who made it.
//
// The topic browser shows live messages for a filter through server-sent
// events; an authenticated user sees what the ACL lets an MQTT client with
// the same user name read. On an open loopback page nothing is checked.
package status

import (
	"errors"
	"fmt"
	"net"

	"github.com/edged/edged/broker"
)

// Config is the http section of edged's configuration file.
type Config struct {
	// Address is host:port to listen on; empty disables the listener.
	Address string `yaml:"address"`
	// TLS serves HTTPS with this certificate.
	TLS *TLSConfig `yaml:"tls"`
	// Users are the auth.password_file users allowed to log in. With any,
	// a login is needed on a loopback address too.
	Users []string `yaml:"users"`
}

// TLSConfig is the http.tls section.
type TLSConfig struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Enabled reports whether the listener runs.
func (c Config) Enabled() bool { return c.Address != "" }

// needsAuth reports whether every page needs a login.
func (c Config) needsAuth(loopback func(string) bool) bool {
	return len(c.Users) > 0 || !loopback(c.Address)
}

// Validate reports every invalid key as a *broker.FieldError, joined.
// loopback tells loopback addresses; hasUser tells the users of the
// password file, nil when there is none.
func (c Config) Validate(loopback func(addr string) bool, hasUser func(name string) bool) error {
	if !c.Enabled() {
		return nil
	}
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, &broker.FieldError{Key: key, Err: fmt.Errorf(format, args...)})
	}
	if _, _, err := net.SplitHostPort(c.Address); err != nil {
		bad("address", "want host:port, got %q", c.Address)
	} else if len(c.Users) == 0 && !loopback(c.Address) {
		bad("users", "%s is not a loopback address: name the auth.password_file users allowed to log in", c.Address)
	}
	if c.TLS != nil {
		if c.TLS.CertFile == "" {
			bad("tls.cert_file", "is required for HTTPS")
		}
		if c.TLS.KeyFile == "" {
			bad("tls.key_file", "is required for HTTPS")
		}
	}
	for i, u := range c.Users {
		key := fmt.Sprintf("users[%d]", i)
		switch {
		case hasUser == nil:
			bad(key, "user %q needs auth.password_file to log in with", u)
		case !hasUser(u):
			bad(key, "user %q is not in auth.password_file", u)
		}
	}
	return errors.Join(errs...)
}
