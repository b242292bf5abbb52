package broker_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edged/edged/broker"
	"github.com/edged/edged/broker/packet"
	"github.com/edged/edged/persist"
)

// publishRetained publishes n retained messages, topic prefix+i and
// payload payload(i), at qos over one pipelined connection and waits until
// the broker has handled them all.
func publishRetained(t testing.TB, addr, prefix string, n int, qos byte, payload func(i int) string) {
	t.Helper()
	c := dialConnect(t, addr, "retained-publisher", true)
	// Small enough for the PUBACKs not read meanwhile to fit in the
	// broker's write queue.
	chunk := 1000
	if qos > 0 {
		chunk = 100
	}
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		var b []byte
		for i := lo; i < hi; i++ {
			p := &packet.Publish{Topic: prefix + strconv.Itoa(i), Payload: []byte(payload(i)), QoS: qos, Retain: true}
			if qos > 0 {
				p.PacketID = uint16(i%60000 + 1)
			}
			b = p.AppendTo(b, packet.V311)
		}
		c.write(b)
		switch qos {
		case 1:
			for range hi - lo {
				if _, ok := c.next().(*packet.Puback); !ok {
					t.Fatal("want PUBACK")
				}
			}
		case 2:
			var rel []byte
			for range hi - lo {
				p, ok := c.next().(*packet.Pubrec)
				if !ok {
					t.Fatal("want PUBREC")
				}
				rel = (&packet.Pubrel{PacketID: p.PacketID}).AppendTo(rel, packet.V311)
			}
			c.write(rel)
			for range hi - lo {
				if _, ok := c.next().(*packet.Pubcomp); !ok {
					t.Fatal("want PUBCOMP")
				}
			}
		}
	}
	c.sync()
	c.send(&packet.Disconnect{})
}

func payloadOf(i int) string { return "v" + strconv.Itoa(i) }

// nextPublishes reads n PUBLISH packets and leaves them unacknowledged.
func (c *rawClient) nextPublishes(n int) []*packet.Publish {
	c.t.Helper()
	out := make([]*packet.Publish, n)
	for i := range out {
		out[i] = c.nextPublish()
	}
	return out
}

// checkRetainedSet checks that msgs are exactly the retained messages
// prefix0..prefix(n-1), once each, with the retain flag and delivery QoS
// qos.
func checkRetainedSet(t *testing.T, msgs []*packet.Publish, prefix string, n int, qos byte) {
	t.Helper()
	seen := make([]bool, n)
	for _, m := range msgs {
		i, err := strconv.Atoi(strings.TrimPrefix(m.Topic, prefix))
		if err != nil || !strings.HasPrefix(m.Topic, prefix) || i < 0 || i >= n {
			t.Fatalf("unexpected topic %q", m.Topic)
		}
		if seen[i] {
			t.Fatalf("%s arrived twice", m.Topic)
		}
		seen[i] = true
		if !m.Retain || string(m.Payload) != payloadOf(i) || m.QoS != qos || m.Dup {
			t.Fatalf("got %s, want a retained %q at QoS %d", describe(m), payloadOf(i), qos)
		}
	}
	if len(msgs) != n {
		t.Fatalf("got %d messages, want %d", len(msgs), n)
	}
}

// Every retained message matching a new subscription is sent
// [MQTT-3.3.1-6], however many there are and however small the limits: 3,000
// retained messages reach a ret/# subscriber at QoS 0, 1 and 2 with a write
// queue of 4 packets, an inflight window of 2 and a session queue of 10,
// each exactly once and with the retain flag. Before, QoS 0 ones were
// dropped on the full write queue and QoS 1 ones cut at the session queue
// limit.
func TestRetainedFlood_MQTT_3_3_1_6(t *testing.T) {
	const n = 3000
	for _, qos := range []byte{0, 1, 2} {
		t.Run("QoS "+strconv.Itoa(int(qos)), func(t *testing.T) {
			s, addr := startBroker(t, broker.Config{Limits: broker.Limits{
				MaxWriteQueue: 4, MaxInflight: 2, MaxQueuedMessages: 10,
			}})
			publishRetained(t, addr, "ret/", n, qos, payloadOf)
			c := dialConnect(t, addr, "sub", true)
			c.sub("ret/#", qos)
			checkRetainedSet(t, c.collect(n), "ret/", n, qos)
			c.sync() // and nothing more
			if st := s.Stats(); st.MsgsDropped != 0 || st.SlowConsumers != 0 {
				t.Fatalf("dropped %d, slow consumers %d", st.MsgsDropped, st.SlowConsumers)
			}
			if k := broker.RetainCursors(s); k != 0 {
				t.Fatalf("%d cursors left", k)
			}
		})
	}
}

// A subscriber that reads slowly through a small socket buffer gets every
// retained message anyway: the broker waits for it instead of dropping
// them or closing it, and meanwhile serves other clients.
func TestRetainedFloodSlowReader(t *testing.T) {
	const n = 3000
	s, addr := startBroker(t, broker.Config{Limits: broker.Limits{MaxWriteQueue: 8}})
	pad := strings.Repeat("x", 200)
	publishRetained(t, addr, "slow/", n, 0, func(i int) string { return payloadOf(i) + pad })

	other := dialConnect(t, addr, "other", true)
	other.sub("other/echo", 1)
	otherPub := dialConnect(t, addr, "other-pub", true)
	sub := dialSmallRecvBuf(t, addr)
	sub.connect(&packet.Connect{ClientID: "slow", CleanSession: true}, false, packet.Success)
	sub.sub("slow/#", 0)
	var worst time.Duration
	var msgs []*packet.Publish
	for i := 0; i < n; i += 300 {
		msgs = append(msgs, sub.collect(300)...)
		// Not reading for a while fills the socket buffers and the write
		// queue; the other client is served meanwhile.
		time.Sleep(30 * time.Millisecond)
		start := time.Now()
		otherPub.pub("other/echo", strconv.Itoa(i), 1, false, 1)
		other.recvExpect("other/echo", strconv.Itoa(i), 1)
		worst = max(worst, time.Since(start))
	}
	for _, m := range msgs {
		m.Payload = []byte(strings.TrimSuffix(string(m.Payload), pad))
	}
	checkRetainedSet(t, msgs, "slow/", n, 0)
	sub.sync()
	t.Logf("slowest round trip of another client during the delivery: %s", worst)
	if st := s.Stats(); st.MsgsDropped != 0 || st.SlowConsumers != 0 {
		t.Fatalf("dropped %d, slow consumers %d", st.MsgsDropped, st.SlowConsumers)
	}
}

// 100,000 retained messages reach one '#' subscriber in full, while the
// broker's heap grows by a window, not by the number of messages: measured
// with the subscriber paused halfway, after a GC (the window, at most 1,024
// packets, measures about 100 KiB; the remaining 50,000 queued would take
// over 7 MB). Another client is served during the delivery. It takes about
// 3 s under -race.
func TestRetainedHugeFlood(t *testing.T) {
	const n = 100_000
	s, addr := startBroker(t, broker.Config{})
	// 25 MB in all, several times what the socket buffers hold: the broker
	// has to wait for the subscriber.
	pad := strings.Repeat("p", 250)
	publishRetained(t, addr, "h/", n, 0, func(i int) string { return payloadOf(i) + pad })
	other := dialConnect(t, addr, "other", true)
	other.sub("other/echo", 0)
	otherPub := dialConnect(t, addr, "other-pub", true)
	seen := make([]bool, n)
	// The publisher's connection is gone, so its clean-up does not count.
	waitFor(t, 5*time.Second, func() error {
		if c := s.Stats().ClientsConnected; c != 2 {
			return fmt.Errorf("%d clients connected", c)
		}
		return nil
	})

	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms

	start := time.Now()
	sub := dialSmallRecvBuf(t, addr)
	sub.connect(&packet.Connect{ClientID: "all", CleanSession: true}, false, packet.Success)
	sub.sub("#", 0)
	var during runtime.MemStats
	count := 0
	live := 0
	for count < n {
		p := sub.nextPublish()
		if p.Topic == "other/echo" && !p.Retain {
			live++ // '#' matches it too
			continue
		}
		i, err := strconv.Atoi(strings.TrimPrefix(p.Topic, "h/"))
		if err != nil || i < 0 || i >= n || seen[i] || !p.Retain || string(p.Payload) != payloadOf(i)+pad {
			t.Fatalf("got %s (index %d, seen %v)", describe(p), i, err == nil && i >= 0 && i < n && seen[i])
		}
		seen[i] = true
		count++
		if count == n/2 {
			time.Sleep(200 * time.Millisecond) // the broker fills what it may
			otherPub.pub("other/echo", "ping", 0, false, 0)
			other.expectPublish("other/echo", "ping", 0, false, false)
			runtime.GC()
			runtime.ReadMemStats(&during)
		}
	}
	elapsed := time.Since(start)
	if live == 0 {
		sub.expectPublish("other/echo", "ping", 0, false, false)
	}
	sub.sync()
	t.Logf("%d retained messages in %s (%.0f/s)", n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds())
	// HeapAlloc after a GC is the live bytes; HeapInuse counts whole spans,
	// so the window's objects scattered among free slots weigh more there.
	for _, m := range []struct {
		name           string
		before, during uint64
		limit          int64
	}{
		{"HeapAlloc", before.HeapAlloc, during.HeapAlloc, 512 << 10},
		{"HeapInuse", before.HeapInuse, during.HeapInuse, 2 << 20},
	} {
		growth := int64(m.during) - int64(m.before)
		t.Logf("%s: %d KiB before, %d KiB halfway (%+d KiB)", m.name, m.before>>10, m.during>>10, growth>>10)
		if growth > m.limit {
			t.Errorf("%s grew by %d KiB during the delivery, want at most %d KiB", m.name, growth>>10, m.limit>>10)
		}
	}
	if st := s.Stats(); st.MsgsDropped != 0 {
		t.Fatalf("dropped %d", st.MsgsDropped)
	}
}

// BenchmarkRetainedFlood measures how fast 100,000 retained messages reach
// a new '#' subscriber over TCP.
//
//	go test -run '^$' -bench RetainedFlood -benchtime 5x ./broker
func BenchmarkRetainedFlood(b *testing.B) {
	const n = 100_000
	_, addr := startBroker(b, broker.Config{})
	publishRetained(b, addr, "h/", n, 0, payloadOf)
	b.ResetTimer()
	for i := range b.N {
		sub := dialConnect(b, addr, "all"+strconv.Itoa(i), true)
		sub.sub("#", 0)
		for range n {
			sub.nextPublish()
		}
		sub.send(&packet.Disconnect{})
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// While the retained messages of a subscription are still being sent,
// messages routed to topics it has not reached yet are delivered live and
// the stale retained value is skipped: a replaced retained message arrives
// once (live), a deleted one not at all after its deletion, and a topic
// that got a non-retained message does not get its older retained one
// afterwards. Topics left alone still get their retained message.
func TestRetainedCursorLiveMessages(t *testing.T) {
	const n = 100
	s, addr := startBroker(t, broker.Config{Limits: broker.Limits{MaxInflight: 1}})
	publishRetained(t, addr, "t/", n, 1, payloadOf)
	sub := dialConnect(t, addr, "sub", true)
	sub.sub("t/#", 1)
	first := sub.nextPublish() // the window is full: the cursor waits

	pub := dialConnect(t, addr, "pub", true)
	for i := range 80 {
		topic := "t/" + strconv.Itoa(i)
		switch {
		case i < 50:
			pub.pub(topic, "new", 1, true, 1)
		case i < 70:
			pub.pub(topic, "live", 1, false, 1)
		default:
			pub.pub(topic, "", 1, true, 1) // deletes it
		}
	}
	sub.send(&packet.Puback{PacketID: first.PacketID})
	msgs := append([]*packet.Publish{first}, sub.collect(80)...)
	// Then the cursor resumes with the untouched topics.
	var want int
	for i := 80; i < n; i++ {
		if "t/"+strconv.Itoa(i) != first.Topic {
			want++
		}
	}
	msgs = append(msgs, sub.collect(want)...)
	sub.sync()

	liveAt := map[string]int{}
	for j, m := range msgs {
		if !m.Retain {
			if _, dup := liveAt[m.Topic]; dup {
				t.Fatalf("%s delivered live twice", m.Topic)
			}
			liveAt[m.Topic] = j
		}
	}
	retainedAt := map[string]int{}
	for j, m := range msgs {
		if !m.Retain {
			continue
		}
		if _, dup := retainedAt[m.Topic]; dup {
			t.Fatalf("%s retained twice", m.Topic)
		}
		retainedAt[m.Topic] = j
		if l, ok := liveAt[m.Topic]; ok && l < j {
			t.Fatalf("retained %s after the live message on its topic", describe(m))
		}
		i, _ := strconv.Atoi(strings.TrimPrefix(m.Topic, "t/"))
		if string(m.Payload) != payloadOf(i) {
			t.Fatalf("got %s", describe(m))
		}
	}
	for i := range n {
		topic := "t/" + strconv.Itoa(i)
		_, live := liveAt[topic]
		_, ret := retainedAt[topic]
		if i < 80 && !live || i >= 80 && (live || !ret) {
			t.Fatalf("%s: live %v, retained %v", topic, live, ret)
		}
		if i < 80 && ret && topic != first.Topic {
			t.Fatalf("%s: stale retained message sent after a newer one was routed", topic)
		}
	}
	if k := broker.RetainCursors(s); k != 0 {
		t.Fatalf("%d cursors left", k)
	}
}

// The same with QoS 0 and a subscriber that does not read while the
// messages are routed: whatever the broker had already written, no topic
// gets its retained message after a live one, nor twice.
func TestRetainedCursorLiveMessagesQoS0(t *testing.T) {
	const n = 2000
	pad := strings.Repeat("p", 1000)
	s, addr := startBroker(t, broker.Config{Limits: broker.Limits{MaxWriteQueue: 8}})
	publishRetained(t, addr, "q/", n, 0, func(i int) string { return payloadOf(i) + pad })
	sub := dialSmallRecvBuf(t, addr)
	sub.connect(&packet.Connect{ClientID: "sub", CleanSession: true}, false, packet.Success)
	sub.sub("q/#", 0)
	pub := dialConnect(t, addr, "pub", true)
	var b []byte
	for i := 0; i < n; i += 2 {
		b = (&packet.Publish{Topic: "q/" + strconv.Itoa(i), Payload: []byte("live")}).AppendTo(b, packet.V311)
	}
	pub.write(b)
	pub.sync()

	retained, live := map[string]bool{}, map[string]bool{}
	odd := 0 // retained messages of topics without a live message: all due
	deadline := time.Now().Add(10 * time.Second)
	for {
		p, err := sub.read(100 * time.Millisecond)
		if err != nil {
			if odd == n/2 && broker.RetainCursors(s) == 0 {
				break // everything was sent
			}
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() || time.Now().After(deadline) {
				t.Fatalf("%d of %d retained messages of untouched topics: %v", odd, n/2, err)
			}
			continue
		}
		m, ok := p.(*packet.Publish)
		if !ok {
			t.Fatalf("got %s", describe(p))
		}
		switch {
		case m.Retain:
			if retained[m.Topic] || live[m.Topic] {
				t.Fatalf("retained %s after a live message or twice", m.Topic)
			}
			retained[m.Topic] = true
			if i, _ := strconv.Atoi(strings.TrimPrefix(m.Topic, "q/")); i%2 == 1 {
				odd++
			}
		default:
			live[m.Topic] = true
		}
	}
	// Of the topics that got a live message, some had their retained one
	// sent before it; the others got the live one, or neither when it was
	// dropped on the full write queue, as QoS 0 is (see doc.go).
	t.Logf("topics with a live message: %d got the retained one first, %d the live one; %d QoS 0 messages dropped",
		len(retained)-odd, len(live), s.Stats().MsgsDropped)
}

// An UNSUBSCRIBE stops the delivery of the filter's retained messages:
// those in flight complete, no more follow [MQTT-3.10.4-3 allows either].
func TestRetainedCursorUnsubscribe(t *testing.T) {
	s, addr := startBroker(t, broker.Config{Limits: broker.Limits{MaxInflight: 2}})
	publishRetained(t, addr, "u/", 50, 1, payloadOf)
	sub := dialConnect(t, addr, "sub", true)
	sub.sub("u/#", 1)
	msgs := sub.nextPublishes(2)
	sub.send(&packet.Unsubscribe{PacketID: 2, Filters: []string{"u/#"}})
	sub.expect(&packet.Unsuback{PacketID: 2})
	if k := broker.RetainCursors(s); k != 0 {
		t.Fatalf("%d cursors left", k)
	}
	// Acknowledging the two in flight opens the window; nothing fills it.
	sub.send(&packet.Puback{PacketID: 1}, &packet.Puback{PacketID: 2})
	sub.expectNothing(200 * time.Millisecond)
	if !msgs[0].Retain || !msgs[1].Retain || msgs[0].PacketID != 1 || msgs[1].PacketID != 2 {
		t.Fatalf("got %s, %s", describe(msgs[0]), describe(msgs[1]))
	}
}

// Several SUBSCRIBEs in a row each get their retained messages, in order;
// a SUBSCRIBE repeating a filter whose retained messages are still being
// sent starts them again from the beginning [MQTT-3.8.4-3].
func TestRetainedCursorSubscribeAgain(t *testing.T) {
	const n = 50
	s, addr := startBroker(t, broker.Config{Limits: broker.Limits{MaxInflight: 1, MaxWriteQueue: 2}})
	publishRetained(t, addr, "a/", n, 1, payloadOf)
	publishRetained(t, addr, "b/", n, 1, payloadOf)
	sub := dialConnect(t, addr, "sub", true)
	sub.sub("a/#", 1)
	first := sub.nextPublish()
	sub.send(
		&packet.Subscribe{PacketID: 2, Subscriptions: []packet.Subscription{{Filter: "a/#", QoS: 1}}},
		&packet.Subscribe{PacketID: 3, Subscriptions: []packet.Subscription{{Filter: "b/#", QoS: 0}}},
	)
	sub.expect(&packet.Suback{PacketID: 2, Reasons: []packet.Reason{1}})
	sub.expect(&packet.Suback{PacketID: 3, Reasons: []packet.Reason{0}})
	sub.send(&packet.Puback{PacketID: first.PacketID})
	checkRetainedSet(t, sub.collect(n), "a/", n, 1)
	checkRetainedSet(t, sub.collect(n), "b/", n, 0)
	sub.sync()
	if !first.Retain || !strings.HasPrefix(first.Topic, "a/") {
		t.Fatalf("first: %s", describe(first))
	}
	if k := broker.RetainCursors(s); k != 0 {
		t.Fatalf("%d cursors left", k)
	}
}

// A persistent session whose connection ends, or is taken over, while its
// retained messages are being sent: the ones in flight are sent again with
// DUP on the next connection, the rest are not (the client gets them by
// subscribing again; see doc.go).
func TestRetainedCursorReconnect(t *testing.T) {
	const n = 20
	for _, how := range []string{"disconnect", "takeover"} {
		t.Run(how, func(t *testing.T) {
			mem := persist.NewMemory()
			t.Cleanup(func() { mem.Close() })
			s, addr := startBroker(t, broker.Config{Store: mem, Limits: broker.Limits{MaxInflight: 2}})
			publishRetained(t, addr, "r/", n, 2, payloadOf)
			old := dialConnect(t, addr, "p", false)
			old.sub("r/#", 2)
			inflight := old.nextPublishes(2)
			if how == "disconnect" {
				old.drop()
				waitFor(t, 5*time.Second, func() error {
					if st := s.Stats(); st.ClientsConnected != 0 {
						return fmt.Errorf("%d connected", st.ClientsConnected)
					}
					return nil
				})
			}
			nu := dialRaw(t, addr)
			nu.connect(&packet.Connect{ClientID: "p", CleanSession: false}, true, packet.Success)
			if how == "takeover" {
				old.expectClosed()
			}
			resent := nu.collect(2)
			for i, m := range resent {
				if m.Topic != inflight[i].Topic || m.PacketID != inflight[i].PacketID || !m.Dup || !m.Retain || m.QoS != 2 {
					t.Fatalf("re-sent %s, want %s with DUP", describe(m), describe(inflight[i]))
				}
			}
			nu.expectNothing(200 * time.Millisecond)
			if k := broker.RetainCursors(s); k != 0 {
				t.Fatalf("%d cursors left", k)
			}
			nu.send(&packet.Subscribe{PacketID: 9, Subscriptions: []packet.Subscription{{Filter: "r/#", QoS: 2}}})
			nu.expect(&packet.Suback{PacketID: 9, Reasons: []packet.Reason{2}})
			checkRetainedSet(t, nu.collect(n), "r/", n, 2)
			nu.sync()
		})
	}
}

// Shutting down while retained messages are being sent stops them: the
// connection is drained of what is queued and closed, instead of being
// kept busy until the last retained message has gone out.
func TestRetainedCursorShutdown(t *testing.T) {
	const n = 20_000
	s, addr := startBroker(t, broker.Config{})
	pad := strings.Repeat("p", 200)
	publishRetained(t, addr, "s/", n, 0, func(i int) string { return payloadOf(i) + pad })
	sub := dialSmallRecvBuf(t, addr)
	sub.connect(&packet.Connect{ClientID: "sub", CleanSession: true}, false, packet.Success)
	sub.sub("s/#", 0)
	received := sub.nextPublishes(1000)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- s.Shutdown(ctx) }()
	count := len(received)
	for {
		// A slow reader: all 20,000 would take two seconds.
		p, err := sub.read(5 * time.Second)
		if err != nil {
			break
		}
		if _, ok := p.(*packet.Publish); !ok {
			t.Fatalf("got %s", describe(p))
		}
		if count++; count%100 == 0 {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	t.Logf("%d of %d retained messages sent before the connection closed", count, n)
	if count >= n {
		t.Fatalf("all %d retained messages were sent during shutdown", n)
	}
	if k := broker.RetainCursors(s); k != 0 {
		t.Fatalf("%d cursors left", k)
	}
}

// The same through a real client library: a paho subscriber gets 3,000
// retained QoS 1 messages through an inflight window of 2, each once.
func TestPahoRetainedFlood(t *testing.T) {
	const n = 3000
	_, addr := startBroker(t, broker.Config{Limits: broker.Limits{MaxInflight: 2, MaxQueuedMessages: 10}})
	publishRetained(t, addr, "pf/", n, 1, payloadOf)
	msgs := make(chan pahoMsg, n)
	sub := pahoConnect(t, pahoOpts(addr, "paho-sub", true, msgs))
	wait(t, sub.Subscribe("pf/#", 1, nil))
	seen := map[string]bool{}
	for range n {
		m := recvPaho(t, msgs)
		i, err := strconv.Atoi(strings.TrimPrefix(m.topic, "pf/"))
		if err != nil || seen[m.topic] || m != (pahoMsg{topic: m.topic, payload: payloadOf(i), qos: 1, retained: true}) {
			t.Fatalf("got %+v (seen before: %v)", m, seen[m.topic])
		}
		seen[m.topic] = true
	}
	noPaho(t, msgs, 100*time.Millisecond)
}

// Publishers keep replacing retained messages (and sending non-retained
// ones) on 200 topics while subscribers with a small inflight window
// subscribe and read at the same time. Every subscriber must see each
// topic's versions strictly increasing, whether retained or live (no stale
// retained value after a newer live one, nothing twice), and end with each
// topic's final value.
func TestRetainedCursorConcurrentPublishers(t *testing.T) {
	const (
		topics      = 200
		versions    = 30
		publishers  = 2
		subscribers = 3
	)
	_, addr := startBroker(t, broker.Config{Limits: broker.Limits{MaxInflight: 4}})
	publishRetained(t, addr, "cc/", topics, 1, func(int) string { return "0" })

	progress := make(chan int, publishers*versions)
	pubErr := make(chan error, publishers)
	for p := range publishers {
		go func() {
			pubErr <- func() error {
				c, err := dialPublisher(addr, "cc-pub"+strconv.Itoa(p))
				if err != nil {
					return err
				}
				defer c.nc.Close()
				for v := 1; v <= versions; v++ {
					var b []byte
					n := 0
					for i := p; i < topics; i += publishers {
						// Every third version is not retained; the last one is.
						retain := v%3 != 0 || v == versions
						b = (&packet.Publish{Topic: "cc/" + strconv.Itoa(i), Payload: []byte(strconv.Itoa(v)),
							QoS: 1, Retain: retain, PacketID: uint16(n + 1)}).AppendTo(b, packet.V311)
						n++
					}
					c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
					if _, err := c.nc.Write(b); err != nil {
						return err
					}
					for range n {
						if _, err := c.read(); err != nil {
							return err
						}
					}
					progress <- v
				}
				return nil
			}()
		}()
	}

	subErr := make(chan error, subscribers)
	seen := 0
	for k := range subscribers {
		// Subscribers join before publishing, a third and two thirds in.
		for ; seen < k*publishers*versions/subscribers; seen++ {
			<-progress
		}
		c, err := dialPublisher(addr, "cc-sub"+strconv.Itoa(k))
		if err != nil {
			t.Fatal(err)
		}
		defer c.nc.Close()
		if err := c.write(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "cc/#", QoS: 1}}}); err != nil {
			t.Fatal(err)
		}
		go func() { subErr <- readVersions(c, topics, versions) }()
	}
	go func() {
		for range progress {
		}
	}()
	for range publishers {
		if err := <-pubErr; err != nil {
			t.Fatal(err)
		}
	}
	for range subscribers {
		if err := <-subErr; err != nil {
			t.Fatal(err)
		}
	}
	close(progress)
}

// readVersions reads a cc/# subscription until every topic has reached
// version last, checking that each topic's versions strictly increase.
func readVersions(c *rawPublisher, topics, last int) error {
	latest := make([]int, topics)
	for i := range latest {
		latest[i] = -1
	}
	done := 0
	for done < topics {
		p, err := c.read()
		if err != nil {
			return fmt.Errorf("%d topics complete: %w", done, err)
		}
		pub, ok := p.(*packet.Publish)
		if !ok {
			continue // SUBACK
		}
		if err := c.write(&packet.Puback{PacketID: pub.PacketID}); err != nil {
			return err
		}
		i, err1 := strconv.Atoi(strings.TrimPrefix(pub.Topic, "cc/"))
		v, err2 := strconv.Atoi(string(pub.Payload))
		if err1 != nil || err2 != nil || i < 0 || i >= topics {
			return fmt.Errorf("got %s", describe(pub))
		}
		if v <= latest[i] {
			return fmt.Errorf("%s: version %d (retain %v) after version %d", pub.Topic, v, pub.Retain, latest[i])
		}
		latest[i] = v
		if v == last {
			done++
		}
	}
	return nil
}
