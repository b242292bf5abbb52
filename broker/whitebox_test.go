package broker

import (
	"bufio"
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/edged/edged/broker/packet"
	"github.com/edged/edged/persist"
)

type holdStore struct {
	*persist.Memory
	mu   sync.Mutex
	hold bool
	held []func()
}

func (h *holdStore) Commit(ops []persist.Op, done func(error)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.hold {
		h.held = append(h.held, func() { h.Memory.Commit(ops, done) })
		return
	}
	h.Memory.Commit(ops, done)
}

func (h *holdStore) release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.hold = false
	for _, f := range h.held {
		f()
	}
	h.held = nil
}

// While one acknowledgement waits for the store, acknowledgements that need
// no commit (PINGRESP, PUBREC of a committed duplicate) queue behind it; they
// hold commitSem slots too, so a PINGREQ flood stops being read instead of
// growing ackQueue.
func TestAckQueueBounded(t *testing.T) {
	mem := persist.NewMemory()
	st := &holdStore{Memory: mem}
	s, err := New(Config{Store: st, SysInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go s.Serve(context.Background(), ln)
	defer func() {
		st.release()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
		mem.Close()
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	br := bufio.NewReader(nc)
	nc.Write((&packet.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: "p", CleanSession: true}).AppendTo(nil, packet.V311))
	if _, err := packet.Read(br, 0, packet.V311); err != nil {
		t.Fatal(err)
	}
	st.mu.Lock()
	st.hold = true
	st.mu.Unlock()
	// A retained QoS 1 message: PutRetained must commit before PUBACK.
	nc.Write((&packet.Publish{QoS: 1, Retain: true, Topic: "r", PacketID: 1, Payload: []byte("x")}).AppendTo(nil, packet.V311))
	const n = 20000 // 40 KB: fits the socket buffers, so Write returns
	var b []byte
	for range n {
		b = (&packet.Pingreq{}).AppendTo(b, packet.V311)
	}
	if _, err := nc.Write(b); err != nil {
		t.Fatal(err)
	}
	var c *conn
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		s.mu.Lock()
		for k := range s.conns {
			c = k
		}
		s.mu.Unlock()
		c.acks.mu.Lock()
		l := len(c.acks.entries)
		c.acks.mu.Unlock()
		if l > maxPendingAcks {
			t.Fatalf("%d acknowledgements held in memory for one connection (commitSem bound is %d)", l, maxPendingAcks)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func rawConnect(t *testing.T, addr, id string, clean bool) (net.Conn, *bufio.Reader) {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.Write((&packet.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: id, CleanSession: clean}).AppendTo(nil, packet.V311))
	br := bufio.NewReader(nc)
	if _, err := packet.Read(br, 0, packet.V311); err != nil {
		t.Fatal(err)
	}
	return nc, br
}

// A SUBSCRIBE read by a connection just before a clean-session takeover of
// its client id must not act on the discarded session: no ghost in the topic
// tree, no PutSession recreating the deleted session in the store.
func TestStaleSubscribeAfterCleanTakeover(t *testing.T) {
	mem := persist.NewMemory()
	s, err := New(Config{Store: mem, SysInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go s.Serve(context.Background(), ln)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
		mem.Close()
	}()
	addr := ln.Addr().String()
	old, _ := rawConnect(t, addr, "x", false)

	s.routeMu.Lock() // widen the window deterministically
	newc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer newc.Close()
	newc.Write((&packet.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: "x", CleanSession: true}).AppendTo(nil, packet.V311))
	time.Sleep(50 * time.Millisecond) // attach waits for routeMu first
	old.Write((&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "g/#", QoS: 1}}}).AppendTo(nil, packet.V311))
	time.Sleep(50 * time.Millisecond) // then subscribe
	s.routeMu.Unlock()
	time.Sleep(100 * time.Millisecond)
	newc.Write((&packet.Disconnect{}).AppendTo(nil, packet.V311))
	time.Sleep(100 * time.Millisecond)

	s.mu.Lock()
	nsess := len(s.sessions)
	s.mu.Unlock()
	t.Logf("sessions in memory: %d, subscriptions in tree: %d", nsess, s.topics.len())
	snap, _ := mem.Load()
	for _, ps := range snap.Sessions {
		t.Logf("stored session %q subs=%v", ps.ClientID, ps.Subs)
	}
	if s.topics.len() != 0 || len(snap.Sessions) != 0 {
		t.Fatalf("ghost of discarded session: tree=%d stored=%d", s.topics.len(), len(snap.Sessions))
	}
}
