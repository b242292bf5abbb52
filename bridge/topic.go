package bridge

import (
	"strings"

	"github.com/edged/edged/broker/packet"
)

// rules holds a bridge's topic rules split by direction, with their
// filters precomputed.
type rules struct {
	out []rule // Out and Both rules, in configuration order
	in  []rule // In and Both rules, in configuration order
}

type rule struct {
	Rule
	localFilter  string // LocalPrefix + Pattern
	remoteFilter string // RemotePrefix + Pattern
}

func newRules(rs []Rule) rules {
	var r rules
	for _, x := range rs {
		rr := rule{Rule: x, localFilter: x.LocalPrefix + x.Pattern, remoteFilter: x.RemotePrefix + x.Pattern}
		if x.Direction == Out || x.Direction == Both {
			r.out = append(r.out, rr)
		}
		if x.Direction == In || x.Direction == Both {
			r.in = append(r.in, rr)
		}
	}
	return r
}

// tapFilters are the local filters whose messages go into the queue.
func (r rules) tapFilters() []string {
	var fs []string
	for _, x := range r.out {
		fs = append(fs, x.localFilter)
	}
	return fs
}

// subscriptions are the upstream filters of the in rules with their QoS
// (the highest QoS of the rules sharing a filter).
func (r rules) subscriptions() map[string]byte {
	if len(r.in) == 0 {
		return nil
	}
	m := make(map[string]byte, len(r.in))
	for _, x := range r.in {
		m[x.remoteFilter] = max(m[x.remoteFilter], x.QoS)
	}
	return m
}

// mapOut maps a local topic to its upstream topic and QoS by the first out
// rule that matches; ok is false when none does.
func (r rules) mapOut(topic string, qos byte) (remote string, q byte, ok bool) {
	x, remote := r.outRule(topic)
	if x == nil {
		return "", 0, false
	}
	return remote, min(qos, x.QoS), true
}

// outRule returns the first out rule that maps topic, with the upstream
// topic, or nil.
func (r rules) outRule(topic string) (*rule, string) {
	for i := range r.out {
		x := &r.out[i]
		if remote, ok := x.remap(topic, x.LocalPrefix, x.RemotePrefix); ok {
			return x, remote
		}
	}
	return nil, ""
}

// hasHigh reports whether an out rule has priority high.
func (r rules) hasHigh() bool {
	for _, x := range r.out {
		if x.Priority == PriorityHigh {
			return true
		}
	}
	return false
}

// mapIn maps an upstream topic to its local topic and QoS by the first in
// rule that matches; ok is false when none does.
func (r rules) mapIn(topic string, qos byte) (local string, q byte, ok bool) {
	for _, x := range r.in {
		if l, ok := x.remap(topic, x.RemotePrefix, x.LocalPrefix); ok {
			return l, min(qos, x.QoS), true
		}
	}
	return "", 0, false
}

// remap maps topic, which must match from+Pattern (the very filter of the
// tap or the upstream subscription), to the to side. The parent level that
// a trailing "#" also matches ("edge" for "edge/#") maps to the other
// prefix without its '/'.
func (x rule) remap(topic, from, to string) (string, bool) {
	if !packet.MatchTopic(from+x.Pattern, topic) {
		return "", false
	}
	if t, ok := strings.CutPrefix(topic, from); ok {
		r := to + t
		// A $-level must not become a $-topic on one side only: MQTT
		// reserves $-topics for the server [MQTT-4.7.2-1], and the other
		// side's wildcard subscription could not match it back. "a/$x"
		// with local_prefix "a/" and remote_prefix "" is not forwarded,
		// nor "$x" the other way; with both prefixes empty (or both set)
		// the mapping is symmetric and allowed.
		if r == "" || strings.HasPrefix(t, "$") && (from == "") != (to == "") {
			return "", false
		}
		return r, true
	}
	if r := strings.TrimSuffix(to, "/"); topic+"/" == from && r != "" {
		return r, true
	}
	return "", false
}
