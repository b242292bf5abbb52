package auth

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/edged/edged/broker"
	"github.com/edged/edged/broker/packet"
)

var _ broker.SubscriptionAuthorizer = (*ACL)(nil)

// ACL authorizes publishes and subscriptions from a Mosquitto-style ACL
// file. What no rule grants is refused. It is safe for concurrent use;
// Reload swaps the rules atomically.
type ACL struct {
	path  string
	mu    sync.Mutex // serializes Reload
	rules atomic.Pointer[aclRules]
}

// access is what a rule grants; 0 is a deny rule.
type access uint8

const (
	accessRead access = 1 << iota
	accessWrite
	accessDeny access = 0
)

type rule struct {
	filter string
	access access
	// subst marks a pattern rule containing %c or %u.
	subst bool
}

type aclRules struct {
	anonymous []rule // topic rules before the first user line
	users     map[string][]rule
	patterns  []rule
}

// LoadACL reads an ACL file in Mosquitto's format (see the package
// documentation). Every bad line is reported with its file and line number.
func LoadACL(path string) (*ACL, error) {
	a := &ACL{path: path}
	if err := a.Reload(); err != nil {
		return nil, err
	}
	return a, nil
}

// Reload reads the file again, for SIGHUP. If the file cannot be read or
// has a bad line, the rules in use are kept and the error returned. The
// caller then has the broker re-check granted subscriptions
// (broker.Server.Reauthorize).
func (a *ACL) Reload() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	b, err := os.ReadFile(a.path)
	if err != nil {
		return fmt.Errorf("reading ACL file: %w", err)
	}
	r, err := parseACL(a.path, string(b))
	if err != nil {
		return err
	}
	a.rules.Store(r)
	return nil
}

// Allow implements broker.Authorizer. Publish needs a write rule matching
// the topic name and Read a read rule matching it, and no deny rule may
// match it. Subscribe is AuthorizeSubscription's GrantSome or GrantAll.
func (a *ACL) Allow(c *broker.ClientInfo, acc broker.Access, topic string) bool {
	switch acc {
	case broker.Publish:
		return a.rules.Load().allowTopic(c, accessWrite, topic)
	case broker.Read:
		return a.rules.Load().allowTopic(c, accessRead, topic)
	case broker.Subscribe:
		return a.AuthorizeSubscription(c, topic) != broker.GrantNone
	}
	return false
}

// AuthorizeSubscription implements broker.SubscriptionAuthorizer, as
// Mosquitto's ACL works: a filter is granted when a read rule could match
// one of its topics, and refused when none could or a deny rule matches
// every topic it can match (so "topic deny a/b" refuses exactly "a/b" and
// "a/+/..." filters stay granted). It is GrantAll when a read rule covers
// the whole filter and no deny rule could match any of its topics; else
// the broker checks each message with Read.
func (a *ACL) AuthorizeSubscription(c *broker.ClientInfo, filter string) broker.Grant {
	covered, some, denied, overlapDeny := false, false, false, false
	ok := a.rules.Load().each(c, func(f string, ru rule) {
		if ru.access == accessDeny {
			denied = denied || covers(f, filter)
			overlapDeny = overlapDeny || overlaps(f, filter)
			return
		}
		if ru.access&accessRead != 0 {
			covered = covered || covers(f, filter)
			some = some || overlaps(f, filter)
		}
	})
	switch {
	case !ok, denied, !some:
		return broker.GrantNone
	case covered && !overlapDeny:
		return broker.GrantAll
	}
	return broker.GrantSome
}

// allowTopic reports whether a rule with access need matches topic name t
// and no deny rule does.
func (r *aclRules) allowTopic(c *broker.ClientInfo, need access, t string) bool {
	granted, denied := false, false
	ok := r.each(c, func(f string, ru rule) {
		if ru.access == accessDeny {
			denied = denied || packet.MatchTopic(f, t)
		} else if ru.access&need != 0 {
			granted = granted || packet.MatchTopic(f, t)
		}
	})
	return ok && granted && !denied
}

// each calls fn with every rule that applies to client c: its own (or the
// anonymous ones) and the patterns, substituted. It reports false, having
// stopped, if a deny pattern could not be substituted safely: the caller
// must then refuse (fail closed).
func (r *aclRules) each(c *broker.ClientInfo, fn func(filter string, ru rule)) bool {
	own := r.anonymous
	if c.HasUsername {
		own = r.users[c.Username]
	}
	for _, ru := range own {
		fn(ru.filter, ru)
	}
	for _, ru := range r.patterns {
		f := ru.filter
		if ru.subst {
			var applies, safe bool
			f, applies, safe = substitute(ru.filter, c)
			switch {
			case !applies:
				continue // %u and no user name
			case safe:
			case ru.access == accessDeny:
				return false
			default:
				continue // grants nothing
			}
		}
		fn(f, ru)
	}
	return true
}

// substitute replaces %c with the client id and %u with the user name.
// applies is false if the pattern uses %u and the client has no user name.
// safe is false if a substituted value could widen the pattern: it
// contains '+', '#' or '/', or it puts '$' at the start of a pattern that
// did not start with '$'.
func substitute(f string, c *broker.ClientInfo) (s string, applies, safe bool) {
	var b strings.Builder
	b.Grow(len(f) + len(c.ClientID) + len(c.Username))
	safe = true
	for i := 0; i < len(f); i++ {
		if f[i] != '%' || i+1 == len(f) || (f[i+1] != 'c' && f[i+1] != 'u') {
			b.WriteByte(f[i])
			continue
		}
		v := c.ClientID
		if f[i+1] == 'u' {
			if !c.HasUsername {
				return "", false, false
			}
			v = c.Username
		}
		if strings.ContainsAny(v, "+#/") {
			safe = false
		}
		b.WriteString(v)
		i++
	}
	s = b.String()
	if dollar(s) && !dollar(f) {
		safe = false
	}
	return s, true, safe
}

// covers reports whether rule filter p covers subscription filter f: every
// topic name f matches is matched by p. Level by level, a '#' in p covers
// the rest of f; a '+' in p covers one level of f that is not '#'
// (including '+'); other levels must be equal; a '#' in f is covered only by
// a '#' in p. As in topic matching, a p starting with a wildcard does not
// cover an f starting with '$'. The check is conservative: it never reports
// a filter as covered when it is not.
func covers(p, f string) bool {
	if dollar(f) && wild(p) {
		return false
	}
	for {
		pl, prest, pmore := strings.Cut(p, "/")
		if pl == "#" {
			return true
		}
		fl, frest, fmore := strings.Cut(f, "/")
		if fl == "#" || (pl != "+" && pl != fl) {
			return false
		}
		if !fmore {
			// "a/#" also matches "a" [MQTT-4.7.1-2].
			return !pmore || prest == "#"
		}
		if !pmore {
			return false
		}
		p, f = prest, frest
	}
}

// overlaps reports whether filters a and b match at least one common
// topic name.
func overlaps(a, b string) bool {
	if (dollar(a) && wild(b)) || (dollar(b) && wild(a)) {
		return false
	}
	for {
		al, arest, amore := strings.Cut(a, "/")
		bl, brest, bmore := strings.Cut(b, "/")
		if al == "#" || bl == "#" {
			return true
		}
		if al != "+" && bl != "+" && al != bl {
			return false
		}
		switch {
		case !amore && !bmore:
			return true
		case !amore:
			return brest == "#"
		case !bmore:
			return arest == "#"
		}
		a, b = arest, brest
	}
}

func dollar(f string) bool { return len(f) > 0 && f[0] == '$' }

func wild(f string) bool { return len(f) > 0 && (f[0] == '+' || f[0] == '#') }

func parseACL(path, text string) (*aclRules, error) {
	r := &aclRules{users: make(map[string][]rule)}
	var errs []error
	bad := func(n int, format string, args ...any) {
		errs = append(errs, &LineError{Path: path, Line: n,
			Err: fmt.Errorf("%w: "+format, append([]any{ErrSyntax}, args...)...)})
	}
	user, inUser := "", false
	for i, line := range strings.Split(text, "\n") {
		n := i + 1
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		kw, rest := line, ""
		if j := strings.IndexAny(line, " \t"); j >= 0 {
			kw, rest = line[:j], line[j+1:]
		}
		rest = strings.TrimSpace(rest)
		switch kw {
		case "user":
			if rest == "" {
				bad(n, "missing user name")
				continue
			}
			user, inUser = rest, true
			if _, ok := r.users[user]; !ok {
				r.users[user] = nil
			}
		case "topic", "pattern":
			ru := rule{access: accessRead | accessWrite, filter: rest}
			if j := strings.IndexAny(rest, " \t"); j >= 0 {
				switch rest[:j] {
				case "read":
					ru.access = accessRead
				case "write":
					ru.access = accessWrite
				case "readwrite":
				case "deny":
					ru.access = accessDeny
				default:
					j = -1
				}
				if j >= 0 {
					ru.filter = strings.TrimSpace(rest[j+1:])
				}
			}
			switch ru.filter {
			case "", "read", "write", "readwrite", "deny":
				bad(n, "missing topic after %q", kw)
				continue
			}
			if !packet.ValidTopicFilter(ru.filter) {
				bad(n, "invalid topic filter %q", ru.filter)
				continue
			}
			switch {
			case kw == "pattern":
				ru.subst = strings.Contains(ru.filter, "%c") || strings.Contains(ru.filter, "%u")
				r.patterns = append(r.patterns, ru)
			case inUser:
				r.users[user] = append(r.users[user], ru)
			default:
				r.anonymous = append(r.anonymous, ru)
			}
		default:
			bad(n, "unknown keyword %q (want user, topic or pattern)", kw)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return r, nil
}
