package broker

import (
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/edged/edged/broker/packet"
)

// This file holds what an operator's tools (the status page) see of the
// broker and may do to it: read-only snapshots of the sessions, a
// disconnect, the deletion of a session, and live watches of topics. None
// of it is on a client's path.

// SessionInfo is a snapshot of one session.
type SessionInfo struct {
	ClientID string
	Online   bool
	// Persistent is false for a clean session, which ends with its
	// connection.
	Persistent bool
	// Username and HasUsername are the identity of the client connected
	// now, or of the one last connected.
	Username    string
	HasUsername bool
	// Listener and Remote are those of the connection now, or of the last
	// one (empty for a session restored from the store).
	Listener string
	Remote   string
	// Subscriptions are the session's topic filters, sorted.
	Subscriptions []Subscription
	// Inflight are the QoS 1 and 2 messages sent and not yet acknowledged.
	Inflight int
	// Queued and QueuedBytes are the messages (and their topic and payload
	// bytes) waiting beyond the inflight window, in memory or on disk.
	Queued      int
	QueuedBytes int64
	// Dropped counts the messages the session dropped over its limits.
	Dropped uint64
	// OfflineSince is the time of the last disconnect; zero while online.
	OfflineSince time.Time
}

// Subscription is one topic filter of a session.
type Subscription struct {
	Filter string
	QoS    byte
}

// Sessions returns a snapshot of every session, sorted by client id.
func (s *Server) Sessions() []SessionInfo {
	s.mu.Lock()
	sessions := make([]*session, 0, len(s.sessions))
	for _, ss := range s.sessions {
		sessions = append(sessions, ss)
	}
	s.mu.Unlock()
	out := make([]SessionInfo, 0, len(sessions))
	for _, ss := range sessions {
		out = append(out, ss.info())
	}
	slices.SortFunc(out, func(a, b SessionInfo) int { return strings.Compare(a.ClientID, b.ClientID) })
	return out
}

func (ss *session) info() SessionInfo {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	si := SessionInfo{
		ClientID:    ss.id,
		Online:      ss.conn != nil,
		Persistent:  !ss.clean,
		Username:    ss.owner.Username,
		HasUsername: ss.owner.HasUsername,
		Listener:    ss.owner.Listener,
		Inflight:    len(ss.inflight),
		Queued:      ss.pending.len() + ss.spilled,
		QueuedBytes: ss.pending.bytes + ss.spilledBytes,
		Dropped:     ss.dropped,
	}
	if ss.owner.Remote != nil {
		si.Remote = ss.owner.Remote.String()
	}
	if ss.conn == nil && ss.lastSeen != 0 {
		si.OfflineSince = time.Unix(ss.lastSeen, 0)
	}
	si.Subscriptions = make([]Subscription, 0, len(ss.subs))
	for f, q := range ss.subs {
		si.Subscriptions = append(si.Subscriptions, Subscription{Filter: f, QoS: q})
	}
	slices.SortFunc(si.Subscriptions, func(a, b Subscription) int { return strings.Compare(a.Filter, b.Filter) })
	return si
}

// ErrNoSession is returned for a client id that has no session.
var ErrNoSession = errors.New("broker: no such session")

// ErrNotConnected is returned by Disconnect for a session whose client is
// offline.
var ErrNotConnected = errors.New("broker: client not connected")

// Disconnect closes the connection of the client with clientID, as a
// network loss: its will is published [MQTT-3.1.2-8] and a persistent
// session stays.
func (s *Server) Disconnect(clientID string) error {
	s.mu.Lock()
	ss := s.sessions[clientID]
	s.mu.Unlock()
	if ss == nil {
		return ErrNoSession
	}
	ss.mu.Lock()
	c := ss.conn
	ss.mu.Unlock()
	if c == nil {
		return ErrNotConnected
	}
	c.close(closeOperator)
	return nil
}

// DeleteSession discards the session of clientID with its subscriptions
// and queued messages, in memory and in the store. A connected client is
// disconnected first, as by Disconnect; its will is published.
func (s *Server) DeleteSession(clientID string) error {
	s.routeMu.Lock()
	s.mu.Lock()
	ss := s.sessions[clientID]
	if ss == nil {
		s.mu.Unlock()
		s.routeMu.Unlock()
		return ErrNoSession
	}
	ss.mu.Lock()
	c := ss.conn
	ss.mu.Unlock()
	// gone is set: the closing connection does not bring it back.
	s.discardLocked(ss)
	s.mu.Unlock()
	s.commitLocked(nil)
	s.routeMu.Unlock()
	if c != nil {
		c.close(closeOperator)
	}
	return nil
}

// WatchedMessage is a message seen by a Watch.
type WatchedMessage struct {
	Topic   string
	Payload []byte // shared with the broker: do not modify
	QoS     byte
	Retain  bool
	Time    time.Time
}

type watcher struct {
	filter string
	ci     ClientInfo
	check  bool // each topic is checked with Allow(ci, Read, topic)
	fn     func(WatchedMessage)
}

// ErrWatchDenied is returned by Watch when the ACL grants the identity no
// topic of the filter.
var ErrWatchDenied = errors.New("broker: the ACL grants no topic of this filter")

// Watch calls fn with every message routed from now on whose topic matches
// filter, as a subscription of QoS 0 would see it, without a session: no
// queue, no retained messages, nothing stored. If ci is not nil, the ACL
// decides as for a client with that identity subscribing to filter and
// reading each topic; with ci nil nothing is checked (the caller already
// trusts whoever watches). fn runs under the routing lock: it must only
// copy what it needs into a bounded buffer and return. stop ends the
// watch; fn is not called after stop returns.
func (s *Server) Watch(filter string, ci *ClientInfo, fn func(WatchedMessage)) (stop func(), err error) {
	if !packet.ValidTopicFilter(filter) {
		return nil, errors.New("broker: invalid topic filter " + filter)
	}
	w := &watcher{filter: filter, fn: fn}
	if ci != nil && s.cfg.ACL != nil {
		w.ci = *ci
		switch s.grant(ci, filter) {
		case GrantNone:
			return nil, ErrWatchDenied
		case GrantSome:
			w.check = true
		}
	}
	s.routeMu.Lock()
	s.watchers = append(s.watchers, w)
	s.routeMu.Unlock()
	return func() {
		s.routeMu.Lock()
		s.watchers = slices.DeleteFunc(s.watchers, func(x *watcher) bool { return x == w })
		s.routeMu.Unlock()
	}, nil
}

// watchLocked hands m to the watches that match it. It needs routeMu.
func (s *Server) watchLocked(m *message) {
	for _, w := range s.watchers {
		if !packet.MatchTopic(w.filter, m.topic) {
			continue
		}
		if w.check && !s.cfg.ACL.Allow(&w.ci, Read, m.topic) {
			continue
		}
		w.fn(WatchedMessage{Topic: m.topic, Payload: m.payload, QoS: m.qos, Retain: m.retain, Time: time.Unix(0, m.time)})
	}
}

// Listening returns how many listeners Serve is accepting on now.
func (s *Server) Listening() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.lns)
}
