// Package bridge forwards messages between edged and an upstream MQTT
// broker (EMQX, Mosquitto, a cloud service) with store-and-forward that
// survives any outage and restarts.
//
// # The PUBLISH path, serial → broker → store → bridge
//
// A bridge's out messages travel through one queue, a persist.Queue, and
// that is the one name for it (the store's bucket, $SYS "queued", the
// config's `queue:` section):
//
//  1. cmd/edged opens the queue once per bridge (OpenQueues with the
//     store's Queue method): its name (QueueName, the only place that
//     names it) and its limits (Config.Queue, a persist.QueueLimits).
//  2. New hands the queue to the broker (Broker.AddTap): a PUBLISH from a
//     client, a serial line or an in rule is routed by the broker, and for
//     every tap whose filters match and whose accept function takes it,
//     the queue's Append op joins the commit that stores the message for
//     local sessions. The publisher is acknowledged only after that
//     commit, so an acknowledged message is in the queue. The limits are
//     applied in that same transaction (drop-oldest or drop-newest,
//     counted).
//  3. After the commit the store's goroutine calls the tap's notify, which
//     wakes the forwarder.
//  4. The forwarder reads the queue (Queue.Read) in Seq order and
//     publishes upstream with at most Config.Window QoS 1/2 publishes
//     awaiting their acknowledgement. An entry is deleted (Queue.Delete)
//     only when its publish completed without error on a connection that
//     was still up; QoS 0 entries once paho wrote them. After any failure
//     the next connection starts again from the head of the queue, so
//     messages go upstream in queue order and at most a window of them is
//     sent twice. A drain after an outage runs at link speed (or
//     RateLimit), while new messages keep being appended behind it.
//  5. Every SysInterval the bridge expires its own queue (Queue.Expire,
//     MaxAge) and publishes its stats on $SYS.
//
// In rules subscribe upstream with a persistent session (clean session 0),
// so commands sent while the link was down arrive, and publish locally
// through the normal routing path with origin = the bridge's name; the tap
// skips that origin, so nothing goes back up the bridge it came from (loop
// prevention for both rules). A message is acknowledged upstream only once
// it is durable locally, in arrival order. The bridge first connects with
// protocol level 0x84 (Mosquitto's bridge mode, so the upstream does not
// echo our own publishes back); if the upstream refuses it, it uses plain
// MQTT 3.1.1 from then on.
//
// # Protocol versions
//
// Config.Protocol picks the MQTT version upstream: 3.1.1 (the default),
// 5, or auto (5, and 3.1.1 from then on, for the life of the process, when
// the upstream answers CONNACK 0x84 or the 3.1.1 return code 0x01, or
// closes a 5.0 connection before its CONNACK and then gives a 3.1.1 one
// its CONNACK; if 3.1.1 gets no CONNACK either, the upstream is down and
// the next attempt is 5 again). Both versions sit behind one
// link interface (link.go), so the forwarder, the window, the acker and
// the queue are the same code: 3.1.1 goes through paho (pahoLink), 5.0
// through edged's own codec, broker/packet (link5), since paho.mqtt.golang
// speaks only 3.1.1. paho stays for 3.1.1 for now: link5 could carry 3.1.1
// too (the codec does), but every 3.1.1 behaviour the tests pin (bridge
// mode, stale PUBREL ids, fault timings) was built on paho, and swapping it
// is a change of its own.
//
// Over 5.0 a queued message keeps what it was published with: user
// properties (in order [MQTT-3.3.2-18]), payload format, content type,
// response topic and correlation data; its Message Expiry Interval is sent
// as what is left of it [MQTT-3.3.2-6] (rounded up to whole seconds). A
// message whose expiry passed in the queue is dropped, over either
// version [MQTT-3.3.2-5], and counted (Drops.Expired). The forwarder's
// window is min(Window, the upstream's Receive Maximum) [MQTT-3.3.4-7]; a
// message larger than the upstream's Maximum Packet Size is dropped with a
// log line and counted (Drops.Oversize) instead of blocking the queue
// [MQTT-3.1.2-24]; one the upstream refuses with a PUBACK/PUBREC reason
// code of 0x80 or more likewise (Drops.Refused), since sending it again
// would be refused again. QoS is capped at the upstream's Maximum QoS and
// the retain flag dropped where Retain Available is 0. In rules use Clean
// Start 0 with a Session Expiry Interval (SessionExpiry, default 24h) for
// the persistent upstream session. Loop prevention is No Local on the
// upstream subscriptions [MQTT-3.8.3-3] (bridge mode 0x84 is a 3.1.1 thing)
// with Retain As Published, as bridge mode keeps the retain flag. A
// message coming down keeps its properties into the broker when the Broker
// implements Publisher5 (the encoded property block without message expiry
// and subscription identifiers, and the expiry as a time); otherwise it is
// published without them. A broker sending a topic alias (we allow none)
// or exceeding our Receive Maximum (Window) is a protocol error that drops
// the connection.
//
// # End-to-end de-duplication
//
// With DedupProperty set, every message forwarded over 5.0 carries, after
// its own user properties, one more: DedupProperty = "<client_id>:<seq>"
// for the normal queue and "<client_id>:high:<seq>" for the high queue of
// priority: high rules, where seq is the message's sequence number in its
// queue (increasing, never reused, kept across restarts). The two queues
// number their entries independently, hence the queue in the value: no
// value is ever sent for two different messages. A message sent twice
// (after a reconnect) carries the same value, so a consumer drops
// duplicates by keeping, per stream (everything before the last ':'), the
// highest seq it has processed (the messages of one queue arrive in seq
// order, a resend only repeats what followed the last acknowledged one;
// the high and normal streams interleave):
//
//	stream, seq := splitLast(prop(msg, "edged-seq")) // "edged-pi-01:1234", "edged-pi-01:high:77"
//	if seq <= last[stream] { return }                 // a duplicate
//	process(msg); last[stream] = seq
//
// paho.mqtt.golang is the 3.1.1 transport only: a fresh client per connection,
// automatic reconnect off, and no paho store (see seedStore). Reconnects
// back off exponentially with jitter between Backoff.Min and Backoff.Max;
// the backoff is reset after a connection stayed up StableAfter. A
// half-open link is detected by the keepalive ping (PingTimeout) and a
// write timeout. The upstream NotificationTopic holds a retained "1" while
// the bridge is connected and "0" (its will, or published on a clean stop)
// otherwise. $SYS/broker/bridge/<name>/{state,queued,queued_bytes,
// oldest_age,dropped,sent,dropped_expired,dropped_oversize,dropped_refused}
// (and those of the section below) are published locally every
// SysInterval.
//
// # Concurrency
//
// Run owns everything it starts: the connection loop runs on the caller's
// goroutine, with one goroutine for $SYS and, per connection, one that
// sends acknowledgements upstream; paho's own goroutines end with the
// client. The Broker and queue callbacks (tap notify, publish and delete
// done) run on the store's goroutine; they only poke channels and take the
// bridge's one mutex, which is never held while calling out.
//
// # Imports
//
// bridge must not import broker: it declares Broker, and *broker.Server is
// one as it is. It imports persist, a leaf, for the queue it is handed
// (persist owns the queue, its entries, limits and stats: the bridge has no
// copy of them), and broker/packet for topic matching and the 5.0 codec
// of link5.
//
// # Failover, priorities, offline QoS 0, lazy start
//
// Config.Addresses are tried in order; the backoff is waited once all of
// them failed. With failover: priority a lost connection starts again from
// the first address, and a connection to another one checks the first
// every PrimaryRetry (dial, TLS handshake, then silence as a server waiting
// for CONNECT keeps; no CONNECT is sent, so no session is disturbed) and
// switches back once it answers. round-robin moves on at each
// reconnection. All addresses share the queues: every connection starts at
// their head, so a switch loses and reorders nothing (a window may be sent
// to both). Bridge.Address and $SYS .../address show the address in use.
//
// Rules with priority: high feed a second queue (HighQueueName), appended
// in the commit that stores the message like the normal one. Before each
// publish the forwarder looks for new high entries (a channel poll, no
// store read unless the high tap appended), so a high message goes up
// behind at most the Window publishes in flight, not behind the backlog.
// Order is kept within a priority, not across them.
//
// offline_qos0 applies to messages that go upstream at QoS 0, while the
// bridge is not connected (also while a lazy bridge idles): drop does not
// queue them, latest keeps the newest per topic in memory (bounded by the
// queue's limits) and queues them, before any newer QoS 0 message, when
// the link comes up; queue (the default) queues them like the others.
//
// start: lazy connects when the queues hold LazyThreshold messages, a high
// message is queued, or LazyInterval passed, and disconnects cleanly after
// IdleTimeout with nothing to send. ByteRateLimit bounds bytes/s beside
// RateLimit. $SYS .../sent_bytes and sent_bytes_hour count the topic and
// payload bytes acknowledged upstream.
//
// # QoS 2 across reconnects: at least once, and why not exactly once
//
// Delivery upstream stays at least once across reconnects, even for QoS 2
// rules; QoS 2 is exactly once within one connection. Exactly once across
// a reconnect needs the sender to resend an unfinished QoS 2 PUBLISH with
// its original packet identifier, or its PUBREL if PUBREC came
// [MQTT-4.4.0-1], and not to reuse the identifier until PUBCOMP
// [MQTT-4.3.3-1]; the receiver then does not deliver the duplicate
// [MQTT-4.3.3-2] (Mosquitto does not). edged does not do this, for these
// reasons:
//
//   - The packet identifier of each QoS 2 entry, and whether its PUBREC
//     came, would have to be durable before the PUBLISH leaves: if edged
//     crashes after sending and before committing, the resend goes out
//     under a new identifier and is a duplicate. That is a store commit
//     (an fsync on the SD card) per window on the hot path of every QoS 2
//     rule.
//   - paho chooses packet identifiers itself and cannot publish under a
//     given one. A replay through its Store (as seedStore does for
//     PUBRELs) works, but paho then hands the replayed identifiers to new
//     publishes (see TestStalePubrelIDsNotReused), so nothing new could be
//     sent until every replayed publish completed: a reconnect would stall
//     the drain on the slowest upstream answer.
//   - The state lives in one upstream session. After a failover the other
//     broker has no record of the identifiers, and an upstream that
//     restarts without persistence forgets them too: a duplicate is then
//     inevitable whatever the bridge keeps.
//
// What edged does instead: the identifiers of QoS 2 publishes cut off by a
// drop are released with PUBREL on the next connection (so the upstream
// does not drop a new message that reuses one), and the window is sent
// again, at most Window duplicates per drop. Exactly once end to end is
// better served by de-duplication at the consumer, which survives
// failover, restarts of either side and QoS 1: every entry has a Seq,
// durable and never reused in its queue, and forward holds (queue name,
// Seq) where it calls client.publish. dedup_property sends it over MQTT
// 5.0 as a user property: "<client_id>:<seq>" for the normal queue and
// "<client_id>:high:<seq>" for the high one, whose Seqs count
// independently (see dedupValue), so no value names two messages.
//
// # Caveats
//
//   - A QoS 0 message is deleted once handed to the connection's write
//     buffer (bufConn); a drop right after may lose it, as QoS 0 allows.
//   - Acknowledged entries are deleted in batches (deleteBatch) while
//     publishes are in flight; a crash of edged resends those not yet
//     deleted (at least once), as it does for the window.
//   - When several out rules match a message, the first one maps it.
//   - An upstream that does not support bridge mode (mochi-mqtt, for one)
//     echoes a both rule's outgoing messages back; they are published
//     locally once more, but never sent up again.
package bridge
