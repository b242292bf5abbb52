package auth

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/edged/edged/broker"
	"github.com/edged/edged/broker/packet"
)

const fuzzPath = "fuzz.conf"

// checkLineErrors checks that err joins only *LineError values with the
// file's path and a line number of text, each formatted path:line: ...
func checkLineErrors(t *testing.T, err error, text string) {
	t.Helper()
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("error is not joined: %T %v", err, err)
	}
	lines := strings.Count(text, "\n") + 1
	for _, e := range j.Unwrap() {
		var le *LineError
		if !errors.As(e, &le) || le != e {
			t.Fatalf("not a *LineError: %T %v", e, e)
		}
		if le.Path != fuzzPath || le.Line < 1 || le.Line > lines {
			t.Fatalf("bad location %s:%d (%d lines): %v", le.Path, le.Line, lines, le)
		}
		if want := fmt.Sprintf("%s:%d: ", fuzzPath, le.Line); !strings.HasPrefix(le.Error(), want) {
			t.Fatalf("error %q does not start with %q", le, want)
		}
		if !errors.Is(le, ErrSyntax) && !errors.Is(le, ErrUnknownHash) && !errors.Is(le, ErrDuplicateUser) &&
			!errors.Is(le, ErrInvalidIterations) {
			t.Fatalf("error wraps no sentinel: %v", le)
		}
	}
}

// fileSeed returns the text of a test data file, a seed.
func fileSeed(f *testing.F, name string) string {
	b, err := os.ReadFile(name)
	if err != nil {
		f.Fatal(err)
	}
	return string(b)
}

// topicUnder returns a topic name matched by filter f: each '+' level
// becomes x, a '#' level becomes x.
func topicUnder(f string) string {
	ls := strings.Split(f, "/")
	for i, l := range ls {
		if l == "+" || l == "#" {
			ls[i] = "x"
		}
	}
	return strings.Join(ls, "/")
}

// FuzzACL holds the ACL parser and Allow to their contract: no panic on
// any file; every error is a *LineError at a line of the file; Allow never
// panics for any client and topic; and subscribe checks are consistent: a
// filter allowed for subscription allows every topic name it matches
// (nothing the rules refuse can be reached through a wider filter).
// A filter fully granted (GrantAll) lets every topic name it matches be
// read without a check at delivery, and a readable topic name is never
// unreachable: every filter matching it is granted.
func FuzzACL(f *testing.F) {
	acl := fileSeed(f, "testdata/acl")
	f.Add(acl, "dev1", "alice", true, "sensors/+/temp")
	f.Add(acl, "dev1", "", false, "devices/dev1/#")
	f.Add(acl, "a/b", "bob", true, "cmd/x/set")
	f.Add(acl, "+", "u%c", true, "users/+/inbox/#")
	f.Add(acl, "$x", "", false, "$x/#")
	f.Add("topic\nuser\npattern deny\ntopic read a/#/b\nbogus x\n", "c", "u", true, "#")
	f.Add("pattern deny %u/%c/#\npattern write +/%c\ntopic readwrite $SYS/#\n", "c", "u", true, "$SYS/a")
	f.Add("user  x y \r\ntopic\tdeny\t+/+\n", "", "x y", true, "a/b")
	f.Fuzz(func(t *testing.T, text, clientID, username string, hasUser bool, topic string) {
		if len(text) > 8192 {
			return
		}
		r, err := parseACL(fuzzPath, text)
		if err != nil {
			if r != nil {
				t.Fatal("rules returned with an error")
			}
			checkLineErrors(t, err, text)
			return
		}
		if !hasUser {
			username = ""
		}
		a := &ACL{path: fuzzPath}
		a.rules.Store(r)
		c := &broker.ClientInfo{ClientID: clientID, Username: username, HasUsername: hasUser}
		a.Allow(c, broker.Publish, topic)
		a.Allow(c, broker.Read, topic)
		a.Allow(c, broker.Access(0), topic)
		grant := a.AuthorizeSubscription(c, topic)
		if sub := a.Allow(c, broker.Subscribe, topic); sub != (grant != broker.GrantNone) {
			t.Fatalf("Allow(Subscribe, %q) = %v, but grant %d", topic, sub, grant)
		}
		if !packet.ValidTopicFilter(topic) {
			return
		}
		name := topicUnder(topic)
		if !packet.ValidTopicName(name) || !packet.MatchTopic(topic, name) {
			return
		}
		readable := a.Allow(c, broker.Read, name)
		if grant == broker.GrantAll && !readable {
			t.Fatalf("subscribe %q granted in full, but %q which it matches is not readable", topic, name)
		}
		if readable && grant == broker.GrantNone {
			t.Fatalf("%q is readable, but subscribing to %q which matches it is refused", name, topic)
		}
	})
}

// maxFuzzIterations bounds the PBKDF2 work of one fuzz input; a fuzzed
// "$7$999999999$..." entry is valid but would take minutes to verify.
const maxFuzzIterations = 2000

// FuzzPasswords holds the password file parser to its contract: no panic
// on any file; every error is a *LineError at a line of the file; every
// parsed entry can be verified against any password without panicking,
// and Authenticate never accepts a user the file does not name. It also
// checks that a fresh hash of the fuzzed password, as WritePasswordEntry
// stores it, verifies that password and no other.
func FuzzPasswords(f *testing.F) {
	f.Add(fileSeed(f, "testdata/mosquitto.passwd"), "alice", []byte("secret"))
	f.Add(fileSeed(f, "testdata/mosquitto.passwd"), "erin", []byte("ünï:cøde"))
	f.Add("a:$7$1$AA==$"+strings.Repeat("A", 86)+"==\n", "a", []byte(""))
	f.Add("a:$6$AA==$"+strings.Repeat("A", 86)+"==\nb:$6$$\n:x\nc\nc:$5$x\na:$7$0$$\n", "b", []byte("x"))
	f.Add("  # c\r\nx : $7$2$AAAA$"+strings.Repeat("/", 86)+"==\r\n", "x", []byte("pw"))
	f.Fuzz(func(t *testing.T, text, user string, password []byte) {
		if len(text) > 8192 {
			return
		}
		tab, err := parsePasswords(fuzzPath, text)
		if err != nil {
			if tab != nil {
				t.Fatal("table returned with an error")
			}
			checkLineErrors(t, err, text)
		} else {
			if tab.dummy == nil || len(tab.dummy.salt) == 0 || len(tab.dummy.sum) != 64 {
				t.Fatalf("bad dummy entry %+v", tab.dummy)
			}
			verified := 0
			for name, h := range tab.users {
				if name == "" || h.iterations < 0 || len(h.salt) == 0 || len(h.sum) != 64 {
					t.Fatalf("bad entry %q: %+v", name, h)
				}
				if h.iterations <= maxFuzzIterations && verified < 4 {
					h.verify(password)
					verified++
				}
			}
			if tab.dummy.iterations <= maxFuzzIterations {
				p := &Passwords{path: fuzzPath}
				p.table.Store(tab)
				_, known := tab.users[user]
				h := tab.users[user]
				if !known || h.iterations <= maxFuzzIterations {
					code := p.Authenticate(&broker.ClientInfo{Username: user, HasUsername: true}, password)
					if !known && code == packet.Success {
						t.Fatalf("unknown user %q accepted", user)
					}
				}
				if p.Authenticate(&broker.ClientInfo{}, password) == packet.Success {
					t.Fatal("client without a user name accepted")
				}
			}
		}
		if len(password) == 0 || len(password) > 256 {
			return
		}
		hash, err := HashPasswordIterations(password, 1)
		if err != nil {
			t.Fatal(err)
		}
		h, err := parseHash(hash)
		if err != nil {
			t.Fatalf("own hash %q does not parse: %v", hash, err)
		}
		if !h.verify(password) {
			t.Fatalf("own hash %q does not verify its password", hash)
		}
		// Not a trailing 0: HMAC pads keys with zeros, so with PBKDF2
		// (Mosquitto's $7$ too) "pw" and "pw\x00" are the same password.
		if h.verify(append(password[:len(password):len(password)], 'x')) {
			t.Fatalf("own hash %q verifies another password", hash)
		}
	})
}
