package main

import (
	"bufio"
	"net"
	"reflect"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/edged/edged/broker/packet"
)

// TestCrashRecoveryV5 is the crash test with MQTT 5.0 clients: the real
// edged binary is killed with SIGKILL while a 5.0 publisher streams QoS 1
// and QoS 2 messages with properties to an offline persistent 5.0
// subscriber (subscription identifier 9). After a restart the subscriber
// gets every message acknowledged to the publisher (PUBACK, or PUBREC for
// QoS 2), QoS 2 ones exactly once, each with its properties intact: user
// properties in order, content type, response topic, correlation data,
// payload format, the remaining message expiry and the subscription
// identifier.
func TestCrashRecoveryV5(t *testing.T) {
	n := 2
	if testing.Short() {
		n = 1
	}
	killRuns(t, n, 5, 50*time.Millisecond, 300*time.Millisecond, crashOnce5)
}

// conn5 is a minimal blocking 5.0 client on the codec.
type conn5 struct {
	nc net.Conn
	br *bufio.Reader
}

func dial5(t *testing.T, addr, id string) (*conn5, bool) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	c := &conn5{nc: nc, br: bufio.NewReader(nc)}
	never := uint32(0xFFFFFFFF)
	c.send(t, &packet.Connect{ProtocolName: "MQTT", ProtocolLevel: 5, ClientID: id,
		Properties: &packet.Properties{SessionExpiry: &never}})
	ca, ok := c.read(t, 10*time.Second).(*packet.Connack)
	if !ok || ca.Reason != packet.Success {
		t.Fatalf("CONNACK %+v", ca)
	}
	return c, ca.SessionPresent
}

func (c *conn5) send(t *testing.T, p packet.Packet) {
	c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.nc.Write(p.AppendTo(nil, packet.V5)); err != nil {
		t.Errorf("write: %v", err)
	}
}

func (c *conn5) read(t *testing.T, d time.Duration) packet.Packet {
	t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(d))
	p, err := packet.Read(c.br, 0, packet.V5)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return p
}

// props5 are the properties of message i.
func props5(i int) *packet.Properties {
	one, exp := byte(1), uint32(3600)
	return &packet.Properties{PayloadFormat: &one, MessageExpiry: &exp, ContentType: "text/plain",
		ResponseTopic: "reply/" + strconv.Itoa(i), CorrelationData: []byte{byte(i >> 8), byte(i), 0},
		User: []packet.UserProperty{{Key: "seq", Value: strconv.Itoa(i)}, {Key: "z", Value: "last"}, {Key: "seq", Value: "again"}}}
}

func crashOnce5(t *testing.T, killAfter time.Duration) {
	dir := t.TempDir()
	config := "data_dir: " + dir + "/data\nsys_interval: 1h\nlimits: {max_queued_messages: 100000}\n" +
		"listeners:\n  - {name: local, address: 127.0.0.1:0}\n"
	proc := startEdged(t, dir, config)

	sub, _ := dial5(t, proc.addr, "sub5")
	sub.send(t, &packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "c5/#", QoS: 2}},
		Properties: &packet.Properties{SubscriptionIDs: []uint32{9}}})
	if sa, ok := sub.read(t, 10*time.Second).(*packet.Suback); !ok || sa.Reasons[0] != packet.GrantedQoS2 {
		t.Fatalf("SUBACK %+v", sa)
	}
	sub.send(t, &packet.Disconnect{})
	sub.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := packet.Read(sub.br, 0, packet.V5); err == nil {
		t.Fatal("a packet after DISCONNECT")
	}
	sub.nc.Close()

	pub, _ := dial5(t, proc.addr, "pub5")
	var mu sync.Mutex
	acked := map[int]byte{} // message index → QoS, once acknowledged
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			pub.nc.SetReadDeadline(time.Now().Add(30 * time.Second))
			p, err := packet.Read(pub.br, 0, packet.V5)
			if err != nil {
				return
			}
			mu.Lock()
			switch p := p.(type) {
			case *packet.Puback:
				if p.Reason == packet.Success {
					acked[int(p.PacketID)] = 1
				}
			case *packet.Pubrec:
				if p.Reason == packet.Success {
					acked[int(p.PacketID)] = 2
				}
			}
			mu.Unlock()
		}
	}()
	stop := make(chan struct{})
	sent := make(chan int, 1)
	go func() {
		i := 1
		defer func() { sent <- i - 1 }()
		for ; i < 60000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			qos := byte(1 + i%2)
			b := (&packet.Publish{Topic: "c5/" + strconv.Itoa(i%7), Payload: []byte("m" + strconv.Itoa(i)), QoS: qos,
				PacketID: uint16(i), Properties: props5(i)}).AppendTo(nil, packet.V5)
			pub.nc.SetWriteDeadline(time.Now().Add(2 * time.Second))
			if _, err := pub.nc.Write(b); err != nil {
				return
			}
			if i%16 == 0 {
				time.Sleep(time.Millisecond) // keep the ids within uint16 before the kill
			}
		}
	}()
	time.Sleep(killAfter)
	proc.kill()
	close(stop)
	<-sent
	pub.nc.Close()
	<-readerDone
	mu.Lock()
	want := acked
	mu.Unlock()
	if len(want) == 0 {
		t.Logf("nothing acknowledged before the kill")
	}

	proc = startEdged(t, dir, config)
	sub, present := dial5(t, proc.addr, "sub5")
	if !present {
		t.Fatal("session not present after the restart")
	}
	got := map[int]int{}
	for {
		sub.nc.SetReadDeadline(time.Now().Add(2 * time.Second))
		p, err := packet.Read(sub.br, 0, packet.V5)
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				break
			}
			t.Fatalf("read: %v", err)
		}
		pp, ok := p.(*packet.Publish)
		if !ok {
			if rel, ok := p.(*packet.Pubrel); ok {
				sub.send(t, &packet.Pubcomp{PacketID: rel.PacketID})
			}
			continue
		}
		i, err := strconv.Atoi(string(pp.Payload[1:]))
		if err != nil {
			t.Fatalf("payload %q", pp.Payload)
		}
		// This connection got no copy before: a DUP re-send counts.
		got[i]++
		pr := pp.Properties
		w := props5(i)
		if pr == nil || pr.MessageExpiry == nil || *pr.MessageExpiry > 3600 || *pr.MessageExpiry < 3500 {
			t.Fatalf("message %d: properties %+v, want a remaining expiry near 3600", i, pr)
		}
		w.MessageExpiry, w.SubscriptionIDs = pr.MessageExpiry, []uint32{9}
		if !reflect.DeepEqual(pr, w) {
			t.Fatalf("message %d: properties\n got %+v\nwant %+v", i, pr, w)
		}
		switch pp.QoS {
		case 1:
			sub.send(t, &packet.Puback{PacketID: pp.PacketID})
		case 2:
			sub.send(t, &packet.Pubrec{PacketID: pp.PacketID})
		}
	}
	for i, qos := range want {
		switch {
		case got[i] == 0:
			t.Errorf("message %d (QoS %d) acknowledged before the kill, never delivered", i, qos)
		case qos == 2 && got[i] > 1:
			t.Errorf("QoS 2 message %d delivered %d times", i, got[i])
		}
	}
	t.Logf("%d acknowledged before the kill, %d delivered after the restart", len(want), len(got))
	proc.stop(t)
}
