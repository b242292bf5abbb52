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

// benchPublish5 is benchPublish with the properties a 5.0 publisher
// commonly sets: message expiry, content type, one user property.
func benchPublish5(n int) *packet.Publish {
	p := benchPublish(n)
	exp := uint32(3600)
	p.Properties = &packet.Properties{MessageExpiry: &exp, ContentType: "application/json",
		User: []packet.UserProperty{{Key: "site", Value: "7"}}}
	return p
}

func BenchmarkEncodePublishV5(b *testing.B) {
	for _, n := range benchPayloads {
		b.Run(fmt.Sprintf("payload=%d", n), func(b *testing.B) {
			p := benchPublish5(n)
			buf := make([]byte, 0, p.Size(packet.V5))
			b.SetBytes(int64(p.Size(packet.V5)))
			b.ReportAllocs()
			for b.Loop() {
				buf = p.AppendTo(buf[:0], packet.V5)
			}
		})
	}
}

func BenchmarkDecodePublishV5(b *testing.B) {
	for _, n := range benchPayloads {
		b.Run(fmt.Sprintf("payload=%d", n), func(b *testing.B) {
			raw := packet.Encode(benchPublish5(n), packet.V5)
			r := bytes.NewReader(raw)
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				r.Reset(raw)
				if _, err := packet.Read(r, 0, packet.V5); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
