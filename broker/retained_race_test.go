package broker_test

import (
	"runtime"
	"strconv"
	"testing"

	"github.com/edged/edged/broker"
	"github.com/edged/edged/broker/packet"
)

// A retained message published while a SUBSCRIBE is being handled reaches
// the new subscriber once: live (the subscription was in place) or as the
// retained copy (it was not), never both, and an older retained value never
// arrives after a newer one [MQTT-3.3.1-6] [MQTT-4.6.0-5]. The race is
// narrow, so the test runs many rounds with extra OS threads.
func TestRetainedPublishDuringSubscribe(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(max(8, runtime.GOMAXPROCS(0))))
	_, addr := startBroker(t, broker.Config{})
	sub := dialConnect(t, addr, "sub", true)
	pub := dialConnect(t, addr, "pub", true)
	pub.pub("rt", "0", 1, true, 1)
	for i := 1; i <= 500; i++ {
		v := strconv.Itoa(i)
		sub.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "rt", QoS: 0}}})
		pub.pub("rt", v, 1, true, uint16(i%60000+1))
		sub.send(&packet.Unsubscribe{PacketID: 2, Filters: []string{"rt"}})
		var got []string
	read:
		for {
			switch p := sub.next().(type) {
			case *packet.Suback, *packet.Unsuback:
				if _, ok := p.(*packet.Unsuback); ok {
					break read
				}
			case *packet.Publish:
				got = append(got, string(p.Payload)+map[bool]string{true: "(retained)", false: "(live)"}[p.Retain])
			default:
				t.Fatalf("got %s", describe(p))
			}
		}
		n := 0
		for j, g := range got {
			if g == v+"(retained)" || g == v+"(live)" {
				n++
			} else if n > 0 || j > 0 {
				t.Fatalf("round %d: got %v: an older value after the newest", i, got)
			}
		}
		if n != 1 {
			t.Fatalf("round %d: got %v, want %q exactly once", i, got, v)
		}
	}
}
