package main

import (
	"crypto/tls"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/gorilla/websocket"

	"github.com/edged/edged/broker"
	"github.com/edged/edged/broker/brokertest"
	"github.com/edged/edged/internal/testutil"
)

// serveListener serves ln with a fresh in-memory broker until the test ends.
func serveListener(t *testing.T, ln net.Listener) {
	t.Helper()
	b, err := broker.New(broker.Config{SysInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	brokertest.Serve(t, b, ln)
}

// pahoRoundTrip connects a paho subscriber and publisher to url and checks a
// QoS 1 message goes through.
func pahoRoundTrip(t *testing.T, url string, tc *tls.Config) {
	t.Helper()
	got := make(chan string, 1)
	opts := func(id string) *mqtt.ClientOptions {
		o := mqtt.NewClientOptions().AddBroker(url).SetClientID(id).SetAutoReconnect(false).
			SetConnectTimeout(5 * time.Second)
		if tc != nil {
			o.SetTLSConfig(tc)
		}
		return o
	}
	sub := mqtt.NewClient(opts("sub"))
	if tok := sub.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connecting subscriber to %s: %v", url, tok.Error())
	}
	defer sub.Disconnect(0)
	tok := sub.Subscribe("ws/#", 1, func(_ mqtt.Client, m mqtt.Message) { got <- string(m.Payload()) })
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribing: %v", tok.Error())
	}
	pub := mqtt.NewClient(opts("pub"))
	if tok := pub.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connecting publisher: %v", tok.Error())
	}
	defer pub.Disconnect(0)
	if tok := pub.Publish("ws/a", 1, false, "hello"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publishing: %v", tok.Error())
	}
	select {
	case p := <-got:
		if p != "hello" {
			t.Fatalf("got %q", p)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("message not delivered")
	}
}

func TestWebSocketListener(t *testing.T) {
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := listenWebSocket(tcp, "/mqtt", 10*time.Second, slog.New(slog.DiscardHandler))
	serveListener(t, ln)
	url := "ws://" + tcp.Addr().String() + "/mqtt"
	pahoRoundTrip(t, url, nil)

	// Without the "mqtt" subprotocol the connection is closed
	// [MQTT-6.0.0-3].
	ws, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := ws.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseProtocolError) {
		t.Fatalf("without subprotocol: %v, want close 1002", err)
	}
	ws.Close()

	// A text message closes the connection [MQTT-6.0.0-1].
	d := websocket.Dialer{Subprotocols: []string{"mqtt"}}
	ws, _, err = d.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	ws.WriteMessage(websocket.TextMessage, []byte{0x10, 0x00})
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := ws.ReadMessage(); err == nil {
		t.Fatal("text message accepted")
	}
	ws.Close()
}

func TestTLSListener(t *testing.T) {
	dir := t.TempDir()
	ca := testutil.NewTestCA(t, "edged test CA", testutil.ECDSA)
	srv := ca.Issue(t, "127.0.0.1")
	cli := ca.Issue(t, "client")
	cfg := &TLSConfig{ClientCAFile: filepath.Join(dir, "ca.crt")}
	cfg.CertFile, cfg.KeyFile = srv.WriteFiles(t, dir, "server")
	if err := os.WriteFile(cfg.ClientCAFile, ca.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := listen(ListenerConfig{Name: "tls", Address: "127.0.0.1:0", TLS: cfg}, nil, 10*time.Second, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	serveListener(t, ln)
	pool := ca.Pool()
	pahoRoundTrip(t, "ssl://"+ln.Addr().String(), &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cli.TLS()}})

	// client_ca_file makes a client certificate mandatory.
	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pool})
	if err == nil {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = c.Read(make([]byte, 1))
		c.Close()
	}
	if err == nil {
		t.Fatal("TLS handshake without a client certificate succeeded")
	}
}
