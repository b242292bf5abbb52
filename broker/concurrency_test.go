package broker_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edged/edged/broker"
	"github.com/edged/edged/broker/packet"
)

// Many publishers and subscribers at once (meant for -race): 8 publishers
// (paho, and raw clients that pipeline all their PUBLISHes) send 200 QoS 1
// messages each; 4 subscribers (QoS 1 and 2) must each get every message
// exactly once, each publisher's messages in order [MQTT-4.6.0-5].
func TestConcurrentPubSub(t *testing.T) {
	t.Parallel()
	const (
		pubs    = 8
		perPub  = 200
		subs    = 4
		timeout = 30 * time.Second
	)
	s, addr := startBroker(t, broker.Config{})

	chans := make([]chan pahoMsg, subs)
	for i := range subs {
		chans[i] = make(chan pahoMsg, pubs*perPub)
		c := pahoConnect(t, pahoOpts(addr, fmt.Sprint("sub", i), true, chans[i]))
		wait(t, c.Subscribe("load/#", byte(1+i%2), nil))
	}

	errc := make(chan error, pubs)
	for p := range pubs {
		topic := fmt.Sprint("load/", p)
		payload := func(i int) string { return fmt.Sprintf("%d/%d", p, i) }
		if p%2 == 0 {
			c := pahoConnect(t, pahoOpts(addr, fmt.Sprint("pub", p), true, nil))
			go func() {
				for i := range perPub {
					tok := c.Publish(topic, 1, false, payload(i))
					if !tok.WaitTimeout(timeout) {
						errc <- fmt.Errorf("paho publisher %d: timeout", p)
						return
					}
					if err := tok.Error(); err != nil {
						errc <- fmt.Errorf("paho publisher %d: %w", p, err)
						return
					}
				}
				errc <- nil
			}()
			continue
		}
		go func() {
			errc <- func() error {
				rp, err := dialPublisher(addr, fmt.Sprint("pub", p))
				if err != nil {
					return err
				}
				defer rp.nc.Close()
				go func() {
					// Pipeline every PUBLISH; the acks are read below.
					var b []byte
					for i := range perPub {
						b = (&packet.Publish{Topic: topic, QoS: 1, PacketID: uint16(i + 1), Payload: []byte(payload(i))}).AppendTo(b, packet.V311)
					}
					rp.write(&rawBytes{b}) // an error shows up as a missing PUBACK
				}()
				for i := range perPub {
					ack, err := rp.read()
					if err != nil {
						return fmt.Errorf("raw publisher %d: PUBACK %d: %w", p, i+1, err)
					}
					// PUBACKs in PUBLISH order [MQTT-4.6.0-2].
					if a, ok := ack.(*packet.Puback); !ok || a.PacketID != uint16(i+1) {
						return fmt.Errorf("raw publisher %d: got %s, want PUBACK %d", p, describe(ack), i+1)
					}
				}
				return rp.write(&packet.Disconnect{})
			}()
		}()
	}
	for range pubs {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}

	deadline := time.After(timeout)
	for i, ch := range chans {
		next := make([]int, pubs) // next expected sequence per publisher
		for n := 0; n < pubs*perPub; n++ {
			var m pahoMsg
			select {
			case m = <-ch:
			case <-deadline:
				t.Fatalf("subscriber %d: got %d of %d messages; next %v; stats %+v", i, n, pubs*perPub, next, s.Stats())
			}
			pp, seq, ok := strings.Cut(m.payload, "/")
			p, err1 := strconv.Atoi(pp)
			q, err2 := strconv.Atoi(seq)
			if !ok || err1 != nil || err2 != nil || p < 0 || p >= pubs {
				t.Fatalf("subscriber %d: bad message %+v", i, m)
			}
			if q != next[p] || m.qos != 1 || m.duplicate {
				t.Fatalf("subscriber %d: got %+v, want %d/%d at QoS 1, exactly once and in order", i, m, p, next[p])
			}
			next[p]++
		}
		noPaho(t, chans[i], 10*time.Millisecond)
	}
}

// rawBytes is a pre-encoded run of packets.
type rawBytes struct{ b []byte }

func (r *rawBytes) Type() packet.Type                          { return 0 }
func (r *rawBytes) AppendTo(b []byte, _ packet.Version) []byte { return append(b, r.b...) }

var _ packet.Packet = (*rawBytes)(nil)
