package broker_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/edged/edged/broker/packet"
)

// Helpers on top of helpers_test.go's rawClient. Every method runs on the
// test goroutine only: it calls t.Fatal.

// dialConnect dials addr and connects with client id id and the given clean
// session flag, expecting CONNACK 0 with session present false.
func dialConnect(t testing.TB, addr, id string, clean bool) *rawClient {
	t.Helper()
	c := dialRaw(t, addr)
	c.connect(&packet.Connect{ClientID: id, CleanSession: clean}, false, packet.Success)
	return c
}

// dialSmallRecvBuf dials addr with a tiny socket receive buffer, so that a
// client that stops reading makes the broker's writes block quickly.
func dialSmallRecvBuf(t testing.TB, addr string) *rawClient {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		return errors.Join(err, serr)
	}}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawClient{t: t, nc: nc, br: bufio.NewReader(nc)}
}

// sub subscribes to filter at qos with packet id 1 and expects it granted.
func (c *rawClient) sub(filter string, qos byte) {
	c.t.Helper()
	c.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: filter, QoS: qos}}})
	c.expect(&packet.Suback{PacketID: 1, Reasons: []packet.Reason{packet.Reason(qos)}})
}

// next reads the next packet, failing after 5 s.
func (c *rawClient) next() packet.Packet {
	c.t.Helper()
	p, err := c.read(5 * time.Second)
	if err != nil {
		c.t.Fatalf("reading the next packet: %v", err)
	}
	return p
}

// nextPublish reads the next packet and fails unless it is a PUBLISH.
func (c *rawClient) nextPublish() *packet.Publish {
	c.t.Helper()
	p := c.next()
	pub, ok := p.(*packet.Publish)
	if !ok {
		c.t.Fatalf("got %s, want a PUBLISH", describe(p))
	}
	return pub
}

// expectPublish reads a PUBLISH and checks everything but the packet id,
// which it returns. A QoS 0 PUBLISH must have id 0, a QoS 1 or 2 one a
// non-zero id [MQTT-2.3.1-1].
func (c *rawClient) expectPublish(topic, payload string, qos byte, retain, dup bool) uint16 {
	c.t.Helper()
	p := c.nextPublish()
	if p.Topic != topic || string(p.Payload) != payload || p.QoS != qos || p.Retain != retain || p.Dup != dup {
		c.t.Fatalf("got %s, want topic=%q payload=%q qos=%d retain=%v dup=%v",
			describe(p), topic, payload, qos, retain, dup)
	}
	if (qos == 0) != (p.PacketID == 0) {
		c.t.Fatalf("got %s: packet id must be non-zero exactly for QoS 1 and 2", describe(p))
	}
	return p.PacketID
}

// ackIncoming completes the QoS flow of a received PUBLISH.
func (c *rawClient) ackIncoming(p *packet.Publish) {
	c.t.Helper()
	switch p.QoS {
	case 1:
		c.send(&packet.Puback{PacketID: p.PacketID})
	case 2:
		c.send(&packet.Pubrec{PacketID: p.PacketID})
		c.expect(&packet.Pubrel{PacketID: p.PacketID})
		c.send(&packet.Pubcomp{PacketID: p.PacketID})
	}
}

// pub publishes and completes the publisher side of the QoS flow. The
// client must not be subscribed to anything that could interleave.
func (c *rawClient) pub(topic, payload string, qos byte, retain bool, pid uint16) {
	c.t.Helper()
	c.send(&packet.Publish{Topic: topic, Payload: []byte(payload), QoS: qos, Retain: retain, PacketID: pid})
	switch qos {
	case 1:
		c.expect(&packet.Puback{PacketID: pid})
	case 2:
		c.expect(&packet.Pubrec{PacketID: pid})
		c.send(&packet.Pubrel{PacketID: pid})
		c.expect(&packet.Pubcomp{PacketID: pid})
	}
}

// sync makes sure the broker handled everything sent so far, by a
// PINGREQ round trip: packets of one connection are handled in order.
func (c *rawClient) sync() {
	c.t.Helper()
	c.send(&packet.Pingreq{})
	c.expect(&packet.Pingresp{})
}

// closedWithin reads until the connection is closed and returns how long
// that took; it fails if a packet arrives or the connection is still open
// after max.
func (c *rawClient) closedWithin(max time.Duration) time.Duration {
	c.t.Helper()
	start := time.Now()
	p, err := c.read(max)
	if err == nil {
		c.t.Fatalf("got %s, want the connection closed", describe(p))
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.t.Fatalf("connection still open after %s", max)
	}
	return time.Since(start)
}

// drop closes the TCP connection without DISCONNECT (network loss).
func (c *rawClient) drop() { c.nc.Close() }

// isClosedErr reports whether err means the peer closed the connection.
func isClosedErr(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return err != nil
}

// rawPublisher is a goroutine-safe (no t.Fatal) minimal client used by
// tests that publish from several goroutines.
type rawPublisher struct {
	nc net.Conn
	br *bufio.Reader
}

func dialPublisher(addr, id string) (*rawPublisher, error) {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	p := &rawPublisher{nc: nc, br: bufio.NewReader(nc)}
	if err := p.write(&packet.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: id, CleanSession: true}); err != nil {
		nc.Close()
		return nil, err
	}
	ack, err := p.read()
	if err != nil {
		nc.Close()
		return nil, err
	}
	if ca, ok := ack.(*packet.Connack); !ok || ca.Reason != packet.Success {
		nc.Close()
		return nil, fmt.Errorf("got %s, want CONNACK accepted", describe(ack))
	}
	return p, nil
}

func (p *rawPublisher) write(pk packet.Packet) error {
	p.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := p.nc.Write(pk.AppendTo(nil, packet.V311))
	return err
}

func (p *rawPublisher) read() (packet.Packet, error) {
	p.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	pk, err := packet.Read(p.br, 0, packet.V311)
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return pk, err
}
