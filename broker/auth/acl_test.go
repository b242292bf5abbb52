package auth_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/edged/edged/broker"
	"github.com/edged/edged/broker/auth"
)

const (
	pub  = broker.Publish
	sub  = broker.Subscribe
	read = broker.Read
)

func client(id, username string) *broker.ClientInfo {
	return &broker.ClientInfo{ClientID: id, Username: username, HasUsername: true}
}

func anon(id string) *broker.ClientInfo { return &broker.ClientInfo{ClientID: id} }

func writeACL(t testing.TB, text string) *auth.ACL {
	t.Helper()
	path := filepath.Join(t.TempDir(), "acl")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := auth.LoadACL(path)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

type aclCase struct {
	name   string
	client *broker.ClientInfo
	access broker.Access
	topic  string
	want   bool
}

func checkACL(t *testing.T, a *auth.ACL, cases []aclCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := a.Allow(tc.client, tc.access, tc.topic); got != tc.want {
				what := map[broker.Access]string{pub: "publish to", sub: "subscribe to", read: "read"}[tc.access]
				t.Errorf("client %q user %q may %s %q: %v, want %v",
					tc.client.ClientID, tc.client.Username, what, tc.topic, got, tc.want)
			}
		})
	}
}

// TestACLFile runs testdata/acl, which has an anonymous block, two users,
// deny rules and %c/%u patterns.
func TestACLFile(t *testing.T) {
	a, err := auth.LoadACL("testdata/acl")
	if err != nil {
		t.Fatal(err)
	}
	alice, bob := client("alice-1", "alice"), client("bob-1", "bob")
	checkACL(t, a, []aclCase{
		// Anonymous block.
		{"anon reads public", anon("anon"), sub, "public/#", true},
		{"anon reads one public topic", anon("anon"), sub, "public/a/b", true},
		{"anon cannot write public", anon("anon"), pub, "public/a", false},
		{"anon cannot read sensors", anon("anon"), sub, "sensors/#", false},
		{"anon subscribes to # for public", anon("anon"), sub, "#", true},
		{"anon reads public through #", anon("anon"), read, "public/a", true},
		{"anon does not read sensors through #", anon("anon"), read, "sensors/a", false},
		{"anon own device tree", anon("anon"), pub, "devices/anon/x", true},
		{"anon own device subscribe", anon("anon"), sub, "devices/anon/+/x", true},
		{"anon other device", anon("anon"), pub, "devices/other/x", false},
		{"%u pattern skipped without user name", anon("anon"), sub, "users//inbox/x", false},
		{"anon with a user's id gets no user rules", anon("alice"), sub, "sensors/a", false},

		// alice: readwrite sensors/# minus sensors/secret/#, read $SYS.
		{"alice publishes sensor", alice, pub, "sensors/a/temp", true},
		{"alice reads one sensor", alice, sub, "sensors/a/temp", true},
		{"alice reads a subtree", alice, sub, "sensors/public/#", true},
		{"deny wins on publish", alice, pub, "sensors/secret/x", false},
		{"deny # covers parent level", alice, pub, "sensors/secret", false},
		{"deny filtered at delivery for sensors/#", alice, sub, "sensors/#", true},
		{"alice reads a sensor", alice, read, "sensors/a", true},
		{"deny wins on read", alice, read, "sensors/secret/x", false},
		{"deny filtered at delivery for sensors/+/temp", alice, sub, "sensors/+/temp", true},
		{"deny subtree subscribe", alice, sub, "sensors/secret/#", false},
		{"alice reads $SYS", alice, sub, "$SYS/#", true},
		{"alice reads one $SYS level", alice, sub, "$SYS/broker/+", true},
		{"read-only $SYS", alice, pub, "$SYS/broker/x", false},
		{"alice subscribes to # for what she reads", alice, sub, "#", true},
		{"alice does not read public", alice, read, "public/a", false},
		{"anonymous rules do not apply to users", alice, sub, "public/#", false},
		{"alice inbox via %u", alice, sub, "users/alice/inbox/#", true},
		{"alice inbox is read-only", alice, pub, "users/alice/inbox/x", false},
		{"alice cannot read bob's inbox", alice, sub, "users/bob/inbox/#", false},
		{"alice device via %c", alice, pub, "devices/alice-1/state", true},
		{"deny pattern via %c", alice, pub, "devices/alice-1/locked", false},
		{"deny pattern filtered in device subtree", alice, sub, "devices/alice-1/#", true},
		{"deny pattern on read", alice, read, "devices/alice-1/locked", false},
		{"deny pattern refuses its exact filter", alice, sub, "devices/alice-1/locked", false},

		// bob: write cmd/+/set, read sensors/+/temp.
		{"bob publishes a command", bob, pub, "cmd/x/set", true},
		{"bob: + is one level", bob, pub, "cmd/x/y/set", false},
		{"bob cannot read commands", bob, sub, "cmd/+/set", false},
		{"bob reads temps", bob, sub, "sensors/+/temp", true},
		{"bob reads one temp", bob, sub, "sensors/a/temp", true},
		{"bob: sensors/+/# granted for temps", bob, sub, "sensors/+/#", true},
		{"bob reads a temp", bob, read, "sensors/a/temp", true},
		{"bob does not read humidity", bob, read, "sensors/a/humidity", false},
		{"bob cannot write what he reads", bob, read, "cmd/x/set", false},
		{"bob: sensors/a/+ granted for temps", bob, sub, "sensors/a/+", true},
		{"bob: nothing readable", bob, sub, "sensors/a/humidity/#", false},
		{"bob cannot publish temps", bob, pub, "sensors/a/temp", false},
		{"unknown user gets patterns only", client("zed", "zed"), pub, "devices/zed/x", true},
		{"unknown user", client("zed", "zed"), sub, "sensors/a/temp", false},

		// Unsafe substitution: allow patterns grant nothing, deny patterns
		// (devices/%c/locked) refuse everything.
		{"id with / fails closed", client("a/b", "alice"), pub, "devices/a/b/x", false},
		{"id with / loses other rights", client("a/b", "alice"), pub, "sensors/a/temp", false},
		{"id with +", client("+", "alice"), pub, "devices/x/y", false},
		{"id with #", client("#", "alice"), sub, "devices/#", false},
		{"user with /", client("c", "x/y"), sub, "users/x/y/inbox/z", false},
		{"user with + gets no inbox", client("c", "+"), sub, "users/a/inbox/z", false},
		{"user with # keeps device", client("c", "#"), pub, "devices/c/x", true},

		{"unknown access", alice, broker.Access(0), "sensors/a", false},
	})
}

func TestACLSubstitution(t *testing.T) {
	a := writeACL(t, "pattern readwrite %u/#\npattern readwrite dev/%c/%u\n")
	checkACL(t, a, []aclCase{
		{"user tree", client("c", "home"), sub, "home/#", true},
		{"user tree excludes others", client("c", "home"), sub, "work/#", false},
		{"user named $SYS cannot reach $SYS", client("c", "$SYS"), sub, "$SYS/#", false},
		{"user named $SYS publishes", client("c", "$SYS"), pub, "$SYS/x", false},
		{"both substituted", client("c1", "u1"), pub, "dev/c1/u1", true},
		{"no double substitution", client("%u", "u1"), pub, "dev/%u/u1", true},
		{"no double substitution 2", client("%u", "u1"), pub, "dev/u1/u1", false},
		{"%u pattern needs a user name", anon("c1"), pub, "dev/c1/", false},
		{"empty user name is a user name", client("c1", ""), pub, "dev/c1/", true},
	})
}

// TestACLCoverage checks the filter-vs-rule coverage for SUBSCRIBE with one
// read rule at a time: a covered filter is GrantAll (no check at delivery),
// another is not.
func TestACLCoverage(t *testing.T) {
	tests := []struct {
		rule    string
		covered []string
		not     []string
	}{
		{"#", []string{"a", "a/b", "#", "+", "+/+", "a/#", "/", "/a"}, []string{"$SYS/x", "$SYS/#", "$SYS"}},
		{"a/#", []string{"a", "a/b", "a/#", "a/+/c", "a/+/#", "a/"}, []string{"b", "#", "+/b", "+", "ab/c"}},
		{"a/+", []string{"a/b", "a/+", "a/"}, []string{"a/#", "a", "a/b/c", "+/b", "#"}},
		{"+/+", []string{"a/b", "+/+", "/"}, []string{"+/#", "$SYS/b", "a", "a/b/c"}},
		{"+", []string{"+", "a"}, []string{"#", "$SYS", "a/b", "/"}},
		{"a/b", []string{"a/b"}, []string{"a/+", "a/#", "a", "a/b/c", "+/b"}},
		{"$SYS/#", []string{"$SYS/broker/uptime", "$SYS/#", "$SYS/+", "$SYS"}, []string{"#", "+/broker", "$SYSX/a"}},
		{"+/#", []string{"a/b", "a", "+", "+/+/#"}, []string{"$SYS/x", "$SYS/#", "#"}}, // equivalent to #, but a filter # needs a rule #
		{"a/+/#", []string{"a/b", "a/b/c/#", "a/+", "a/+/+"}, []string{"a", "a/#", "b/c"}},
		{"+/a", []string{"/a", "+/a", "x/a"}, []string{"+/+", "$x/a"}},
	}
	for _, tc := range tests {
		t.Run(tc.rule, func(t *testing.T) {
			a := writeACL(t, "topic read "+tc.rule+"\n")
			for _, f := range tc.covered {
				if g := a.AuthorizeSubscription(anon("c"), f); g != broker.GrantAll {
					t.Errorf("%q: grant %d, want GrantAll", f, g)
				}
			}
			for _, f := range tc.not {
				if g := a.AuthorizeSubscription(anon("c"), f); g == broker.GrantAll {
					t.Errorf("%q: GrantAll, but %q does not cover it", f, tc.rule)
				}
			}
		})
	}
}

// TestACLDenyGrants checks subscriptions against deny rules, as
// Mosquitto's ACL decides: a filter every topic of which is denied is
// refused (0x80), one that could match a denied topic is granted with a
// check at delivery, and one no deny rule touches needs no check.
func TestACLDenyGrants(t *testing.T) {
	tests := []struct {
		deny            string
		none, some, all []string
	}{
		{"a/b", []string{"a/b"}, []string{"a/+", "#", "+/b", "+/#", "a/#"}, []string{"a/c", "+/+/+", "a", "a/b/c"}},
		{"a/#", []string{"a", "a/x/y", "a/#", "a/+"}, []string{"+", "#", "+/+"}, []string{"b/#", "b", "ab"}},
		{"+/secret", []string{"x/secret", "+/secret"}, []string{"#", "+/+"}, []string{"$SYS/secret", "x/public", "+/secret/x"}},
		{"$SYS/#", []string{"$SYS/x", "$SYS/#"}, nil, []string{"#", "+/x", "a/b"}},
		{"test/nosubscribe", []string{"test/nosubscribe"}, []string{"#", "test/+", "test/#"}, []string{"test/other"}},
	}
	for _, tc := range tests {
		t.Run(tc.deny, func(t *testing.T) {
			a := writeACL(t, "topic read #\ntopic read $SYS/#\ntopic deny "+tc.deny+"\n")
			for want, filters := range map[broker.Grant][]string{broker.GrantNone: tc.none, broker.GrantSome: tc.some, broker.GrantAll: tc.all} {
				for _, f := range filters {
					if g := a.AuthorizeSubscription(anon("c"), f); g != want {
						t.Errorf("%q: grant %d, want %d", f, g, want)
					}
					if got := a.Allow(anon("c"), sub, f); got != (want != broker.GrantNone) {
						t.Errorf("Allow(Subscribe, %q) = %v, want %v", f, got, want != broker.GrantNone)
					}
				}
			}
			name := strings.NewReplacer("+", "x", "#", "x").Replace(tc.deny)
			if a.Allow(anon("c"), read, name) {
				t.Errorf("%q readable despite the deny rule", name)
			}
		})
	}
}

func TestACLSyntax(t *testing.T) {
	a := writeACL(t, strings.Join([]string{
		"  # indented comment",
		"topic\tpublic/x\r",       // tab, default readwrite, CRLF
		"user   carol smith  ",    // a user name with a space
		"topic read with space/x", // a topic with a space
		"user alice",
		"topic write a",
		"user carol smith",
		"topic write b", // the two carol blocks merge
		"pattern deny  never/%c",
		"",
	}, "\n"))
	checkACL(t, a, []aclCase{
		{"tab and CRLF", anon("c"), pub, "public/x", true},
		{"user with space", client("c", "carol smith"), sub, "with space/x", true},
		{"merged block", client("c", "carol smith"), pub, "b", true},
		{"alice", client("c", "alice"), pub, "a", true},
		{"alice has not carol's rules", client("c", "alice"), pub, "b", false},
		{"deny pattern", client("never", "alice"), pub, "never/never", false},
	})
}

func TestLoadACLErrors(t *testing.T) {
	tests := []struct {
		name, text string
		line       int
		msg        string
	}{
		{"unknown keyword", "topic a\nallow a\n", 2, `unknown keyword "allow"`},
		{"user without name", "user\n", 1, "missing user name"},
		{"user with blanks only", "user   \t\n", 1, "missing user name"},
		{"topic without filter", "# c\ntopic\n", 2, `missing topic after "topic"`},
		{"access without filter", "topic read\n", 1, "missing topic"},
		{"pattern access without filter", "pattern deny  \n", 1, "missing topic"},
		{"bad #", "topic a/#/b\n", 1, `invalid topic filter "a/#/b"`},
		{"bad +", "\n\n\npattern read a+/%c\n", 4, `invalid topic filter "a+/%c"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "acl")
			os.WriteFile(path, []byte(tc.text), 0o600)
			_, err := auth.LoadACL(path)
			var le *auth.LineError
			if !errors.As(err, &le) || le.Path != path || le.Line != tc.line {
				t.Fatalf("error = %v, want a LineError at %s:%d", err, path, tc.line)
			}
			if !errors.Is(err, auth.ErrSyntax) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q, want ErrSyntax and %q", err, tc.msg)
			}
		})
	}
	t.Run("every bad line is reported", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "acl")
		os.WriteFile(path, []byte("bogus\ntopic ok\nuser\n"), 0o600)
		_, err := auth.LoadACL(path)
		for _, want := range []string{path + ":1: ", path + ":3: "} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("error %v does not mention %q", err, want)
			}
		}
	})
}

func TestACLReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "acl")
	os.WriteFile(path, []byte("topic a\n"), 0o600)
	a, err := auth.LoadACL(path)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				a.Allow(anon("c"), pub, "a")
			}
		}
	})
	os.WriteFile(path, []byte("topic b\ntopic a/#/x\n"), 0o600)
	if err := a.Reload(); err == nil || !strings.Contains(err.Error(), path+":2: ") {
		t.Errorf("Reload of a bad file = %v, want an error at line 2", err)
	}
	if !a.Allow(anon("c"), pub, "a") {
		t.Error("after a failed reload the old rules are not in use")
	}
	os.WriteFile(path, []byte("topic b\n"), 0o600)
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	if a.Allow(anon("c"), pub, "a") || !a.Allow(anon("c"), pub, "b") {
		t.Error("the new rules are not in use after Reload")
	}
}

func BenchmarkACLAllow(b *testing.B) {
	a, err := auth.LoadACL("testdata/acl")
	if err != nil {
		b.Fatal(err)
	}
	c := client("alice-1", "alice")
	b.Run("publish", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			a.Allow(c, pub, "devices/alice-1/state")
		}
	})
	b.Run("subscribe", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			a.Allow(c, sub, "sensors/public/#")
		}
	})
	// The check a session with a partly granted filter (such as "#") pays
	// per message.
	b.Run("read", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			a.Allow(c, read, "sensors/hall/temp")
		}
	})
}
