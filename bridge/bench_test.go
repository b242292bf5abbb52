package bridge_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/edged/edged/bridge"
	"github.com/edged/edged/bridge/dbqueue"
	"github.com/edged/edged/broker"
	"github.com/edged/edged/internal/testutil"
	"github.com/edged/edged/persist"
)

// BenchmarkDrain measures how fast a backlog of 100,000 QoS 1 messages,
// queued while the link was down, drains to a local mosquitto: msgs/s
// from Run until the last one is acknowledged upstream, over MQTT 3.1.1
// (paho) and 5.0 (edged's codec).
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
		br, err := bridge.New(cfg, srv, dbqueue.New(db, "cloud"))
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
		if st := (dbqueue.New(db, "cloud")).Stats(); st.Len != backlog {
			b.Fatalf("queue holds %d, want %d", st.Len, backlog)
		}
		ctx, cancel := context.WithCancel(context.Background())
		b.StartTimer()
		start := time.Now()
		done := make(chan error, 1)
		go func() { done <- br.Run(ctx) }()
		for br.Sent() < backlog {
			time.Sleep(time.Millisecond)
		}
		elapsed := time.Since(start)
		b.StopTimer()
		b.ReportMetric(float64(backlog)/elapsed.Seconds(), "msgs/s")
		cancel()
		<-done
		srv.Shutdown(context.Background())
		db.Close()
	}
}
