package broker

import (
	"log/slog"
	"slices"
	"strings"

	"github.com/edged/edged/persist"
)

// This file holds who may do what: publishing, subscribing, receiving, and
// whose session a client resumes. See doc.go, "Access control".

// reservedTopic reports whether clients may never publish to topic: $SYS
// belongs to the broker [MQTT-4.7.2-1 leaves it to the server].
func reservedTopic(topic string) bool {
	return topic == "$SYS" || strings.HasPrefix(topic, "$SYS/")
}

// mayPublish decides on a client's PUBLISH or will: never to $SYS, and
// otherwise as the Authorizer says. A refusal is logged, rate-limited.
func (s *Server) mayPublish(ci *ClientInfo, topic string, will bool) bool {
	if !reservedTopic(topic) && (s.cfg.ACL == nil || s.cfg.ACL.Allow(ci, Publish, topic)) {
		return true
	}
	what := "publish denied"
	if will {
		what = "will denied"
	}
	s.logDenied(what, ci, "topic", topic)
	return false
}

// grant decides on one filter of a SUBSCRIBE; for a shared subscription,
// on its filter without the "$share/group/" prefix.
func (s *Server) grant(ci *ClientInfo, filter string) Grant {
	filter = aclFilter(filter)
	switch a := s.cfg.ACL.(type) {
	case nil:
		return GrantAll
	case SubscriptionAuthorizer:
		return a.AuthorizeSubscription(ci, filter)
	default:
		if a.Allow(ci, Subscribe, filter) {
			return GrantAll
		}
		return GrantNone
	}
}

// logDenied logs a refused request with the client's identity, at most
// one line per interval (the count of the others goes with the next).
func (s *Server) logDenied(msg string, ci *ClientInfo, key, value string) {
	if ok, n := s.denyWarn.allow(); ok {
		s.log.Warn(msg, "client_id", ci.ClientID, userAttr(ci), key, value, "suppressed", n)
	}
}

// userAttr is a client's user name for log lines; user="" is a client
// that sent none.
func userAttr(ci *ClientInfo) slog.Attr {
	if !ci.HasUsername {
		return slog.String("user", "")
	}
	return slog.String("user", ci.Username)
}

// sameUser reports whether two clients have the same identity: the same
// user name, or neither has one.
func sameUser(a, b *ClientInfo) bool {
	return a.HasUsername == b.HasUsername && a.Username == b.Username
}

// ownedByLocked reports whether a client with identity ci may resume the
// session. A session loaded from a store written before owners were
// recorded is adopted by the first client that resumes it.
func (ss *session) ownedByLocked(ci *ClientInfo) bool {
	return !ss.ownerKnown || sameUser(&ss.owner, ci)
}

// setOwnerLocked makes ci the session's owner: the identity its
// subscriptions are checked with, also while it is offline. It needs
// routeMu for a persistent session.
func (ss *session) setOwnerLocked(ci *ClientInfo) {
	record := !ss.ownerKnown || !sameUser(&ss.owner, ci)
	ss.owner, ss.ownerKnown = *ci, true
	if record {
		ss.opLocked(persist.SetOwner{ClientID: ss.id,
			Owner: persist.Owner{Username: ci.Username, HasUsername: ci.HasUsername}})
	}
}

// readableLocked reports whether a message to topic may be delivered to the
// session (or queued for it). Only a session holding a subscription
// granted GrantSome pays for a check.
func (ss *session) readableLocked(topic string) bool {
	return len(ss.partial) == 0 || ss.s.cfg.ACL.Allow(&ss.owner, Read, topic)
}

// setGrantLocked records how filter, now in ss.subs, was granted.
func (ss *session) setGrantLocked(filter string, g Grant) {
	if g == GrantAll {
		delete(ss.partial, filter)
		return
	}
	if ss.partial == nil {
		ss.partial = make(map[string]struct{})
	}
	ss.partial[filter] = struct{}{}
}

// reauthorizeLocked checks the session's subscriptions against the
// Authorizer with the owner's identity: a filter no longer granted is
// removed, as if unsubscribed, and the grants are recorded. It returns the
// removed filters. It needs routeMu for a persistent session.
func (ss *session) reauthorizeLocked() []string {
	var removed []string
	for f := range ss.subs {
		g := ss.s.grant(&ss.owner, f)
		if g != GrantNone {
			ss.setGrantLocked(f, g)
			continue
		}
		ss.deleteSubLocked(f)
		removed = append(removed, f)
	}
	slices.Sort(removed)
	return removed
}

// Reauthorize checks every session's subscriptions against the Authorizer
// again, after its rules changed (edged calls it on SIGHUP once the ACL
// file is reloaded): a filter no longer granted is removed as if the client
// had unsubscribed, and which subscriptions need a check at delivery is
// recomputed. Messages already queued stay queued. Sessions loaded from a
// store written before owners were recorded are checked when their client
// resumes them.
func (s *Server) Reauthorize() {
	if s.cfg.ACL == nil {
		return
	}
	s.routeMu.Lock()
	defer s.routeMu.Unlock()
	s.mu.Lock()
	sessions := make([]*session, 0, len(s.sessions))
	for _, ss := range s.sessions {
		sessions = append(sessions, ss)
	}
	s.mu.Unlock()
	n := 0
	for _, ss := range sessions {
		ss.mu.Lock()
		if ss.ownerKnown && !ss.gone {
			if removed := ss.reauthorizeLocked(); len(removed) > 0 {
				n += len(removed)
				s.log.Info("subscriptions revoked", "client_id", ss.id, userAttr(&ss.owner), "filters", removed)
			}
		}
		ss.mu.Unlock()
	}
	s.commitLocked(nil)
	s.log.Info("subscriptions re-checked", "sessions", len(sessions), "revoked", n)
}
