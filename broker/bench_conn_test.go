package broker_test

import (
	"bufio"
	"fmt"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/edged/edged/broker"
	"github.com/edged/edged/broker/packet"
)

// Benchmarks of the connection layer for MQTT 3.1.1 clients, without a
// store, so that they measure the broker and not the disk:
//
//	go test -run '^$' -bench 'Fanin|Publish' -benchmem ./broker
//
// BenchmarkFanin: 8 publishers send QoS 1 messages (64-byte payloads, up to
// 64 unacknowledged each) to one subscriber that reads them at QoS 0.
func BenchmarkFanin(b *testing.B) {
	_, addr := startBroker(b, broker.Config{})
	benchFan(b, addr, 8, 1)
}

// BenchmarkPublishFanout: one publisher, 16 subscribers at QoS 0.
func BenchmarkPublishFanout(b *testing.B) {
	_, addr := startBroker(b, broker.Config{})
	benchFan(b, addr, 1, 16)
}

func benchFan(b *testing.B, addr string, publishers, subscribers int) {
	var readers sync.WaitGroup
	subs := make([]net.Conn, subscribers)
	b.Cleanup(func() {
		for _, nc := range subs {
			if nc != nil {
				nc.Close()
			}
		}
		readers.Wait()
	})
	for i := range subscribers {
		c := dialRaw(b, addr)
		c.connect(&packet.Connect{ClientID: fmt.Sprintf("sub%d", i), CleanSession: true}, false, packet.Success)
		c.sub("fan/#", 0)
		subs[i] = c.nc
		readers.Add(1)
		go func() {
			// Reads until the test closes the connection.
			defer readers.Done()
			br := bufio.NewReaderSize(c.nc, 64<<10)
			c.nc.SetReadDeadline(time.Time{})
			for {
				if _, err := packet.Read(br, 0, packet.V311); err != nil {
					return
				}
			}
		}()
	}
	payload := make([]byte, 64)
	per := (b.N + publishers - 1) / publishers
	conns := make([]net.Conn, publishers)
	for i := range conns {
		c := dialRaw(b, addr)
		c.connect(&packet.Connect{ClientID: fmt.Sprintf("pub%d", i), CleanSession: true}, false, packet.Success)
		conns[i] = c.nc
	}
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	b.ResetTimer()
	elapsed := publishAll(b, conns, "fan/", payload, per, 64)
	b.ReportMetric(float64(per*publishers)/elapsed.Seconds(), "msgs/s")
}

// BenchmarkPublishConnMemory reports what one idle connected MQTT 3.1.1
// client costs: heap and goroutine stacks per connection, 200 clients
// subscribed to one filter each. Each iteration is one set of clients. The
// test's own client sockets and buffers live in the same process and are
// included: compare figures across versions, not with other brokers.
func BenchmarkPublishConnMemory(b *testing.B) {
	const n = 200
	var perHeap, perStack float64
	for range b.N {
		b.StopTimer()
		s, addr := startBroker(b, broker.Config{Limits: broker.Limits{MaxConnectionsPerAddress: -1,
			MaxPendingPerAddress: -1}})
		_ = s
		before := memNow()
		b.StartTimer()
		cs := make([]*rawClient, n)
		for i := range cs {
			c := dialRaw(b, addr)
			c.connect(&packet.Connect{ClientID: fmt.Sprintf("idle%d", i), CleanSession: true, KeepAlive: 60},
				false, packet.Success)
			c.sub(fmt.Sprintf("idle/%d", i), 1)
			cs[i] = c
		}
		b.StopTimer()
		after := memNow()
		perHeap = float64(int64(after.HeapInuse)-int64(before.HeapInuse)) / n
		perStack = float64(int64(after.StackInuse)-int64(before.StackInuse)) / n
		for _, c := range cs {
			c.nc.Close()
		}
	}
	b.ReportMetric(perHeap, "heapB/conn")
	b.ReportMetric(perStack, "stackB/conn")
}

func memNow() runtime.MemStats {
	// The broker's goroutines settle (the reader hands off to a fresh
	// goroutine when idle) before measuring.
	time.Sleep(100 * time.Millisecond)
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m
}
