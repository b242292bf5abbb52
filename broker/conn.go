package broker

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edged/edged/broker/packet"
)

// closeReason says why a connection ended; it decides whether the will is
// published and is logged once when the connection ends.
type closeReason int32

const (
	closeNone         closeReason = iota
	closeDisconnect               // the client sent DISCONNECT: no will
	closeNetwork                  // read or write error, EOF
	closeProtocol                 // a malformed packet or a protocol violation
	closeKeepalive                // nothing received within 1.5 x keepalive
	closeTakeover                 // a new connection with the same client id
	closeSlowConsumer             // the write queue overflowed
	closeShutdown                 // the server is shutting down
	closeRefused                  // CONNACK with a refusal was sent
	closeStoreError               // the store could not commit a message
	closeTooLarge                 // a packet over max_packet_size
)

var closeNames = [...]string{"", "disconnect", "network", "protocol violation", "keepalive timeout",
	"session taken over", "slow consumer", "server shutdown", "connection refused", "store error",
	"packet too large"}

func (r closeReason) String() string { return closeNames[r] }

// maxPreConnectSize bounds a CONNECT: a small maximum until a client has
// authenticated keeps unauthenticated peers from making the broker allocate.
const maxPreConnectSize = 64 << 10

// maxPendingAcks bounds the PUBACK/PUBREC a connection can have waiting for
// the store; a publisher over it is not read from until commits catch up,
// which pushes back through TCP instead of growing memory.
const maxPendingAcks = 256

// conn is one network connection. The reader goroutine alone decodes and
// handles packets; the writer goroutine alone writes to the socket. The
// writer runs only while there is something to write: an idle connection
// costs one goroutine, not two.
type conn struct {
	s    *Server
	nc   net.Conn
	opts listenerOpts
	log  *slog.Logger

	outMu   sync.Mutex
	out     []packet.Packet // write queue, bounded
	writing bool            // a writer goroutine is running; guarded by outMu
	writers sync.WaitGroup  // the writer goroutine, waited for by cleanup

	// wantDrained, guarded by outMu, asks the writer to call drained when
	// it takes its next batch (see retainRoom).
	wantDrained bool

	closeOnce sync.Once
	closed    chan struct{} // closed by close
	reason    atomic.Int32  // closeReason
	draining  atomic.Bool   // set under outMu: the writer flushes, then closes
	done      chan struct{} // closed when the connection is fully cleaned up

	acks      ackQueue
	commitSem chan struct{}

	// Set by the reader at CONNECT and read by the reader afterwards.
	sess      *session
	info      ClientInfo
	will      *message
	keepAlive time.Duration
}

func newConn(s *Server, nc net.Conn, o listenerOpts) *conn {
	c := &conn{
		s:         s,
		nc:        nc,
		opts:      o,
		closed:    make(chan struct{}),
		done:      make(chan struct{}),
		commitSem: make(chan struct{}, maxPendingAcks),
	}
	c.acks.c = c
	c.log = s.log.With("listener", o.name, "remote", nc.RemoteAddr().String())
	return c
}

// close ends the connection at once. The first reason given wins.
//
// It is called with broker locks held and from the store's goroutine, so it
// must not block: instead of closing the socket (a TLS close_notify or a
// serial RESET frame can block on the peer) it only marks the connection
// closed and sets past deadlines, which wake the reader and the writer. The
// reader's cleanup closes the socket, holding no lock.
func (c *conn) close(r closeReason) {
	c.closeOnce.Do(func() {
		c.reason.Store(int32(r))
		close(c.closed)
		past := time.Unix(1, 0)
		c.nc.SetReadDeadline(past)
		c.nc.SetWriteDeadline(past)
	})
}

// drainAndClose lets the writer send what it holds, then closes.
func (c *conn) drainAndClose(r closeReason) {
	c.reason.CompareAndSwap(int32(closeNone), int32(r))
	c.outMu.Lock()
	c.draining.Store(true)
	idle := !c.writing
	c.outMu.Unlock()
	if idle {
		c.close(r)
	}
}

// push appends p to the write queue unless it holds limit packets, and
// starts the writer if it is not running.
func (c *conn) push(p packet.Packet, limit int) bool {
	c.outMu.Lock()
	if len(c.out) >= limit || c.isClosed() {
		c.outMu.Unlock()
		return false
	}
	c.out = append(c.out, p)
	start := !c.writing
	if start {
		c.writing = true
		c.writers.Add(1)
	}
	c.outMu.Unlock()
	if start {
		go c.writeLoop()
	}
	return true
}

func (c *conn) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

// sendQoS0 queues a QoS 0 PUBLISH; it reports false, and the message is
// dropped, when the write queue is full.
func (c *conn) sendQoS0(p *packet.Publish) bool {
	return c.push(p, c.s.cfg.Limits.MaxWriteQueue)
}

// send queues any other packet; false means the client is a slow consumer.
// QoS 1 and 2 publishes are bounded by the inflight window, so they get
// room beyond the QoS 0 limit.
func (c *conn) send(p packet.Packet) bool {
	l := &c.s.cfg.Limits
	return c.push(p, l.MaxWriteQueue+l.MaxInflight+maxPendingAcks)
}

var writerPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4096) }}

// writeLoop drains the write queue into a pooled bufio.Writer and flushes
// when the queue is empty, so many small packets leave in one write. It
// exits when the queue is empty (push starts it again), so an idle
// connection holds neither a writer goroutine nor a write buffer.
func (c *conn) writeLoop() {
	defer c.writers.Done()
	var batch []packet.Packet
	for {
		c.outMu.Lock()
		if c.isClosed() {
			c.outMu.Unlock()
			return
		}
		if len(c.out) == 0 {
			c.writing = false
			draining := c.draining.Load()
			c.outMu.Unlock()
			if draining {
				c.close(closeReason(c.reason.Load()))
			}
			return
		}
		batch, c.out = c.out, batch[:0]
		drained := c.wantDrained
		c.wantDrained = false
		c.outMu.Unlock()
		if drained {
			c.drained()
		}
		if err := c.writeBatch(batch); err != nil {
			c.close(closeNetwork)
			return
		}
		clear(batch)
	}
}

func (c *conn) writeBatch(batch []packet.Packet) error {
	bw := writerPool.Get().(*bufio.Writer)
	bw.Reset(c.nc)
	defer func() {
		bw.Reset(nil)
		writerPool.Put(bw)
	}()
	if err := c.nc.SetWriteDeadline(time.Now().Add(c.s.cfg.WriteTimeout)); err != nil && !errors.Is(err, os.ErrNoDeadline) {
		return err
	}
	var n int
	for _, p := range batch {
		b := p.AppendTo(bw.AvailableBuffer())
		n += len(b)
		if _, err := bw.Write(b); err != nil {
			return err
		}
		if _, ok := p.(*packet.Publish); ok {
			c.s.stats.msgsSent.Add(1)
		}
	}
	c.s.stats.bytesSent.Add(uint64(n))
	return bw.Flush()
}

// countingReader counts the bytes read from the network.
type countingReader struct {
	r io.Reader
	n *atomic.Uint64
}

func (cr countingReader) Read(p []byte) (int, error) {
	n, err := cr.r.Read(p)
	cr.n.Add(uint64(n))
	return n, err
}

// readLoop reads and handles packets until the connection ends, then cleans
// up: it detaches the session and publishes the will if the client did not
// say DISCONNECT.
func (c *conn) readLoop(ctx context.Context) {
	defer c.s.wg.Done()
	reason := c.serve(ctx)
	c.cleanup(reason)
}

func (c *conn) serve(ctx context.Context) closeReason {
	br := bufio.NewReaderSize(countingReader{c.nc, &c.s.stats.bytesReceived}, 1024)
	c.nc.SetReadDeadline(time.Now().Add(c.s.cfg.ConnectTimeout))
	if c.isClosed() {
		// Checked after the deadline is set: close sets a past one after
		// marking, so either this sees it or the read wakes at once.
		return closeReason(c.reason.Load())
	}
	p, err := packet.Read(br, min(maxPreConnectSize, c.s.cfg.Limits.MaxPacketSize))
	if err != nil {
		if r, ok := packet.ReasonOf(err); ok {
			switch r {
			case packet.UnsupportedProtocolVersion:
				// [MQTT-3.1.2-2]
				return c.refuse(packet.RefusedProtocolVersion, err)
			case packet.ClientIdentifierNotValid:
				return c.refuse(packet.RefusedIdentifierRejected, err)
			}
		}
		return c.readError(err)
	}
	cp, ok := p.(*packet.Connect)
	if !ok {
		// The first packet must be CONNECT [MQTT-3.1.0-1].
		c.log.Debug("first packet is not CONNECT", "type", p.Type().String())
		return closeProtocol
	}
	if r := c.connect(cp); r != closeNone {
		return r
	}
	for {
		if c.keepAlive > 0 {
			// 1.5 times the keepalive [MQTT-3.1.2-24].
			c.nc.SetReadDeadline(time.Now().Add(c.keepAlive * 3 / 2))
		} else {
			c.nc.SetReadDeadline(time.Time{})
		}
		if c.isClosed() {
			return closeReason(c.reason.Load())
		}
		p, err := packet.Read(br, c.s.cfg.Limits.MaxPacketSize)
		if err != nil {
			return c.readError(err)
		}
		if c.isClosed() {
			// Taken over or shut down: packets still buffered must not act
			// on a session that now belongs to another connection.
			return closeReason(c.reason.Load())
		}
		if r := c.handle(p); r != closeNone {
			return r
		}
	}
}

// readError classifies the error that ended the read loop.
func (c *conn) readError(err error) closeReason {
	if c.isClosed() {
		return closeReason(c.reason.Load())
	}
	if r, ok := packet.ReasonOf(err); ok {
		c.log.Info("closing connection", "error", err)
		if r == packet.PacketTooLarge {
			return closeTooLarge
		}
		return closeProtocol
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return closeKeepalive
	}
	return closeNetwork
}

// refuse sends a CONNACK with a refusal and closes once it is written
// [MQTT-3.2.2-5].
func (c *conn) refuse(code packet.ConnackCode, err error) closeReason {
	c.log.Info("connection refused", "client_id", c.info.ClientID, userAttr(&c.info), "code", int(code),
		"reason", code.Error(), "error", err)
	c.send(&packet.Connack{Code: code})
	c.drainAndClose(closeRefused)
	return closeRefused
}

// cleanup runs once the reader has stopped.
func (c *conn) cleanup(reason closeReason) {
	if !c.draining.Load() {
		c.close(reason)
	}
	// Wait for a writer still flushing (drainAndClose), at most
	// WriteTimeout; close's past deadline then ends its write. No new
	// writer starts once the connection is closed.
	flushed := make(chan struct{})
	go func() {
		c.writers.Wait()
		close(flushed)
	}()
	select {
	case <-flushed:
	case <-time.After(c.s.cfg.WriteTimeout):
		c.close(reason)
		<-flushed
	}
	c.close(reason)
	c.nc.Close() // the only place the socket is closed; no lock is held
	if r := closeReason(c.reason.Load()); r != closeNone {
		reason = r
	}
	if ss := c.sess; ss != nil {
		c.s.detach(c, ss)
		if c.will != nil && reason != closeDisconnect {
			// The will goes out on any end but DISCONNECT [MQTT-3.1.2-8];
			// DISCONNECT discards it [MQTT-3.14.4-3].
			if c.s.mayPublish(&c.info, c.will.topic, true) {
				c.s.route(c.will, nil, nil, nil)
			}
		}
		c.log.Info("client disconnected", "reason", reason.String())
		c.s.stats.connected.Add(-1)
	}
	c.s.removeConn(c)
	close(c.done)
}

// ackQueue keeps the acknowledgements a connection owes in the order their
// packets arrived [MQTT-4.6.0-2] [MQTT-4.6.0-3]: one whose message is
// waiting for the store holds back those behind it.
type ackQueue struct {
	c       *conn
	mu      sync.Mutex
	entries []*ackEntry
}

// ackEntry is one acknowledgement; it holds a commitSem slot until sent.
type ackEntry struct {
	p     packet.Packet
	ready bool
}

// add appends an acknowledgement; ready says whether it may go out now.
func (q *ackQueue) add(p packet.Packet, ready bool) *ackEntry {
	e := &ackEntry{p: p, ready: ready}
	q.mu.Lock()
	q.entries = append(q.entries, e)
	q.mu.Unlock()
	if ready {
		q.flush()
	}
	return e
}

// done marks e ready and sends every ready entry at the head.
func (q *ackQueue) done(e *ackEntry) {
	q.mu.Lock()
	e.ready = true
	q.mu.Unlock()
	q.flush()
}

func (q *ackQueue) flush() {
	q.mu.Lock()
	defer q.mu.Unlock()
	i := 0
	for ; i < len(q.entries) && q.entries[i].ready; i++ {
		e := q.entries[i]
		if !q.c.send(e.p) {
			q.c.close(closeSlowConsumer)
		}
		<-q.c.commitSem
	}
	n := copy(q.entries, q.entries[i:])
	clear(q.entries[n:])
	q.entries = q.entries[:n]
}

// queueAck queues an acknowledgement behind those the connection already
// owes. ready says whether it may go out as soon as they have; otherwise it
// waits for committed. Every queued acknowledgement holds one of
// maxPendingAcks slots, so queueAck blocks while that many are outstanding
// (a client cannot pile up even PINGRESPs behind one waiting for the
// store), and reports false if the connection closes meanwhile.
func (c *conn) queueAck(p packet.Packet, ready bool) (*ackEntry, bool) {
	if c.isClosed() {
		return nil, false
	}
	select {
	case c.commitSem <- struct{}{}:
	case <-c.closed:
		return nil, false
	}
	return c.acks.add(p, ready), true
}

// committed is the done callback of a store commit that an acknowledgement
// waits for. On failure the acknowledgement is withheld and the connection
// closed, so the client sends the message again after it reconnects.
func (c *conn) committed(e *ackEntry, err error) {
	if err != nil {
		c.s.stats.storeErrors.Add(1)
		if ok, n := c.s.storeWarn.allow(); ok {
			c.s.log.Error("store commit failed; not acknowledging", "client_id", c.info.ClientID,
				"error", err, "suppressed", n)
		}
		c.close(closeStoreError)
		<-c.commitSem
		return
	}
	c.acks.done(e)
}
