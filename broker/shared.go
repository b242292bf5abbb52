package broker

import (
	"slices"
	"strings"

	"github.com/edged/edged/broker/packet"
)

// Shared subscriptions, "$share/{group}/{filter}" [MQTT-4.8.2], for every
// protocol version: each message matching filter goes to one member of the
// group. The whole string is the subscription's name everywhere (the
// session's subs, UNSUBSCRIBE, the store); the topic tree files the member
// under filter, in the group; the Authorizer sees filter only. See doc.go
// for how a member is chosen.

const sharePrefix = "$share/"

// parseShared splits a shared subscription's filter. shared is false for an
// ordinary filter; ok is false for a "$share/" filter that is not a valid
// shared subscription: the group name must be at least one character
// without "/", "+" or "#" [MQTT-4.8.2-1] [MQTT-4.8.2-2], followed by "/"
// and a valid topic filter.
func parseShared(f string) (group, filter string, shared, ok bool) {
	rest, shared := strings.CutPrefix(f, sharePrefix)
	if !shared {
		return "", f, false, true
	}
	group, filter, found := strings.Cut(rest, "/")
	if !found || group == "" || strings.ContainsAny(group, "+#") || !packet.ValidTopicFilter(filter) {
		return "", "", true, false
	}
	return group, filter, true, true
}

// validFilter reports whether a SUBSCRIBE may subscribe to f.
func validFilter(f string) bool {
	_, _, _, ok := parseShared(f)
	return ok && packet.ValidTopicFilter(f)
}

// aclFilter is the filter the Authorizer decides on: a shared
// subscription's filter without its "$share/group/" prefix.
func aclFilter(f string) string {
	if _, filter, shared, ok := parseShared(f); shared && ok {
		return filter
	}
	return f
}

// shareGroup is one shared subscription: the sessions subscribed to
// "$share/name/filter", filed in the topic tree at filter's node.
type shareGroup struct {
	name string
	// members is copied on every change (under topicTree.mu), so route may
	// walk a snapshot without the tree's lock.
	members []shareMember
	// next is where the round-robin starts for the next message; guarded
	// by Server.routeMu.
	next int
}

type shareMember struct {
	ss *session
	o  subOpts
}

// set adds or replaces ss's membership; it reports whether ss is new.
func (g *shareGroup) set(ss *session, o subOpts) bool {
	i := slices.IndexFunc(g.members, func(m shareMember) bool { return m.ss == ss })
	if i >= 0 {
		ms := slices.Clone(g.members)
		ms[i].o = o
		g.members = ms
		return false
	}
	g.members = append(slices.Clip(g.members), shareMember{ss, o})
	return true
}

// remove removes ss; it reports whether it was a member.
func (g *shareGroup) remove(ss *session) bool {
	i := slices.IndexFunc(g.members, func(m shareMember) bool { return m.ss == ss })
	if i < 0 {
		return false
	}
	g.members = slices.Delete(slices.Clone(g.members), i, i+1)
	return true
}

// pickLocked chooses the member that gets a message published at QoS qos,
// round-robin from next: the first online member that has room for it now
// (for QoS 0 the write queue, for QoS 1 and 2 an open inflight window with
// nothing queued); else the online member with the least waiting (which
// queues or drops it as for any subscription), so that a member that does
// not read stops getting the group's messages once it is full; else, for
// QoS 1 and 2, the first offline persistent member (queued in its
// session). It returns false when no member may take it: a QoS 0 message
// while every member is offline is dropped, as for an offline session. It
// needs routeMu.
func (g *shareGroup) pickLocked(qos byte, size int64) (shareMember, bool) {
	ms := g.members
	n := len(ms)
	online, offline := -1, -1
	least := 0
	pick := -1
	for i := range n {
		k := (g.next + i) % n
		m := ms[k]
		q := min(qos, m.o.qos)
		ss := m.ss
		ss.mu.Lock()
		switch {
		case ss.gone:
		case ss.conn != nil && !ss.conn.isClosed() && !ss.conn.draining.Load():
			// (A connection that is closing counts as offline: its
			// session is about to be detached.)
			room, waiting := ss.roomLocked(q, size)
			if room {
				pick = k
			} else if online < 0 || waiting < least {
				online, least = k, waiting
			}
		case !ss.clean && q > 0 && offline < 0 && (ss.conn == nil || ss.conn.isClosed()):
			offline = k
		}
		ss.mu.Unlock()
		if pick >= 0 {
			break
		}
	}
	if pick < 0 {
		pick = online
	}
	if pick < 0 {
		pick = offline
	}
	if pick < 0 {
		return shareMember{}, false
	}
	g.next = (pick + 1) % n
	return ms[pick], true
}

// roomLocked reports whether the connected session can take a message at
// delivery QoS qos now, without queueing or dropping it, and if not how
// much is waiting ahead of it (messages queued in the session, or packets
// in the write queue for QoS 0).
func (ss *session) roomLocked(qos byte, size int64) (room bool, waiting int) {
	if qos > 0 {
		return ss.windowOpenLocked(), len(ss.inflight) + ss.pending.len() + ss.spilled
	}
	c := ss.conn
	l := &ss.s.cfg.Limits
	c.outMu.Lock()
	defer c.outMu.Unlock()
	room = len(c.out) < l.MaxWriteQueue && (c.outBytes == 0 || c.outBytes+size <= l.MaxWriteQueueBytes)
	return room, len(c.out)
}
