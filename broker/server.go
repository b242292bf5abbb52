package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edged/edged/persist"
)

// Server is an MQTT 3.1.1 broker. Create it with New, hand it listeners
// with Serve or single connections with ServeConn, and stop it with
// Shutdown.
type Server struct {
	cfg   Config
	log   *slog.Logger
	store Store
	start time.Time

	// routeMu orders everything the broker hands the store: routing a
	// message, acknowledging a persisted one, creating and deleting
	// persistent sessions. The disk therefore sees mutations in the same
	// order as memory. See doc.go for the lock order.
	routeMu    sync.Mutex
	nextMsgID  uint64       // guarded by routeMu
	pendingOps []persist.Op // guarded by routeMu: the commit being built
	taps       []*tap       // guarded by routeMu
	// afterCommit, guarded by routeMu, holds writes that must wait for the
	// commit being built (see session.writeAfterCommitLocked).
	afterCommit []func()
	// holdSeq, guarded by routeMu, numbers the routes of clients' QoS 2
	// messages, whose writes wait for their commit (see route,
	// session.holdFor).
	holdSeq uint64
	// endedWills, guarded by routeMu, are the delayed wills of sessions
	// that ended; publishDueWills publishes them.
	endedWills []pendingWill

	mu       sync.Mutex // guards sessions, conns, listeners, closing, admission
	sessions map[string]*session
	conns    map[*conn]struct{}
	lns      map[net.Listener]struct{}
	closing  bool
	adm      admission // guarded by mu

	topics   *topicTree
	retained *retainedStore

	wg        sync.WaitGroup // every connection and Serve goroutine
	bg        sync.WaitGroup // the housekeeping goroutine
	stop      chan struct{}
	stopOnce  sync.Once
	storeWarn rateLimiter
	denyWarn  rateLimiter // refused publishes, wills and subscriptions
	limitWarn rateLimiter // a client over a limit (max_subscriptions)
	// Rate-limited logs of what hostile or broken clients cause, so that a
	// flood shows as a few lines with a count of those suppressed.
	refuseLog  rateLimiter // refused CONNECTs and connections closed at accept
	connectLog rateLimiter // CONNECT timeouts and TLS handshake failures
	slowLog    rateLimiter // slow consumers: QoS 0 dropped, disconnects

	stats  stats
	loadMu sync.Mutex
	load   sysLoad // $SYS/broker/load/...; guarded by loadMu
	// watchers are the live watches of the status page (inspect.go);
	// guarded by routeMu.
	watchers []*watcher
}

// stats are the counters published on $SYS. Typed atomics keep them
// aligned on 32-bit ARM and MIPS.
type stats struct {
	connected     atomic.Int64
	msgsReceived  atomic.Uint64
	msgsSent      atomic.Uint64
	bytesReceived atomic.Uint64
	bytesSent     atomic.Uint64
	pubDropped    atomic.Uint64 // QoS 0 dropped on a full write queue, or queued messages over a limit
	storeErrors   atomic.Uint64
	slowConsumers atomic.Uint64
	connects      atomic.Uint64 // clients admitted, ever ($SYS/broker/load/connections)
	maxConnected  atomic.Int64  // most clients connected at once ($SYS/broker/clients/maximum)
}

// New returns a Server for cfg. If cfg.Store is set, New loads the
// persisted sessions and retained messages from it.
func New(cfg Config) (*Server, error) {
	if err := cfg.Limits.Validate(); err != nil {
		return nil, fmt.Errorf("validating limits: %w", err)
	}
	cfg = cfg.withDefaults()
	s := &Server{
		cfg:      cfg,
		log:      cfg.Logger,
		store:    cfg.Store,
		start:    time.Now(),
		sessions: make(map[string]*session),
		conns:    make(map[*conn]struct{}),
		lns:      make(map[net.Listener]struct{}),
		topics:   newTopicTree(),
		retained: newRetainedStore(),
		stop:     make(chan struct{}),
	}
	s.storeWarn.every = 10 * time.Second
	for _, r := range []*rateLimiter{&s.denyWarn, &s.limitWarn, &s.refuseLog, &s.connectLog, &s.slowLog} {
		r.every, r.burst = 10*time.Second, 10
	}
	s.adm.init()
	s.nextMsgID = 1
	if s.store != nil {
		snap, err := s.store.Load()
		if err != nil {
			return nil, fmt.Errorf("loading persisted state: %w", err)
		}
		s.restore(snap)
	}
	s.bg.Add(1)
	go s.housekeeping()
	return s, nil
}

// ServeOption configures one listener handed to Serve or ServeConn.
type ServeOption func(*listenerOpts)

type listenerOpts struct {
	name      string
	transport string
	anonymous bool
	maxConns  int
	// connected counts the listener's connected clients; guarded by
	// Server.mu. Shared by every connection of one Serve call.
	connected *int
}

// WithName names the listener in logs and to the Authenticator.
func WithName(name string) ServeOption { return func(o *listenerOpts) { o.name = name } }

// AllowAnonymous lets clients without a user name connect through this
// listener (the default is true).
func AllowAnonymous(allow bool) ServeOption {
	return func(o *listenerOpts) { o.anonymous = allow }
}

// WithMaxConnections bounds the clients connected through this listener;
// further CONNECTs are refused with return code 0x03, as over
// Limits.MaxConnections. Zero or negative means only the global limit.
func WithMaxConnections(n int) ServeOption { return func(o *listenerOpts) { o.maxConns = n } }

// WithTransport names what the listener speaks ("tcp", "tls", "ws", "wss",
// "serial") in its "listening" log line; the broker sees only a
// net.Listener and cannot tell. Default "tcp".
func WithTransport(t string) ServeOption { return func(o *listenerOpts) { o.transport = t } }

func makeOpts(opts []ServeOption) listenerOpts {
	o := listenerOpts{name: "default", transport: "tcp", anonymous: true, connected: new(int)}
	for _, f := range opts {
		f(&o)
	}
	return o
}

// Serve accepts connections on ln and serves each on its own goroutines
// until ctx is done, ln fails, or Shutdown is called. It closes ln before
// returning, and returns nil after Shutdown or ctx cancellation.
func (s *Server) Serve(ctx context.Context, ln net.Listener, opts ...ServeOption) error {
	o := makeOpts(opts)
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.lns[ln] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.lns, ln)
		s.mu.Unlock()
	}()

	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	log := s.log.With("listener", o.name)
	log.Info("listening", "transport", o.transport, "address", ln.Addr().String())
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.isClosing() || ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || !errors.Is(err, net.ErrClosed) {
				// Back off on temporary errors such as EMFILE instead of
				// spinning.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				log.Warn("accept failed; retrying", "error", err, "delay", delay)
				select {
				case <-time.After(delay):
					continue
				case <-ctx.Done():
					return nil
				case <-s.stop:
					return nil
				}
			}
			ln.Close()
			return fmt.Errorf("accepting on %s: %w", o.name, err)
		}
		delay = 0
		s.startConn(ctx, c, o)
	}
}

// ServeConn serves one connection, as if it had been accepted by a
// listener, and returns when it is closed.
func (s *Server) ServeConn(ctx context.Context, c net.Conn, opts ...ServeOption) {
	cn := s.startConn(ctx, c, makeOpts(opts))
	if cn != nil {
		<-cn.done
	}
}

// startConn registers and starts a connection; it returns nil if the
// server is shutting down or the connection is over a pending limit, after
// closing it.
func (s *Server) startConn(ctx context.Context, nc net.Conn, o listenerOpts) *conn {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		nc.Close()
		return nil
	}
	addr := addrKey(nc.RemoteAddr())
	if err := s.adm.holdPendingLocked(&s.cfg.Limits, addr); err != nil {
		s.mu.Unlock()
		// Closed before anything is allocated for it: a flood of silent
		// sockets costs their file descriptors for an instant only.
		nc.Close()
		s.logRefused(o.name, nc.RemoteAddr(), err)
		return nil
	}
	c := newConn(s, nc, o)
	c.addr, c.pending = addr, true
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	go c.readLoop(ctx) // the writer starts with the first packet to send
	return c
}

// HoldPending counts a connection from addr that is not yet handed to the
// broker (a WebSocket's HTTP request before the upgrade) against
// Limits.MaxPendingConnections and MaxPendingPerAddress. It reports false,
// after logging, if it is over a limit: the caller closes it at once.
// Otherwise the caller calls release exactly once when the connection is
// closed or handed to Serve (which counts it again until CONNECT).
func (s *Server) HoldPending(listener string, addr net.Addr) (release func(), ok bool) {
	key := addrKey(addr)
	s.mu.Lock()
	err := s.adm.holdPendingLocked(&s.cfg.Limits, key)
	s.mu.Unlock()
	if err != nil {
		s.logRefused(listener, addr, err)
		return nil, false
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			s.adm.releasePendingLocked(key)
			s.mu.Unlock()
		})
	}, true
}

// logRefused logs, rate-limited, a connection closed at accept.
func (s *Server) logRefused(listener string, remote net.Addr, err error) {
	if ok, n := s.refuseLog.allow(); ok {
		s.log.Warn("connection closed at accept", "listener", listener, "remote", remote.String(),
			"error", err, "suppressed", n)
	}
}

func (s *Server) removeConn(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// Shutdown stops the server: it closes the listeners, lets every
// connection's writer drain what it holds until ctx is done, closes the
// connections (publishing their wills) and waits for every goroutine. The
// caller closes the Store afterwards. Shutdown is idempotent and safe to
// call concurrently.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	first := !s.closing
	s.closing = true
	for ln := range s.lns {
		ln.Close()
	}
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	if first {
		s.log.Info("shutting down", "connections", len(conns))
	}
	for _, c := range conns {
		c.end(closeShutdown)
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		s.mu.Lock()
		for c := range s.conns {
			c.close(closeShutdown)
		}
		s.mu.Unlock()
		<-done
	}
	s.stopOnce.Do(func() { close(s.stop) })
	s.bg.Wait()
	if first {
		s.log.Info("shutdown complete")
	}
	return err
}

// restore rebuilds sessions, subscriptions, queues and retained messages
// from a snapshot at start-up.
func (s *Server) restore(snap *persist.Snapshot) {
	if snap.NextMsgID > s.nextMsgID {
		s.nextMsgID = snap.NextMsgID
	}
	msgs := make(map[uint64]*message)
	var touched []persist.Op
	for _, ps := range snap.Sessions {
		ss := newSession(s, ps.ClientID, false)
		ss.lastSeen = ps.LastSeen
		ss.version = ps.Version
		if e, ok := ps.ExpiresAfter(); ok {
			ss.expiry = e
		}
		ss.owner.ClientID = ps.ClientID
		if o := ps.Owner; o != nil {
			ss.owner.Username, ss.owner.HasUsername, ss.ownerKnown = o.Username, o.HasUsername, true
		}
		if w := ps.Will; w != nil {
			// A delayed 5.0 will that was waiting when edged stopped: due
			// as stored (at once if its time passed meanwhile, or none
			// was stored); publishDueWills sends it.
			ss.will, ss.willDue = messageFromRecord(0, &w.Msg), w.Due
		}
		if ss.lastSeen == 0 {
			// It was connected when the broker stopped: its offline clock
			// starts now, and is stored, so a device that reboots more
			// often than session_expiry still expires an abandoned session.
			ss.lastSeen = time.Now().Unix()
			touched = append(touched, ss.putSessionOp(ss.lastSeen))
		}
		// A session keeps its subscriptions even beyond a MaxSubscriptions
		// lowered since: the limit refuses new ones.
		for _, sub := range ps.Subs {
			o := subOpts{qos: sub.QoS, rh: sub.RetainHandling, id: sub.ID}
			if sub.NoLocal {
				o.flags |= subNoLocal
			}
			if sub.RetainAsPublished {
				o.flags |= subRetainAsPublished
			}
			ss.subs[sub.Filter] = o
			if ss.subSeqs == nil {
				ss.subSeqs = make(map[string]uint64, len(ps.Subs))
			}
			ss.subSeqs[sub.Filter] = sub.Seq
			ss.nextSubSeq = max(ss.nextSubSeq, sub.Seq)
			s.topics.subscribe(ss, sub.Filter, o)
			if ss.ownerKnown {
				// What is routed to the session while its client is away
				// is checked with its owner's identity. A filter the rules
				// no longer grant delivers nothing until the client resumes
				// the session, which removes it. (A session without a
				// recorded owner keeps the grants an earlier edged made,
				// which covered every topic of the filter.)
				ss.setGrantLocked(sub.Filter, max(s.grant(&ss.owner, sub.Filter), GrantSome))
			}
		}
		// The sent messages are re-sent on resume; the rest of the queue
		// stays on disk until the client drains it (refillLocked).
		for _, q := range ps.Queue {
			m := msgs[q.MsgID]
			if m == nil {
				m = messageFromRecord(q.MsgID, &q.Msg)
				msgs[q.MsgID] = m
			}
			om := newOutMsg(m, q.QoS, q.Retain, q.SubIDs)
			om.pid, om.pubrel = q.PacketID, q.Pubrel
			ss.inflight = append(ss.inflight, om)
			ss.usedPIDs[q.PacketID] = struct{}{}
			ss.lastMemID = max(ss.lastMemID, q.MsgID)
		}
		ss.spilled, ss.spilledBytes = int(min(ps.Waiting, math.MaxInt32)), ps.WaitingBytes
		for _, id := range ps.Inbound {
			ss.inbound[id] = true
		}
		s.sessions[ps.ClientID] = ss
	}
	for i := range snap.Retained {
		r := &snap.Retained[i]
		s.retained.set(messageFromRecord(0, r))
	}
	if len(touched) > 0 {
		s.routeMu.Lock()
		s.pendingOps = append(s.pendingOps, touched...)
		s.commitLocked(nil)
		s.routeMu.Unlock()
	}
	var queued int64
	for i := range snap.Sessions {
		queued += int64(len(snap.Sessions[i].Queue)) + snap.Sessions[i].Waiting
	}
	s.log.Info("restored state", "sessions", len(snap.Sessions), "queued", queued, "retained", len(snap.Retained))
}

// rateLimiter lets burst warnings (at least one) through per interval and
// counts the rest; the next one let through reports how many were
// suppressed.
type rateLimiter struct {
	mu         sync.Mutex
	every      time.Duration
	burst      int
	start      time.Time // of the current interval
	n          int       // let through in the current interval
	suppressed int
}

// allow reports whether to log now, and how many were suppressed since the
// last one.
func (r *rateLimiter) allow() (bool, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if now.Sub(r.start) >= r.every {
		r.start, r.n = now, 0
	}
	if r.n >= max(r.burst, 1) {
		r.suppressed++
		return false, 0
	}
	r.n++
	n := r.suppressed
	r.suppressed = 0
	return true, n
}
