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
// paho.mqtt.golang is the transport only: a fresh client per connection,
// automatic reconnect off, and no paho store (see seedStore). Reconnects
// back off exponentially with jitter between Backoff.Min and Backoff.Max;
// the backoff is reset after a connection stayed up StableAfter. A
// half-open link is detected by the keepalive ping (PingTimeout) and a
// write timeout. The upstream NotificationTopic holds a retained "1" while
// the bridge is connected and "0" (its will, or published on a clean stop)
// otherwise. $SYS/broker/bridge/<name>/{state,queued,queued_bytes,
// oldest_age,dropped,sent} are published locally every SysInterval.
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
// copy of them), and broker/packet for topic matching.
//
// # Caveats
//
//   - Delivery upstream is at least once across reconnects, even for QoS 2
//     rules: a window cut off by a drop is sent again. QoS 2 is exactly
//     once within one connection. The packet ids of QoS 2 publishes cut off
//     by a drop are released with PUBREL on the next connection.
//   - A QoS 0 message is deleted once written to the socket; a drop right
//     after may lose it, as QoS 0 allows.
//   - When several out rules match a message, the first one maps it.
//   - An upstream that does not support bridge mode (mochi-mqtt, for one)
//     echoes a both rule's outgoing messages back; they are published
//     locally once more, but never sent up again.
package bridge
