package serialio_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/edged/edged/serialio"
)

var benchBody = publish("sensors/t1/temperature", bytes.Repeat([]byte{0x00, 0x42}, 50))

func BenchmarkFrameEncode(b *testing.B) {
	buf := make([]byte, 0, serialio.MaxWireLen(len(benchBody)))
	b.SetBytes(int64(len(benchBody)))
	b.ReportAllocs()
	for b.Loop() {
		buf = serialio.AppendFrame(buf[:0], 1, benchBody)
	}
}

func BenchmarkFrameDecode(b *testing.B) {
	wire := serialio.AppendFrame(nil, 1, benchBody)
	d := serialio.NewDecoder(0)
	frames := 0
	emit := func(f serialio.Frame, err error) {
		if err == nil {
			frames++
		}
	}
	b.SetBytes(int64(len(benchBody)))
	b.ReportAllocs()
	for b.Loop() {
		d.Feed(wire, emit)
	}
	if frames != b.N {
		b.Fatalf("%d frames decoded, want %d", frames, b.N)
	}
}

// BenchmarkPTYThroughput measures frames/s from a sensor through a PTY and
// the Listener to a conn's Read. The configured 921600 baud has no effect on
// a pseudo-terminal, which moves bytes as fast as the kernel can; on a real
// UART at 921600 baud 8N1 the line carries at most 92160 bytes/s.
func BenchmarkPTYThroughput(b *testing.B) {
	l, s, _ := startListener(b, serialio.Config{Baud: 921600})
	conns := acceptor(b, l)
	s.send(b, 0, connect("bench"))
	c := accept(b, conns)
	mustReadPacket(b, c)

	const batch = 64
	var wire []byte
	for range batch {
		wire = serialio.AppendFrame(wire, 0, benchBody)
	}
	errc := make(chan error, 1)
	b.SetBytes(int64(len(benchBody)))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	go func() {
		for sent := 0; sent < b.N; sent += batch {
			k := min(batch, b.N-sent)
			if _, err := s.f.Write(wire[:k*len(wire)/batch]); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	c.SetReadDeadline(time.Now().Add(time.Minute))
	buf := make([]byte, 32<<10)
	want := b.N * len(benchBody)
	for got := 0; got < want; {
		n, err := c.Read(buf)
		if err != nil {
			b.Fatal(err)
		}
		got += n
	}
	b.StopTimer()
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "frames/s")
}
