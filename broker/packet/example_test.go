package packet_test

import (
	"bytes"
	"fmt"

	"github.com/edged/edged/broker/packet"
)

// A PUBLISH encoded to its wire bytes and read back, as a connection's
// reader does: Read checks the fixed header's remaining length against
// the largest packet accepted before it reads the body.
func Example() {
	wire := packet.Encode(&packet.Publish{QoS: 1, PacketID: 7, Topic: "sensors/t1", Payload: []byte("21.5")}, packet.V311)
	fmt.Printf("% x\n", wire)

	p, err := packet.Read(bytes.NewReader(wire), 256<<10, packet.V311)
	if err != nil {
		panic(err)
	}
	pub := p.(*packet.Publish)
	fmt.Println(pub.Type(), pub.Topic, string(pub.Payload), pub.QoS, pub.PacketID)

	// A remaining length over the limit is refused before the body is read.
	_, err = packet.Read(bytes.NewReader(wire), 8, packet.V311)
	fmt.Println(err != nil)
	// Output:
	// 32 12 00 0a 73 65 6e 73 6f 72 73 2f 74 31 00 07 32 31 2e 35
	// PUBLISH sensors/t1 21.5 1 7
	// true
}
