package bridge

import (
	"errors"
	"github.com/edged/edged/persist"
	"strings"
	"testing"
	"time"
)

func TestRulesMapping(t *testing.T) {
	r := newRules([]Rule{
		{Pattern: "sensors/#", Direction: Out, QoS: 1, RemotePrefix: "site1/"},
		{Pattern: "cmd/#", Direction: In, QoS: 2, LocalPrefix: "local/", RemotePrefix: "site1/"},
		{Pattern: "+/x", Direction: Both, QoS: 0, LocalPrefix: "b/", RemotePrefix: "r/b/"},
		{Pattern: "#", Direction: Out, QoS: 2, LocalPrefix: "all/", RemotePrefix: ""},
	})
	if got, want := strings.Join(r.tapFilters(), ","), "sensors/#,b/+/x,all/#"; got != want {
		t.Errorf("tapFilters = %s, want %s", got, want)
	}
	subs := r.subscriptions()
	if len(subs) != 2 || subs["site1/cmd/#"] != 2 || subs["r/b/+/x"] != 0 {
		t.Errorf("subscriptions = %v", subs)
	}
	outs := []struct {
		topic  string
		qos    byte
		remote string
		rqos   byte
		ok     bool
	}{
		{"sensors/t1", 2, "site1/sensors/t1", 1, true},
		{"sensors", 1, "site1/sensors", 1, true},
		{"sensors/a/b", 0, "site1/sensors/a/b", 0, true},
		{"b/y/x", 2, "r/b/y/x", 0, true},
		{"b/y/z", 2, "", 0, false},
		{"all/a", 1, "all/a", 1, false}, // "all/" stripped: T = "a", remote "" + "a"
		{"cmd/go", 1, "", 0, false},
		{"$SYS/x", 1, "", 0, false},
	}
	outs[5].remote, outs[5].ok = "a", true
	for _, tc := range outs {
		remote, q, ok := r.mapOut(tc.topic, tc.qos)
		if remote != tc.remote || q != tc.rqos || ok != tc.ok {
			t.Errorf("mapOut(%q, %d) = %q, %d, %v; want %q, %d, %v", tc.topic, tc.qos, remote, q, ok, tc.remote, tc.rqos, tc.ok)
		}
	}
	ins := []struct {
		topic string
		qos   byte
		local string
		lqos  byte
		ok    bool
	}{
		{"site1/cmd/reboot", 2, "local/cmd/reboot", 2, true},
		{"site1/cmd/reboot", 1, "local/cmd/reboot", 1, true},
		{"r/b/q/x", 1, "b/q/x", 0, true},
		{"site1/sensors/t", 1, "", 0, false},
		{"cmd/reboot", 1, "", 0, false},
		{"site1/", 1, "", 0, false},
	}
	for _, tc := range ins {
		local, q, ok := r.mapIn(tc.topic, tc.qos)
		if local != tc.local || q != tc.lqos || ok != tc.ok {
			t.Errorf("mapIn(%q, %d) = %q, %d, %v; want %q, %d, %v", tc.topic, tc.qos, local, q, ok, tc.local, tc.lqos, tc.ok)
		}
	}
}

func TestBackoffBounds(t *testing.T) {
	for _, tc := range []struct {
		name     string
		min, max time.Duration
	}{
		{"default", time.Second, 2 * time.Minute},
		{"equal", time.Second, time.Second},
		{"tiny", time.Millisecond, 10 * time.Millisecond},
		{"zero min", 0, time.Second},
		{"huge", time.Hour, 1 << 62},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, r := range []float64{0, 0.5, 0.999999} {
				b := newBackoff(tc.min, tc.max)
				b.rand = func() float64 { return r }
				prevHi := time.Duration(0)
				for i := 0; i < 100; i++ {
					d := b.next()
					if d < tc.min || d > tc.max {
						t.Fatalf("attempt %d: delay %s outside [%s, %s]", i, d, tc.min, tc.max)
					}
					if r > 0.99 && d < prevHi {
						t.Fatalf("attempt %d: upper delays shrink: %s after %s", i, d, prevHi)
					}
					prevHi = d
				}
				if r > 0.99 && tc.max-b.next() > tc.max/1000 {
					t.Errorf("series does not reach max %s", tc.max)
				}
				b.reset()
				if d := b.next(); d > max(tc.min, time.Nanosecond) && tc.min > 0 {
					t.Errorf("after reset: %s, want about min %s", d, tc.min)
				}
			}
		})
	}
	// Jitter spreads delays.
	b := newBackoff(time.Second, time.Minute)
	for range 5 {
		b.next()
	}
	seen := map[time.Duration]bool{}
	for range 20 {
		b2 := *b
		seen[b2.next()] = true
	}
	if len(seen) < 10 {
		t.Errorf("only %d distinct delays out of 20: no jitter", len(seen))
	}
}

func TestLimiter(t *testing.T) {
	now := time.Now()
	l := newLimiter(100, 10)
	for i := range 10 {
		if d := l.take(now); d != 0 {
			t.Fatalf("take %d within burst waited %s", i, d)
		}
	}
	d := l.take(now)
	if d <= 0 || d > 10*time.Millisecond {
		t.Fatalf("take after burst: wait %s, want (0, 10ms]", d)
	}
	if d := l.take(now.Add(d)); d != 0 {
		t.Fatalf("take after waiting: %s", d)
	}
	// 1 s later: at most burst tokens.
	n := 0
	for l.take(now.Add(time.Second)) == 0 {
		n++
	}
	if n != 10 {
		t.Errorf("after 1s idle: %d tokens, want 10", n)
	}
	if d := newLimiter(0, 0).take(now); d != 0 {
		t.Errorf("unlimited waited %s", d)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{
		Name:    "cloud",
		Address: "tcp://127.0.0.1:1883",
		Topics:  []Rule{{Pattern: "sensors/#", Direction: Out, QoS: 1}},
	}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		keys []string
	}{
		{"no name", func(c *Config) { c.Name = "" }, []string{"name"}},
		{"slash in name", func(c *Config) { c.Name = "a/b" }, []string{"name"}},
		{"bad scheme", func(c *Config) { c.Address = "ws://h:1" }, []string{"address"}},
		{"no port", func(c *Config) { c.Address = "tcp://host" }, []string{"address"}},
		{"address and addresses", func(c *Config) { c.Addresses = []string{"tcp://a:1", "tcp://b:1"} }, []string{"addresses"}},
		{"bad addresses", func(c *Config) {
			c.Address = ""
			c.Addresses = []string{"tcp://a:1", "ws://b:1", "tcp://a:1"}
			c.Failover = "random"
			c.PrimaryRetry = -1
		}, []string{"addresses[1]", "addresses[2]", "failover", "primary_retry"}},
		{"no address", func(c *Config) { c.Address = "" }, []string{"address"}},
		{"tls on tcp", func(c *Config) { c.TLS = &TLSConfig{CAFile: "x"} }, []string{"tls"}},
		{"cert without key", func(c *Config) { c.Address = "tls://h:8883"; c.TLS = &TLSConfig{CertFile: "x"} }, []string{"tls.key_file"}},
		{"password alone", func(c *Config) { c.Password = "x" }, []string{"password"}},
		{"keepalive", func(c *Config) { c.KeepAlive = time.Millisecond }, []string{"keepalive"}},
		{"backoff", func(c *Config) { c.Backoff = Backoff{Min: time.Minute, Max: time.Second} }, []string{"backoff.max"}},
		{"rate", func(c *Config) { c.RateLimit = -1 }, []string{"rate_limit"}},
		{"protocol", func(c *Config) { c.Protocol = "5.0" }, []string{"protocol"}},
		{"session expiry", func(c *Config) { c.SessionExpiry = time.Millisecond }, []string{"session_expiry"}},
		{"dedup property", func(c *Config) { c.DedupProperty = "a\x00b" }, []string{"dedup_property"}},
		{"no topics", func(c *Config) { c.Topics = nil }, []string{"topics"}},
		{"rule", func(c *Config) {
			c.Topics = append(c.Topics, Rule{Pattern: "a/#/b", Direction: "sideways", QoS: 3, LocalPrefix: "+/"})
		}, []string{"topics[1].direction", "topics[1].qos", "topics[1].pattern", "topics[1].local_prefix"}},
		{"queue", func(c *Config) {
			c.Queue = persist.QueueLimits{MaxMessages: -1, MaxBytes: -1, MaxAge: -1, Overflow: "drop-random"}
		}, []string{"queue.max_messages", "queue.max_bytes", "queue.max_age", "queue.overflow"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			c.Topics = append([]Rule(nil), ok.Topics...)
			tc.mod(&c)
			err := c.Validate()
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("%v does not wrap ErrInvalidConfig", err)
			}
			got := map[string]bool{}
			var walk func(error)
			walk = func(e error) {
				if fe, ok := e.(*FieldError); ok {
					got[fe.Key] = true
				} else if j, ok := e.(interface{ Unwrap() []error }); ok {
					for _, x := range j.Unwrap() {
						walk(x)
					}
				}
			}
			walk(err)
			for _, k := range tc.keys {
				if !got[k] {
					t.Errorf("no error for key %s in %v", k, err)
				}
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	c := Config{Name: "cloud", Address: "tls://h:8883", ClientID: "pi-01",
		Topics: []Rule{{Pattern: "s/#", Direction: Out, QoS: 1, RemotePrefix: "site1/"}}}.withDefaults()
	if c.NotificationTopic != "site1/edged/pi-01/state" {
		t.Errorf("NotificationTopic = %q", c.NotificationTopic)
	}
	if c.Window != 64 || c.KeepAlive != 30*time.Second || c.Backoff.Min != time.Second ||
		c.Backoff.Max != 2*time.Minute || c.Queue.Overflow != persist.DropOldest || c.PingTimeout != 10*time.Second {
		t.Errorf("defaults: %+v", c)
	}
	if c.Protocol != Protocol311 || c.SessionExpiry != 24*time.Hour || c.DedupProperty != "" {
		t.Errorf("protocol defaults: %q %s %q", c.Protocol, c.SessionExpiry, c.DedupProperty)
	}
	if QueueName("cloud") != "bridge/cloud" {
		t.Error(QueueName("cloud"))
	}
}

func TestSeedStore(t *testing.T) {
	s := newSeedStore([]uint16{9, 7, 300})
	if got := strings.Join(s.All(), ","); got != "o.9,o.7,o.300" {
		t.Errorf("All = %s, want the seeding order", got)
	}
	s.Del("o.300")
	if len(s.All()) != 2 || s.Get("o.7") == nil || s.Get("o.9") == nil {
		t.Fatalf("seeded: %v", s.All())
	}
	s.Put("o.1", s.Get("o.7"))
	if s.Get("o.1") != nil {
		t.Error("Put stored a packet")
	}
	s.Del("o.7")
	if s.Get("o.7") != nil || len(s.All()) != 1 {
		t.Error("Del")
	}
	s.Reset()
	if len(s.All()) != 0 {
		t.Error("Reset")
	}
}

func TestHourly(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	h := newHourly(t0, 0)
	var total uint64
	for m := 1; m <= 180; m++ { // 1000 bytes a minute for three hours
		total += 1000
		got := h.last(t0.Add(time.Duration(m)*time.Minute), total)
		want := uint64(min(m, 60) * 1000)
		if got != want {
			t.Fatalf("minute %d: %d bytes in the last hour, want %d", m, got, want)
		}
		if len(h.samples) > 62 {
			t.Fatalf("%d samples kept", len(h.samples))
		}
	}
	// Samples more often than a minute do not grow it.
	for s := 1; s < 600; s++ {
		h.last(t0.Add(180*time.Minute+time.Duration(s)*100*time.Millisecond), total)
	}
	if len(h.samples) > 62 {
		t.Fatalf("%d samples kept", len(h.samples))
	}
}

// The byte limiter lets a second's worth of bytes through, then holds the
// average rate, and lets a message larger than the burst through on debt.
func TestByteLimiter(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := newLimiter(1000, 1000) // bytes/s
	sent := 0
	for sent < 1000 {
		if d := l.takeN(now, 100); d != 0 {
			t.Fatalf("burst held after %d bytes", sent)
		}
		sent += 100
	}
	if d := l.takeN(now, 100); d == 0 {
		t.Fatal("not held after the burst")
	}
	// Over ten seconds, about 10,000 bytes more.
	for i := range 10_000 {
		at := now.Add(time.Duration(i) * time.Millisecond)
		if l.takeN(at, 100) == 0 {
			sent += 100
		}
	}
	if sent < 10_500 || sent > 11_100 {
		t.Errorf("%d bytes in 10s at 1000 B/s after a 1000 B burst", sent)
	}
	big := newLimiter(1000, 1000)
	if d := big.takeN(now, 5000); d != 0 {
		t.Fatal("a message larger than the burst never goes")
	}
	if d := big.takeN(now, 1); d < 4*time.Second {
		t.Errorf("after 5000 bytes at 1000 B/s the next waits %s, want about 4s", d)
	}
}
