package broker_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"time"

	"github.com/edged/edged/broker"
	"github.com/edged/edged/broker/packet"
)

// A broker serving one TCP listener, with state in memory only (Store nil;
// edged passes a persist.DB). A client connects, subscribes, and receives
// what the application publishes through Server.Publish.
func Example() {
	srv, err := broker.New(broker.Config{SysInterval: -1})
	if err != nil {
		panic(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln, broker.WithName("local"), broker.AllowAnonymous(true)) }()

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		panic(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	read := func() packet.Packet {
		p, err := packet.Read(r, 1<<20, packet.V311)
		if err != nil {
			panic(err)
		}
		return p
	}
	c.Write(packet.Encode(&packet.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: "example", CleanSession: true}, packet.V311))
	fmt.Println(read().Type())
	c.Write(packet.Encode(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "greetings/#", QoS: 1}}}, packet.V311))
	fmt.Println(read().Type())

	srv.Publish("greetings/world", []byte("hello"), 1, false, nil)
	pub := read().(*packet.Publish)
	fmt.Println(pub.Topic, string(pub.Payload), pub.QoS)
	c.Write(packet.Encode(&packet.Puback{PacketID: pub.PacketID}, packet.V311))

	cancel()
	fmt.Println(<-served)
	if err := srv.Shutdown(context.Background()); err != nil {
		panic(err)
	}
	// Output:
	// CONNACK
	// SUBACK
	// greetings/world hello 1
	// <nil>
}
