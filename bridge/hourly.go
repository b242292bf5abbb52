package bridge

import (
	"sync"
	"time"
)

// hourly turns a growing total (bytes sent upstream) into the amount of
// the last hour, from samples taken at most once a minute: at most 62 are
// kept. Within the first hour it is the amount since the start. It is
// safe for concurrent use ($SYS and Status).
type hourly struct {
	mu      sync.Mutex
	samples []hourSample
}

type hourSample struct {
	at    time.Time
	total uint64
}

func newHourly(now time.Time, total uint64) *hourly {
	return &hourly{samples: []hourSample{{now, total}}}
}

// last records total at now and returns how much it grew in the last hour
// (to a minute).
func (h *hourly) last(now time.Time, total uint64) uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	if now.Before(h.samples[len(h.samples)-1].at) || total < h.samples[len(h.samples)-1].total {
		return total - min(total, h.samples[0].total) // a caller with an older view
	}
	if now.Sub(h.samples[len(h.samples)-1].at) >= time.Minute {
		h.samples = append(h.samples, hourSample{now, total})
	}
	// The base is the newest sample at least an hour old, if any.
	for len(h.samples) > 1 && now.Sub(h.samples[1].at) >= time.Hour {
		h.samples = h.samples[1:]
	}
	return total - h.samples[0].total
}
