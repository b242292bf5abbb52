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
	subs     map[*session]subOpts // subscriber → its subscription's options
	shared   map[string]*shareGroup
}

// subOpts are a subscription's granted QoS and MQTT 5.0 options; a 3.1.x
// subscription has only the QoS.
type subOpts struct {
	qos   byte
	flags byte   // subNoLocal, subRetainAsPublished
	rh    byte   // retain handling: 0 send at subscribe, 1 only if new, 2 never
	id    uint32 // subscription identifier; 0 none
}

const (
	subNoLocal           = 1 << 0 // not delivered to the publishing client [MQTT-3.8.3-3]
	subRetainAsPublished = 1 << 1 // forwarded with its retain flag [MQTT-3.3.1-12]
)

func newTopicTree() *topicTree { return &topicTree{root: &node{}} }

// subscribe adds or replaces a subscription. It reports whether the filter
// was new for that session. A shared subscription ("$share/group/filter",
// already validated) makes the session a member of the group at filter.
func (t *topicTree) subscribe(s *session, filter string, o subOpts) bool {
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
		isNew := g.set(s, o)
		if isNew {
			t.count++
		}
		return isNew
	}
	if n.subs == nil {
		n.subs = make(map[*session]subOpts)
	}
	_, existed := n.subs[s]
	n.subs[s] = o
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
// [MQTT-3.3.5-1]. rap is set when one of them has Retain As Published, ids
// holds the identifiers of those that have one (5.0: one copy carries
// them all [MQTT-3.3.4-3] [MQTT-3.3.4-5]). A No Local subscription of the
// client whose id is from does not match [MQTT-3.8.3-3]. Filters starting
// with a wildcard do not match topics starting with '$' [MQTT-4.7.2-1].
// It returns the matching shared subscriptions' groups (each delivers its
// own copy to one of its members, whatever the session's other
// subscriptions).
func (t *topicTree) match(topic, from string, fn func(s *session, qos byte, rap bool, ids []uint32)) (groups []*shareGroup) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	// found holds the QoS (bits 0-1) and Retain As Published (bit 2) per
	// session, as one byte: a 3.1.1 fan-out costs what it did before 5.0.
	// ids is made only when a subscription has an identifier.
	var found map[*session]byte
	var ids map[*session][]uint32
	var single *session
	var singleQoS byte
	merge := func(old, q byte) byte { return max(old&3, q&3) | (old|q)&4 }
	add := func(n *node) {
		for _, g := range n.shared {
			groups = append(groups, g)
		}
		for s, o := range n.subs {
			if o.flags != 0 {
				if o.flags&subNoLocal != 0 && from != "" && s.id == from {
					continue
				}
			}
			q := o.qos
			if o.flags&subRetainAsPublished != 0 {
				q |= 4
			}
			if o.id != 0 {
				if ids == nil {
					ids = make(map[*session][]uint32)
				}
				ids[s] = append(ids[s], o.id)
			}
			switch {
			case found != nil:
				found[s] = merge(found[s], q)
			case single == nil:
				single, singleQoS = s, q
			case single == s:
				singleQoS = merge(singleQoS, q)
			default:
				found = map[*session]byte{single: singleQoS}
				found[s] = merge(found[s], q)
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
			fn(s, q&3, q&4 != 0, ids[s])
		}
	} else if single != nil {
		fn(single, singleQoS&3, singleQoS&4 != 0, ids[single])
	}
	return groups
}

// len returns the number of subscriptions.
func (t *topicTree) len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.count
}
