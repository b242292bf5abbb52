package main

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/edged/edged/bridge"
	"github.com/edged/edged/broker"
	"github.com/edged/edged/persist"
)

// bridgeConfig converts a bridges: entry of the configuration file.
func bridgeConfig(c BridgeConfig, log *slog.Logger) bridge.Config {
	bc := bridge.Config{
		Name:      c.Name,
		Address:   c.Address,
		ClientID:  c.ClientID,
		Username:  c.Username,
		Password:  c.Password,
		KeepAlive: c.KeepAlive,
		Backoff:   bridge.Backoff{Min: c.Backoff.Min, Max: c.Backoff.Max},
		RateLimit: c.RateLimit,

		PingTimeout:       c.PingTimeout,
		ConnectTimeout:    c.ConnectTimeout,
		StableAfter:       c.StableAfter,
		Window:            c.Window,
		NotificationTopic: c.NotificationTopic,
		Queue: persist.QueueLimits{
			MaxMessages: c.Queue.MaxMessages,
			MaxBytes:    int64(c.Queue.MaxBytes),
			MaxAge:      c.Queue.MaxAge,
			Overflow:    c.Queue.Overflow,
		},
		Logger: log,
	}
	if c.TLS != nil {
		bc.TLS = &bridge.TLSConfig{
			CAFile:     c.TLS.CAFile,
			CertFile:   c.TLS.CertFile,
			KeyFile:    c.TLS.KeyFile,
			ServerName: c.TLS.ServerName,
		}
	}
	for _, t := range c.Topics {
		qos := byte(3) // out of range: Validate reports it
		if t.QoS >= 0 && t.QoS <= 2 {
			qos = byte(t.QoS)
		}
		bc.Topics = append(bc.Topics, bridge.Rule{
			Pattern:      t.Pattern,
			Direction:    bridge.Direction(t.Direction),
			QoS:          qos,
			LocalPrefix:  t.LocalPrefix,
			RemotePrefix: t.RemotePrefix,
		})
	}
	return bc
}

// validateBridges reports every invalid bridges: value through bad, with
// keys like "bridges[0].topics[1].direction".
func validateBridges(cfgs []BridgeConfig, bad func(key, format string, args ...any)) {
	names := map[string]bool{}
	for i, c := range cfgs {
		p := fmt.Sprintf("bridges[%d]", i)
		if c.Name != "" && names[c.Name] {
			bad(p+".name", "duplicate bridge name %q", c.Name)
		}
		names[c.Name] = true
		for j, t := range c.Topics {
			if t.QoS < 0 || t.QoS > 2 {
				bad(fmt.Sprintf("%s.topics[%d].qos", p, j), "must be 0, 1 or 2, got %d", t.QoS)
			}
		}
		for _, e := range flatten(bridgeConfig(c, nil).Validate()) {
			var fe *bridge.FieldError
			if errors.As(e, &fe) {
				if strings.HasSuffix(fe.Key, ".qos") {
					continue // reported above with the file's value
				}
				bad(p+"."+fe.Key, "%v", fe.Err)
			} else {
				bad(p, "%v", e)
			}
		}
	}
}

// setupBridges creates the configured bridges on b, with their durable
// queues in db: it sets the queues' limits and registers their taps, so it
// must be called before b serves clients. The caller runs each Bridge.Run
// in its errgroup.
func setupBridges(cfgs []BridgeConfig, sysInterval time.Duration, b *broker.Server, db *persist.DB, log *slog.Logger) ([]*bridge.Bridge, error) {
	var out []*bridge.Bridge
	for _, c := range cfgs {
		bc := bridgeConfig(c, log)
		// $SYS/broker/bridge/<name>/... follows the broker's sys_interval.
		bc.SysInterval = sysInterval
		// The one place the bridge's queues are opened: New hands them to
		// the broker's tap and reads them.
		br, err := bridge.New(bc, b, bridge.OpenQueues(bc, db.Queue))
		if err != nil {
			return nil, fmt.Errorf("setting up bridge %q: %w", c.Name, err)
		}
		out = append(out, br)
	}
	return out, nil
}

var _ bridge.Broker = (*broker.Server)(nil)
