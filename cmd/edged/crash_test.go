package main

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edged/edged/broker/packet"
	"github.com/edged/edged/internal/testutil"
	"github.com/edged/edged/persist"
)

// TestCrashRecovery is the durability promise tested the
// hard way: the real edged binary is killed with SIGKILL at a random moment
// while a publisher streams QoS 1 and QoS 2 messages to an offline persistent
// subscriber, makes retained messages and a third client makes new
// subscriptions. After a restart every message acknowledged to the publisher
// reaches the subscriber (QoS 1 at least once, QoS 2 exactly once), and so
// does everything the publisher re-sends as MQTT requires; every retained
// message and subscription acknowledged before the kill is still there.
//
// The workload includes names over bbolt's 32 KiB key limit (topics of
// 40,000 bytes, retained and not, and a subscriber whose client id has
// 40,004 bytes) and a retained flood: a second publisher makes at least
// floodBefore retained messages before the kill timer starts and goes on
// during it. The flood is verified in the store file after edged stopped
// (a new `#` subscriber is sent only part of thousands of retained
// messages until retained delivery is flow-controlled), which Check must
// also find sound.
func TestCrashRecovery(t *testing.T) {
	n := 20
	if testing.Short() {
		n = 3
	}
	killRuns(t, n, 1, 20*time.Millisecond, 400*time.Millisecond, crashOnce)
}

// killRuns runs crash n times as subtests, each killing edged after a
// random delay in [least, least+span), from a seed logged for a rerun (stream
// keeps one test's delays apart from another's).
func killRuns(t *testing.T, n int, stream uint64, least, span time.Duration, crash func(*testing.T, time.Duration)) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, stream))
	for i := range n {
		killAfter := least + time.Duration(rng.Int64N(int64(span))).Truncate(time.Millisecond)
		t.Run(fmt.Sprintf("kill%02d_after_%s", i, killAfter), func(t *testing.T) { crash(t, killAfter) })
	}
}

// pubState is the publisher's view of one message.
type pubState struct {
	qos      byte
	topic    string
	payload  string
	retain   bool
	acked    bool // PUBACK, or PUBREC for QoS 2: the broker took responsibility
	complete bool // PUBACK, or PUBCOMP for QoS 2
}

type publisher struct {
	mu     sync.Mutex
	msgs   map[uint16]*pubState
	window chan struct{}
	order  []uint16
}

func (p *publisher) onPacket(c *tclient, pk packet.Packet) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch pk := pk.(type) {
	case *packet.Puback:
		if m := p.msgs[pk.PacketID]; m != nil && !m.complete {
			m.acked, m.complete = true, true
			p.release()
		}
	case *packet.Pubrec:
		if m := p.msgs[pk.PacketID]; m != nil && !m.acked {
			m.acked = true
			p.release()
		}
		c.send(&packet.Pubrel{PacketID: pk.PacketID})
	case *packet.Pubcomp:
		if m := p.msgs[pk.PacketID]; m != nil {
			m.complete = true
		}
	}
}

func (p *publisher) release() {
	select {
	case <-p.window:
	default:
	}
}

func crashOnce(t *testing.T, killAfter time.Duration) {
	dir := t.TempDir()
	// The queue limit is above what the publisher can send, so that every
	// message must arrive; limits have their own tests.
	config := "data_dir: " + dir + "/data\nsys_interval: 1h\nlimits: {max_queued_messages: 100000}\n" +
		"listeners:\n  - {name: local, address: 127.0.0.1:0}\n"
	proc := startEdged(t, dir, config)

	// Offline persistent subscribers, one with a client id over 32 KiB.
	subscribeAndLeave(t, proc.addr, "sub", "crash/#", 2)
	subscribeAndLeave(t, proc.addr, longSub, "crash/long/#", 1)

	pub := &publisher{msgs: map[uint16]*pubState{}, window: make(chan struct{}, 64)}
	pc, _, err := dialMQTT(proc.addr, "pub", false, pub.onPacket)
	if err != nil {
		t.Fatal(err)
	}
	// A client subscribing to new filters one after another.
	var lateMu sync.Mutex
	lateAcked := map[uint16]bool{}
	lc, _, err := dialMQTT(proc.addr, "late", false, func(_ *tclient, pk packet.Packet) {
		if sa, ok := pk.(*packet.Suback); ok {
			lateMu.Lock()
			lateAcked[sa.PacketID] = true
			lateMu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}

	// The retained flood, acknowledged in part before the kill timer
	// starts (and so after the sessions above are durable).
	flood := &publisher{msgs: map[uint16]*pubState{}, window: make(chan struct{}, 256)}
	fc, _, err := dialMQTT(proc.addr, "flood", true, flood.onPacket)
	if err != nil {
		t.Fatal(err)
	}
	floodStop := make(chan struct{})
	floodDone := make(chan struct{})
	go func() {
		defer close(floodDone)
		for id := uint16(1); id <= floodMax; id++ {
			select {
			case <-floodStop:
				return
			case flood.window <- struct{}{}:
			}
			m := &pubState{qos: 1, retain: true, topic: fmt.Sprintf("flood/%d/%d", id%16, id), payload: fmt.Sprintf("f%05d", id)}
			flood.mu.Lock()
			flood.msgs[id] = m
			flood.order = append(flood.order, id)
			flood.mu.Unlock()
			if fc.send(&packet.Publish{QoS: 1, Retain: true, Topic: m.topic, PacketID: id, Payload: []byte(m.payload)}) != nil {
				return
			}
		}
	}()
	testutil.WaitFor(t, 30*time.Second, func() error {
		if n := flood.ackedCount(); n < floodBefore {
			return fmt.Errorf("%d of %d flood messages acknowledged", n, floodBefore)
		}
		return nil
	})

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for id := uint16(1); id < 50000; id++ {
			select {
			case <-stop:
				return
			case pub.window <- struct{}{}:
			}
			m := &pubState{qos: byte(1 + id%2), topic: fmt.Sprintf("crash/%d", id%4), payload: fmt.Sprintf("m%05d", id)}
			switch {
			case id%10 == 0:
				m.qos, m.retain, m.topic = 1, true, fmt.Sprintf("ret/%d", id)
			case id%20 == 3:
				m.topic = longTopic("crash/long/", id%2)
			case id%20 == 13:
				m.qos, m.retain, m.topic = 1, true, longTopic("ret/long/", id%3)
			}
			pub.mu.Lock()
			pub.msgs[id] = m
			pub.order = append(pub.order, id)
			pub.mu.Unlock()
			if pc.send(&packet.Publish{QoS: m.qos, Retain: m.retain, Topic: m.topic, PacketID: id, Payload: []byte(m.payload)}) != nil {
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		for id := uint16(1); id < 60000; id++ {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			f := fmt.Sprintf("late/%d", id)
			if lc.send(&packet.Subscribe{PacketID: id, Subscriptions: []packet.Subscription{{Filter: f, QoS: 1}}}) != nil {
				return
			}
		}
	}()

	time.Sleep(killAfter)
	proc.kill()
	close(stop)
	close(floodStop)
	pc.close()
	lc.close()
	fc.close()
	wg.Wait()
	<-floodDone

	pub.mu.Lock()
	sent, acked := len(pub.order), 0
	for _, m := range pub.msgs {
		if m.acked {
			acked++
		}
	}
	pub.mu.Unlock()
	lateMu.Lock()
	nLate := len(lateAcked)
	lateMu.Unlock()
	t.Logf("killed after %s: %d published, %d acknowledged, %d subscriptions acknowledged, %d retained flood acknowledged",
		killAfter, sent, acked, nLate, flood.ackedCount())

	proc = startEdged(t, dir, config)

	// The publisher resumes its session and completes every flow, as MQTT
	// requires of a client [MQTT-4.4.0-1]: unacknowledged PUBLISH packets
	// again with DUP, PUBREL for those that got PUBREC.
	pub.window = make(chan struct{}, 1<<16)
	pc, present, err := dialMQTT(proc.addr, "pub", false, pub.onPacket)
	if err != nil {
		t.Fatal(err)
	}
	if !present {
		t.Fatalf("publisher's persistent session lost")
	}
	pub.mu.Lock()
	var resend []packet.Packet
	for _, id := range pub.order {
		m := pub.msgs[id]
		switch {
		case m.complete:
		case m.acked:
			resend = append(resend, &packet.Pubrel{PacketID: id})
		default:
			resend = append(resend, &packet.Publish{Dup: true, QoS: m.qos, Retain: m.retain, Topic: m.topic, PacketID: id, Payload: []byte(m.payload)})
		}
	}
	pub.mu.Unlock()
	if err := pc.send(resend...); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 30*time.Second, func() error {
		pub.mu.Lock()
		defer pub.mu.Unlock()
		for _, id := range pub.order {
			if !pub.msgs[id].complete {
				return fmt.Errorf("message %d not complete", id)
			}
		}
		return nil
	})
	pc.disconnect()

	// The subscriber gets everything: QoS 1 at least once, QoS 2 exactly once.
	want := map[string]byte{}
	wantLong := map[string]bool{}
	retained := map[string]string{}
	for _, id := range pub.order {
		m := pub.msgs[id]
		if m.retain {
			retained[m.topic] = m.payload
		} else {
			want[m.payload] = m.qos
		}
		if !m.retain && strings.HasPrefix(m.topic, "crash/long/") {
			wantLong[m.payload] = true
		}
	}
	got := receiveAll(t, proc.addr, "sub", false, "", len(want))
	var missing, dup2 []string
	for payload, qos := range want {
		switch n := got[payload]; {
		case n == 0:
			missing = append(missing, payload)
		case qos == 2 && n > 1:
			dup2 = append(dup2, payload)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 || len(dup2) > 0 {
		t.Fatalf("after the kill: %d of %d messages missing (%s), %d QoS 2 messages duplicated (%s)",
			len(missing), len(want), head(missing), len(dup2), head(dup2))
	}

	// So does the subscriber with the long client id, for the long topics.
	gotLong := receiveAll(t, proc.addr, longSub, false, "", len(wantLong))
	for payload := range wantLong {
		if gotLong[payload] == 0 {
			t.Fatalf("message %s on a long topic lost for the long client id (%d of %d arrived)", payload, len(gotLong), len(wantLong))
		}
	}

	// Every retained message is there.
	gotRet := receiveAll(t, proc.addr, "ret-check", true, "ret/#", len(retained))
	for topic, payload := range retained {
		if gotRet[payload] == 0 {
			t.Fatalf("retained message %s=%s lost", topic, payload)
		}
	}

	// Every acknowledged subscription is there.
	lateMu.Lock()
	ids := make([]uint16, 0, len(lateAcked))
	for id := range lateAcked {
		ids = append(ids, id)
	}
	lateMu.Unlock()
	if len(ids) > 0 {
		lc, present, err := dialMQTT(proc.addr, "late", false, func(c *tclient, pk packet.Packet) {
			if p, ok := pk.(*packet.Publish); ok && p.QoS == 1 {
				c.send(&packet.Puback{PacketID: p.PacketID})
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		if !present {
			t.Fatal("late subscriber's session lost")
		}
		lc.disconnect()
		probe, _, err := dialMQTT(proc.addr, "probe", true, func(*tclient, packet.Packet) {})
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			probe.send(&packet.Publish{QoS: 1, PacketID: id, Topic: fmt.Sprintf("late/%d", id), Payload: []byte(fmt.Sprintf("s%d", id))})
		}
		probe.disconnect()
		gotLate := receiveAll(t, proc.addr, "late", false, "", len(ids))
		for _, id := range ids {
			if gotLate[fmt.Sprintf("s%d", id)] == 0 {
				t.Fatalf("subscription late/%d acknowledged before the kill is gone", id)
			}
		}
	}
	proc.stop(t)

	// Every acknowledged flood message is in the store, which is sound.
	dbPath := filepath.Join(dir, "data", "edged.db")
	if err := persist.Check(dbPath); err != nil {
		t.Fatalf("db check after the kill and a restart: %v", err)
	}
	db, err := persist.Open(persist.Options{Path: dbPath})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	snap, err := db.Load()
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]string{}
	for _, m := range snap.Retained {
		stored[m.Topic] = string(m.Payload)
	}
	flood.mu.Lock()
	defer flood.mu.Unlock()
	for _, id := range flood.order {
		if m := flood.msgs[id]; m.acked && stored[m.topic] != m.payload {
			t.Fatalf("retained flood message %s=%s acknowledged before the kill is not in the store (%d retained stored)",
				m.topic, m.payload, len(snap.Retained))
		}
	}
}

// The crash workload's long names: over bbolt's 32 KiB key limit, below
// MQTT's 65,535 bytes.
var longSub = "sub/" + strings.Repeat("s", 40000)

func longTopic(prefix string, n uint16) string {
	return fmt.Sprintf("%s%s/%d", prefix, strings.Repeat("l", 40000), n)
}

// The retained flood: floodBefore acknowledged before the kill timer
// starts, at most floodMax in all.
const (
	floodBefore = 1500
	floodMax    = 6000
)

func (p *publisher) ackedCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, m := range p.msgs {
		if m.acked {
			n++
		}
	}
	return n
}

func head(s []string) string {
	if len(s) > 5 {
		return strings.Join(s[:5], " ") + " ..."
	}
	return strings.Join(s, " ")
}

// subscribeAndLeave creates a persistent session with one subscription and
// disconnects once the SUBACK (sent after the commit) arrives.
func subscribeAndLeave(t *testing.T, addr, id, filter string, qos byte) {
	t.Helper()
	acked := make(chan struct{})
	c, _, err := dialMQTT(addr, id, false, func(_ *tclient, pk packet.Packet) {
		if _, ok := pk.(*packet.Suback); ok {
			close(acked)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	c.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: filter, QoS: qos}}})
	select {
	case <-acked:
	case <-time.After(10 * time.Second):
		t.Fatal("no SUBACK")
	}
	c.disconnect()
}

// receiveAll connects (subscribing to filter if not empty), acknowledges
// everything, and returns how often each payload arrived once at least want
// distinct payloads came and nothing more arrived for a short while.
func receiveAll(t *testing.T, addr, id string, clean bool, filter string, want int) map[string]int {
	t.Helper()
	var mu sync.Mutex
	got := map[string]int{}
	last := time.Now()
	c, _, err := dialMQTT(addr, id, clean, func(c *tclient, pk packet.Packet) {
		switch p := pk.(type) {
		case *packet.Publish:
			mu.Lock()
			got[string(p.Payload)]++
			last = time.Now()
			mu.Unlock()
			switch p.QoS {
			case 1:
				c.send(&packet.Puback{PacketID: p.PacketID})
			case 2:
				c.send(&packet.Pubrec{PacketID: p.PacketID})
			}
		case *packet.Pubrel:
			c.send(&packet.Pubcomp{PacketID: p.PacketID})
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if filter != "" {
		c.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: filter, QoS: 2}}})
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		n, quiet := len(got), time.Since(last)
		mu.Unlock()
		if n >= want && quiet > 200*time.Millisecond {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.disconnect()
	mu.Lock()
	defer mu.Unlock()
	return got
}
