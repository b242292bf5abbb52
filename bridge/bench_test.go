package bridge_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/edged/edged/bridge"
	"github.com/edged/edged/broker"
	"github.com/edged/edged/broker/brokertest"
	"github.com/edged/edged/broker/packet"
	"github.com/edged/edged/internal/testutil"
	"github.com/edged/edged/persist"
)

// BenchmarkDrain measures how fast a backlog of 100,000 QoS 1 messages,
// queued while the link was down, drains to a local mosquitto while live
// traffic still flows (a publisher that waits for each PUBACK, on its own
// topic): msgs/s from Run until the backlog and the live messages
// published so far are acknowledged upstream; live-msgs/s is the live
// publisher's rate meanwhile, and cpu-µs/msg edged's CPU per message.
// Over MQTT 3.1.1 (paho) and 5.0 (edged's codec). upstream-cpu-µs/msg is
// mosquitto's CPU per message.
//
// The direct sub-benchmark is the reference on this machine: a publisher
// without a store or live traffic (one buffered write per batch of freed
// window, the same payload and window of 64) sends the same 100,000 QoS 1
// messages straight to the same mosquitto. Mosquitto is single-threaded,
// so its CPU per message bounds every drain to it (1 s / 27 µs is 37,000
// msgs/s with a whole core to itself, which it does not get on 2 cores
// shared with the publisher): a drain rate is read against direct's, not
// against a number from another machine.
//
//	go test -run '^$' -bench BenchmarkDrain -benchtime 1x ./bridge
func BenchmarkDrain(b *testing.B) {
	m := testutil.StartMosquitto(b, testutil.MosquittoOptions{})
	for _, proto := range []string{bridge.Protocol311, bridge.Protocol5} {
		b.Run(proto, func(b *testing.B) { benchmarkDrain(b, m, proto) })
	}
	b.Run("direct", func(b *testing.B) { benchmarkDirect(b, m) })
	// The same drain to an upstream that keeps up: edged itself, in
	// process and without a store (its CPU counts in cpu-µs/msg). What
	// the bridge can send when the upstream is not the limit.
	for _, proto := range []string{bridge.Protocol311, bridge.Protocol5} {
		b.Run("edged-upstream/"+proto, func(b *testing.B) { benchmarkDrain(b, nil, proto) })
	}
}

// drainPayload is the message every drain benchmark sends.
var drainPayload = []byte(`{"t":21.5,"h":40.1,"ts":1700000000,"id":"sensor-0001-abcdef"}`)

// drainBacklog is how many queued messages a drain benchmark sends.
const drainBacklog = 100_000

// upstreamCPU reports mosquitto's CPU per message since cpu0.
func upstreamCPU(b *testing.B, m *testutil.Mosquitto, cpu0 time.Duration, msgs uint64) {
	cpu, err := m.CPUTime()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64((cpu-cpu0).Nanoseconds())/float64(msgs)/1000, "upstream-cpu-µs/msg")
}

func benchmarkDirect(b *testing.B, m *testutil.Mosquitto) {
	const window = 64
	for range b.N {
		b.StopTimer()
		nc, err := net.Dial("tcp", m.Addr)
		if err != nil {
			b.Fatal(err)
		}
		bw, br := bufio.NewWriterSize(nc, 64<<10), bufio.NewReaderSize(nc, 64<<10)
		bw.Write(packet.Encode(&packet.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, CleanSession: true, ClientID: "direct"}, packet.V311))
		if err := bw.Flush(); err != nil {
			b.Fatal(err)
		}
		if p, err := packet.Read(br, 1<<10, packet.V311); err != nil {
			b.Fatal(err)
		} else if ca, ok := p.(*packet.Connack); !ok || ca.Reason != packet.Success {
			b.Fatalf("got %v, want a successful CONNACK", p)
		}
		acks := make(chan error, window)
		go func() {
			for range drainBacklog {
				p, err := packet.Read(br, 1<<10, packet.V311)
				if _, ok := p.(*packet.Puback); err == nil && !ok {
					err = fmt.Errorf("got %v, want PUBACK", p)
				}
				acks <- err
				if err != nil {
					return
				}
			}
		}()
		b.StartTimer()
		cpu0, err := m.CPUTime()
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		var buf []byte
		sent, inflight := 0, 0
		for done := 0; done < drainBacklog; done++ {
			for ; inflight < window && sent < drainBacklog; sent, inflight = sent+1, inflight+1 {
				buf = (&packet.Publish{QoS: 1, Topic: fmt.Sprintf("site1/sensors/s%d", sent%16), PacketID: uint16(sent%65535 + 1), Payload: drainPayload}).AppendTo(buf[:0], packet.V311)
				bw.Write(buf)
			}
			if err := bw.Flush(); err != nil {
				b.Fatal(err)
			}
			// Every acknowledgement already here, then one write for all
			// the window they free.
			if err := <-acks; err != nil {
				b.Fatal(err)
			}
			inflight--
			for more := true; more; {
				select {
				case err := <-acks:
					if err != nil {
						b.Fatal(err)
					}
					done++
					inflight--
				default:
					more = false
				}
			}
		}
		elapsed := time.Since(start)
		b.StopTimer()
		b.ReportMetric(drainBacklog/elapsed.Seconds(), "msgs/s")
		upstreamCPU(b, m, cpu0, drainBacklog)
		nc.Close()
	}
}

// benchmarkDrain drains to m, or to an in-process edged if m is nil.
func benchmarkDrain(b *testing.B, m *testutil.Mosquitto, proto string) {
	const backlog = drainBacklog
	for range b.N {
		b.StopTimer()
		dir := b.TempDir()
		db, err := persist.Open(persist.Options{Path: filepath.Join(dir, "edged.db")})
		if err != nil {
			b.Fatal(err)
		}
		srv, err := broker.New(broker.Config{Store: db, SysInterval: -1})
		if err != nil {
			b.Fatal(err)
		}
		var upAddr string
		if m != nil {
			upAddr = m.Addr
		} else {
			up, err := broker.New(broker.Config{SysInterval: -1})
			if err != nil {
				b.Fatal(err)
			}
			upAddr = brokertest.Listen(b, up)
		}
		cfg := bcfg("cloud", upAddr, bridge.Rule{Pattern: "sensors/#", Direction: bridge.Out, QoS: 1, RemotePrefix: "site1/"})
		cfg.SysInterval = -1
		cfg.Protocol = proto
		qs := bridge.OpenQueues(cfg, db.Queue)
		br, err := bridge.New(cfg, srv, qs)
		if err != nil {
			b.Fatal(err)
		}
		var wg sync.WaitGroup
		wg.Add(backlog)
		payload := drainPayload
		for i := range backlog {
			srv.Publish(fmt.Sprintf("sensors/s%d", i%16), payload, 1, false, func(error) { wg.Done() })
		}
		wg.Wait()
		if st := qs.Normal.Stats(); st.Len != backlog {
			b.Fatalf("queue holds %d, want %d", st.Len, backlog)
		}
		ctx, cancel := context.WithCancel(context.Background())
		b.StartTimer()
		cpu0 := cpuTime()
		var upCPU0 time.Duration
		if m != nil {
			if upCPU0, err = m.CPUTime(); err != nil {
				b.Fatal(err)
			}
		}
		start := time.Now()
		done := make(chan error, 1)
		go func() { done <- br.Run(ctx) }()
		var live atomic.Int64
		stopLive := make(chan struct{})
		liveDone := make(chan struct{})
		go func() {
			defer close(liveDone)
			ack := make(chan error, 1)
			for {
				select {
				case <-stopLive:
					return
				default:
				}
				srv.Publish("sensors/live", payload, 1, false, func(err error) { ack <- err })
				if err := <-ack; err != nil {
					b.Error(err)
					return
				}
				live.Add(1)
			}
		}()
		for br.Sent() < uint64(backlog+live.Load()) {
			time.Sleep(time.Millisecond)
		}
		elapsed := time.Since(start)
		close(stopLive)
		<-liveDone
		cpu := cpuTime() - cpu0
		b.StopTimer()
		b.ReportMetric(float64(br.Sent())/elapsed.Seconds(), "msgs/s")
		b.ReportMetric(float64(live.Load())/elapsed.Seconds(), "live-msgs/s")
		// edged's CPU per message (user and system, this process only):
		// a figure that holds when other processes share the cores.
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(br.Sent())/1000, "cpu-µs/msg")
		if m != nil {
			upstreamCPU(b, m, upCPU0, br.Sent())
		}
		cancel()
		<-done
		srv.Shutdown(context.Background())
		db.Close()
	}
}

// cpuTime is the CPU time (user and system) this process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
