package broker_test

import (
	"net"
	"net/url"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// pahoMsg is a message as a paho handler saw it; handlers run on paho's
// goroutines and only send these over a channel.
type pahoMsg struct {
	topic     string
	payload   string
	qos       byte
	retained  bool
	duplicate bool
}

// pahoOpts returns options for a paho client of the broker at addr that
// never reconnects on its own and sends every message it receives to msgs
// (if msgs is not nil).
func pahoOpts(addr, id string, clean bool, msgs chan<- pahoMsg) *mqtt.ClientOptions {
	o := mqtt.NewClientOptions().
		AddBroker("tcp://" + addr).
		SetClientID(id).
		SetCleanSession(clean).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(5 * time.Second).
		SetKeepAlive(30 * time.Second).
		SetProtocolVersion(4)
	if msgs != nil {
		o.SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) {
			msgs <- pahoMsg{m.Topic(), string(m.Payload()), m.Qos(), m.Retained(), m.Duplicate()}
		})
	}
	return o
}

// pahoConnect connects a paho client and disconnects it in t.Cleanup,
// before the broker (registered earlier) shuts down.
func pahoConnect(t testing.TB, o *mqtt.ClientOptions) mqtt.Client {
	t.Helper()
	c := mqtt.NewClient(o)
	wait(t, c.Connect())
	t.Cleanup(func() {
		if c.IsConnected() {
			c.Disconnect(100)
		}
	})
	return c
}

// wait waits for a paho token and fails on its error.
func wait(t testing.TB, tok mqtt.Token) {
	t.Helper()
	if !tok.WaitTimeout(10 * time.Second) {
		t.Fatalf("paho: timed out waiting for %T", tok)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("paho: %v", err)
	}
}

// recvPaho receives the next message a paho handler saw, failing after 5 s.
func recvPaho(t testing.TB, msgs <-chan pahoMsg) pahoMsg {
	t.Helper()
	select {
	case m := <-msgs:
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no message within 5s")
		return pahoMsg{}
	}
}

// noPaho fails if a message arrives within d.
func noPaho(t testing.TB, msgs <-chan pahoMsg, d time.Duration) {
	t.Helper()
	select {
	case m := <-msgs:
		t.Fatalf("got %+v, want no message", m)
	case <-time.After(d):
	}
}

// capturingDialer returns a paho connection function that dials TCP and
// sends the net.Conn to conns, so a test can cut the connection abruptly.
func capturingDialer(conns chan<- net.Conn) mqtt.OpenConnectionFunc {
	return func(u *url.URL, _ mqtt.ClientOptions) (net.Conn, error) {
		nc, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
		if err == nil {
			conns <- nc
		}
		return nc, err
	}
}
