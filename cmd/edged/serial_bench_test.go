package main

import (
	"errors"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/edged/edged/broker/packet"
	"github.com/edged/edged/internal/ptytest"
	"github.com/edged/edged/internal/testutil"
	"github.com/edged/edged/serialio"
)

// BenchmarkSerialBroker measures QoS 0 PUBLISH frames from a simulated
// sensor through a kernel PTY into the real in-process broker (serialio
// Listener, broker.Serve) and out to one TCP subscriber.
//
// Metrics:
//   - frames/s: end to end, sensor write to subscriber receipt. The sensor
//     keeps at most `window` frames ahead of the subscriber, so no QoS 0
//     message is dropped for a slow consumer and every frame is counted.
//   - cpu-ns/frame: process CPU time (user+sys, getrusage RUSAGE_SELF) per
//     frame. It includes the test's own sensor (encoding, writes to the PTY
//     master) and TCP subscriber (reads, decoding), as everything runs in
//     one process. The "pty-only" sub-benchmark measures the sensor side
//     alone, writing the same frames into a PTY read by a plain reader;
//     the difference between the two is the cost of serialio, the broker,
//     the TCP write and the subscriber.
//   - uart-frames/s: what a real UART at 921600 baud would allow. Baud has
//     no effect on a PTY, which moves bytes at memory speed. At 921600 baud
//     8N1 (10 bits a byte) a UART carries at most 92,160 bytes/s; a frame of
//     this benchmark is frameWire bytes on the wire, so the line allows
//     92160/frameWire frames/s. frames/s well above that means the broker
//     is not the bottleneck of a serial sensor, and cpu-ns/frame times
//     uart-frames/s is the CPU share a saturated 921600-baud port costs.
func BenchmarkSerialBroker(b *testing.B) {
	pub := &packet.Publish{Topic: "sensors/t1", Payload: []byte("21.5 C\x00\x01")}
	frame := serialio.AppendFrame(nil, 0, pub.AppendTo(nil, packet.V311))
	frameWire := len(frame) // both delimiters: the sensor sends frames whole
	const (
		uartBytesPerSec = 921600 / 10
		batch           = 16 // frames per write to the PTY
		window          = 512
	)
	var burst []byte
	for range batch {
		burst = serialio.AppendFrame(burst, 0, pub.AppendTo(nil, packet.V311))
	}
	report := func(b *testing.B, start time.Time, cpu0 time.Duration) {
		elapsed, cpu := time.Since(start), processCPU(b)-cpu0
		b.ReportMetric(float64(b.N)/elapsed.Seconds(), "frames/s")
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/frame")
		b.ReportMetric(float64(uartBytesPerSec)/float64(frameWire), "uart-frames/s")
		b.ReportMetric(float64(frameWire), "wire-B/frame")
	}

	b.Run("broker", func(b *testing.B) {
		sb := startSerialBroker(b)
		port := sb.addPort(b, "bench", serialio.Config{})
		s := newSensor(b, port.master, nil)
		var got atomic.Int64
		progress := make(chan struct{}, 1)
		c, _, err := dialMQTT(sb.addr, "bench-sub", true, func(_ *tclient, pk packet.Packet) {
			if _, ok := pk.(*packet.Publish); ok {
				got.Add(1)
				select {
				case progress <- struct{}{}:
				default:
				}
			}
		})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(c.close)
		if err := c.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "sensors/#"}}}); err != nil {
			b.Fatal(err)
		}
		s.connect(b, 0, &packet.Connect{ClientID: "bench-sensor", CleanSession: true})
		// The subscription is in place once a probe comes through.
		testutil.WaitFor(b, 5*time.Second, func() error {
			if got.Load() > 0 {
				return nil
			}
			s.send(b, 0, pub)
			time.Sleep(10 * time.Millisecond)
			return errors.New("subscriber receives nothing")
		})
		testutil.WaitFor(b, 5*time.Second, func() error { // drain the probes
			n := got.Load()
			time.Sleep(50 * time.Millisecond)
			if got.Load() != n {
				return errors.New("probes still arriving")
			}
			return nil
		})
		base := got.Load()
		b.SetBytes(int64(frameWire))
		b.ResetTimer()
		start, cpu0 := time.Now(), processCPU(b)
		sent := 0
		for sent < b.N {
			for int64(sent)-(got.Load()-base) >= window {
				select {
				case <-progress:
				case <-time.After(10 * time.Second):
					b.Fatalf("subscriber stuck at %d of %d sent", got.Load()-base, sent)
				}
			}
			k := min(batch, b.N-sent)
			if err := s.write(burst[:k*len(frame)]); err != nil {
				b.Fatal(err)
			}
			sent += k
		}
		for got.Load()-base < int64(b.N) {
			select {
			case <-progress:
			case <-time.After(10 * time.Second):
				b.Fatalf("subscriber got %d of %d; port stats %+v", got.Load()-base, b.N, port.ln.Stats())
			}
		}
		b.StopTimer()
		report(b, start, cpu0)
		if st := port.ln.Stats(); st.Dropped() != 0 || st.Overflows != 0 {
			b.Fatalf("port stats %+v", st)
		}
	})

	b.Run("pty-only", func(b *testing.B) {
		m, slave := ptytest.Open(b)
		r := ptytest.OpenSlave(b, slave)
		want := int64(b.N) * int64(len(frame))
		done := make(chan int64, 1)
		go func() {
			buf := make([]byte, 4096)
			var n int64
			for n < want {
				k, err := r.Read(buf)
				n += int64(k)
				if err != nil {
					break
				}
			}
			done <- n
		}()
		b.SetBytes(int64(frameWire))
		b.ResetTimer()
		start, cpu0 := time.Now(), processCPU(b)
		for sent := 0; sent < b.N; {
			k := min(batch, b.N-sent)
			if _, err := m.Write(burst[:k*len(frame)]); err != nil {
				b.Fatal(err)
			}
			sent += k
		}
		select {
		case n := <-done:
			if n != want {
				b.Fatalf("reader got %d bytes of %d", n, want)
			}
		case <-time.After(30 * time.Second):
			b.Fatal("reader stuck")
		}
		b.StopTimer()
		report(b, start, cpu0)
	})
}

// processCPU returns the user and system CPU time of the process so far.
func processCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
