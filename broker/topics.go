package broker

import (
	"strings"
	"sync"
)

// topicTree holds every subscription, indexed by filter level, so that
// matching a topic costs the number of its levels, not the number of
// subscriptions.
type topicTree struct {
	mu    sync.RWMutex
	root  *node
	count int
}

type node struct {
	children map[string]*node
	subs     map[*session]byte // subscriber → granted QoS
	shared   map[string]*shareGroup
}

func newTopicTree() *topicTree { return &topicTree{root: &node{}} }

// subscribe adds or replaces a subscription. It reports whether the filter
// was new for that session. A shared subscription ("$share/group/filter",
// already validated) makes the session a member of the group at filter.
func (t *topicTree) subscribe(s *session, filter string, qos byte) bool {
	group, filter, shared, _ := parseShared(filter)
	t.mu.Lock()
	defer t.mu.Unlock()
	n := t.root
	for level := range strings.SplitSeq(filter, "/") {
		if n.children == nil {
			n.children = make(map[string]*node)
		}
		c := n.children[level]
		if c == nil {
			c = &node{}
			n.children[level] = c
		}
		n = c
	}
	if shared {
		if n.shared == nil {
			n.shared = make(map[string]*shareGroup)
		}
		g := n.shared[group]
		if g == nil {
			g = &shareGroup{name: group}
			n.shared[group] = g
		}
		isNew := g.set(s, qos)
		if isNew {
			t.count++
		}
		return isNew
	}
	if n.subs == nil {
		n.subs = make(map[*session]byte)
	}
	_, existed := n.subs[s]
	n.subs[s] = qos
	if !existed {
		t.count++
	}
	return !existed
}

// unsubscribe removes a subscription and prunes empty nodes. It reports
// whether it existed.
func (t *topicTree) unsubscribe(s *session, filter string) bool {
	group, filter, shared, ok := parseShared(filter)
	if !ok {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	levels := strings.Split(filter, "/")
	path := make([]*node, 0, len(levels)+1)
	n := t.root
	path = append(path, n)
	for _, l := range levels {
		n = n.children[l]
		if n == nil {
			return false
		}
		path = append(path, n)
	}
	if shared {
		g := n.shared[group]
		if g == nil || !g.remove(s) {
			return false
		}
		if len(g.members) == 0 {
			delete(n.shared, group)
		}
	} else {
		if _, ok := n.subs[s]; !ok {
			return false
		}
		delete(n.subs, s)
	}
	t.count--
	for i := len(levels) - 1; i >= 0; i-- {
		c := path[i+1]
		if len(c.subs) > 0 || len(c.children) > 0 || len(c.shared) > 0 {
			break
		}
		delete(path[i].children, levels[i])
	}
	return true
}

// match calls fn once per subscribed session with the highest QoS of its
// matching subscriptions: overlapping subscriptions deliver a message once
// [MQTT-3.3.5-1]. Filters starting with a wildcard do not match topics
// starting with '$' [MQTT-4.7.2-1]. It returns the matching shared
// subscriptions' groups (each delivers its own copy to one of
// its members, whatever the session's other subscriptions).
func (t *topicTree) match(topic string, fn func(s *session, qos byte)) (groups []*shareGroup) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	var found map[*session]byte
	var single *session
	var singleQoS byte
	add := func(n *node) {
		for _, g := range n.shared {
			groups = append(groups, g)
		}
		for s, q := range n.subs {
			switch {
			case found != nil:
				if old, ok := found[s]; !ok || q > old {
					found[s] = q
				}
			case single == nil:
				single, singleQoS = s, q
			case single == s:
				singleQoS = max(singleQoS, q)
			default:
				found = map[*session]byte{single: singleQoS}
				if old, ok := found[s]; !ok || q > old {
					found[s] = q
				}
			}
		}
	}
	dollar := strings.HasPrefix(topic, "$")
	var walk func(n *node, rest string, first bool)
	walk = func(n *node, rest string, first bool) {
		level, tail, more := strings.Cut(rest, "/")
		if !(first && dollar) {
			if c := n.children["#"]; c != nil {
				add(c)
			}
		}
		if c := n.children[level]; c != nil {
			if more {
				walk(c, tail, false)
			} else {
				add(c)
				// "a/#" matches "a" [MQTT-4.7.1-2].
				if h := c.children["#"]; h != nil {
					add(h)
				}
			}
		}
		if first && dollar {
			return
		}
		if c := n.children["+"]; c != nil {
			if more {
				walk(c, tail, false)
			} else {
				add(c)
				if h := c.children["#"]; h != nil {
					add(h)
				}
			}
		}
	}
	walk(t.root, topic, true)
	if found != nil {
		for s, q := range found {
			fn(s, q)
		}
	} else if single != nil {
		fn(single, singleQoS)
	}
	return groups
}

// len returns the number of subscriptions.
func (t *topicTree) len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.count
}
