// Package persist stores edged's durable state on local disk in one bbolt
// file: persistent sessions with their subscriptions, outbound queues,
// inflight and inbound QoS 2 state, retained messages, and the queues of
// the bridges (Queue, see fifo.go; bridge/doc.go tells their whole story).
// It also has an in-memory Store (Memory) with the same semantics.
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
// Load, ReadSessionQueue, ReadQueue, QueueStats and Stats read in bbolt
// read-only transactions and may run concurrently with the writer; they
// see the durable state, not ops still queued.
//
// Ops are applied leniently so that one client's bad op never fails the
// batch of others: an op that refers to something absent (a Dequeue of a
// message not queued, an Enqueue of a message never stored) is a no-op.
// An invalid op (an empty client id, topic or queue name, one longer than
// 65,535 bytes, a QoS or retain handling above 2, a subscription
// identifier out of range) refuses its whole Commit call with
// ErrInvalidOp before anything of it is applied, so a caller that waits for
// done never acknowledges what was not stored; other calls in the same
// transaction are not affected. MQTT's codec cannot produce such an op.
//
// # MQTT 5.0
//
// The store keeps what a 5.0 session needs across a restart, without the
// MQTT codec: a Message's Properties are the PUBLISH's encoded property
// block as an opaque byte string (nil for 3.1.x, kept apart from empty),
// and its Expiry an absolute time; a Subscription has the 5.0 options and
// identifier; a queued message (Enqueue, Queued) the identifiers of the
// subscriptions it matched; a Session its protocol Version, its expiry
// interval and an optional will (SetWill) with the time it is due, so a
// delayed will survives a restart. A 3.1.x client's records are stored
// exactly as in format 2. Properties count in Message.Size, and so
// against byte limits. Check verifies the framing of the 5.0 fields (flags,
// lengths, retain handling, identifier ranges); a property block itself is
// covered by its record's checksum only, as persist does not parse it.
//
// Expiry: persist never drops a message by itself except an expired
// retained one, which Load leaves out and deletes. The broker decides the
// rest, with Message.Expired and Session.ExpiresAfter: a session is
// loaded past its expiry (its will may be due first); a queued message is
// returned expired or not, and the broker drops a waiting one with
// Dequeue as it reads it [MQTT-3.3.2-5] (a sent one is completed); a bridge
// queue entry past its Expiry is dropped by the bridge with QueueDelete
// (MaxAge still applies). An expiry interval applies to a session of
// Version 5 or later only: a 3.1.x session, and one stored before format 3
// (Version 0), never expires by itself, as before.
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
// ErrCorrupt on damage to the page structure and never starts empty;
// damaged records are set aside (see Damage); Check lists both. Stale but
// well-formed records (checksums included) can go unnoticed. Close syncs.
//
// When Open creates the file it also fsyncs its directory, so the file
// itself survives a power loss after the first acknowledged commit. (The
// directory holding it, data_dir, is created by the caller.)
//
// # Bucket layout (format version 3)
//
// All integer keys are big-endian, so key order is numeric order.
//
//	meta/        format → uint64 version (never sealed); next_msg_id → uint64;
//	             rollback → varint time, the last silent rollback found by Open
//	messages/    msg id (uint64) → message (flags, time, [expiry], topic,
//	             [properties], payload)
//	refs/        msg id (uint64) → uint64 count of session queues holding it
//	sessions/    name key(client id) → bucket
//	               name → client id (hashed keys only)
//	               info → LastSeen, an empty subscription list, [Version,
//	                      ExpiryInterval]
//	               owner → 0 (no user name) or 1 + user name; absent in
//	                        sessions stored before owners were recorded
//	               will → Due, the will as a message; absent without one
//	               stats → count and bytes of the queue (as a queue's
//	                        stats); absent until the first Enqueue
//	               subs/    seq (uint64) → options (QoS, 5.0 options), [ID], filter
//	               queue/   msg id (uint64) → QoS, packet id, flags (pubrel,
//	                        retain), [subscription ids]
//	               inbound/ packet id (uint16) → (unused byte)
//	retained/    name key(topic) → message (holds the topic)
//	queues/      name key(queue name) → bucket (its bbolt sequence is the last Seq)
//	               name → queue name (hashed keys only)
//	               stats → count, bytes, dropped, expired
//	               entries/ seq (uint64) → message
//	damaged/     seq (uint64) → time, what, the record as read (created when
//	             a damaged record is first set aside)
//
// Fields in brackets are format 3's, present only when set (encoding.go,
// sessionqueue.go): behind a flag bit format 2 never set, or as trailing
// bytes format 2 never wrote. A record without them (any 3.1.x one) is
// encoded exactly as in format 2.
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
// Name keys (key.go, nameKey): a client id, topic or queue name of at most
// 1,024 bytes is its own key, as in format 1. A longer one (bbolt's keys
// stop at 32 KiB, MQTT strings at 65,535 bytes) is keyed by 0xFF, the first
// 16 bytes of its SHA-256 and a probe byte; 0xFF never starts a UTF-8
// name. The full name is kept with the record and checked against the key
// on every read; names whose hashes collide take the next free probe byte,
// and a lookup compares the stored name of every key with the hash.
//
// Checksums (checksum.go): every value but meta/format is sealed, that is
// followed by the CRC-32C (Castagnoli) of its key and value, 4 bytes
// big-endian. bbolt checksums only its meta pages, so without the seal a
// damaged data page is read as a valid record. The seal wraps the record
// encodings (encoding.go), which do not know about it.
//
// Format 1 (no checksums, every name its own key, up to 32 KiB, a
// session's subscriptions as a list in its info record, no session queue
// stats) is migrated by Open in one write transaction (migrate.go), in
// this order: each session's subscriptions move to its subs bucket (Seq 1,
// 2, ...) and its queue is counted into a stats record, reading the
// records as format 1 wrote them; then every record is sealed; then names
// over 1,024 bytes move to their hashed keys. Check reads every format.
// Open refuses a format newer than its own with ErrNewerFormat, so an
// older edged refuses a migrated file.
//
// Format 2 is migrated to 3 by changing its version only: every format 2
// record is a format 3 record with the 5.0 fields zero, checksum and all
// (migrate.go). The new version keeps an edged of format 2, which would
// take a record with 5.0 fields for damage, from opening the file. A
// format 1 file is migrated to 2 and then to 3 in the same transaction.
//
// # Damage and maintenance
//
// Open refuses a damaged, truncated or foreign file with ErrCorrupt and
// never starts empty in its place: only a file of exactly bbolt's 4 initial
// pages may have no buckets. An existing file that is empty or shorter than
// two pages is damage too; Open creates a missing file whole (in a
// temporary file renamed into place), so a crash never leaves an empty one.
// Before bbolt reads the page tree, Open (and Check and Compact) walk it
// with plain reads under the file lock (verifyPages: page ids, types,
// element bounds, no page reached twice, the freelist), so a damaged file
// cannot fault the process or loop.
//
// Damaged records. bbolt's page structure is checked as above; inside it,
// a record whose checksum does not match (or that does not decode) is never
// delivered as if whole. Load, ReadSessionQueue and ReadQueue skip it, log
// it at Error level with its session, topic or queue, count it in
// Stats.Damaged, and set it
// aside (aside.go): the writer moves the record, as read, into the damaged
// bucket (at most 1,000, oldest dropped first) with what it was and when,
// and removes it from its place, so the store is consistent again. Check
// lists damage still in place as problems and set-aside records as notes
// (CheckReport). A damaged queued message or queue entry is dropped from
// its queue (the broker, finding a session queue shorter than counted,
// carries on with what is stored); a damaged retained message is dropped;
// a damaged subscription is dropped; a session with a damaged info record
// keeps its queue and subscriptions and loads with LastSeen 0 and Version
// 0 (the broker stores it again); a session with a damaged owner record loads without
// an owner, like one stored before owners were recorded, so the next
// client to resume it adopts it; a session with a damaged will loads
// without it (the will is not published); a damaged inbound packet id is forgotten
// (a resent QoS 2 PUBLISH with it may be delivered twice); a session under
// a hashed key whose name record is damaged is set aside whole, with its
// queue. A record rewritten since it was read is sound and stays. Derived
// records are repaired: damaged queue stats (of a FIFO or a session) are
// counted again from the entries (a FIFO's dropped and expired restart at
// 0), and so are a session's stats when one of its queue entries is set
// aside; a damaged reference count is counted again from the session
// queues. Open starts on
// such a file: what is intact is delivered, and nothing more can be
// recovered from a damaged record.
//
// Silent rollback. bbolt writes the meta page of transaction t to page
// t%2 and opens a file with a damaged newest meta page from the other one,
// one transaction back, without an error. Open detects a damaged meta page
// next to a valid one (meta.go) and logs, at Error level, which
// transaction was lost ("store rolled back", lost_txid), or at Warn level
// if the damaged page was the older one. It then starts rather than
// refusing: the same state follows a power loss while bbolt wrote the meta
// page, when the lost transaction was never acknowledged, and refusing
// would leave the operator only the choice of moving the whole file aside.
// Check reports the damaged page, and the lost transaction, as a problem
// while it is on disk. Open's own first commit rewrites it, so Open also
// keeps the description in meta/rollback (the latest one), which Check
// reports as a note from then on.
//
// Check (`edged db check`) lists the problems and Compact (`edged db
// compact`) rewrites the file without free pages. Open compacts by itself
// when more than half of a file over 16 MiB is free.
//
// # Caveats
//
// Options.MaxSize is enforced by bbolt when the file grows. bbolt maps the
// file in powers of two, so on 32-bit targets Open lowers MaxSize to 512
// MiB (and logs it): a larger file needs one contiguous 1 GiB mapping. If
// mapping a larger file still fails, the commit fails with ErrFull, and the
// store stops if bbolt lost its mapping.
//
// Migrating a format 1 file rewrites every record in one transaction: it
// needs free disk space (and memory) of the order of the live data, and
// MaxSize room for the copy-on-write pages; if that fails, Open fails and
// the file is unchanged.
package persist
