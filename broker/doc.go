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
// the filters enter the topic tree, SUBACK is queued, then the matching
// retained messages. A message routed before is only in the retained store;
// one routed after is delivered live. The client never gets a message twice
// or a stale retained value after a newer live one.
//
// # Lock order
//
// Locks are taken in this order, never the reverse:
//
//	Server.routeMu → Server.mu → session.mu → {topicTree.mu, retainedStore.mu, conn.outMu, ackQueue.mu}
//
// routeMu serialises everything that produces store ops, so the store sees
// them in memory order: routing a message, acknowledging a persisted one,
// creating, changing and deleting persistent sessions. It is held across the
// store's Commit call, which never blocks. The store's done callbacks run on
// the store's goroutine and take routeMu, session.mu and conn locks, none of
// which is ever held while waiting for the store. No lock is held during
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
//     its will is published, as Mosquitto does.
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
//   - A will is published when the server shuts down too: the client's
//     connection ended without DISCONNECT.
//   - When the store fails to commit a QoS 2 message (disk full), the
//     publisher gets no PUBREC and its re-send is routed again: subscribers
//     that got the first copy in memory may get it twice. edged prefers a
//     duplicate to a loss.
package broker
