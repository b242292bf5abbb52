package main

import (
	"log/slog"
	"net"
	"strings"
)

// loopbackAddress reports whether a listener address (host:port) serves
// this machine only: "localhost", 127.0.0.0/8 or ::1. An empty host
// (":1883"), 0.0.0.0, ::, any other address and any other host name (it
// may resolve to anything) are network addresses.
func loopbackAddress(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	host, _, _ = strings.Cut(host, "%") // an IPv6 zone
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// defaultAllowAnonymous is allow_anonymous when a listener does not set
// it: true on a loopback address (as edged always did: whoever runs a
// process on the machine is trusted as much as the machine), false on a
// network address, where an anonymous client is anyone who can reach the
// port. Serial ports default to true: whoever is wired to a UART has physical access.
func defaultAllowAnonymous(addr string) bool { return loopbackAddress(addr) }

// warnListenerAccess logs, as edged starts, each listener anonymous network
// clients can use, and each that no client can use (anonymous clients
// refused and no password file to log in with).
func warnListenerAccess(cfg *Config, log *slog.Logger) {
	for _, l := range cfg.Listeners {
		switch {
		case *l.AllowAnonymous && !loopbackAddress(l.Address):
			log.Warn("listener open to anonymous clients from the network; set allow_anonymous: false and auth.password_file to require a login",
				"listener", l.Name, "address", l.Address)
		case !*l.AllowAnonymous && cfg.Auth.PasswordFile == "":
			log.Warn("listener refuses every client: anonymous clients are refused and there is no auth.password_file to log in with",
				"listener", l.Name, "address", l.Address)
		}
	}
}
