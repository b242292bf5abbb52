package main

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// fuzzConfigName is the file name handed to parseConfig; every error must
// start with it.
const fuzzConfigName = "fuzz.yaml"

// FuzzParseConfig holds the configuration decoder to its contract on
// arbitrary input: no panic; every error, and each of the joined errors,
// starts with the file name; and an accepted config is a fixed point of
// normalization: marshalConfig of it parses again to the same config, which
// marshals to the same bytes (what TestConfigsGolden writes is itself a
// valid config that means the same).
//
// Inputs that name an auth file are skipped: validation reads those files,
// and a fuzzed path could name anything (/dev/zero, a FIFO).
func FuzzParseConfig(f *testing.F) {
	seeds, _ := filepath.Glob("../../configs/*.yaml")
	seeds = append(seeds, "default.yaml")
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		"",
		"listeners: [\n",
		"listeners: [{address: '127.0.0.1:1'}]\nlimits: {max_queued_bytes: 12XB, session_expiry: 5}\n",
		"listeners:\n  - name: a\n    adress: x\n    address: nope\nlimits:\n  max_inflight: -3\n",
		"data_dir: a\ndata_dir: b\nlisteners: [{address: '127.0.0.1:1'}]\n",
		"listeners: &l [{address: '127.0.0.1:1', websocket: {}}]\nserial: *l\n",
		"serial:\n  - {name: u, device: /dev/ttyS0, baud: 0x2580, stop_bits: 1.5, max_frame: 4KiB}\n",
		"bridges:\n  - name: up\n    address: 'h:1'\n    topics: [{pattern: 'a/#', direction: both, qos: 3}]\n    queue: {max_bytes: 1 GB, max_age: -1s}\n",
		"listeners: [{address: ':1', allow_anonymous: yes, tls: {cert_file: c}}]\nmemory_limit: 9223372036854775807\n",
		"? [a]\n: b\n",
		"--- !!map\n!!str listeners: !!seq [!!map {address: !!str 'x:1'}]\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 4096 || namesAuthFile(data) {
			return
		}
		cfg, err := parseConfig(fuzzConfigName, data)
		if err != nil {
			if cfg != nil {
				t.Fatalf("config %+v returned with error %v", cfg, err)
			}
			checkConfigError(t, err)
			return
		}
		if cfg == nil {
			t.Fatal("nil config and nil error")
		}
		out, err := marshalConfig(cfg)
		if err != nil {
			t.Fatalf("marshaling the config: %v", err)
		}
		again, err := parseConfig(fuzzConfigName, out)
		if err != nil {
			t.Fatalf("the normalized config does not parse: %v\n%s", err, out)
		}
		if a, b := canonical(cfg), canonical(again); !reflect.DeepEqual(a, b) {
			t.Fatalf("normalization is not idempotent:\nfirst  %+v\nsecond %+v\nyaml:\n%s", a, b, out)
		}
		out2, err := marshalConfig(again)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out, out2) {
			t.Fatalf("normalized yaml is not a fixed point:\n%s\nthen\n%s", out, out2)
		}
	})
}

// checkConfigError checks that err and every error it joins start with the
// file name.
func checkConfigError(t *testing.T, err error) {
	t.Helper()
	if !strings.HasPrefix(err.Error(), fuzzConfigName+":") {
		t.Fatalf("error does not start with the file name: %q", err)
	}
	for _, e := range flatten(err) {
		if !strings.HasPrefix(e.Error(), fuzzConfigName+":") {
			t.Fatalf("joined error does not start with the file name: %q (in %q)", e, err)
		}
		if ce, ok := e.(*ConfigError); ok && (ce.File != fuzzConfigName || ce.Line < 0) {
			t.Fatalf("bad location in %#v", ce)
		}
	}
}

// namesAuthFile reports whether data names an auth file, in any spelling
// YAML allows (quoted keys with escapes, anchors): it looks at the decoded
// value of every node.
func namesAuthFile(data []byte) bool {
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil {
		return false // a syntax error: parseConfig validates nothing
	}
	var walk func(n *yaml.Node) bool
	walk = func(n *yaml.Node) bool {
		if n == nil {
			return false
		}
		if strings.Contains(n.Value, "password_file") || strings.Contains(n.Value, "acl_file") {
			return true
		}
		for _, c := range n.Content {
			if walk(c) {
				return true
			}
		}
		return false
	}
	return walk(&root)
}

// canonical returns a copy of cfg with empty slices made nil: yaml.Marshal
// writes a nil slice as [], which decodes to an empty slice, and both mean
// "none" to edged.
func canonical(cfg *Config) Config {
	c := *cfg
	nilEmpty(reflect.ValueOf(&c).Elem())
	return c
}

func nilEmpty(v reflect.Value) {
	switch v.Kind() {
	case reflect.Slice:
		if v.Len() == 0 {
			v.SetZero()
			return
		}
		// A fresh copy, so that cfg itself is not changed.
		s := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		reflect.Copy(s, v)
		for i := range s.Len() {
			nilEmpty(s.Index(i))
		}
		v.Set(s)
	case reflect.Struct:
		for i := range v.NumField() {
			nilEmpty(v.Field(i))
		}
	}
}
