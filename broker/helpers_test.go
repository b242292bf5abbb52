package broker_test

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"reflect"
	"testing"
	"time"

	"github.com/edged/edged/broker/brokertest"
	"github.com/edged/edged/broker/packet"
	"github.com/edged/edged/internal/testutil"
)

// startBroker starts a broker on 127.0.0.1:0 and returns it with its
// address. t.Cleanup shuts it down and waits for every goroutine. Tests that
// want $SYS set cfg.SysInterval.
var startBroker = brokertest.Start

// waitFor polls fn until it returns nil or the timeout passes.
var waitFor = testutil.WaitFor

// rawClient speaks MQTT packet by packet over a real TCP connection, for
// protocol edge cases that a client library would not produce. It encodes
// and decodes at v, the protocol version of the CONNECT it sent (3.1.1 until
// then): connect with ProtocolLevel 5 and the client speaks 5.0.
type rawClient struct {
	t  testing.TB
	nc net.Conn
	br *bufio.Reader
	v  packet.Version
}

func dialRaw(t testing.TB, addr string) *rawClient {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawClient{t: t, nc: nc, br: bufio.NewReader(nc)}
}

// send writes packets.
func (c *rawClient) send(ps ...packet.Packet) {
	c.t.Helper()
	var b []byte
	for _, p := range ps {
		if cp, ok := p.(*packet.Connect); ok {
			c.v = packet.Version(cp.ProtocolLevel)
		}
		b = p.AppendTo(b, c.v)
	}
	c.write(b)
}

// write writes raw bytes.
func (c *rawClient) write(b []byte) {
	c.t.Helper()
	c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// read reads the next packet within the timeout.
func (c *rawClient) read(timeout time.Duration) (packet.Packet, error) {
	c.nc.SetReadDeadline(time.Now().Add(timeout))
	return packet.Read(c.br, 0, c.v)
}

// expect reads the next packet and fails unless it equals want.
func (c *rawClient) expect(want packet.Packet) {
	c.t.Helper()
	got, err := c.read(5 * time.Second)
	if err != nil {
		c.t.Fatalf("reading, want %s: %v", describe(want), err)
	}
	if !reflect.DeepEqual(normalize(got), normalize(want)) {
		c.t.Fatalf("got %s, want %s", describe(got), describe(want))
	}
}

// expectClosed waits until the broker closes the connection, failing if a
// packet arrives instead.
func (c *rawClient) expectClosed() {
	c.t.Helper()
	p, err := c.read(5 * time.Second)
	if err == nil {
		c.t.Fatalf("got %s, want the connection closed", describe(p))
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.t.Fatalf("connection still open after 5s")
	}
}

// expectNothing fails if a packet arrives within d.
func (c *rawClient) expectNothing(d time.Duration) {
	c.t.Helper()
	p, err := c.read(d)
	if err == nil {
		c.t.Fatalf("got %s, want nothing", describe(p))
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		c.t.Fatalf("want a timeout, got %v", err)
	}
}

// connect sends CONNECT and expects CONNACK with the given session present
// flag and code. A CONNECT without a protocol name is sent as 3.1.1.
func (c *rawClient) connect(p *packet.Connect, present bool, code packet.Reason) {
	c.t.Helper()
	if p.ProtocolName == "" {
		p.ProtocolName, p.ProtocolLevel = "MQTT", 4
	}
	c.send(p)
	c.expect(&packet.Connack{SessionPresent: present, Reason: code})
}

// connect5 sends p as an MQTT 5.0 CONNECT (protocol name and level set
// here) and returns the CONNACK, failing if the next packet is not one.
// From then on the client speaks 5.0.
func (c *rawClient) connect5(p *packet.Connect) *packet.Connack {
	c.t.Helper()
	p.ProtocolName, p.ProtocolLevel = "MQTT", byte(packet.V5)
	c.send(p)
	got := c.next()
	ca, ok := got.(*packet.Connack)
	if !ok {
		c.t.Fatalf("got %s, want a CONNACK", describe(got))
	}
	return ca
}

// normalize makes nil and empty slices compare equal.
func normalize(p packet.Packet) packet.Packet {
	if pub, ok := p.(*packet.Publish); ok && len(pub.Payload) == 0 {
		cp := *pub
		cp.Payload = nil
		return &cp
	}
	return p
}

func describe(p packet.Packet) string {
	if p == nil {
		return "<nil>"
	}
	switch p := p.(type) {
	case *packet.Publish:
		return fmt.Sprintf("PUBLISH{topic=%q payload=%q qos=%d retain=%v dup=%v id=%d}",
			p.Topic, p.Payload, p.QoS, p.Retain, p.Dup, p.PacketID)
	}
	return fmt.Sprintf("%s%+v", p.Type(), p)
}
