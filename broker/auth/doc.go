// Package auth implements the broker's Authenticator and Authorizer from
// files in Mosquitto's formats, so that users can bring their existing
// password_file and acl_file: Passwords checks user names and passwords at
// CONNECT, ACL decides on every PUBLISH and SUBSCRIBE.
//
// It imports broker (for the interfaces it implements) and broker/packet
// only; cmd/edged loads the files, sets broker.Config.Auth and ACL, and
// calls Reload on SIGHUP.
//
// # Concurrency
//
// Passwords and ACL are safe for concurrent use. Reload parses the whole
// file first and swaps it in with one atomic store, so a check sees either
// the old table or the new one; a file with any bad line is not loaded and
// the old table stays in use. After an ACL reload edged has the broker
// re-check granted subscriptions (broker.Server.Reauthorize).
//
// # Password file
//
// One entry per line, as written by mosquitto_passwd (Mosquitto 1.6 and
// 2.x) and by WritePasswordEntry:
//
//	username:$7$<iterations>$<salt>$<hash>   PBKDF2-HMAC-SHA512 (Mosquitto 2.x default)
//	username:$6$<salt>$<hash>                SHA-512 of password then salt (Mosquitto 1.x)
//
// salt and hash are standard base64 with padding; the hash is 64 bytes.
// Blank lines and lines starting with '#' are ignored, white space around
// the user name and the hash is trimmed, and every other line is an error
// naming the file and line (Mosquitto skips some of them silently). A user
// may appear once. Passwords are compared in constant time, and an unknown
// user costs as much as a wrong password.
//
// # Iteration count
//
// HashPassword uses DefaultIterations (1000) PBKDF2 rounds, against
// Mosquitto's 101; the count is stored in each hash, so both read both.
// Each CONNECT with a password pays the cost once, and a client that does
// not know the password can make the broker pay it, so the count is a
// trade between offline cracking of a stolen file and CPU spent per
// CONNECT on the smallest target. Measured for one verification:
//
//	iterations   amd64 (AMD EPYC 2.6 GHz)   GOARCH=arm GOARM=6 under qemu-arm on that host
//	       101        0.06 ms                      1.1 ms
//	      1000        0.52 ms                       11 ms
//	     10000        5.8 ms                       150 ms
//
// (from BenchmarkAuthenticate). Emulation only approximates a Raspberry Pi
// Zero (one 1 GHz ARM1176 core, 32-bit, so SHA-512 is slow); taking the
// emulated figures as its order of magnitude, 10000 rounds would spend
// about 150 ms of its only core on every CONNECT, a reconnect storm of a
// few dozen devices would stall the broker for seconds, and failed logins
// would be a cheap way to burn its CPU. 1000 rounds is ten times
// Mosquitto's work factor and keeps CONNECT in the order of 10 ms there.
// Use HashPasswordIterations for a different count.
//
// # ACL file
//
// A subset of Mosquitto's acl_file:
//
//	# comment
//	topic [read|write|readwrite|deny] <filter>     rule for the current user block
//	user <name>                                    starts the block of user <name>
//	pattern [read|write|readwrite|deny] <filter>   rule for every client; %c and %u substituted
//
// The access defaults to readwrite. topic rules before the first user
// line apply to clients without a user name; a user's rules apply to
// clients that connected with that name (several blocks of one user are
// merged). pattern rules apply to all clients wherever they appear, with
// %c replaced by the client id and %u by the user name; a %u pattern does
// not apply to a client without a user name. Anything else is an error
// naming the file and line.
//
// A client may publish to a topic if a write rule matches it, and receive
// a message if a read rule matches its topic, unless a deny rule matches
// the topic: deny wins. With no matching rule, access is refused.
//
// Subscriptions work as Mosquitto's ACL, which checks each message at
// delivery: a filter is granted when a read rule could match one of its
// topics, and refused (SUBACK 0x80) when no read rule could, or a deny rule
// matches every topic the filter can match. So with "topic read #" and
// "topic deny test/nosubscribe", a dashboard's "#" is granted and never
// receives test/nosubscribe, and only the filter "test/nosubscribe" itself
// is refused. (Mosquitto 2.0.11, as in Debian 12, even grants filters no
// rule could match, and delivers nothing through them; edged refuses
// them, so the client learns at once.)
//
// AuthorizeSubscription tells the broker which granted filters need that
// check at delivery: none does when a read rule covers the whole filter and
// no deny rule could match any of its topics (GrantAll). "Covers" is
// decided level by level: a rule '#' covers the rest of the filter; a rule
// '+' covers one filter level that is not '#' (a filter '+' included);
// other levels must be equal; a filter '#' is covered only by a rule '#'.
// So "sensors/#" covers "sensors/+/temp" and "sensors/#", but "sensors/+"
// does not cover "sensors/#". Several rules that only together cover a
// filter leave it to the check at delivery, which is exact.
//
// The broker re-checks granted subscriptions when a client resumes its
// session and, in edged, after Reload on SIGHUP.
//
// As in topic matching [MQTT-4.7.2-1], a rule starting with '+' or '#'
// does not match or cover topics starting with '$': reading $SYS needs a
// rule such as "topic read $SYS/#".
//
// # Substitution safety
//
// A client id or user name containing '+', '#' or '/', or putting '$' at
// the start of a pattern that did not begin with '$', could widen a
// pattern. For such a client the pattern grants nothing, and a deny
// pattern denies everything (it fails closed).
package auth
