package bridge_test

import (
	"fmt"

	"gopkg.in/yaml.v3"

	"github.com/edged/edged/bridge"
)

// A bridges: entry of edged's configuration decodes into bridge.Config by
// its yaml tags (edged's own decoder also takes sizes such as 512MiB and
// reports each problem with its line); Validate reports every bad value
// with its key.
func ExampleConfig_Validate() {
	var cfg bridge.Config
	err := yaml.Unmarshal([]byte(`
name: cloud
address: tls://cloud.example.com:8883
keepalive: 30s
topics:
  - {pattern: "sensors/#", direction: out, qos: 1, remote_prefix: "site1/"}
  - {pattern: "cmd/#", direction: sideways, qos: 1}
queue: {max_messages: 100000, max_bytes: 67108864, overflow: drop-oldest}
`), &cfg)
	if err != nil {
		panic(err)
	}
	fmt.Println(cfg.Name, cfg.Address, cfg.KeepAlive, len(cfg.Topics), cfg.Queue.MaxBytes)
	fmt.Println(cfg.Validate())
	// Output:
	// cloud tls://cloud.example.com:8883 30s 2 67108864
	// topics[1].direction: must be out, in or both, got "sideways"
}
