package bridge

import (
	"context"
	"errors"
	"fmt"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edged/edged/broker/packet"
)

// flight is a publish sent upstream and not yet acknowledged.
type flight struct {
	seq uint64
	qos byte
	tok mqtt.Token
}

// forward sends the queue upstream in Seq order on one connection, with at
// most Window publishes awaiting acknowledgement, and deletes an entry once
// its publish completed without error on this connection while it was
// still up. It starts from the head of the queue, so after a reconnect the
// first unacknowledged entry is sent first. It returns nil when ctx is done
// and the connection's error otherwise.
func (br *Bridge) forward(ctx context.Context, client link, cs *connState, probe, confirm func()) (err error) {
	// The upstream's Receive Maximum bounds the window too [MQTT-3.3.4-7];
	// QoS 0 publishes count against it here, which only makes it stricter.
	window := min(br.cfg.Window, client.receiveMax())
	v5 := client.version() == packet.V5
	batch := max(256, window)
	var (
		win    = make([]flight, 0, window)
		buf    []Entry // read, not yet published
		after  uint64  // Seq of the last entry read
		more   = true  // the queue may hold entries after `after`
		acked  []uint64
		lim    = newLimiter(br.cfg.RateLimit, min(br.cfg.RateLimit, window))
		timer  *time.Timer
		timerC <-chan time.Time
	)
	defer func() {
		if timer != nil {
			timer.Stop()
		}
		// Publishes cut off by the drop are sent again from the queue; the
		// packet ids of unfinished QoS 2 ones are released on the next
		// connection (see seedStore).
		for _, f := range win {
			if id := client.packetID(f.tok); f.qos == 2 && id != 0 {
				br.staleQoS2 = append(br.staleQoS2, id)
			}
		}
	}()
	for {
		// Retire the completed publishes at the head of the window.
		for len(win) > 0 {
			f := win[0]
			select {
			case <-f.tok.Done():
			default:
				goto fill
			}
			if err := f.tok.Error(); err != nil {
				var rf *refusedError
				if !errors.As(err, &rf) {
					return fmt.Errorf("%w: %w", ErrPublishFailed, err)
				}
				// Refused for good (not authorized, quota, payload format):
				// sending it again would be refused again and block the
				// queue. It leaves the queue, counted and logged.
				br.refused.Add(1)
				br.log.Warn("upstream refused a message; dropping it", "seq", f.seq, "reason", rf.reason.String())
				win = win[1:]
				br.remove([]uint64{f.seq})
				continue
			}
			if cs.failed() || !client.open() {
				// paho may complete a token without error after the
				// connection dropped; such a message may not have arrived.
				return br.lost(cs)
			}
			win = win[1:]
			acked = append(acked, f.seq)
			if f.qos > 0 {
				confirm() // an answer from upstream, not just a write
			}
		}
	fill:
		if len(acked) > 0 {
			br.sent.Add(uint64(len(acked)))
			br.remove(acked)
			acked = nil
		}
		for len(win) < window && timerC == nil {
			if len(buf) == 0 {
				if !more {
					break
				}
				var end bool
				if buf, after, end, err = br.read(after, batch); err != nil {
					return err
				}
				more = !end
				if len(buf) == 0 {
					continue
				}
			}
			if d := lim.take(time.Now()); d > 0 {
				timer = resetTimer(timer, d)
				timerC = timer.C
				break
			}
			e := buf[0]
			buf[0] = Entry{}
			buf = buf[1:]
			remote, qos, ok := br.rules.mapOut(e.Topic, e.QoS)
			if !ok {
				// Queued under a rule that is gone from the configuration.
				br.log.Debug("dropping queued message no out rule matches", "topic", e.Topic)
				br.remove([]uint64{e.Seq})
				continue
			}
			props, expired := br.outProps(&e, time.Now(), v5)
			if expired {
				// Its Message Expiry Interval passed while it was queued
				// [MQTT-3.3.2-5].
				br.expired.Add(1)
				br.log.Debug("dropping expired queued message", "topic", e.Topic)
				br.remove([]uint64{e.Seq})
				continue
			}
			tok, err := client.publish(remote, qos, e.Retain, e.Payload, props)
			if err != nil {
				// errTooLarge, the only error: the upstream will never take
				// it, so it must not block the queue.
				br.oversize.Add(1)
				br.log.Warn("dropping a queued message larger than the upstream allows", "topic", e.Topic, "seq", e.Seq, "error", err)
				br.remove([]uint64{e.Seq})
				continue
			}
			if qos > 0 {
				probe() // a QoS 1/2 publish asks for an answer
			}
			win = append(win, flight{seq: e.Seq, qos: qos, tok: tok})
		}
		var head <-chan struct{}
		if len(win) > 0 {
			head = win[0].tok.Done()
		}
		var wake <-chan struct{}
		if !more {
			wake = br.wake
		}
		select {
		case <-head:
		case <-wake:
			more = true
		case <-timerC:
			timerC = nil
		case <-cs.done:
			return cs.err
		case <-ctx.Done():
			return nil
		}
	}
}

func (br *Bridge) lost(cs *connState) error {
	select {
	case <-cs.done:
		return cs.err
	default:
		return ErrConnectionLost
	}
}

func resetTimer(t *time.Timer, d time.Duration) *time.Timer {
	if t == nil {
		return time.NewTimer(d)
	}
	t.Reset(d)
	return t
}
