package packet_test

import (
	"strings"
	"testing"

	"github.com/edged/edged/broker/packet"
)

func TestValidTopicName(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"a", true},
		{"a/b/c", true},
		{"/", true},
		{"//", true},
		{"/finance", true},
		{"finance/", true},
		{" ", true},
		{"$SYS/broker/clients", true},
		{"\u00fc/\U0001F600", true},
		{strings.Repeat("x", 65535), true},
		{"", false},                         // [MQTT-4.7.3-1]
		{"+", false},                        // [MQTT-3.3.2-2]
		{"#", false},                        // [MQTT-3.3.2-2]
		{"a/+/b", false},                    // [MQTT-3.3.2-2]
		{"a/#", false},                      // [MQTT-3.3.2-2]
		{"a+b", false},                      // [MQTT-3.3.2-2]
		{strings.Repeat("x", 65536), false}, // [MQTT-1.5.3]
		{"a\x00b", false},                   // [MQTT-4.7.3-2], as ValidTopicFilter
	}
	for _, tt := range tests {
		if got := packet.ValidTopicName(tt.name); got != tt.want {
			t.Errorf("ValidTopicName(%.20q) = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestValidTopicFilter(t *testing.T) {
	tests := []struct {
		filter string
		want   bool
	}{
		// Spec examples, section 4.7.1.
		{"sport/tennis/player1/#", true},
		{"sport/#", true},
		{"#", true},
		{"sport/tennis/#", true},
		{"sport/tennis#", false},
		{"sport/tennis/#/ranking", false},
		{"+", true},
		{"+/tennis/#", true},
		{"sport+", false},
		{"sport/+/player1", true},
		{"/+", true},
		{"+/+", true},
		// More.
		{"a", true},
		{"/", true},
		{"/#", true},
		{"+/", true},
		{"a//b", true},
		{"$SYS/#", true},
		{"$SYS/+/x", true},
		{strings.Repeat("x", 65535), true},
		{"", false},
		{"#/", false},
		{"##", false},
		{"+#", false},
		{"#+", false},
		{"++", false},
		{"a/+b", false},
		{"a/b+", false},
		{"+a", false},
		{"a#", false},
		{"a/#b", false},
		{"a\x00b", false}, // [MQTT-4.7.3-2]
		{strings.Repeat("x", 65536), false},
	}
	for _, tt := range tests {
		if got := packet.ValidTopicFilter(tt.filter); got != tt.want {
			t.Errorf("ValidTopicFilter(%.20q) = %v, want %v", tt.filter, got, tt.want)
		}
	}
}

func TestMatchTopic(t *testing.T) {
	tests := []struct {
		filter, topic string
		want          bool
	}{
		// Spec examples, section 4.7.1.2: '#' also matches the parent level.
		{"sport/tennis/player1/#", "sport/tennis/player1", true},
		{"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
		{"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
		{"sport/#", "sport", true},
		{"#", "sport/tennis", true},
		// Section 4.7.1.3.
		{"sport/tennis/+", "sport/tennis/player1", true},
		{"sport/tennis/+", "sport/tennis/player2", true},
		{"sport/tennis/+", "sport/tennis/player1/ranking", false},
		{"sport/+", "sport", false},
		{"sport/+", "sport/", true},
		{"+/+", "/finance", true},
		{"/+", "/finance", true},
		{"+", "/finance", false},
		// Section 4.7.2 [MQTT-4.7.2-1].
		{"#", "$SYS/monitor/Clients", false},
		{"+/monitor/Clients", "$SYS/monitor/Clients", false},
		{"$SYS/#", "$SYS/monitor/Clients", true},
		{"$SYS/monitor/+", "$SYS/monitor/Clients", true},
		{"$SYS/#", "$SYS", true},
		{"+", "$SYS", false},
		// Case and exact levels [MQTT-4.7.3-4].
		{"ACCOUNTS", "Accounts", false},
		{"a/b", "a/b", true},
		{"a/b", "a/b/", false},
		{"a/b", "a", false},
		{"a/b", "ab", false},
		{"a", "a/b", false},
		{"/", "/", true},
		{"/", "", false},
		{"+", "a", true},
		{"+", "", true},
		{"+/+", "a", false},
		{"+/+/+", "a/b/c", true},
		{"a/+/c", "a//c", true},
		{"a/+/c", "a/b/d", false},
		{"a/#", "ab", false},
		{"a/#", "a/", true},
		{"/#", "/", true},
		{"/#", "a", false},
		{"sport/+/#", "sport", false},
		{"sport/+/#", "sport/x", true},
		{"sport/+/#", "sport/x/y/z", true},
		{"a/$b", "a/$b", true},
		{"a/+", "a/$b", true}, // only a leading '$' is special
		{"\u00fc/+", "\u00fc/x", true},
	}
	for _, tt := range tests {
		if got := packet.MatchTopic(tt.filter, tt.topic); got != tt.want {
			t.Errorf("MatchTopic(%q, %q) = %v, want %v", tt.filter, tt.topic, got, tt.want)
		}
	}
}
