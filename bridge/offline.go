package bridge

import (
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/edged/edged/persist"
)

// Bounds of what offline_qos0 latest keeps when the queue has no limit of
// that kind.
const (
	defaultLatestTopics = 10_000
	defaultLatestBytes  = 16 << 20
)

// latest applies offline_qos0 drop and latest: while the link is down it
// keeps the newest QoS 0 message per topic of latest rules, in memory (QoS 0
// may be lost, and a restart loses these), and counts what both policies
// throw away. When the link comes up what it kept is queued, before any
// QoS 0 message that arrives from then on, in the order the topics first
// arrived. It is bounded by the queue's MaxMessages (topics) and MaxBytes,
// or defaultLatestTopics and defaultLatestBytes; a new topic over a bound is
// dropped.
type latest struct {
	maxTopics, maxBytes int64

	mu    sync.Mutex
	up    bool
	msgs  map[string]latestMsg
	order []string // topics in first-arrival order
	bytes int64

	dropped  atomic.Uint64 // by offline_qos0 drop, or over a bound
	replaced atomic.Uint64 // by a newer message of the same topic
}

type latestMsg struct {
	m    persist.Message
	high bool // for the high queue
}

func newLatest(l persist.QueueLimits) *latest {
	lt := &latest{maxTopics: l.MaxMessages, maxBytes: l.MaxBytes, msgs: map[string]latestMsg{}}
	if lt.maxTopics <= 0 {
		lt.maxTopics = defaultLatestTopics
	}
	if lt.maxBytes <= 0 {
		lt.maxBytes = defaultLatestBytes
	}
	return lt
}

// admit reports whether the QoS 0 message m of a rule with policy drop or
// latest is queued: it is while the link is up. Otherwise drop counts it
// and latest keeps it instead of the previous one of its topic. It runs
// under the broker's routing lock; the broker never modifies m.Payload.
func (lt *latest) admit(m *persist.Message, policy string, high bool) bool {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	if lt.up {
		return true
	}
	if policy == OfflineDrop {
		lt.dropped.Add(1)
		return false
	}
	size := m.Size()
	old, ok := lt.msgs[m.Topic]
	if ok {
		if lt.bytes-old.m.Size()+size > lt.maxBytes {
			lt.dropped.Add(1)
			return false
		}
		lt.bytes += size - old.m.Size()
		lt.msgs[m.Topic] = latestMsg{*m, high}
		lt.replaced.Add(1)
		return false
	}
	if int64(len(lt.msgs)) >= lt.maxTopics || lt.bytes+size > lt.maxBytes {
		lt.dropped.Add(1)
		return false
	}
	lt.msgs[m.Topic] = latestMsg{*m, high}
	lt.order = append(lt.order, m.Topic)
	lt.bytes += size
	return false
}

// online queues what was kept and lets QoS 0 messages be queued again. The
// commit is made before admit can take a newer message, so the order of a
// topic is kept.
func (lt *latest) online(normalLane, highLane *lane, log *slog.Logger) {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	lt.up = true
	if len(lt.order) == 0 {
		return
	}
	var normal, high []persist.Message
	for _, t := range lt.order {
		x := lt.msgs[t]
		if x.high && highLane != nil {
			high = append(high, x.m)
		} else {
			normal = append(normal, x.m)
		}
	}
	// Like the taps, wake the forwarder once the entries are durable.
	done := func(l *lane) func(error) {
		return func(err error) {
			if err != nil {
				log.Warn("queueing the latest QoS 0 messages kept while offline", "error", err)
				return
			}
			l.notify()
		}
	}
	if len(high) > 0 {
		highLane.add(high, done(highLane))
	}
	if len(normal) > 0 {
		normalLane.add(normal, done(normalLane))
	}
	clear(lt.msgs)
	lt.order = nil
	lt.bytes = 0
}

// offline makes admit apply the offline policies.
func (lt *latest) offline() {
	lt.mu.Lock()
	lt.up = false
	lt.mu.Unlock()
}

// purge forgets what was kept (Bridge.Purge).
func (lt *latest) purge() {
	lt.mu.Lock()
	clear(lt.msgs)
	lt.order = nil
	lt.bytes = 0
	lt.mu.Unlock()
}
