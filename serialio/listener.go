package serialio

import (
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"time"

	"go.bug.st/serial"
)

var _ net.Listener = (*Listener)(nil)

// Listener serves one serial port as a net.Listener: Accept returns one
// net.Conn per logical MQTT connection on the port. It owns the port and a
// goroutine that opens it, reads it, and reopens it after it is lost.
type Listener struct {
	cfg     Config
	log     *slog.Logger
	addr    Addr
	st      counters
	limiter rateLimiter

	done      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup

	mu      sync.Mutex
	pending []*conn
	notify  chan struct{} // 1-buffered: pending grew

	wmu     sync.Mutex
	writers map[*session]struct{} // sessions whose writer has not closed its port
}

// writerWait bounds how long Close waits for port writers to finish a write
// in progress and close the device.
const writerWait = time.Second

// Listen validates cfg and starts serving the port it names. The device need
// not exist yet: opening happens in the background and is retried with
// backoff, as is reopening after the device is lost. Only a bad Config is an
// error.
func Listen(cfg Config) (*Listener, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	l := &Listener{
		cfg:    cfg,
		log:    cfg.Logger.With(keyPort, cfg.Name),
		addr:   Addr{Port: cfg.Name, Device: filepath.Base(cfg.Device), Channel: -1},
		done:   make(chan struct{}),
		notify: make(chan struct{}, 1),
	}
	l.wg.Add(1)
	go l.run()
	return l, nil
}

// Accept waits for and returns the next logical connection. It returns
// net.ErrClosed after Close. A conn that the link ended before it was
// accepted is still returned: its Read yields the packets that arrived and
// then the reason, as a TCP conn reset before Accept would.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		l.mu.Lock()
		if len(l.pending) > 0 {
			c := l.pending[0]
			l.pending[0] = nil
			l.pending = l.pending[1:]
			l.mu.Unlock()
			return c, nil
		}
		l.mu.Unlock()
		select {
		case <-l.notify:
		case <-l.done:
			return nil, fmt.Errorf("accepting on %s: %w", l.addr, net.ErrClosed)
		}
	}
}

// maxPending bounds the conns waiting for Accept. Beyond it, conns that the
// link already ended are discarded; live ones (at most one per channel) are
// kept.
const maxPending = 256

// offer queues a new conn for Accept.
func (l *Listener) offer(c *conn) {
	l.st.connsOpened.Add(1)
	l.mu.Lock()
	if len(l.pending) >= maxPending {
		live := l.pending[:0]
		for _, p := range l.pending {
			if !p.isClosed() {
				live = append(live, p)
			}
		}
		clear(l.pending[len(live):])
		l.pending = live
	}
	l.pending = append(l.pending, c)
	l.mu.Unlock()
	select {
	case l.notify <- struct{}{}:
	default:
	}
	l.log.Debug("serial conn opened", keyChannel, c.remote.Channel)
}

// Close stops serving: it closes every conn and the port and waits for the
// Listener's goroutines, which takes up to pollInterval. A port write that is
// blocked in the device driver (the far end stopped reading) is waited for
// up to writerWait more; Close then returns anyway, and the port's writer
// goroutine, which holds the device open, ends when the driver returns the
// write. It is safe to call more than once.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() {
		close(l.done)
	})
	l.wg.Wait()
	l.waitWriters(writerWait)
	return nil
}

// addWriter records s, whose writer goroutine is starting.
func (l *Listener) addWriter(s *session) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.writers == nil {
		l.writers = make(map[*session]struct{})
	}
	l.writers[s] = struct{}{}
}

// removeWriter forgets s, whose writer closed the port.
func (l *Listener) removeWriter(s *session) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	delete(l.writers, s)
}

// waitWriters waits, for at most d in all, until every session's writer has
// closed its port.
func (l *Listener) waitWriters(d time.Duration) {
	l.wmu.Lock()
	ss := make([]*session, 0, len(l.writers))
	for s := range l.writers {
		ss = append(ss, s)
	}
	l.wmu.Unlock()
	if len(ss) == 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	for _, s := range ss {
		select {
		case <-s.exited:
		case <-t.C:
			l.log.Warn("serial port write blocked in the driver; the device stays open until it returns", keyDevice, l.cfg.Device)
			return
		}
	}
}

// Addr returns the port's address.
func (l *Listener) Addr() net.Addr { return l.addr }

// Stats returns a snapshot of the port's counters.
func (l *Listener) Stats() Stats { return l.st.snapshot() }

// drop logs a dropped frame, rate-limited.
func (l *Listener) drop(err error, channel int) {
	l.limiter.warn(l.log, "drop", "dropped serial frame", keyReason, err.Error(), keyChannel, channel)
}

// run opens the device, serves it until it fails, and reopens it, with
// exponential backoff between failed attempts, until Close.
func (l *Listener) run() {
	defer l.wg.Done()
	delay := l.cfg.ReopenMin
	backoff := func() bool {
		t := time.NewTimer(delay)
		defer t.Stop()
		delay = min(2*delay, l.cfg.ReopenMax)
		select {
		case <-t.C:
			return true
		case <-l.done:
			return false
		}
	}
	for {
		select {
		case <-l.done:
			return
		default:
		}
		port, err := l.open()
		if err != nil {
			l.limiter.warnChange(l.log, "open", err.Error(), "opening serial port failed", keyDevice, l.cfg.Device, keyError, err.Error(), keyRetryIn, delay.String())
			if !backoff() {
				return
			}
			continue
		}
		l.st.portOpens.Add(1)
		l.st.open.Store(true)
		l.log.Info("serial port open", keyDevice, l.cfg.Device, keyBaud, l.cfg.Baud, keyFraming, l.cfg.Framing)
		s := newSession(l, port)
		opened := time.Now()
		err = s.serve(l.done)
		l.st.open.Store(false)
		if err == errStopped {
			s.close(fmt.Errorf("closing listener: %w", net.ErrClosed))
			l.log.Info("serial port closed", keyDevice, l.cfg.Device)
			return
		}
		s.close(ErrPortLost)
		l.st.portLosses.Add(1)
		l.log.Warn("serial port lost", keyDevice, l.cfg.Device, keyError, err.Error(), keyRetryIn, delay.String())
		// Let the writer close the device before it is reopened. A write
		// stuck in the driver keeps it open; reopening may then fail (the
		// device is opened exclusively) and is retried with backoff.
		s.waitWriter(pollInterval, l.done)
		if time.Since(opened) >= l.cfg.ReopenMax {
			delay = l.cfg.ReopenMin
		}
		if !backoff() {
			return
		}
	}
}

// open opens and configures the device.
func (l *Listener) open() (serial.Port, error) {
	port, err := serial.Open(l.cfg.Device, l.cfg.mode())
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", l.cfg.Device, err)
	}
	if err := port.SetReadTimeout(pollInterval); err != nil {
		port.Close()
		return nil, fmt.Errorf("setting read timeout on %s: %w", l.cfg.Device, err)
	}
	return port, nil
}
