// Package persist stores edged's durable state on local disk in one bbolt
// file: persistent sessions with their subscriptions, outbound queues,
// inflight and inbound QoS 2 state, retained messages, and the durable
// FIFO queues of the bridges. It also has an in-memory Store (Memory) with
// the same semantics.
//
// persist is a leaf: it imports nothing from edged, and has its own record
// types (record.go) so the disk format does not follow the MQTT codec.
//
// # Model
//
// The broker keeps the authoritative state in memory. persist is a
// write-behind log of its mutations (Commit with a list of Ops) and a
// loader at start-up (Load). Commit only appends to a queue guarded by a
// mutex and pokes a 1-buffered channel, so callers may call it while
// holding their own locks.
//
// # Concurrency
//
// Each store has exactly one writer goroutine. It takes everything queued,
// up to Options.BatchSize Commit calls, applies it in one bbolt write
// transaction (group commit), and then calls the done callbacks of those
// calls in commit order. The ops of successive Commit calls are applied in
// call order. A done callback:
//   - is called exactly once, never from inside Commit;
//   - runs on the writer goroutine, so it must be quick, must not block,
//     and must not call Close or ExpireQueues (it may call Commit);
//   - receives nil once the ops are durable per the sync mode, or the
//     error of the failed transaction (wrapping ErrFull when the file
//     reached Options.MaxSize or the disk is full). A failed batch is
//     retried one Commit call per transaction when the cause is ErrFull, so
//     calls that free space (Dequeue, DeleteSession, QueueDelete) succeed.
//     The store keeps working after ErrFull and after an op that fails. Any
//     other write failure (an I/O error while writing or syncing, which may
//     have left a new meta page behind) stops the store: every later commit
//     fails with an error wrapping that cause until edged is restarted, so
//     nothing more is acknowledged.
//
// Load, ReadSessionQueue, ReadQueue, QueueStats and Stats read in bbolt read-only
// transactions and may run concurrently with the writer; they see the
// durable state, not ops still queued.
//
// Ops are applied leniently so that one client's bad op never fails the
// batch of others: an op that refers to something absent (a Dequeue of a
// message not queued, an Enqueue of a message never stored) is a no-op, and
// an invalid op (an empty or over-long client id or topic, a QoS above 2)
// is skipped and logged, rate-limited.
//
// # Durability
//
// SyncBatch (default): one fsync per batch; a done callback with nil means
// the ops survive power loss. This is what edged's "never lose an
// acknowledged message" promise rests on.
// SyncAlways: one transaction and fsync per Commit call.
// SyncOff: bbolt NoSync and NoFreelistSync; done runs when the transaction
// is in the page cache, so a crash of edged (kill -9) loses nothing, but a
// power loss can lose recent commits and can leave the file damaged (bbolt
// may write a meta page before the pages it refers to). Open fails with
// ErrCorrupt on the damage it detects (page structure, records Load
// decodes), never starts empty, and Check lists it; stale but well-formed
// records can go unnoticed. Close syncs.
//
// When Open creates the file it also fsyncs its directory, so the file
// itself survives a power loss after the first acknowledged commit. (The
// directory holding it, data_dir, is created by the caller.)
//
// # Bucket layout (format version 2)
//
// All integer keys are big-endian, so key order is numeric order.
//
//	meta/        format → uint64 version; next_msg_id → uint64
//	messages/    msg id (uint64) → message (flags, time, topic, payload)
//	refs/        msg id (uint64) → uint64 count of session queues holding it
//	sessions/    client id → bucket
//	               info → LastSeen (and an empty subscription list)
//	               owner → 0 (no user name) or 1 + user name; absent in
//	                        sessions stored before owners were recorded
//	               stats → count and bytes of the queue (as a queue's stats)
//	               subs/    seq (uint64) → QoS, filter
//	               queue/   msg id (uint64) → QoS, packet id, flags (pubrel, retain)
//	               inbound/ packet id (uint16) → (unused byte)
//	retained/    topic → message
//	queues/      queue name → bucket (its bbolt sequence is the last Seq)
//	               stats → count, bytes, dropped, expired
//	               entries/ seq (uint64) → message
//
// A message is stored once and referenced from every session queue it was
// routed to; it is deleted with its last reference. Check verifies the
// reference counts and each session's queue stats.
//
// A subscription is one record keyed by a sequence number the caller
// assigns, so a SUBSCRIBE writes one small record, not the session's list,
// and a filter of any length is a value. A session's queue keeps its count
// and bytes in its stats record, updated in the transaction of each Enqueue
// and Dequeue: Load reads the sessions and the sent entries at the head of
// each queue (to be re-sent), not the queued messages, which the broker
// reads with ReadSessionQueue as a client drains them.
//
// Format 1 kept a session's subscriptions as a list in its info record and
// had no queue stats; Open migrates such a file in place (and writes
// version 2, which an older edged refuses with ErrNewerFormat).
//
// # Damage and maintenance
//
// Open refuses a damaged, truncated or foreign file with ErrCorrupt and
// never starts empty in its place: only a file of exactly bbolt's 4 initial
// pages may have no buckets. Before bbolt reads the page tree, Open (and
// Check and Compact) walk it with plain reads under the file lock
// (verifyPages: page ids, types, element bounds, no page reached twice, the
// freelist), so a damaged file cannot fault the process or loop. Check
// (`edged db check`) lists the problems and Compact (`edged db compact`)
// rewrites the file without free pages. Open compacts by itself when more
// than half of a file over 16 MiB is free.
//
// # Caveats
//
// Options.MaxSize is enforced by bbolt when the file grows. bbolt maps the
// file in powers of two, so on 32-bit targets Open lowers MaxSize to 512
// MiB (and logs it): a larger file needs one contiguous 1 GiB mapping. If
// mapping a larger file still fails, the commit fails with ErrFull, and the
// store stops if bbolt lost its mapping.
package persist
