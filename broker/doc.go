// Package broker owns MQTT semantics: sessions, the topic tree, QoS flows
// and the inflight window, retained and will messages, keepalive, $SYS, and
// the connection loops. Every transport hands it a net.Conn through Serve or
// ServeConn; it never knows whether the bytes came from TCP, TLS or a UART.
//
// It imports broker/packet (the codec) and persist (record types only; it
// declares the Store interface it needs). It must not import bridge or
// serialio: cmd/edged wires those.
//
// # Connection lifecycle
//
// A connection has a reader goroutine and, while there is something to
// write, a writer goroutine. The reader alone decodes: it waits at most
// ConnectTimeout from accept for CONNECT (read with a 64 KiB maximum; a
// TLS handshake is done first, under the same deadline), then reads
// packets with a deadline of 1.5 x keepalive [MQTT-3.1.2-24] and the
// configured maximum packet size, checked from the fixed header before the
// body is read; a body's buffer grows as its bytes arrive. Between packets
// the reader holds no buffer: it waits for a packet's first byte, then
// takes one from a pool. The writer alone writes: started by the first
// packet queued, it drains a queue bounded in packets and bytes into a
// pooled bufio.Writer, flushes when the queue is empty (so bursts leave in
// one write) and exits; an idle
// connection holds neither a writer goroutine nor a write buffer. When the
// reader stops it marks the connection closed, waits for the writer,
// closes the socket, detaches the session, and publishes the will unless
// the client sent DISCONNECT.
//
// Packets after CONNECT are read and written at the protocol version the
// CONNECT named (3.1, 3.1.1; the codec speaks 5.0 too). Until the broker
// serves MQTT 5.0, a well-formed level-5 CONNECT is refused with a 5.0
// CONNACK 0x84 (unsupported protocol version), which a 5.0 client can
// decode, and the connection is closed [MQTT-3.1.2-2]; other unknown levels
// get the 3.1.1 CONNACK 0x01.
//
// # Sessions, QoS and persistence
//
// A session outlives its connection when the client connected with clean
// session 0. Its outbound QoS 1/2 messages are either in flight (sent with a
// packet id, at most Limits.MaxInflight) or queued (bounded by
// MaxQueuedMessages and MaxQueuedBytes; over a limit the new message is
// dropped and counted). On reconnect the in-flight ones are re-sent first,
// with DUP and their original packet ids, then PUBRELs, then the queue.
// QoS 0 is never queued for an offline client.
//
// With a Store, a persistent session holds at most sessionWindow (256)
// queued messages in memory; the rest of its queue is on disk only
// ("spilled", counted against the limits by number and bytes) and read back
// in order, after the newest message in memory, when the window has
// drained. A restart loads sessions and their in-flight messages, not the
// queues. Because the store reads committed state only, a spilled message
// whose commit is still pending is not read yet: the refill waits for that
// commit (refillLocked). A retained message for a new subscription that has
// to spill is stored with its own id and its retain flag. Clean sessions
// and a broker without a Store keep their whole queue in memory.
//
// The broker keeps the authoritative state in memory and hands the Store
// every mutation that must survive a restart: a message routed to a
// persistent session (stored once, referenced per session), packet ids, QoS
// 2 inbound ids, subscriptions and retained messages. Whatever tells a
// client that state changed waits for the commit holding the change:
//
//   - PUBACK and PUBREC (the message is stored), PUBCOMP (the QoS 2 id is
//     released: the client may reuse it at once), SUBACK and UNSUBACK;
//   - to a persistent session, a QoS 2 PUBLISH (its packet id is stored, so
//     a re-send after a crash carries the same id) and PUBREL (the PUBREC is
//     stored, so the PUBLISH is never re-sent after it); QoS 1 messages
//     queue behind such a write to keep the order.
//
// Acknowledgements leave in the order their packets arrived (ackQueue).
// Every queued acknowledgement holds one of maxPendingAcks slots: a client
// with that many outstanding is not read from until the store catches up,
// which pushes back through TCP instead of growing memory.
//
// A new subscription takes effect when its SUBACK is queued: under routeMu
// the filters enter the topic tree and SUBACK is queued. The matching
// retained messages follow with flow control (retainCursor, every one of
// them [MQTT-3.3.1-6]): QoS 1/2 ones within the inflight window, QoS 0 ones
// while the write queue is at most half full, resumed by acknowledgements
// and by the writer taking a batch; never queued in the session nor dropped
// for lack of room. The cursor walks the retained store in place, so memory
// is a window, whatever the number of retained messages. Live messages may
// interleave with them. A message routed before the subscription is only in
// the retained store; one routed after is delivered live, and the cursor
// skips that topic if it has not reached it yet (the store stamps every
// change). The client thus never gets a message twice or a stale retained
// value after a newer live one on the same topic.
//
// # Access control
//
// A client's identity is its user name, or none (anonymous); the
// Authenticator vouches for it at CONNECT. A persistent session belongs to
// the identity that created it (stored with it, persist.SetOwner):
//
//   - A CONNECT with clean session 0 resumes the session only for the same
//     identity. Another identity (a different user name, or anonymous for a
//     user's session and the reverse) gets a clean start, session present
//     0, and the old session is discarded with its subscriptions and
//     queue, as a clean session CONNECT with that id would discard it: it
//     never sees them. A session stored by an edged that did not record
//     owners is adopted by the first client that resumes it.
//   - If the session's client is connected, it is disconnected whatever the
//     new client's identity [MQTT-3.1.4-2], as Mosquitto does, and its will
//     is published. So a client id is not a secret: give each user its own
//     ids, and an ACL (pattern rules with %c) for what must stay private.
//   - A resumed session's subscriptions are checked again with the rules in
//     use (they may have changed while its client was away); a filter no
//     longer granted is removed. Server.Reauthorize does the same for every
//     session after the rules change (edged calls it on SIGHUP).
//
// Subscriptions follow Mosquitto's ACL semantics: a filter is granted when
// some topic it can match is readable, and refused (0x80) only when none is
// (SubscriptionAuthorizer). A filter granted in part (GrantSome, say "#"
// on a dashboard) makes its session check each message with Allow(Read)
// in deliverFlagLocked, the one path of live, retained and queued
// deliveries; for an offline session the check uses its owner's identity,
// so what it may not read is never queued. Sessions whose filters are all
// fully readable pay nothing per message. Messages queued before a rule
// change stay queued.
//
// Clients never publish to $SYS or $SYS/...: with or without an ACL, such
// a PUBLISH is acknowledged and dropped like any refused one (nothing
// routed, nothing retained), and such a will is not published. Only the
// broker (Server.Publish: $SYS statistics, bridges) writes there.
// (Mosquitto 2.0.11 refuses them too, and closes the connection; a
// Mosquitto bridging into edged as a client therefore cannot publish its
// $SYS/broker/connection state here.)
//
// Refused PUBLISH, wills and SUBSCRIBE filters are logged with client id,
// user and topic, at most one line per 10 s (with the count of the others).
//
// # Lock order
//
// Locks are taken in this order, never the reverse:
//
//	Server.routeMu → Server.mu → session.mu → {topicTree.mu, retainedStore.mu, conn.outMu, ackQueue.mu}
//
// A connection's writer goroutine, holding no lock, may take routeMu and
// session.mu to resume retained messages (conn.drained).
//
// routeMu serialises everything that produces store ops, so the store sees
// them in memory order: routing a message, acknowledging a persisted one,
// creating, changing and deleting persistent sessions. It is held across the
// store's Commit call, which never blocks. The store's done callbacks run on
// the store's goroutine and take routeMu, session.mu and conn locks, none of
// which is ever held while waiting for the store. A session refilling its
// window reads the store (ReadSessionQueue, a bbolt read transaction, which
// never waits for a commit) under routeMu and session.mu. No lock is held during
// network I/O: closing a connection under a lock only marks it and sets past
// deadlines; its reader closes the socket afterwards.
//
// # Choices where the specification leaves room
//
//   - An invalid topic filter in SUBSCRIBE gets return code 0x80 instead of
//     closing the connection, so one bad filter does not cost the others.
//   - A refused PUBLISH (by the Authorizer) is acknowledged and dropped, as
//     Mosquitto does: MQTT 3.1.1 cannot report it.
//   - A client id takeover closes the old connection as a network loss, so
//     its will is published, as Mosquitto does, whoever the new client is
//     (see "Access control" for the session).
//   - A CONNECT over Limits.MaxConnections, MaxConnectionsPerAddress or a
//     listener's WithMaxConnections is answered with CONNACK 0x03 (server
//     unavailable) rather than a silent close; a takeover is always
//     admitted. A connection over MaxPendingConnections or
//     MaxPendingPerAddress (not yet sent CONNECT) is closed at accept
//     without a word: nothing is allocated for it.
//   - Limits.MaxKeepalive refuses keepalive 0 or over the maximum with
//     CONNACK 0x02, as Mosquitto's max_keepalive does for MQTT 3.1.1
//     clients: 3.1.1 cannot tell a client to use another keepalive.
//   - A connection's write queue is bounded in packets and bytes; QoS 0
//     over a bound is dropped (counted and logged, rate-limited), QoS 1/2
//     and acknowledgements over it disconnect the client as a slow
//     consumer, their messages staying in the session.
//   - Logs that hostile clients can provoke (refused CONNECTs, connections
//     closed at accept, CONNECT timeouts, TLS handshake failures, slow
//     consumers) are rate-limited: a few lines per 10 s, the next one
//     carrying the count of those suppressed.
//   - $SYS topics are retained QoS 0 messages refreshed every SysInterval and
//     never written to the store.
//   - Retained messages sent because of a new subscription are not written
//     to the session's stored queue: after a restart they are still in the
//     retained store.
//   - A subscription's retained messages come in the store's order (not
//     sorted), possibly after the SUBACK of a later SUBSCRIBE and among live
//     messages: MQTT 3.1.1 orders messages per topic only.
//   - A live message overtakes its topic's retained message (see above); if
//     that live message is then dropped (QoS 0 on a full write queue, or over
//     the session queue limits) the subscriber gets neither, as for any
//     dropped message.
//   - UNSUBSCRIBE stops the filter's retained messages; those in flight
//     complete [MQTT-3.10.4-3 allows either]. A filter unsubscribed before
//     its SUBSCRIBE was committed gets none. A repeated SUBSCRIBE of a filter
//     starts its retained messages again from the beginning [MQTT-3.8.4-3].
//   - When the connection ends (disconnect, takeover, shutdown), retained
//     messages not yet sent are not resumed on the session's next
//     connection: the session holds no copy of them, and a client that
//     wants them subscribes again. Those in flight are re-sent with the
//     session's other in-flight messages.
//   - Limits.MaxSubscriptions (default 1000 filters per client; Mosquitto
//     has no limit) bounds what one client makes the broker hold: a new
//     filter beyond it gets SUBACK 0x80, the other filters of the packet are
//     still granted, and a filter the session has may change its QoS. A
//     session restored with more (the limit was lowered) keeps them.
//   - A persistent session's subscriptions are stored one record each: a
//     SUBSCRIBE or UNSUBSCRIBE writes only the filters it names.
//   - A will is published when the server shuts down too: the client's
//     connection ended without DISCONNECT.
//   - When the store fails to commit a QoS 2 message (disk full), the
//     publisher gets no PUBREC and its re-send is routed again: subscribers
//     that got the first copy in memory may get it twice. edged prefers a
//     duplicate to a loss.
package broker
