package packet_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/edged/edged/broker/packet"
)

var benchPayloads = []int{16, 1024}

func benchPublish(n int) *packet.Publish {
	return &packet.Publish{QoS: 1, Topic: "site/7/sensor/temperature", PacketID: 42, Payload: bytes.Repeat([]byte{'p'}, n)}
}

func BenchmarkEncodePublish(b *testing.B) {
	for _, n := range benchPayloads {
		b.Run(fmt.Sprintf("payload=%d", n), func(b *testing.B) {
			p := benchPublish(n)
			buf := make([]byte, 0, p.Size(packet.V311))
			b.SetBytes(int64(p.Size(packet.V311)))
			b.ReportAllocs()
			for b.Loop() {
				buf = p.AppendTo(buf[:0], packet.V311)
			}
		})
	}
}

func BenchmarkDecodePublish(b *testing.B) {
	for _, n := range benchPayloads {
		b.Run(fmt.Sprintf("payload=%d", n), func(b *testing.B) {
			raw := packet.Encode(benchPublish(n), packet.V311)
			r := bytes.NewReader(raw)
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				r.Reset(raw)
				if _, err := packet.Read(r, 0, packet.V311); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
