package bridge

import (
	"math/rand/v2"
	"time"
)

// backoff computes reconnection delays: an exponential series from min to
// max with "equal jitter" (a delay d becomes a uniform value in
// [max(d/2, min), d]), so that a fleet of gateways that lost the same
// uplink do not reconnect in lock step. It is used by one goroutine.
type backoff struct {
	min, max time.Duration
	n        uint
	rand     func() float64 // [0, 1); rand.Float64 unless a test sets it
}

func newBackoff(lo, hi time.Duration) *backoff {
	return &backoff{min: lo, max: max(hi, lo), rand: rand.Float64}
}

// next returns the delay before the next attempt and advances the series.
func (b *backoff) next() time.Duration {
	d := b.max
	if b.n < 62 && b.min > 0 && b.min<<b.n > 0 && b.min<<b.n < b.max {
		d = b.min << b.n
	}
	if d < b.max {
		b.n++
	}
	lo := max(d/2, b.min)
	if d <= lo {
		return d
	}
	return lo + time.Duration(b.rand()*float64(d-lo))
}

// reset starts the series again from min, after a stable connection.
func (b *backoff) reset() { b.n = 0 }

// limiter is a token bucket: rate tokens per second, up to burst. A zero
// rate never limits. It is used by one goroutine.
type limiter struct {
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
}

func newLimiter(rate, burst int) *limiter {
	if rate <= 0 {
		return &limiter{}
	}
	b := float64(max(burst, 1))
	return &limiter{rate: float64(rate), burst: b, tokens: b}
}

// take takes one token if there is one and returns 0; otherwise it returns
// how long until there will be one, and takes nothing.
func (l *limiter) take(now time.Time) time.Duration {
	if l.rate == 0 {
		return 0
	}
	if !l.last.IsZero() {
		l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	}
	l.last = now
	if l.tokens >= 1 {
		l.tokens--
		return 0
	}
	return time.Duration((1 - l.tokens) / l.rate * float64(time.Second))
}

// giveBack returns the token take just took (the publish waits for another
// limit after all).
func (l *limiter) giveBack() {
	if l.rate != 0 {
		l.tokens++
	}
}

// takeN takes n tokens if the bucket is not empty and returns 0, leaving
// it in debt if n is more than it holds (so a message larger than the
// burst still goes, and the average rate holds); otherwise it returns how
// long until it is no longer empty, and takes nothing.
func (l *limiter) takeN(now time.Time, n int) time.Duration {
	if l.rate == 0 {
		return 0
	}
	if !l.last.IsZero() {
		l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	}
	l.last = now
	if l.tokens > 0 {
		l.tokens -= float64(n)
		return 0
	}
	return time.Duration((-l.tokens)/l.rate*float64(time.Second)) + time.Millisecond
}
