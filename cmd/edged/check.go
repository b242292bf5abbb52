package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/edged/edged/bridge"
)

// This file holds the checks that make check-config catch what a start
// would fail on beyond the values themselves: the files the configuration
// names (certificates, keys, CA bundles) and listener addresses that
// cannot be bound.

// badFunc reports a problem with a key; see Config.validate.
type badFunc func(key, format string, args ...any)

// maxPEMFile bounds what is read of a certificate, key or CA file: a
// configuration naming /dev/zero or a log file must not make a check (or a
// start) read it whole.
const maxPEMFile = 4 << 20

// readConfigFile reads a file the configuration names, refusing anything
// that is not a regular file of at most maxPEMFile bytes.
func readConfigFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s does not exist", path)
		}
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if fi.Size() > maxPEMFile {
		return nil, fmt.Errorf("%s is %d bytes, too large for a PEM file", path, fi.Size())
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, maxPEMFile))
}

// pemTypes returns the types of the PEM blocks in data, in order.
func pemTypes(data []byte) []string {
	var types []string
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return types
		}
		types = append(types, b.Type)
	}
}

func hasPEM(types []string, match func(string) bool) bool {
	for _, t := range types {
		if match(t) {
			return true
		}
	}
	return false
}

func isCert(t string) bool { return t == "CERTIFICATE" }
func isKey(t string) bool  { return strings.HasSuffix(t, "PRIVATE KEY") }

// checkKeyPair checks a certificate and its key as tls.LoadX509KeyPair
// will at start, with messages that say which file is wrong: missing,
// no PEM, the two files swapped, or a key that does not belong to the
// certificate. certKey and keyKey are the config keys of the two files.
func checkKeyPair(bad badFunc, certKey, certFile, keyKey, keyFile string) {
	certPEM, certErr := readConfigFile(certFile)
	if certErr != nil {
		bad(certKey, "%v", certErr)
	}
	keyPEM, keyErr := readConfigFile(keyFile)
	if keyErr != nil {
		bad(keyKey, "%v", keyErr)
	}
	if certErr != nil || keyErr != nil {
		return
	}
	ct, kt := pemTypes(certPEM), pemTypes(keyPEM)
	certHasCert, keyHasKey := hasPEM(ct, isCert), hasPEM(kt, isKey)
	switch {
	case !certHasCert && !keyHasKey && hasPEM(ct, isKey) && hasPEM(kt, isCert):
		bad(certKey, "%s holds a private key and %s a certificate: cert_file and key_file are swapped", certFile, keyFile)
		return
	case !certHasCert:
		if hasPEM(ct, isKey) {
			bad(certKey, "%s holds a private key, not a certificate", certFile)
		} else {
			bad(certKey, "%s holds no PEM certificate", certFile)
		}
	case !keyHasKey:
		if hasPEM(kt, isCert) {
			bad(keyKey, "%s holds a certificate, not a private key", keyFile)
		} else {
			bad(keyKey, "%s holds no PEM private key", keyFile)
		}
	}
	if !certHasCert || !keyHasKey {
		return
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		if strings.Contains(err.Error(), "does not match") {
			bad(keyKey, "the private key in %s does not belong to the certificate in %s", keyFile, certFile)
		} else {
			bad(certKey, "%s with %s: %v", certFile, keyFile, err)
		}
	}
}

// checkCAFile checks a CA bundle: readable and holding at least one PEM
// certificate that parses.
func checkCAFile(bad badFunc, key, file string) {
	data, err := readConfigFile(file)
	if err != nil {
		bad(key, "%v", err)
		return
	}
	if types := pemTypes(data); !hasPEM(types, isCert) {
		if hasPEM(types, isKey) {
			bad(key, "%s holds a private key, not a CA certificate", file)
		} else {
			bad(key, "%s holds no PEM certificate", file)
		}
		return
	}
	if !x509.NewCertPool().AppendCertsFromPEM(data) {
		bad(key, "no certificate in %s parses", file)
	}
}

// checkBridgeFiles checks the files of a bridge's tls: section as
// bridge.New reads them.
func checkBridgeFiles(bad badFunc, prefix string, c *bridge.TLSConfig) {
	if c == nil {
		return
	}
	if c.CAFile != "" {
		checkCAFile(bad, prefix+".tls.ca_file", c.CAFile)
	}
	if c.CertFile != "" && c.KeyFile != "" {
		checkKeyPair(bad, prefix+".tls.cert_file", c.CertFile, prefix+".tls.key_file", c.KeyFile)
	}
}

// listenAddress is a parsed listener address.
type listenAddress struct {
	host string // "" for every interface
	port int
	ip   net.IP // nil for a host name or every interface
}

// parseListenAddress checks a listener address as net.Listen("tcp", ...)
// will take it: host:port with a numeric port (a service name needs
// /etc/services, which small images lack) and a host that is empty, an IP
// address or a host name.
func parseListenAddress(addr string) (listenAddress, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return listenAddress{}, fmt.Errorf("want host:port, got %q", addr)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return listenAddress{}, fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	a := listenAddress{host: host, port: p}
	if host == "" {
		return a, nil
	}
	ipPart, _, _ := strings.Cut(host, "%") // an IPv6 zone
	if a.ip = net.ParseIP(ipPart); a.ip != nil {
		return a, nil
	}
	if !validHostName(host) {
		return listenAddress{}, fmt.Errorf("host %q is neither an IP address nor a host name", host)
	}
	if strings.EqualFold(host, "localhost") {
		a.ip = net.IPv4(127, 0, 0, 1)
	}
	return a, nil
}

// validHostName reports whether s is a syntactically valid DNS name.
func validHostName(s string) bool {
	if len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(s, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// conflicts reports whether two listeners cannot both be bound: the same
// non-zero port, and the same host or one of them on every interface of a
// family the other uses ("" and "::" are every interface of both families
// in Go, 0.0.0.0 every IPv4 one).
func (a listenAddress) conflicts(b listenAddress) bool {
	if a.port == 0 || a.port != b.port {
		return false
	}
	if a.wildcard() || b.wildcard() {
		wa, wb := a, b
		if !wa.wildcard() {
			wa, wb = wb, wa
		}
		if wa.ip != nil && wa.ip.To4() != nil { // 0.0.0.0
			return wb.ip == nil || wb.ip.To4() != nil
		}
		return true
	}
	if a.ip != nil && b.ip != nil {
		return a.ip.Equal(b.ip)
	}
	return strings.EqualFold(a.host, b.host)
}

func (a listenAddress) wildcard() bool { return a.host == "" || (a.ip != nil && a.ip.IsUnspecified()) }
