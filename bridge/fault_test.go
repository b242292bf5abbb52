package bridge_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/edged/edged/bridge"
)

// TestOutagesInOrder publishes while the proxy resets, blackholes and
// refuses the uplink: every message arrives upstream, in order per topic,
// with at most a window of duplicates per outage.
func TestOutagesInOrder(t *testing.T) {
	t.Run("qos1", func(t *testing.T) { t.Parallel(); testOutages(t, 1) })
	// QoS 2 with an in rule: a persistent upstream session, where packet
	// ids of cut-off QoS 2 publishes must be released on reconnect.
	t.Run("qos2-persistent", func(t *testing.T) { t.Parallel(); testOutages(t, 2) })
}

func testOutages(t *testing.T, qos byte) {
	m := startMosquitto(t)
	px := startProxy(t, m.addr)
	us := subscribe(t, m.addr, "cloud-sub", false, "site1/s/#", qos)
	cfg := bcfg("cloud", px.addr(), bridge.Rule{Pattern: "s/#", Direction: bridge.Out, QoS: qos, RemotePrefix: "site1/"})
	if qos == 2 {
		cfg.Topics = append(cfg.Topics, bridge.Rule{Pattern: "cmd/#", Direction: bridge.In, QoS: 1})
	}
	cfg.Window = 32
	l := startLocal(t, t.TempDir(), cfg)

	const n, topics = 3000, 5
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n {
			l.srv.Publish(fmt.Sprintf("s/%d", i%topics), []byte(strconv.Itoa(i)), qos, false, nil)
			if i%10 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	outages := 0
	faults := []func(){
		func() { px.reset() },
		func() { px.blackhole(true); time.Sleep(1500 * time.Millisecond); px.blackhole(false) },
		func() { px.setDown(true); time.Sleep(300 * time.Millisecond); px.setDown(false) },
		func() { px.reset() },
	}
	for _, f := range faults {
		time.Sleep(150 * time.Millisecond)
		f()
		outages++
	}
	<-done
	us.waitDistinct(t, n, 30*time.Second)
	dups, err := checkOrder(us.snapshot())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d messages, %d outages, %d duplicates", n, outages, dups)
	if dups > cfg.Window*outages {
		t.Errorf("%d duplicates > window %d x %d outages", dups, cfg.Window, outages)
	}
	waitFor(t, 5*time.Second, func() error {
		if st := l.stats("cloud"); st.Len != 0 {
			return fmt.Errorf("queue holds %d", st.Len)
		}
		return nil
	})
}

// TestTLS bridges to mochi over TLS with a private CA, a client
// certificate the server requires, and a server name override.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	ca, caKey := newCert(t, nil, nil, "test CA", nil)
	srvCert, srvKey := newCert(t, ca, caKey, "upstream", []string{"cloud.example"})
	cliCert, cliKey := newCert(t, ca, caKey, "edged", nil)
	write := func(name string, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caFile := write("ca.crt", "CERTIFICATE", ca.Raw)
	certFile := write("client.crt", "CERTIFICATE", cliCert.Raw)
	keyFile := write("client.key", "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(cliKey))
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	uaddr := startMochi(t, &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{srvCert.Raw}, PrivateKey: srvKey}},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	})

	// The test subscriber connects over TLS too.
	us := subscribeTLS(t, uaddr, pool, &tls.Certificate{Certificate: [][]byte{cliCert.Raw}, PrivateKey: cliKey})
	cfg := bcfg("cloud", uaddr, bridge.Rule{Pattern: "s/#", Direction: bridge.Out, QoS: 1, RemotePrefix: "tls/"})
	cfg.Address = "tls://" + uaddr
	cfg.TLS = &bridge.TLSConfig{CAFile: caFile, CertFile: certFile, KeyFile: keyFile, ServerName: "cloud.example"}
	l := startLocal(t, t.TempDir(), cfg)
	for i := range 10 {
		l.publish(t, "s/x", []byte(strconv.Itoa(i)), 1, false)
	}
	us.waitDistinct(t, 10, 10*time.Second)

	// Without the server name override verification fails.
	bad := cfg
	bad.Name = "bad"
	bad.TLS = &bridge.TLSConfig{CAFile: caFile, CertFile: certFile, KeyFile: keyFile}
	l2 := startLocal(t, t.TempDir(), bad)
	l2.publish(t, "s/x", []byte("never"), 1, false)
	time.Sleep(300 * time.Millisecond)
	if l2.bridges[0].Connected() || l2.stats("bad").Len != 1 {
		t.Errorf("bridge with a wrong server name connected")
	}
}

func newCert(t testing.TB, parent *x509.Certificate, parentKey *rsa.PrivateKey, cn string, dns []string) (*x509.Certificate, *rsa.PrivateKey) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		DNSNames:     dns,
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	if parent == nil {
		tmpl.IsCA = true
		tmpl.BasicConstraintsValid = true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c, key
}

var _ = net.Dial
