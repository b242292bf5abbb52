package bridge_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/edged/edged/bridge"
	"github.com/edged/edged/broker"
	"github.com/edged/edged/internal/testutil"
	"github.com/edged/edged/persist"
)

// BenchmarkDrain measures how fast a backlog of 100,000 QoS 1 messages,
// queued while the link was down, drains to a local mosquitto while live
// traffic still flows (a publisher that waits for each PUBACK, on its own
// topic): msgs/s from Run until the backlog and the live messages
// published so far are acknowledged upstream; live-msgs/s is the live
// publisher's rate meanwhile, and cpu-µs/msg edged's CPU per message.
// Over MQTT 3.1.1 (paho) and 5.0 (edged's codec).
//
//	go test -run '^$' -bench BenchmarkDrain -benchtime 1x ./bridge
func BenchmarkDrain(b *testing.B) {
	m := testutil.StartMosquitto(b, testutil.MosquittoOptions{})
	for _, proto := range []string{bridge.Protocol311, bridge.Protocol5} {
		b.Run(proto, func(b *testing.B) { benchmarkDrain(b, m, proto) })
	}
}

func benchmarkDrain(b *testing.B, m *testutil.Mosquitto, proto string) {
	const backlog = 100_000
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
		cfg := bcfg("cloud", m.Addr, bridge.Rule{Pattern: "sensors/#", Direction: bridge.Out, QoS: 1, RemotePrefix: "site1/"})
		cfg.SysInterval = -1
		cfg.Protocol = proto
		qs := bridge.OpenQueues(cfg, db.Queue)
		br, err := bridge.New(cfg, srv, qs)
		if err != nil {
			b.Fatal(err)
		}
		var wg sync.WaitGroup
		wg.Add(backlog)
		payload := []byte(`{"t":21.5,"h":40.1,"ts":1700000000,"id":"sensor-0001-abcdef"}`)
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
