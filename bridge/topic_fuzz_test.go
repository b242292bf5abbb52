package bridge

import (
	"strings"
	"testing"

	"github.com/edged/edged/broker/packet"
)

// FuzzTopicRules fuzzes the mapping of topics by one rule that passes
// Config.Validate (the rules come from the operator's configuration, the
// topics from local and upstream clients). Properties: no panic for any
// topic; the QoS is capped by the rule; a mapped topic is a valid topic
// name with the other side's prefix; a Both rule maps out then back in (and
// in then back out) to the original topic; and the mapping agrees with the
// filters the bridge taps and subscribes to: a topic the tap (subscription)
// filter matches is mapped, so that nothing is queued (received) only to be
// dropped, and only such topics are.
func FuzzTopicRules(f *testing.F) {
	f.Add("sensors/#", "", "site1/", uint8(0), uint8(1), "sensors/t1", uint8(2))
	f.Add("cmd/#", "local/", "site1/", uint8(1), uint8(2), "site1/cmd/reboot", uint8(1))
	f.Add("+/x", "b/", "r/b/", uint8(2), uint8(0), "b/y/x", uint8(2))
	f.Add("#", "all/", "", uint8(0), uint8(2), "all/a", uint8(1))
	f.Add("#", "", "up/", uint8(2), uint8(1), "$SYS/x", uint8(1))
	f.Add("+/+", "$local/", "$remote/", uint8(2), uint8(2), "$local/a/b", uint8(0))
	f.Add("a/+/c", "p", "q", uint8(2), uint8(1), "pa//c", uint8(2))
	f.Add("+", "a/", "r/", uint8(2), uint8(1), "a/$x", uint8(1))
	f.Add("#", "edge/", "up/", uint8(2), uint8(1), "edge", uint8(1))
	f.Add("#", "a/", "r/", uint8(0), uint8(1), "a/", uint8(1))
	f.Fuzz(func(t *testing.T, pattern, local, remote string, dir, rqos uint8, topic string, qos uint8) {
		r := Rule{Pattern: pattern, LocalPrefix: local, RemotePrefix: remote, QoS: rqos,
			Direction: []Direction{Out, In, Both}[dir%3]}
		cfg := Config{Name: "b", Address: "tcp://h:1", Topics: []Rule{r}}
		if cfg.Validate() != nil {
			return
		}
		rs := newRules([]Rule{r})
		lf, rf := local+pattern, remote+pattern
		remoteT, q, okOut := rs.mapOut(topic, qos)
		localT, q2, okIn := rs.mapIn(topic, qos)
		if okOut && q > min(qos, rqos) || okIn && q2 > min(qos, rqos) {
			t.Fatalf("QoS %d, %d above min(%d, %d)", q, q2, qos, rqos)
		}
		if okOut && r.Direction == In || okIn && r.Direction == Out {
			t.Fatalf("mapped against the rule's direction %s: out %v in %v", r.Direction, okOut, okIn)
		}
		if !packet.ValidTopicName(topic) {
			return
		}
		if okOut {
			if !underPrefix(remoteT, remote) || !packet.ValidTopicName(remoteT) {
				t.Fatalf("mapOut(%q) = %q, not a topic name under %q", topic, remoteT, remote)
			}
			if !packet.MatchTopic(lf, topic) {
				t.Fatalf("mapOut(%q) = %q, but the tap filter %q does not match it", topic, remoteT, lf)
			}
			if r.Direction == Both {
				if back, _, ok := rs.mapIn(remoteT, 2); !ok || back != topic {
					t.Fatalf("out %q -> %q, back in -> %q, %v", topic, remoteT, back, ok)
				}
			}
		}
		if okIn {
			if !underPrefix(localT, local) || !packet.ValidTopicName(localT) {
				t.Fatalf("mapIn(%q) = %q, not a topic name under %q", topic, localT, local)
			}
			if !packet.MatchTopic(rf, topic) {
				t.Fatalf("mapIn(%q) = %q, but the subscription %q does not match it", topic, localT, rf)
			}
			if r.Direction == Both {
				if back, _, ok := rs.mapOut(localT, 2); !ok || back != topic {
					t.Fatalf("in %q -> %q, back out -> %q, %v", topic, localT, back, ok)
				}
			}
		}
		// The tap takes only what mapOut maps (its accept function), so
		// nothing is queued and then dropped; what the filter matches but
		// mapOut refuses is only the bare local prefix and its parent level
		// when remote_prefix is "" (or "/" for the parent), and a topic
		// that would become a $-topic upstream.
		unmappableOut := topic == local && remote == "" ||
			topic+"/" == local && strings.TrimSuffix(remote, "/") == "" ||
			makesDollar(topic, local, remote)
		if r.Direction != In && packet.MatchTopic(lf, topic) && !okOut && !unmappableOut {
			t.Fatalf("tap filter %q matches %q, but mapOut refuses it", lf, topic)
		}
		// Upstream, nothing can keep the subscription from delivering the
		// bare remote prefix and its parent level, which have no local topic
		// when local_prefix is "" (or "/" for the parent): those are
		// acknowledged and dropped.
		unmappable := topic == remote && local == "" ||
			topic+"/" == remote && strings.TrimSuffix(local, "/") == "" ||
			makesDollar(topic, remote, local)
		if r.Direction != Out && packet.MatchTopic(rf, topic) && !okIn && !unmappable {
			t.Fatalf("subscription %q matches %q, but mapIn refuses it: received, then dropped", rf, topic)
		}
	})
}

// makesDollar reports whether mapping topic from prefix from to prefix to
// would make a $-level a $-topic on one side only.
func makesDollar(topic, from, to string) bool {
	t, ok := strings.CutPrefix(topic, from)
	return ok && strings.HasPrefix(t, "$") && (from == "") != (to == "")
}

// underPrefix reports whether topic is prefix+T, or the parent level that
// a trailing '#' also matches: prefix without its '/'.
func underPrefix(topic, prefix string) bool {
	return strings.HasPrefix(topic, prefix) || topic+"/" == prefix
}
