package main

import (
	"bufio"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/edged/edged/broker/packet"
)

// tclient is a small MQTT 3.1.1 client over real TCP for the process-level
// tests, written on the codec so that the tests control exactly what is
// resent and when. Packets read are handed to a callback on the reader
// goroutine; the test goroutine only sends.
type tclient struct {
	nc   net.Conn
	wmu  sync.Mutex
	done chan struct{}
	err  error
}

// dialMQTT connects and completes CONNECT; onPacket sees every later packet.
func dialMQTT(addr, id string, clean bool, onPacket func(*tclient, packet.Packet)) (*tclient, bool, error) {
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, false, err
	}
	c := &tclient{nc: nc, done: make(chan struct{})}
	br := bufio.NewReader(nc)
	if err := c.send(&packet.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: id, CleanSession: clean}); err != nil {
		nc.Close()
		return nil, false, err
	}
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	p, err := packet.Read(br, 0, packet.V311)
	if err != nil {
		nc.Close()
		return nil, false, fmt.Errorf("reading CONNACK: %w", err)
	}
	ca, ok := p.(*packet.Connack)
	if !ok || ca.Reason != packet.Success {
		nc.Close()
		return nil, false, fmt.Errorf("want CONNACK accepted, got %#v", p)
	}
	nc.SetReadDeadline(time.Time{})
	go func() {
		defer close(c.done)
		for {
			p, err := packet.Read(br, 0, packet.V311)
			if err != nil {
				c.err = err
				return
			}
			onPacket(c, p)
		}
	}()
	return c, ca.SessionPresent, nil
}

func (c *tclient) send(ps ...packet.Packet) error {
	var b []byte
	for _, p := range ps {
		b = p.AppendTo(b, packet.V311)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := c.nc.Write(b)
	return err
}

func (c *tclient) close() {
	c.nc.Close()
	<-c.done
}

// disconnect sends DISCONNECT and waits for the broker to close.
func (c *tclient) disconnect() {
	c.send(&packet.Disconnect{})
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
	}
	c.close()
}
