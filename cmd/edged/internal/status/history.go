package status

import (
	"sync"
	"time"
)

// historyLen is how many samples the history keeps: an hour of minutes.
const historyLen = 60

// sample is the counters at one moment; the history keeps one a minute.
type sample struct {
	t                                  time.Time
	msgsIn, msgsOut, bytesIn, bytesOut uint64
	fsyncs                             uint64
	written                            int64
	bridgeSent                         []uint64 // per bridge, in Sources.Bridges order
	bridgeQueued                       []int64
}

// history is a bounded ring of samples, oldest first.
type history struct {
	mu  sync.Mutex
	buf [historyLen + 1]sample // one more: 60 intervals need 61 samples
	n   int                    // samples held
	end int                    // index after the newest
}

func (h *history) add(s sample) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.buf[h.end] = s
	h.end = (h.end + 1) % len(h.buf)
	h.n = min(h.n+1, len(h.buf))
}

// all returns the samples, oldest first.
func (h *history) all() []sample {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]sample, 0, h.n)
	start := (h.end - h.n + len(h.buf)) % len(h.buf)
	for i := range h.n {
		out = append(out, h.buf[(start+i)%len(h.buf)])
	}
	return out
}

// base returns the sample to measure a recent rate from: the newest one
// at least minAge before now, or else the oldest. ok is false without
// samples.
func (h *history) base(now time.Time, minAge time.Duration) (s sample, ok bool) {
	all := h.all()
	if len(all) == 0 {
		return sample{}, false
	}
	s = all[0]
	for _, x := range all {
		if now.Sub(x.t) >= minAge {
			s = x
		}
	}
	return s, true
}

// perSecond is the rate of a counter from base to now.
func perSecond(cur, base uint64, d time.Duration) float64 {
	if d <= 0 || cur < base {
		return 0
	}
	return float64(cur-base) / d.Seconds()
}
