package packet

import "strings"

// ValidTopicName reports whether s may be used as the topic of a PUBLISH:
// at least one character [MQTT-4.7.3-1], no wildcard characters
// [MQTT-3.3.2-2], no U+0000 [MQTT-4.7.3-2], at most 65,535 bytes. UTF-8 well-formedness is checked by
// the decoder.
func ValidTopicName(s string) bool {
	return len(s) > 0 && len(s) <= 65535 && !strings.ContainsAny(s, "+#\x00")
}

// ValidTopicFilter reports whether s is a valid topic filter: at least one
// character, '#' only as the whole last level [MQTT-4.7.1-2], '+' only as a
// whole level [MQTT-4.7.1-3], no U+0000.
func ValidTopicFilter(s string) bool {
	if len(s) == 0 || len(s) > 65535 || strings.IndexByte(s, 0) >= 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '#':
			if i != len(s)-1 || (i > 0 && s[i-1] != '/') {
				return false
			}
		case '+':
			if (i > 0 && s[i-1] != '/') || (i < len(s)-1 && s[i+1] != '/') {
				return false
			}
		}
	}
	return true
}

// MatchTopic reports whether topic name t matches topic filter f. Topics
// starting with '$' are not matched by filters starting with a wildcard
// [MQTT-4.7.2-1].
func MatchTopic(f, t string) bool {
	if len(t) > 0 && t[0] == '$' && len(f) > 0 && (f[0] == '+' || f[0] == '#') {
		return false
	}
	for {
		fl, frest, fmore := strings.Cut(f, "/")
		if fl == "#" {
			return true
		}
		tl, trest, tmore := strings.Cut(t, "/")
		if fl != "+" && fl != tl {
			return false
		}
		if !fmore {
			return !tmore
		}
		if !tmore {
			// "sport/#" also matches "sport" [MQTT-4.7.1-2].
			return frest == "#"
		}
		f, t = frest, trest
	}
}
