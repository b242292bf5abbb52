package bridge

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/edged/edged/persist"
)

type memQueue struct {
	mu      sync.Mutex
	entries []persist.Entry
}

func (q *memQueue) Read(after uint64, max int) ([]persist.Entry, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []persist.Entry
	for _, e := range q.entries {
		if e.Seq > after && len(out) < max {
			out = append(out, e)
		}
	}
	return out, nil
}
func (q *memQueue) Delete(seqs []uint64, done func(error)) {
	q.mu.Lock()
	kept := q.entries[:0]
	for _, e := range q.entries {
		del := false
		for _, s := range seqs {
			del = del || s == e.Seq
		}
		if !del {
			kept = append(kept, e)
		}
	}
	q.entries = kept
	q.mu.Unlock()
	done(nil)
}
func (q *memQueue) len() int                        { q.mu.Lock(); defer q.mu.Unlock(); return len(q.entries) }
func (q *memQueue) Stats() persist.QueueStats       { return persist.QueueStats{} }
func (q *memQueue) Expire(time.Time) (int64, error) { return 0, nil }

type nopBroker struct{}

func (nopBroker) AddTap(string, *persist.Queue, []string, func(*persist.Message) bool, func()) error {
	return nil
}
func (nopBroker) PublishFrom(_, _ string, _ []byte, _ byte, _ bool, done func(error)) {
	if done != nil {
		done(nil)
	}
}

// paho does not claim the packet ids of the PUBRELs it resends from the
// store, so a fresh client reuses them at once; the PUBCOMP that answers a
// stale PUBREL completes the new request that got the same id. Here the
// upstream answers only the PUBRELs (as any broker does, in order) and never
// acknowledges the new QoS 2 PUBLISH: the entry must stay queued.
func TestStalePubrelIDsNotReused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	gotPublish := make(chan uint16, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		var wmu sync.Mutex
		for {
			p, err := packets.ReadPacket(c)
			if err != nil {
				return
			}
			switch p := p.(type) {
			case *packets.ConnectPacket:
				ca := packets.NewControlPacket(packets.Connack).(*packets.ConnackPacket)
				ca.SessionPresent = true
				wmu.Lock()
				ca.Write(c)
				wmu.Unlock()
			case *packets.PubrelPacket:
				// Hold PUBCOMP 2 until the new PUBLISH arrived (a slow
				// link: the answers are in flight when the client reuses ids).
				pc := packets.NewControlPacket(packets.Pubcomp).(*packets.PubcompPacket)
				pc.MessageID = p.MessageID
				if p.MessageID == 1 {
					wmu.Lock()
					pc.Write(c)
					wmu.Unlock()
				} else {
					time.AfterFunc(200*time.Millisecond, func() { wmu.Lock(); pc.Write(c); wmu.Unlock() })
				}
			case *packets.SubscribePacket:
				sa := packets.NewControlPacket(packets.Suback).(*packets.SubackPacket)
				sa.MessageID = p.MessageID
				sa.ReturnCodes = []byte{1}
				wmu.Lock()
				sa.Write(c)
				wmu.Unlock()
			case *packets.PublishPacket:
				select {
				case gotPublish <- p.MessageID:
				default:
				}
				// Never acknowledged (PUBREC withheld).
			}
		}
	}()

	mem := persist.NewMemory()
	defer mem.Close()
	q := &memQueue{entries: []persist.Entry{{Seq: 1, Msg: persist.Message{Topic: "s/1", Payload: []byte("x"), QoS: 2}}}}
	cfg := Config{
		Name: "b", Address: "tcp://" + ln.Addr().String(), ClientID: "c",
		NotificationTopic: "-", SysInterval: -1,
		Topics: []Rule{
			{Pattern: "s/#", Direction: Out, QoS: 2},
			{Pattern: "cmd/#", Direction: In, QoS: 1},
		},
	}
	br, err := New(cfg, nopBroker{}, OpenQueues(cfg, mem.Queue))
	if err != nil {
		t.Fatal(err)
	}
	br.normal.q = q
	br.cur.private = false
	br.cur.staleQoS2 = []uint16{1, 2} // left by a previous connection (after id wrap)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go br.Run(ctx)
	select {
	case id := <-gotPublish:
		t.Logf("new QoS 2 PUBLISH got packet id %d", id)
	case <-time.After(5 * time.Second):
		t.Fatal("no publish")
	}
	time.Sleep(600 * time.Millisecond)
	if q.len() == 0 {
		t.Fatal("entry deleted although upstream never sent PUBREC/PUBCOMP for its PUBLISH (only the PUBCOMP of a stale PUBREL with the same id)")
	}
}
