package broker_test

import (
	"bufio"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/edged/edged/broker"
	"github.com/edged/edged/broker/packet"
	"github.com/edged/edged/persist"
)

// BenchmarkPersistedQoS1 measures what the durability promise costs: 8 publishers
// send QoS 1 messages (200-byte payloads) over TCP to one offline persistent
// subscriber, so every message is committed to bbolt before its PUBACK. Each
// publisher keeps up to 64 messages unacknowledged, as MQTT clients do;
// group commit turns the waiting acknowledgements into one fsync per batch.
//
//	go test -run '^$' -bench 'PersistedQoS1/sync=(batch|off)' -benchtime 100000x ./broker
//	go test -run '^$' -bench 'PersistedQoS1/sync=always' -benchtime 10000x ./broker
func BenchmarkPersistedQoS1(b *testing.B) {
	for _, mode := range []persist.SyncMode{persist.SyncBatch, persist.SyncAlways, persist.SyncOff} {
		b.Run("sync="+mode.String(), func(b *testing.B) {
			benchPersisted(b, mode, 8, 64)
		})
	}
}

func benchPersisted(b *testing.B, mode persist.SyncMode, publishers, window int) {
	db, err := persist.Open(persist.Options{Path: filepath.Join(b.TempDir(), "edged.db"), Sync: mode})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	_, addr := startBroker(b, broker.Config{Store: db, Limits: broker.Limits{MaxQueuedMessages: b.N + 1, MaxQueuedBytes: 1 << 40}})

	sub := dialRaw(b, addr)
	sub.connect(&packet.Connect{ClientID: "offline", CleanSession: false}, false, packet.Success)
	sub.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "bench/#", QoS: 1}}})
	sub.expect(&packet.Suback{PacketID: 1, Reasons: []packet.Reason{1}})
	sub.send(&packet.Disconnect{})
	sub.expectClosed()

	payload := make([]byte, 200)
	per := (b.N + publishers - 1) / publishers
	conns := make([]net.Conn, publishers)
	for i := range conns {
		c := dialRaw(b, addr)
		c.connect(&packet.Connect{ClientID: fmt.Sprintf("pub%d", i), CleanSession: true}, false, packet.Success)
		conns[i] = c.nc
	}
	fsyncs := db.Stats().Fsyncs
	b.SetBytes(int64(len(payload)))
	b.ResetTimer()
	elapsed := publishAll(b, conns, "bench/", payload, per, window)
	total := float64(per * publishers)
	b.ReportMetric(total/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(db.Stats().Fsyncs-fsyncs)/elapsed.Seconds(), "fsyncs/s")
	b.ReportMetric(0, "ns/op")
}

// publishAll runs publishWindow on every connection at once, connection i
// publishing to topicPrefix+i, stops the timer when all are acknowledged
// and returns the time it took.
func publishAll(b *testing.B, conns []net.Conn, topicPrefix string, payload []byte, n, window int) time.Duration {
	b.Helper()
	start := time.Now()
	var wg sync.WaitGroup
	errc := make(chan error, len(conns))
	for i, nc := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errc <- publishWindow(nc, fmt.Sprintf("%s%d", topicPrefix, i), payload, n, window)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(errc)
	for err := range errc {
		if err != nil {
			b.Fatal(err)
		}
	}
	return elapsed
}

// publishWindow sends n QoS 1 messages keeping at most window unacknowledged,
// and returns once all are acknowledged.
func publishWindow(nc net.Conn, topic string, payload []byte, n, window int) error {
	acks := make(chan error, 1)
	credit := make(chan struct{}, window)
	go func() {
		br := bufio.NewReader(nc)
		for got := 0; got < n; got++ {
			nc.SetReadDeadline(time.Now().Add(30 * time.Second))
			p, err := packet.Read(br, 0, packet.V311)
			if err != nil {
				acks <- err
				return
			}
			if _, ok := p.(*packet.Puback); !ok {
				acks <- fmt.Errorf("got %s, want PUBACK", p.Type())
				return
			}
			<-credit
		}
		acks <- nil
	}()
	nc.SetWriteDeadline(time.Time{})
	bw := bufio.NewWriter(nc)
	id := uint16(0)
	for i := 0; i < n; i++ {
		select {
		case credit <- struct{}{}:
		default:
			// The window is full: flush and wait for an acknowledgement.
			if err := bw.Flush(); err != nil {
				return err
			}
			credit <- struct{}{}
		}
		id++
		if id == 0 {
			id = 1
		}
		p := &packet.Publish{QoS: 1, Topic: topic, PacketID: id, Payload: payload}
		if _, err := bw.Write(p.AppendTo(bw.AvailableBuffer(), packet.V311)); err != nil {
			return err
		}
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return <-acks
}
