// Package bridge forwards messages between edged and an upstream MQTT
// broker (EMQX, Mosquitto, a cloud service) with store-and-forward that
// survives any outage and restarts.
//
// # Model
//
// Out rules are a tap on the local broker (Broker.AddTap): every matching
// message is appended to the bridge's durable queue (Queue) in the same
// commit that stores it locally, before its publisher is acknowledged. The
// forwarder reads the queue in Seq order and publishes upstream with at
// most Config.Window QoS 1/2 publishes awaiting their acknowledgement. An
// entry is deleted only when its publish completed without error on a
// connection that was still up; QoS 0 entries once paho wrote them. After
// any failure the next connection starts again from the head of the queue,
// so messages go upstream in queue order and at most a window of them is
// sent twice. A drain after an outage runs at link speed (or RateLimit),
// while new messages keep being appended behind it.
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
// its own user properties, one more: DedupProperty = "<client_id>:<seq>",
// where seq is the message's queue sequence number (increasing, never
// reused, kept across restarts). A message sent twice (after a reconnect)
// carries the same value, so a consumer drops duplicates by keeping, per
// gateway, the highest seq it has processed (messages of one bridge
// arrive in seq order, a resend only repeats what followed the last
// acknowledged one):
//
//	gw, seq := split(prop(msg, "edged-seq"))   // "edged-pi-01:1234"
//	if seq <= last[gw] { return }               // a duplicate
//	process(msg); last[gw] = seq
//
// paho.mqtt.golang is the 3.1.1 transport only: a fresh client per connection,
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
// client. The Broker and Queue callbacks (tap notify, publish and delete
// done) run on the store's goroutine; they only poke channels and take the
// bridge's one mutex, which is never held while calling out.
//
// # Imports
//
// bridge must not import broker or persist: it declares Broker and Queue;
// *broker.Server is a Broker as it is, and bridge/dbqueue adapts a persist
// FIFO to Queue (for cmd/edged and the tests alike). It may import
// broker/packet (topic matching, and the 5.0 codec of link5).
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
