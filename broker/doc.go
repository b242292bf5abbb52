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
// CONNECT named (3.1, 3.1.1 or 5.0). An unknown protocol level gets the
// 3.1.1 CONNACK 0x01 and the connection is closed [MQTT-3.1.2-2].
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
// # MQTT 5.0 connections
//
// 3.1, 3.1.1 and 5.0 clients share one set of sessions, one topic tree and
// one store; $SYS, the ACL, persistence and serial lines (ServeConn) treat
// them alike. The 5.0 connection layer (v5conn.go):
//
//   - Session expiry replaces clean session: a 5.0 session outlives its
//     connection for its Session Expiry Interval (0: it ends with the
//     connection), a 3.1.1 one with clean session 0 never expires; both
//     are capped by Limits.SessionExpiry, and a 5.0 client asking for more
//     is told the capped value in CONNACK. Clean start discards an
//     existing session. A DISCONNECT may lower or raise the interval, but
//     not from a CONNECT's 0 (protocol error 0x82) [MQTT-3.14.2-2]. The
//     interval, the protocol version and the last-seen time are stored
//     with the session, so sessions expire on schedule across restarts
//     (checked every second).
//   - A will with a Will Delay Interval waits in the session for the
//     earlier of its delay and the session's end, and is cancelled if the
//     client reconnects to the session in time [MQTT-3.1.3-9]. DISCONNECT
//     0x04 publishes the will; a normal DISCONNECT discards it. A
//     persistent session's delayed will is stored with its due time
//     (persist.SetWill): after a restart it goes out when due, at once if
//     it fell due meanwhile; it is removed from the store after it was
//     routed (a crash in between publishes it twice rather than never).
//   - Limits.MaxKeepalive: a 5.0 client asking for more, or for 0, gets
//     the maximum as Server Keep Alive and is held to it (3.1.1 clients
//     are refused, see below).
//   - An empty client id is assigned an id (CONNACK Assigned Client
//     Identifier), with clean start 0 too.
//   - Receive maximum: edged advertises Limits.ReceiveMaximum (default
//     MaxInflight); a client with more QoS 1/2 PUBLISH unanswered (PUBACK,
//     PUBCOMP, or a PUBREC refusing it) gets DISCONNECT 0x93. edged keeps
//     at most the client's Receive Maximum in flight to it.
//   - Maximum packet size: edged advertises the total size of a
//     MaxPacketSize packet; a larger packet gets DISCONNECT 0x95. A
//     message larger than the client's Maximum Packet Size is dropped for
//     that client (counted in messages dropped, and removed from its
//     stored queue) and delivery continues [MQTT-3.1.2-25].
//   - The broker ends a 5.0 connection with a DISCONNECT saying why:
//     0x81 malformed packet, 0x82 protocol error, 0x8B shutdown, 0x8D
//     keepalive timeout, 0x8E session taken over, 0x93, 0x95, 0x98 an
//     operator's disconnect (status page), 0x83 a store failure. A
//     reason string goes with it. After sending it the broker closes its
//     write side and reads (and discards) what the client still sends for
//     up to 500 ms, so that unread bytes do not turn the close into a
//     reset the client sees instead of the DISCONNECT. A slow consumer is
//     closed without one (its queue is full); 3.1.1 clients never get one.
//   - CONNACK advertises Receive Maximum (when below 65535), Maximum
//     Packet Size, Retain, Wildcard, Subscription Identifier and Shared
//     Subscription Available 1, and Topic Alias Maximum
//     (limits.topic_alias_maximum, absent when -1); Maximum QoS is 2 and
//     not sent.
//   - Refusals carry 5.0 reason codes: CONNACK 0x86 bad user name or
//     password, 0x87 not authorized, 0x85 client id refused, 0x88 server
//     unavailable (connection limits), 0x81 or 0x82 a malformed CONNECT
//     (a 3.1.1 one is closed without a CONNACK, which has no code for
//     it); PUBACK and PUBREC 0x87 for a publish
//     the ACL refuses (a refused QoS 2 flow ends with that PUBREC: nothing
//     is kept for its packet id); SUBACK 0x87 refused, 0x8F invalid filter
//     (a bad $share name included), 0x97 over MaxSubscriptions; UNSUBACK
//     0x11 for a filter that was not subscribed.
//   - Enhanced authentication is not supported: a CONNECT with an
//     Authentication Method gets CONNACK 0x8C, an AUTH packet is a protocol
//     error (DISCONNECT 0x82).
//   - Request Problem Information 0 is honoured trivially: edged sends
//     reason strings only on DISCONNECT (always allowed) and user
//     properties on nothing but forwarded PUBLISH packets.
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
//     new client's identity [MQTT-3.1.4-2], as Mosquitto does; its will is
//     published unless the new connection continues the session (see
//     "Choices"). So a client id is not a secret: give each user its own
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
// # MQTT 5.0 messages
//
// A message published over 5.0 carries its properties (msgExt, one pointer
// in the message: a 3.1.x message pays nothing more): payload format
// indicator, content type, response topic, correlation data and user
// properties in their order are forwarded unaltered to 5.0 subscribers
// [MQTT-3.3.2-4] [MQTT-3.3.2-15] [MQTT-3.3.2-16] [MQTT-3.3.2-17]
// [MQTT-3.3.2-18] [MQTT-3.3.2-20]. A 3.1.x subscriber gets the 3.1.1
// packet without them; a 5.0 subscriber of a 3.1.x publisher gets none.
// The store keeps them with the message as the encoded property block,
// without topic alias and subscription identifiers (persist.Message
// Properties and Expiry), so queued and retained messages keep them across
// restarts.
//
// A 5.0 will carries its will properties the same way (all but the Will
// Delay Interval), stored with a delayed will; its Message Expiry Interval
// counts from the will's publication (message.willAt).
//
// Message expiry: a message with a Message Expiry Interval expires that
// long after edged received it. An expired message waiting in a session's
// queue (memory or disk) is dropped (and dequeued from the store) when its
// turn comes, not sent [MQTT-3.3.2-5]; an expired retained message is not
// sent to new subscriptions (the store drops it at the next start; in
// memory it stays until its topic is published again). Every forwarded
// copy carries the interval left, rounded up to whole seconds
// [MQTT-3.3.2-6]. A message already in flight when it expires is still
// completed (re-sent on reconnect): its delivery had started.
//
// Choices where 5.0 leaves room:
//
//   - Topic aliases: limits.topic_alias_maximum (default 16) is both the
//     Topic Alias Maximum edged advertises in CONNACK and the most it
//     assigns towards a client (never more than the client's CONNECT
//     allows). An inbound alias over the maximum gets DISCONNECT 0x94, an
//     empty topic with an alias never set DISCONNECT 0x82. Outbound, edged
//     assigns aliases in the writer, in the order packets leave: the first
//     PUBLISH of a topic carries topic and alias, the next ones an empty
//     topic and the alias; topics shorter than 4 bytes are not aliased
//     (the alias costs 3); when all are taken the oldest assignment is
//     reused (round robin). Both mappings belong to the connection and
//     start empty on each one [MQTT-3.3.2-7].
//   - Subscription identifiers: a message matching several subscriptions
//     of one session is sent once, with the QoS of the highest and every
//     matching identifier [MQTT-3.3.4-3] [MQTT-3.3.4-5] (the spec also
//     allows one copy per subscription; one copy saves bytes and keeps
//     3.1.1's single delivery). Retain As Published holds if any matching
//     subscription has it. Queued messages keep their identifiers on disk
//     (persist.Queued.SubIDs); a retained message sent for a new
//     subscription carries that subscription's identifier.
//   - No Local is applied to live messages by client id [MQTT-3.8.3-3];
//     retained messages sent on subscribe are the client's own state and
//     are sent whoever published them, as Mosquitto does.
//   - Reason codes: a PUBLISH refused by the ACL gets PUBACK or PUBREC 0x87
//     (after PUBREC 0x87 no PUBREL follows and the packet id is free); a
//     refused filter SUBACK 0x87, an invalid one 0x8F, one over
//     max_subscriptions 0x97 (all 0x80 for 3.1.x). A PUBLISH with payload
//     format 1 whose payload is not UTF-8 is refused with PUBACK/PUBREC
//     0x99 (QoS 0: dropped), as Mosquitto does: the check is optional
//     [MQTT-3.3.2.3.2] but a subscriber relying on the indicator must be
//     able to trust it. edged does not send 0x10 (no matching
//     subscribers): a publisher learns nothing of other clients'
//     subscriptions, and every success looks the same. PUBACK and PUBREC
//     carry no properties (no reason strings).
//   - UNSUBACK gives 0x11 (no subscription existed) for a filter the
//     session did not have.
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
//   - A client id takeover closes the old connection. Its will is not
//     published when the new connection continues the session (both
//     connections with clean session 0, same identity): the client is
//     back, as Mosquitto 2 decides. It is published when either side is
//     clean, or when the session is discarded because another identity
//     took the id (see "Access control").
//   - An acknowledgement of the wrong kind for a message in flight (PUBREC
//     or PUBCOMP for QoS 1, PUBACK for QoS 2, PUBCOMP before PUBREC) is a
//     protocol violation that closes the connection, as in Mosquitto 2;
//     the message stays in flight for the next connection. One for a
//     packet id not in flight is ignored (a late duplicate).
//   - A client's QoS 2 PUBLISH is forwarded after its PUBREC is queued and,
//     with a Store, only once the commit that stores its packet id (and the
//     message, for persistent subscribers) is durable: every write it
//     causes, to any subscriber, clean or persistent, waits for that commit
//     (route, session.held), and QoS 1/2 messages to the same subscribers
//     wait behind it to keep the order. A crash before the commit loses
//     the message with no subscriber having seen it and the publisher
//     sends it again; after the commit a re-send is only acknowledged. So
//     no exactly-once subscriber gets it twice. QoS 0 deliveries of other
//     messages are not held and may overtake it (order is kept per QoS of
//     the published messages [MQTT-4.6.0-6]). Mosquitto 2 goes further and
//     forwards only on PUBREL (one more round trip); edged forwards on the
//     commit, which already makes the packet id durable.
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
//     never written to the store. $SYS/broker/load/... are Mosquitto's
//     moving averages (per minute, over 1, 5 and 15 minutes, weighted with
//     exp(-elapsed/window)); edged's messages/* count PUBLISH packets
//     (Mosquitto's count every packet). clients/maximum is the peak of
//     connected clients since start, clients/active and inactive are the
//     connected clients and the offline persistent sessions, heap/current
//     the Go heap in use.
//   - An operator's Disconnect closes the connection as a network loss: the
//     will is published [MQTT-3.1.2-8]. DeleteSession discards the session
//     in memory and in the store, disconnecting its client first.
//   - A Watch (the status page's topic browser) sees live messages as a QoS 0
//     subscription would, with no session, queue or retained messages; with
//     an identity, the ACL decides as for a client subscribing and reading.
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
//   - Shared subscriptions "$share/{group}/{filter}" work for every
//     protocol version (shared.go). Each message matching filter goes to
//     one member of the group: round-robin among the online members that
//     have room for it now (QoS 0: the write queue; QoS 1/2: an open
//     inflight window with nothing queued); if none has, the online
//     member with the least waiting, so a member that never reads stops
//     getting the group's messages once it is full instead of stalling
//     its share (what it holds stays in its session); if no member is
//     online, a QoS 1/2 message is queued for an offline persistent member
//     (round-robin) and a QoS 0 one is dropped, as for any offline
//     session. (Mosquitto 2 rotates through every member, offline ones
//     included, which parks messages in absent sessions while others are
//     online.) A shared subscription gets no retained messages (5.0
//     4.8.2); the Authorizer sees the filter without "$share/group/"; a
//     share name that is empty or holds "+", "#" or "/", or a missing or
//     invalid filter, gets SUBACK 0x80; UNSUBSCRIBE takes the full name;
//     the full name is stored with the session, and each membership counts
//     as a subscription on $SYS. A session that also has an ordinary
//     subscription matching the message gets that copy too.
//   - MQTT 3.1 ("MQIsdp", level 3) clients are served like 3.1.1 ones, with
//     the rules of 3.1: a client id of 1 to 23 characters (counted in
//     characters, not bytes; an empty or longer one gets CONNACK 0x02, so
//     no id is assigned), and a CONNACK whose first byte is always 0 (3.1
//     has no session present flag; a persistent session is resumed all
//     the same).
package broker
