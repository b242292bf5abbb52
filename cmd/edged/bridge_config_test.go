package main

import (
	"errors"
	"sort"
	"strings"
	"testing"
)

func TestBridgeConfigValidation(t *testing.T) {
	const head = "listeners:\n  - {name: local, address: \"127.0.0.1:0\"}\n"
	good := head + `bridges:
  - name: cloud
    address: tls://cloud.example.com:8883
    client_id: edged-pi-01
    username: pi-01
    password: secret
    tls: {ca_file: /etc/edged/cloud-ca.crt, server_name: cloud.example.com}
    keepalive: 30s
    backoff: {min: 1s, max: 2m}
    rate_limit: 0
    byte_rate_limit: 100000
    start: lazy
    lazy_threshold: 500
    lazy_interval: 30m
    idle_timeout: 2m
    topics:
      - {pattern: "sensors/#", direction: out, qos: 1, local_prefix: "", remote_prefix: "site1/"}
      - {pattern: "alarms/#", direction: out, qos: 1, remote_prefix: "site1/", priority: high}
      - {pattern: "telemetry/#", direction: out, qos: 0, remote_prefix: "site1/", offline_qos0: latest}
      - {pattern: "cmd/#", direction: in, qos: 1, local_prefix: "", remote_prefix: "site1/"}
    queue: {max_messages: 1000000, max_bytes: 512MiB, max_age: 168h, overflow: drop-oldest}
`
	if _, err := parseConfigFiles("good.yaml", []byte(good), false); err != nil {
		t.Fatalf("the documented example is refused: %v", err)
	}
	bad := head + `bridges:
  - name: cloud
    address: http://cloud:80
    backoff: {min: 2m, max: 1s}
    topics:
      - {pattern: "a/#/b", direction: sideways, qos: 3}
    queue: {overflow: drop-random, max_messages: -1}
  - name: cloud
    address: tcp://h:1883
    tls: {ca_file: x}
    topics: []
  - name: failover
    addresses: [tcp://a:1883, ws://b:80]
    failover: random
    start: sometimes
    lazy_threshold: -1
    topics:
      - {pattern: "a/#", direction: in, qos: 1, priority: urgent, offline_qos0: keep}
`
	_, err := parseConfig("bad.yaml", []byte(bad))
	if err == nil {
		t.Fatal("bad bridges accepted")
	}
	var keys []string
	for _, e := range flatten(err) {
		var ce *ConfigError
		if errors.As(e, &ce) {
			keys = append(keys, ce.Key)
			if ce.Line == 0 {
				t.Errorf("no line for %v", ce)
			}
		}
	}
	sort.Strings(keys)
	got := strings.Join(keys, "\n")
	for _, want := range []string{
		"bridges[0].address",
		"bridges[0].backoff.max",
		"bridges[0].topics[0].direction",
		"bridges[0].topics[0].qos",
		"bridges[0].topics[0].pattern",
		"bridges[0].queue.overflow",
		"bridges[0].queue.max_messages",
		"bridges[1].name",
		"bridges[1].tls",
		"bridges[1].topics",
		"bridges[2].addresses[1]",
		"bridges[2].failover",
		"bridges[2].start",
		"bridges[2].lazy_threshold",
		"bridges[2].topics[0].priority",
		"bridges[2].topics[0].offline_qos0",
	} {
		if !strings.Contains(got+"\n", want+"\n") {
			t.Errorf("no error for %s; got:\n%s", want, err)
		}
	}
}
