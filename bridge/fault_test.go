package bridge_test

import (
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/edged/edged/bridge"
	"github.com/edged/edged/internal/testutil"
)

// TestOutagesInOrder publishes while the proxy resets, blackholes and
// refuses the uplink: every message arrives upstream, in order per topic,
// with at most a window of duplicates per outage.
func TestOutagesInOrder(t *testing.T) {
	t.Run("qos1", func(t *testing.T) { t.Parallel(); testOutages(t, 1, bridge.Protocol311) })
	// QoS 2 with an in rule: a persistent upstream session, where packet
	// ids of cut-off QoS 2 publishes must be released on reconnect.
	t.Run("qos2-persistent", func(t *testing.T) { t.Parallel(); testOutages(t, 2, bridge.Protocol311) })
	// The same over MQTT 5.0: the PUBRELs of cut-off QoS 2 publishes go
	// out on the next connection when the upstream kept the session.
	t.Run("qos2-persistent-v5", func(t *testing.T) { t.Parallel(); testOutages(t, 2, bridge.Protocol5) })
}

func testOutages(t *testing.T, qos byte, proto string) {
	m := testutil.StartMosquitto(t, testutil.MosquittoOptions{})
	px := testutil.StartProxy(t, m.Addr)
	us := subscribe(t, m.Addr, "cloud-sub", false, "site1/s/#", qos)
	cfg := bcfg("cloud", px.Addr(), bridge.Rule{Pattern: "s/#", Direction: bridge.Out, QoS: qos, RemotePrefix: "site1/"})
	if qos == 2 {
		cfg.Topics = append(cfg.Topics, bridge.Rule{Pattern: "cmd/#", Direction: bridge.In, QoS: 1})
	}
	cfg.Window = 32
	cfg.Protocol = proto
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
		func() { px.Reset() },
		func() { px.Blackhole(true); time.Sleep(1500 * time.Millisecond); px.Blackhole(false) },
		func() { px.SetDown(true); time.Sleep(300 * time.Millisecond); px.SetDown(false) },
		func() { px.Reset() },
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
	testutil.WaitFor(t, 5*time.Second, func() error {
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
	ca := testutil.NewTestCA(t, "test CA", testutil.RSA)
	srvCert := ca.Issue(t, "upstream", "cloud.example")
	cliCert := ca.Issue(t, "edged")
	caFile, _ := ca.WriteFiles(t, dir, "ca")
	certFile, keyFile := cliCert.WriteFiles(t, dir, "client")
	pool := ca.Pool()
	uaddr := startMochi(t, &tls.Config{
		Certificates: []tls.Certificate{srvCert.TLS()},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	})

	// The test subscriber connects over TLS too.
	cliTLS := cliCert.TLS()
	us := subscribeTLS(t, uaddr, pool, &cliTLS)
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

var _ = net.Dial
