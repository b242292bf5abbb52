package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/edged/edged/internal/testutil"
)

// TestBridgeNotificationWill runs the real edged binary bridged to a real
// mosquitto: the retained notification topic reads "1" while the bridge is
// connected, "0" after edged is killed with SIGKILL (mosquitto publishes
// the bridge's will), "1" again after a restart and "0" after SIGTERM (the
// clean stop publishes it).
func TestBridgeNotificationWill(t *testing.T) {
	up := testutil.StartMosquitto(t, testutil.MosquittoOptions{}).Addr
	dir := t.TempDir()
	config := fmt.Sprintf(`data_dir: %s
listeners:
  - {name: local, address: "127.0.0.1:0"}
bridges:
  - name: cloud
    address: tcp://%s
    client_id: edged-will
    keepalive: 1s
    backoff: {min: 20ms, max: 200ms}
    topics:
      - {pattern: "sensors/#", direction: out, qos: 1, remote_prefix: "site1/"}
      - {pattern: "cmd/#", direction: in, qos: 1, remote_prefix: "site1/"}
`, dir, up)
	const topic = "site1/edged/edged-will/state"

	ed := startEdged(t, dir, config)
	testutil.WaitRetained(t, up, topic, "1", 10*time.Second)
	ed.kill()
	start := time.Now()
	testutil.WaitRetained(t, up, topic, "0", 5*time.Second)
	t.Logf("will read %s after SIGKILL", time.Since(start).Round(time.Millisecond))

	ed = startEdged(t, dir, config)
	testutil.WaitRetained(t, up, topic, "1", 10*time.Second)
	ed.stop(t)
	testutil.WaitRetained(t, up, topic, "0", 5*time.Second)
}
