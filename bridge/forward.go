package bridge

import (
	"context"
	"errors"
	"fmt"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edged/edged/broker/packet"
	"github.com/edged/edged/persist"
)

// flight is a publish sent upstream and not yet acknowledged.
type flight struct {
	c    *cursor
	seq  uint64
	qos  byte
	size int // topic and payload bytes
	tok  mqtt.Token
}

// deleteBatch is how many acknowledged entries are deleted in one commit
// while publishes are in flight.
const deleteBatch = 512

// cursor is the forwarder's position in one lane on one connection.
type cursor struct {
	*lane
	buf   []persist.Entry // read, not yet published
	after uint64          // Seq of the last entry read
	more  bool            // the queue may hold entries after `after`
	acked []uint64        // acknowledged, to delete
}

// forward sends the queues upstream on one connection, the high one before
// the normal one, each in Seq order, with at most Window publishes
// awaiting acknowledgement, and deletes an entry once its publish completed
// without error on this connection while it was still up. It starts from
// the head of the queues, so after a reconnect the first unacknowledged
// entry is sent first. A high message appended while a normal backlog
// drains is sent next, behind at most the window already in flight. It
// returns nil when ctx is done and the connection's error otherwise.
func (br *Bridge) forward(ctx context.Context, client link, cs *connState, probe, confirm func()) (err error) {
	// The upstream's Receive Maximum bounds the window too [MQTT-3.3.4-7];
	// QoS 0 publishes count against it here, which only makes it stricter.
	window := min(br.cfg.Window, client.receiveMax())
	v5 := client.version() == packet.V5
	batch := max(256, window)
	var (
		win    = make([]flight, 0, window)
		lo     = &cursor{lane: br.normal, more: true}
		hi     *cursor
		lim    = newLimiter(br.cfg.RateLimit, min(br.cfg.RateLimit, window))
		blim   = newLimiter(br.cfg.ByteRateLimit, max(br.cfg.ByteRateLimit, 1))
		timer  *time.Timer
		timerC <-chan time.Time
		idle   *time.Timer // start: lazy, with nothing to send
		idleC  <-chan time.Time
	)
	cursors := []*cursor{lo}
	if br.high != nil {
		hi = &cursor{lane: br.high, more: true}
		cursors = []*cursor{hi, lo}
	}
	defer func() {
		for _, c := range cursors {
			if len(c.acked) > 0 {
				c.remove(c.acked)
			}
		}
		if timer != nil {
			timer.Stop()
		}
		if idle != nil {
			idle.Stop()
		}
		// Publishes cut off by the drop are sent again from the queue; the
		// packet ids of unfinished QoS 2 ones are released on the next
		// connection (see seedStore).
		for _, f := range win {
			if id := client.packetID(f.tok); f.qos == 2 && id != 0 {
				br.cur.staleQoS2 = append(br.cur.staleQoS2, id)
			}
		}
	}()
	// next returns the cursor to publish from: the first, in priority
	// order, with an entry.
	next := func() (*cursor, error) {
		for _, c := range cursors {
			for len(c.buf) == 0 && c.more {
				var end bool
				if c.buf, c.after, end, err = c.read(c.after, batch); err != nil {
					return nil, err
				}
				c.more = !end
			}
			if len(c.buf) > 0 {
				return c, nil
			}
		}
		return nil, nil
	}
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
				br.log.Warn("upstream refused a message; dropping it", "queue", f.c.name, "seq", f.seq, "reason", rf.reason.String())
				win = win[1:]
				f.c.acked = append(f.c.acked, f.seq) // deleted with the next batch
				continue
			}
			if cs.failed() || !client.open() {
				// paho may complete a token without error after the
				// connection dropped; such a message may not have arrived.
				return br.lost(cs)
			}
			win = win[1:]
			f.c.acked = append(f.c.acked, f.seq)
			br.sent.Add(1)
			br.sentBytes.Add(uint64(f.size))
			if f.qos > 0 {
				confirm() // an answer from upstream, not just a write
			}
		}
	fill:
		// Deletes go in batches: each is a store commit. What is acked
		// and not yet handed to remove is when the window empties or the
		// connection ends (see the defer), so a reconnect skips it.
		for _, c := range cursors {
			if len(c.acked) >= deleteBatch || len(c.acked) > 0 && len(win) == 0 {
				c.remove(c.acked)
				c.acked = nil
			}
		}
		for len(win) < window && timerC == nil {
			if hi != nil && !hi.more {
				select {
				case <-hi.wake:
					hi.more = true
				default:
				}
			}
			c, err := next()
			if err != nil {
				return err
			}
			if c == nil {
				break
			}
			e := &c.buf[0]
			remote, qos, ok := br.rules.mapOut(e.Msg.Topic, e.Msg.QoS)
			if !ok {
				// Queued under a rule that is gone from the configuration.
				br.log.Debug("dropping queued message no out rule matches", "topic", e.Msg.Topic)
				c.remove([]uint64{e.Seq})
				c.buf[0] = persist.Entry{}
				c.buf = c.buf[1:]
				continue
			}
			now := time.Now()
			// Expired entries are dropped before the rate limits: they cost no
			// token.
			props, expired := br.outProps(e, c.lane == br.high, now, v5)
			if expired {
				// Its Message Expiry Interval passed while it was queued
				// [MQTT-3.3.2-5].
				br.expired.Add(1)
				br.log.Debug("dropping expired queued message", "topic", e.Msg.Topic)
				c.remove([]uint64{e.Seq})
				c.buf[0] = persist.Entry{}
				c.buf = c.buf[1:]
				continue
			}
			size := len(remote) + len(e.Msg.Payload)
			d := lim.take(now)
			if d == 0 {
				if d = blim.takeN(now, size); d > 0 {
					lim.giveBack()
				}
			}
			if d > 0 {
				timer = resetTimer(timer, d)
				timerC = timer.C
				break
			}
			tok, err := client.publish(remote, qos, e.Msg.Retain, e.Msg.Payload, props)
			if err != nil {
				// errTooLarge, the only error: the upstream will never take
				// it, so it must not block the queue.
				br.oversize.Add(1)
				br.log.Warn("dropping a queued message larger than the upstream allows", "topic", e.Msg.Topic, "queue", c.name, "seq", e.Seq, "error", err)
				lim.giveBack()
				c.remove([]uint64{e.Seq})
				c.buf[0] = persist.Entry{}
				c.buf = c.buf[1:]
				continue
			}
			if qos > 0 {
				probe() // a QoS 1/2 publish asks for an answer
			}
			win = append(win, flight{c: c, seq: e.Seq, qos: qos, size: size, tok: tok})
			c.buf[0] = persist.Entry{}
			c.buf = c.buf[1:]
		}
		var head <-chan struct{}
		if len(win) > 0 {
			head = win[0].tok.Done()
		}
		var wakeLo, wakeHi <-chan struct{}
		if !lo.more {
			wakeLo = lo.wake
		}
		if hi != nil && !hi.more {
			wakeHi = hi.wake
		}
		if br.cfg.Start == StartLazy {
			switch {
			case len(win) > 0 || wakeLo == nil || hi != nil && wakeHi == nil:
				idleC = nil
			case idleC == nil:
				idle = resetTimer(idle, br.cfg.IdleTimeout)
				idleC = idle.C
			}
		}
		select {
		case <-idleC:
			return errIdle
		case <-head:
		case <-wakeLo:
			lo.more = true
		case <-wakeHi:
			hi.more = true
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
