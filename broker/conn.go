package broker

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
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
	closeNone           closeReason = iota
	closeDisconnect                 // the client sent DISCONNECT: no will
	closeNetwork                    // read or write error, EOF
	closeProtocol                   // a malformed packet or a protocol violation
	closeKeepalive                  // nothing received within 1.5 x keepalive
	closeTakeover                   // a new connection with the same client id
	closeSlowConsumer               // the write queue overflowed
	closeShutdown                   // the server is shutting down
	closeRefused                    // CONNACK with a refusal was sent
	closeStoreError                 // the store could not commit a message
	closeTooLarge                   // a packet over max_packet_size
	closeConnectTimeout             // no CONNECT within ConnectTimeout
	closeTLS                        // the TLS handshake failed
	closeOperator                   // an operator disconnected it (Server.Disconnect)
	closeMalformed                  // a malformed packet
	closeRecvMax                    // a 5.0 client exceeded the broker's receive maximum
	closeDisconnectWill             // a 5.0 DISCONNECT with reason 0x04: the will is published
)

var closeNames = [...]string{"", "disconnect", "network", "protocol violation", "keepalive timeout",
	"session taken over", "slow consumer", "server shutdown", "connection refused", "store error",
	"packet too large", "connect timeout", "TLS handshake failed", "disconnected by operator",
	"malformed packet", "receive maximum exceeded", "disconnect with will"}

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

	outMu    sync.Mutex
	out      []packet.Packet // write queue, bounded
	outBytes int64           // bytes in out and in the batch being written; guarded by outMu
	writing  bool            // a writer goroutine is running; guarded by outMu
	writers  sync.WaitGroup  // the writer goroutine, waited for by cleanup

	// wantDrained, guarded by outMu, asks the writer to call drained when
	// it takes its next batch (see retainRoom).
	wantDrained bool

	closeOnce sync.Once
	closed    chan struct{} // closed by close
	reason    atomic.Int32  // closeReason
	draining  atomic.Bool   // set under outMu: the writer flushes, then closes
	// willCancelled is set when a new connection resumes this one's
	// session (takeover): its will is not published.
	willCancelled atomic.Bool
	done          chan struct{} // closed when the connection is fully cleaned up

	acks      ackQueue
	commitSem chan struct{}

	// version is the protocol version of the connection's CONNECT: 0
	// until then (packets are then read and written the 3.1.1 way). Set
	// by the reader at CONNECT before it queues the first packet, so the
	// writer, which starts after that packet is queued, sees it.
	version packet.Version
	// acked, guarded by outMu, is set when CONNACK 0 is queued: only then
	// may a 5.0 client be sent a DISCONNECT [MQTT-3.14.0-1].
	acked bool
	v5    connV5

	// alias holds a 5.0 connection's topic aliases (alias.go); nil for
	// 3.1.x, so a 3.1.1 connection pays one pointer. Set at CONNECT.
	alias *connAliases

	// Set by the reader at CONNECT and read by the reader afterwards.
	sess      *session
	info      ClientInfo
	will      *message
	keepAlive time.Duration

	// Admission (admission.go): the source address counted under, whether
	// the connection still counts as pending (reader only) or as connected
	// (set under Server.mu by admitLocked, read by the reader), and why
	// admitLocked refused it.
	addr     string
	pending  bool
	admitted bool
	admitErr error

	// The reader's buffer, taken from readerPool for a packet and given
	// back when it holds no more bytes; in waits for a packet's first byte
	// without one. Reader only.
	br *bufio.Reader
	in firstByte
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
	c.in.r = countingReader{nc, &s.stats.bytesReceived}
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

// push appends p to the write queue unless it holds limit packets or p
// would take it over byteLimit bytes, and starts the writer if it is not
// running. A packet always fits into an empty queue, so one larger than
// byteLimit still goes out. Nothing is queued once the connection is
// closed, nor while it is closing (drainAndClose) once its writer has
// stopped: cleanup may be waiting for the writer, so no new one may start.
// While the writer still flushes, a packet (an acknowledgement whose
// commit just ended) joins what it sends.
func (c *conn) push(p packet.Packet, limit int, byteLimit int64) bool {
	size := packetSize(p, c.version)
	c.outMu.Lock()
	if len(c.out) >= limit || (c.outBytes > 0 && c.outBytes+size > byteLimit) || c.isClosed() ||
		(c.draining.Load() && !c.writing) {
		c.outMu.Unlock()
		return false
	}
	c.out = append(c.out, p)
	c.outBytes += size
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

// ending reports whether the connection is closed or closing: a packet
// it refuses then is not a sign of a slow consumer.
func (c *conn) ending() bool { return c.isClosed() || c.draining.Load() }

func (c *conn) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

// packetSize is the bytes a queued packet stands for in the write queue.
func packetSize(p packet.Packet, v packet.Version) int64 {
	switch p := p.(type) {
	case *packet.Publish:
		return int64(p.Size(v))
	case *packet.Suback:
		return int64(5 + len(p.Reasons))
	}
	return 4
}

// sendQoS0 queues a QoS 0 PUBLISH; it reports false, and the message is
// dropped (and logged, rate-limited), when the write queue is full in
// packets or bytes.
func (c *conn) sendQoS0(p *packet.Publish) bool {
	l := &c.s.cfg.Limits
	if c.push(p, l.MaxWriteQueue, l.MaxWriteQueueBytes) {
		return true
	}
	if !c.ending() {
		if ok, n := c.s.slowLog.allow(); ok {
			c.outMu.Lock()
			queued, bytes := len(c.out), c.outBytes
			c.outMu.Unlock()
			c.log.Warn("slow consumer: write queue full, QoS 0 message dropped", "queued", queued,
				"queued_bytes", bytes, "suppressed", n)
		}
	}
	return false
}

// send queues any other packet; false means the client is a slow consumer.
// QoS 1 and 2 publishes are bounded by the inflight window (and their
// payload is held by the session anyway), so they get room beyond the QoS
// 0 limits: in packets the window and the acknowledgements a client can
// owe, in bytes the window of maximum-size packets.
func (c *conn) send(p packet.Packet) bool {
	l := &c.s.cfg.Limits
	return c.push(p, l.MaxWriteQueue+l.MaxInflight+maxPendingAcks,
		l.MaxWriteQueueBytes+int64(l.MaxInflight)*int64(l.MaxPacketSize))
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
		// Counted as queued: writeBatch may shorten a PUBLISH with a
		// topic alias.
		var written int64
		for _, p := range batch {
			written += packetSize(p, c.version)
		}
		if err := c.writeBatch(batch); err != nil {
			c.close(closeNetwork)
			return
		}
		clear(batch)
		c.outMu.Lock()
		c.outBytes -= written
		c.outMu.Unlock()
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
		if pub, ok := p.(*packet.Publish); ok && c.alias != nil && c.alias.outMax > 0 {
			c.aliasOut(pub)
		}
		b := p.AppendTo(bw.AvailableBuffer(), c.version)
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
	if reason := c.serve(ctx); reason != closeNone {
		c.cleanup(reason)
		return
	}
	c.readPackets(false)
}

// readPackets reads and handles packets after CONNECT until the connection
// ends, then cleans up. When the connection goes idle it hands on to a new
// goroutine instead of waiting: handling a packet (CONNECT above all) grows
// a goroutine's stack, which the runtime keeps while it waits, and a fresh
// goroutine waits on the smallest stack. An idle connection so costs 2 KiB
// of stack instead of 4 to 8.
func (c *conn) readPackets(fresh bool) {
	reason, idle := c.packets(fresh)
	if idle {
		c.s.wg.Add(1) // while this goroutine still holds its own
		go func() {
			defer c.s.wg.Done()
			c.readPackets(true)
		}()
		return
	}
	c.cleanup(reason)
}

// readerPool holds the connections' read buffers between packets.
var readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 1024) }}

// firstByte hands out the byte a connection waited for, then reads from r.
type firstByte struct {
	r    io.Reader
	b    [1]byte
	have bool
}

func (f *firstByte) Read(p []byte) (int, error) {
	if !f.have {
		return f.r.Read(p)
	}
	if len(p) == 0 {
		return 0, nil
	}
	p[0], f.have = f.b[0], false
	return 1, nil
}

// readPacket reads the next packet. An idle connection holds no read
// buffer: it waits for the first byte of a packet without one, then takes a
// buffer from readerPool, and gives it back once a packet is read and no
// bytes of the next are buffered.
func (c *conn) readPacket(maxSize int) (packet.Packet, error) {
	if c.br == nil {
		if _, err := io.ReadFull(c.in.r, c.in.b[:]); err != nil {
			return nil, err
		}
		c.in.have = true
		c.br = readerPool.Get().(*bufio.Reader)
		c.br.Reset(&c.in)
	}
	p, err := packet.Read(c.br, maxSize, c.version)
	if err == nil && c.br.Buffered() == 0 {
		c.br.Reset(nil)
		readerPool.Put(c.br)
		c.br = nil
	}
	return p, err
}

func (c *conn) serve(ctx context.Context) closeReason {
	// A deadline from accept: a client sending its CONNECT (or its TLS
	// handshake) byte by byte cannot stretch it. The write deadline bounds
	// the TLS handshake's writes; writeBatch sets its own.
	c.nc.SetDeadline(time.Now().Add(c.s.cfg.ConnectTimeout))
	if c.isClosed() {
		// Checked after the deadline is set: close sets a past one after
		// marking, so either this sees it or the read wakes at once.
		return closeReason(c.reason.Load())
	}
	if tc, ok := c.nc.(*tls.Conn); ok {
		// The handshake is done here, under the CONNECT deadline, so that
		// its failure is logged as such.
		if err := tc.HandshakeContext(ctx); err != nil {
			if c.isClosed() {
				return closeReason(c.reason.Load())
			}
			if ok, n := c.s.connectLog.allow(); ok {
				c.log.Warn("TLS handshake failed", "error", err, "suppressed", n)
			}
			return closeTLS
		}
	}
	p, err := c.readPacket(min(maxPreConnectSize, c.s.cfg.Limits.MaxPacketSize))
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() && !c.isClosed() {
			if ok, n := c.s.connectLog.allow(); ok {
				c.log.Warn("no CONNECT within the connect timeout; closing", "connect_timeout",
					c.s.cfg.ConnectTimeout.String(), "suppressed", n)
			}
			return closeConnectTimeout
		}
		if r, ok := packet.ReasonOf(err); ok {
			if v := packet.ConnectVersionOf(err); v != 0 && !c.isClosed() {
				// The CONNECT got as far as a protocol level edged speaks:
				// a refusal is that version's CONNACK.
				c.outMu.Lock()
				c.version = v
				c.outMu.Unlock()
			}
			switch r {
			case packet.UnsupportedProtocolVersion:
				// [MQTT-3.1.2-2]
				return c.refuse(packet.UnsupportedProtocolVersion, err)
			case packet.ClientIdentifierNotValid:
				return c.refuse(packet.ClientIdentifierNotValid, err)
			case packet.MalformedPacket, packet.ProtocolError:
				if c.version == packet.V5 {
					// 5.0 lets the server say why before it closes
					// [MQTT-4.13.1-1]: a client's author sees "malformed
					// packet" or "protocol error", not a bare close. A
					// 3.1.1 CONNACK has no code for it: there the
					// connection just closes [MQTT-4.8.0-1].
					reason := c.readError(err)
					if !c.isClosed() {
						c.send(&packet.Connack{Reason: r})
						c.drainAndClose(reason)
					}
					return reason
				}
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
	c.outMu.Lock()
	c.version = packet.Version(cp.ProtocolLevel)
	if c.version == packet.V5 {
		c.alias = &connAliases{}
		if cp.Properties != nil && cp.Properties.TopicAliasMaximum != nil {
			// The aliases edged may use towards the client [MQTT-3.3.2-11].
			c.alias.outMax = uint16(max(min(int(*cp.Properties.TopicAliasMaximum), c.s.cfg.Limits.TopicAliasMaximum), 0))
		}
	}
	c.outMu.Unlock()
	if err := c.checkKeepalive(cp); err != nil {
		c.info.ClientID = cp.ClientID
		if cp.Username != nil {
			c.info.Username, c.info.HasUsername = *cp.Username, true
		}
		return c.refuse(packet.ClientIdentifierNotValid, err)
	}
	r := c.connect(cp)
	c.releasePending()
	return r
}

// packets reads and handles packets until the connection ends, and returns
// why. Unless fresh, it returns idle instead of waiting for a packet with
// no byte of it buffered (see readPackets).
func (c *conn) packets(fresh bool) (r closeReason, idle bool) {
	for {
		if !fresh && c.br == nil {
			return closeNone, true
		}
		fresh = false
		if c.keepAlive > 0 {
			// 1.5 times the keepalive [MQTT-3.1.2-24].
			c.nc.SetReadDeadline(time.Now().Add(c.keepAlive * 3 / 2))
		} else {
			c.nc.SetReadDeadline(time.Time{})
		}
		if c.isClosed() {
			return closeReason(c.reason.Load()), false
		}
		p, err := c.readPacket(c.s.cfg.Limits.MaxPacketSize)
		if err != nil {
			return c.readError(err), false
		}
		if c.isClosed() || c.draining.Load() {
			// Taken over or shut down: packets still buffered must not act
			// on a session that now belongs to another connection.
			return closeReason(c.reason.Load()), false
		}
		if r := c.handle(p); r != closeNone {
			return r, false
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
		switch r {
		case packet.PacketTooLarge:
			return closeTooLarge
		case packet.MalformedPacket:
			return closeMalformed
		}
		return closeProtocol
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return closeKeepalive
	}
	return closeNetwork
}

// checkKeepalive applies Limits.MaxKeepalive. Like Mosquitto's
// max_keepalive for MQTT 3.1.1 clients, which cannot be told another
// keepalive, a keepalive of 0 (never timed out) or over the maximum is
// refused with CONNACK 0x02 (identifier rejected, the only refusal code
// 3.1.1 has that the client will not retry unchanged forever as "server
// unavailable").
func (c *conn) checkKeepalive(cp *packet.Connect) error {
	max := c.s.cfg.Limits.MaxKeepalive
	if max <= 0 || c.version == packet.V5 {
		// A 5.0 client is told the maximum instead (connectV5).
		return nil
	}
	if ka := time.Duration(cp.KeepAlive) * time.Second; ka == 0 || ka > max {
		return fmt.Errorf("keepalive %ds is not between 1s and limits.max_keepalive %s", cp.KeepAlive, max)
	}
	return nil
}

// refuse sends a CONNACK with a refusal and closes once it is written
// [MQTT-3.2.2-5]. It logs the refusal, rate-limited: a flood of refused
// clients shows as a few lines with a count of those suppressed.
func (c *conn) refuse(code packet.Reason, err error) closeReason {
	if err == nil {
		err = c.admitErr
	}
	if ok, n := c.s.refuseLog.allow(); ok {
		c.log.Info("connection refused", "client_id", c.info.ClientID, userAttr(&c.info),
			"code", int(code), "reason", code.Error(), "error", err, "suppressed", n)
	}
	c.send(&packet.Connack{Reason: code})
	c.drainAndClose(closeRefused)
	return closeRefused
}

// cleanup runs once the reader has stopped.
func (c *conn) cleanup(reason closeReason) {
	if !c.draining.Load() {
		// A 5.0 client is told why (end), then the writer closes.
		c.end(reason)
	}
	// The connection is closed or closing now, so push starts no writer
	// any more; one that started a writer did so under outMu, before this
	// point. Taking outMu orders those Adds before the Wait below.
	c.outMu.Lock()
	//lint:ignore SA2001 an empty critical section, as a barrier
	c.outMu.Unlock()
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
	if r := closeReason(c.reason.Load()); r != closeNone {
		reason = r
	}
	// The will goes out on any end but DISCONNECT [MQTT-3.1.2-8] (a 5.0
	// DISCONNECT 0x04 asks for it); DISCONNECT discards it
	// [MQTT-3.14.4-3]; so does a takeover that continues the session (see
	// attach). A 5.0 will with a delay waits in the session.
	will := c.will != nil && reason != closeDisconnect && !c.willCancelled.Load()
	if ss := c.sess; ss != nil {
		var delay *message
		if will && c.v5.willDelay > 0 {
			delay = c.will
		}
		// Detached before the socket closes: a client that has seen the
		// close finds its session offline, with what arrives since queued
		// rather than sent to the dead connection.
		if c.s.detach(c, ss, delay) {
			will = false
		}
	}
	if c.v5.sentDisconnect.Load() && reason != closeShutdown {
		c.halfCloseDrain()
	}
	c.nc.Close() // the only place the socket is closed; no lock is held
	c.releasePending()
	if ss := c.sess; ss != nil {
		if will {
			c.s.publishWill(&c.info, c.will)
		}
		if reason == closeSlowConsumer {
			if ok, n := c.s.slowLog.allow(); ok {
				c.log.Warn("client disconnected", "reason", reason.String(), "suppressed", n)
			}
		} else {
			c.log.Info("client disconnected", "reason", reason.String())
		}
	}
	if c.admitted {
		c.s.unadmit(c)
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
	// counted: sending it releases a slot of the broker's receive maximum
	// (a 5.0 client's PUBACK, PUBCOMP, or PUBREC refusing the message).
	counted bool
}

// add appends an acknowledgement; ready says whether it may go out now.
func (q *ackQueue) add(p packet.Packet, ready, counted bool) *ackEntry {
	e := &ackEntry{p: p, ready: ready, counted: counted}
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
		if !q.c.send(e.p) && !q.c.ending() {
			q.c.s.stats.slowConsumers.Add(1)
			q.c.close(closeSlowConsumer)
		}
		if e.counted {
			q.c.v5.recvIn.Add(-1)
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
	return c.queueAckCounted(p, ready, false)
}

// queueAckCounted is queueAck for an acknowledgement that releases a slot
// of the broker's receive maximum when it is sent.
func (c *conn) queueAckCounted(p packet.Packet, ready, counted bool) (*ackEntry, bool) {
	if c.isClosed() {
		return nil, false
	}
	select {
	case c.commitSem <- struct{}{}:
	case <-c.closed:
		return nil, false
	}
	return c.acks.add(p, ready, counted), true
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
