package main

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/edged/edged/bridge"
	"github.com/edged/edged/broker"
	"github.com/edged/edged/persist"
)

// validateBridges reports every invalid bridges: value through bad, with
// keys like "bridges[0].topics[1].direction".
func validateBridges(cfgs []bridge.Config, files bool, bad badFunc) {
	names := map[string]bool{}
	for i, c := range cfgs {
		p := fmt.Sprintf("bridges[%d]", i)
		if c.Name != "" && names[c.Name] {
			bad(p+".name", "duplicate bridge name %q", c.Name)
		}
		names[c.Name] = true
		if files {
			checkBridgeFiles(bad, p, c.TLS)
		}
		for _, e := range flatten(c.Validate()) {
			var fe *bridge.FieldError
			if errors.As(e, &fe) {
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
func setupBridges(cfgs []bridge.Config, sysInterval time.Duration, b *broker.Server, db *persist.DB, log *slog.Logger) ([]*bridge.Bridge, error) {
	var out []*bridge.Bridge
	for _, bc := range cfgs {
		bc.Logger = log
		// $SYS/broker/bridge/<name>/... follows the broker's sys_interval.
		bc.SysInterval = sysInterval
		// The one place the bridge's queues are opened: New hands them to
		// the broker's taps and reads them.
		br, err := bridge.New(bc, b, bridge.OpenQueues(bc, db.Queue))
		if err != nil {
			return nil, fmt.Errorf("setting up bridge %q: %w", bc.Name, err)
		}
		out = append(out, br)
	}
	return out, nil
}

var _ bridge.Broker = (*broker.Server)(nil)
