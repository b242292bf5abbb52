package persist

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// group is the unit of one Commit call.
type group struct {
	ops  []Op
	done func(error)
	// err refuses the group before it is applied: an op is invalid
	// (validate). Its ops are not applied and done gets err.
	err error
}

// committer is the write-behind queue shared by DB and Memory: Commit
// appends to a slice under a mutex and pokes a 1-buffered channel; one
// writer goroutine takes up to batch groups at a time, applies them with
// apply (one transaction) and calls their dones in order.
type committer struct {
	mu      sync.Mutex
	queue   []group
	spare   []group
	closing bool
	signal  chan struct{}
	stopped chan struct{}

	batch int
	// apply applies groups in one transaction.
	apply func([]group) error
	// splitOnFull retries a failed multi-group batch one group per
	// transaction when the failure was ErrFull, so that a group that frees
	// space is not failed with the groups that need it.
	splitOnFull bool
	log         *slog.Logger
	warn        rateLimiter

	commits      atomic.Uint64
	fsyncs       atomic.Uint64
	ops          atomic.Uint64
	commitErrors atomic.Uint64
	pending      atomic.Int64
	latency      atomic.Int64
	synced       bool
}

func (c *committer) start(batch int, synced bool, log *slog.Logger, apply func([]group) error) {
	c.batch = batch
	c.synced = synced
	c.apply = apply
	c.log = log
	c.signal = make(chan struct{}, 1)
	c.stopped = make(chan struct{})
	c.warn.every = 10 * time.Second
	go c.run()
}

// commit queues a group. It never blocks on I/O and never calls done.
func (c *committer) commit(ops []Op, done func(error)) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		if done != nil {
			go done(fmt.Errorf("committing: %w", ErrClosed))
		}
		return
	}
	g := group{ops: ops, done: done}
	for _, op := range ops {
		if err := validate(op); err != nil {
			g.err = fmt.Errorf("committing: %w", err)
			break
		}
	}
	c.queue = append(c.queue, g)
	c.mu.Unlock()
	c.pending.Add(1)
	select {
	case c.signal <- struct{}{}:
	default:
	}
}

// close stops accepting commits and waits until the writer has applied
// everything queued.
func (c *committer) close() {
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
	select {
	case c.signal <- struct{}{}:
	default:
	}
	<-c.stopped
}

func (c *committer) run() {
	defer close(c.stopped)
	for {
		c.mu.Lock()
		if len(c.queue) == 0 {
			closing := c.closing
			c.mu.Unlock()
			if closing {
				return
			}
			<-c.signal
			continue
		}
		var batch []group
		if n := len(c.queue); n > c.batch {
			batch = append(c.spare[:0], c.queue[:c.batch]...)
			rest := copy(c.queue, c.queue[c.batch:])
			clear(c.queue[rest:])
			c.queue = c.queue[:rest]
		} else {
			batch = c.queue
			c.queue = c.spare[:0]
		}
		c.spare = nil
		c.mu.Unlock()

		c.process(batch)
		clear(batch)
		c.mu.Lock()
		c.spare = batch[:0]
		c.mu.Unlock()
	}
}

func (c *committer) process(batch []group) {
	err := c.tx(batch)
	if err != nil && len(batch) > 1 && c.splitOnFull && errors.Is(err, ErrFull) {
		for i := range batch {
			c.finish(batch[i:i+1], c.tx(batch[i:i+1]))
		}
		return
	}
	c.finish(batch, err)
}

func (c *committer) tx(batch []group) error {
	start := time.Now()
	err := c.apply(batch)
	c.latency.Store(int64(time.Since(start)))
	if err != nil {
		c.commitErrors.Add(1)
		c.warn.do(func(suppressed int) {
			c.log.Error("store commit failed", "err", err, "groups", len(batch), "suppressed", suppressed)
		})
		return err
	}
	n := 0
	for i := range batch {
		n += len(batch[i].ops)
	}
	c.ops.Add(uint64(n))
	c.commits.Add(1)
	if c.synced {
		c.fsyncs.Add(1)
	}
	return nil
}

func (c *committer) finish(batch []group, err error) {
	for i := range batch {
		c.pending.Add(-1)
		e := err
		if batch[i].err != nil {
			e = batch[i].err
			c.warn.do(func(suppressed int) {
				c.log.Warn("store commit refused", "err", e, "suppressed", suppressed)
			})
		}
		if batch[i].done != nil {
			batch[i].done(e)
		}
	}
}

func (c *committer) stats() Stats {
	return Stats{
		Commits:      c.commits.Load(),
		Fsyncs:       c.fsyncs.Load(),
		Ops:          c.ops.Load(),
		CommitErrors: c.commitErrors.Load(),
		Pending:      c.pending.Load(),
		BatchLatency: time.Duration(c.latency.Load()),
	}
}

// rateLimiter lets through one call per interval and counts the rest.
type rateLimiter struct {
	mu         sync.Mutex
	every      time.Duration
	last       time.Time
	suppressed int
}

func (r *rateLimiter) do(f func(suppressed int)) {
	r.mu.Lock()
	now := time.Now()
	if !r.last.IsZero() && now.Sub(r.last) < r.every {
		r.suppressed++
		r.mu.Unlock()
		return
	}
	n := r.suppressed
	r.suppressed = 0
	r.last = now
	r.mu.Unlock()
	f(n)
}
