package serialio

import (
	"log/slog"
	"sync"
	"time"
)

// Log attribute keys.
const (
	keyPort       = "serial_port"
	keyDevice     = "device"
	keyChannel    = "channel"
	keyError      = "error"
	keyRetryIn    = "retry_in"
	keyReason     = "reason"
	keySuppressed = "suppressed"
	keyFraming    = "framing"
	keyBaud       = "baud"
)

// warnInterval is the least time between two warnings with the same key.
const warnInterval = 10 * time.Second

// rateLimiter passes at most one warning per key per warnInterval and
// counts the ones it held back (nats server/log.go RateLimitWarnf).
type rateLimiter struct {
	mu    sync.Mutex
	last  map[string]time.Time
	held  map[string]int
	value map[string]string // what the last warning logged of each key said
}

// warn logs msg at Warn level unless a warning with the same key was logged
// within warnInterval. The next one logged reports how many were held back.
func (r *rateLimiter) warn(log *slog.Logger, key, msg string, args ...any) {
	r.warnChange(log, key, "", msg, args...)
}

// warnChange is warn, except that a warning whose value differs from the
// last one logged with the same key is logged at once: a retry error that
// changes (the device appears but cannot be opened) is news.
func (r *rateLimiter) warnChange(log *slog.Logger, key, value, msg string, args ...any) {
	now := time.Now()
	r.mu.Lock()
	if r.last == nil {
		r.last, r.held, r.value = map[string]time.Time{}, map[string]int{}, map[string]string{}
	}
	if t, ok := r.last[key]; ok && now.Sub(t) < warnInterval && r.value[key] == value {
		r.held[key]++
		r.mu.Unlock()
		return
	}
	r.last[key], r.value[key] = now, value
	n := r.held[key]
	delete(r.held, key)
	r.mu.Unlock()
	if n > 0 {
		args = append(args, keySuppressed, n)
	}
	log.Warn(msg, args...)
}
