package packet_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"runtime"
	"testing"

	"github.com/edged/edged/broker/packet"
)

// A peer that announces a large packet and sends little of it makes Read
// allocate about what arrived, not the announced remaining length: before,
// 1,000 connections announcing 256 KiB each held 256 MB.
func TestReadAllocatesAsBytesArrive(t *testing.T) {
	// A PUBLISH header announcing 256 MiB - 1 bytes, then 10 bytes and EOF.
	in := append([]byte{0x30, 0xff, 0xff, 0xff, 0x7f}, make([]byte, 10)...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const n = 20
	for range n {
		_, err := packet.Read(bytes.NewReader(in), 0, packet.V311)
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("got %v, want io.ErrUnexpectedEOF", err)
		}
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / n; per > 64<<10 {
		t.Fatalf("Read allocated %d bytes for a truncated packet announcing 256 MiB", per)
	}
}

// Large bodies still decode whole, whatever the reads deliver at a time.
func TestReadLargeBody(t *testing.T) {
	for _, size := range []int{0, 1, 4095, 4096, 4097, 100000, 1 << 20} {
		want := &packet.Publish{Topic: "t", Payload: bytes.Repeat([]byte{0xa5}, size)}
		r := bufio.NewReaderSize(bytes.NewReader(want.AppendTo(nil, packet.V311)), 16)
		got, err := packet.Read(r, 0, packet.V311)
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		p := got.(*packet.Publish)
		if p.Topic != "t" || !bytes.Equal(p.Payload, want.Payload) {
			t.Fatalf("size %d: payload differs", size)
		}
		if cap(p.Payload) != len(p.Payload) {
			t.Errorf("size %d: payload cap %d, len %d: the body buffer is larger than the packet", size, cap(p.Payload), len(p.Payload))
		}
	}
}
