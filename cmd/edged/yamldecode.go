package main

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// This file maps a YAML document onto the config structs by their `yaml`
// tags. It exists, instead of yaml.Unmarshal, so that every problem is
// reported with the file, the line and the full key (listeners[1].address),
// unknown keys are refused, and all problems are reported at once.
//
// The structs are mostly the packages' own (broker.Limits, serialio.Config,
// bridge.Config): `yaml:",inline"` embeds one, `yaml:"-"` or no tag skips a
// field, and the tag config:"size" on an integer field accepts a Size
// ("256KiB") there, as a field of type Size does.

// Size is a byte count written as a plain number or with a KiB, MiB or GiB
// suffix (powers of 1024). KB, MB and GB are accepted as the same units,
// since that is what people mean on a router.
type Size int64

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30}, {"B", 1},
}

// ParseSize parses "512", "4KiB", "48MiB" or "1GiB".
func ParseSize(s string) (Size, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	num := s
	for _, u := range sizeUnits {
		if strings.HasSuffix(s, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("invalid size %q: want a number of bytes or one with a KiB, MiB or GiB suffix", s)
	}
	if n > (1<<62)/mult {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return Size(n * mult), nil
}

// String formats the size with the largest exact unit.
func (s Size) String() string {
	switch {
	case s != 0 && s%(1<<30) == 0:
		return strconv.FormatInt(int64(s)>>30, 10) + "GiB"
	case s != 0 && s%(1<<20) == 0:
		return strconv.FormatInt(int64(s)>>20, 10) + "MiB"
	case s != 0 && s%(1<<10) == 0:
		return strconv.FormatInt(int64(s)>>10, 10) + "KiB"
	}
	return strconv.FormatInt(int64(s), 10)
}

// MarshalYAML writes the size as String does, for normalized output.
func (s Size) MarshalYAML() (any, error) { return s.String(), nil }

var (
	durationType = reflect.TypeFor[time.Duration]()
	sizeType     = reflect.TypeFor[Size]()
)

// yamlDecoder collects errors and the line of every key it decoded.
type yamlDecoder struct {
	file  string
	errs  []error
	lines map[string]int // key path → line
}

func (d *yamlDecoder) errorf(line int, path, format string, args ...any) {
	d.errs = append(d.errs, &ConfigError{File: d.file, Line: line, Key: path, Msg: fmt.Sprintf(format, args...)})
}

// ConfigError is a problem with one key of a configuration file.
type ConfigError struct {
	File string
	Line int
	Key  string
	Msg  string
	Err  error // the underlying error, if any (for errors.Is)
}

// Unwrap returns the underlying error.
func (e *ConfigError) Unwrap() error { return e.Err }

// Error implements error: "edged.yaml:12: limits.max_inflight: must be ...".
func (e *ConfigError) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc += ":" + strconv.Itoa(e.Line)
	}
	if e.Key == "" {
		return loc + ": " + e.Msg
	}
	return loc + ": " + e.Key + ": " + e.Msg
}

// decodeYAML decodes data into v (a pointer to a struct). It returns the
// key → line index for later validation messages, and every problem found,
// joined.
func decodeYAML(file string, data []byte, v any) (map[string]int, error) {
	d := &yamlDecoder{file: file, lines: map[string]int{}}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		// yaml.v3 syntax errors already say "yaml: line N: ...".
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if root.Kind == 0 || len(root.Content) == 0 {
		return d.lines, nil // an empty file: all defaults
	}
	d.decode(root.Content[0], reflect.ValueOf(v).Elem(), "", false)
	return d.lines, errors.Join(d.errs...)
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// decode decodes n into v; size says the field is tagged config:"size".
func (d *yamlDecoder) decode(n *yaml.Node, v reflect.Value, path string, size bool) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if path != "" {
		d.lines[path] = n.Line
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // "key:" with no value keeps the default
	}
	switch {
	case v.Type() == durationType:
		dur, err := time.ParseDuration(n.Value)
		if n.Kind != yaml.ScalarNode || err != nil {
			d.errorf(n.Line, path, "invalid duration %q: want a Go duration such as 500ms, 30s or 2m", n.Value)
			return
		}
		v.SetInt(int64(dur))
		return
	case v.Type() == sizeType || (size && v.CanInt()):
		sz, err := ParseSize(n.Value)
		if n.Kind != yaml.ScalarNode || err != nil {
			d.errorf(n.Line, path, "invalid size %q: want a number of bytes or one with a KiB, MiB or GiB suffix", n.Value)
			return
		}
		if v.OverflowInt(int64(sz)) {
			d.errorf(n.Line, path, "size %q is too large", n.Value)
			return
		}
		v.SetInt(int64(sz))
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.errorf(n.Line, path, "want a list")
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, c := range n.Content {
			d.decode(c, s.Index(i), path+"["+strconv.Itoa(i)+"]", false)
		}
		v.Set(s)
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		d.decode(n, p.Elem(), path, size)
		v.Set(p)
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.errorf(n.Line, path, "want a string")
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		var b bool
		if n.Kind != yaml.ScalarNode || n.Decode(&b) != nil {
			d.errorf(n.Line, path, "invalid boolean %q: want true or false", n.Value)
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int64, reflect.Int32:
		i, err := strconv.ParseInt(n.Value, 0, 64)
		if n.Kind != yaml.ScalarNode || err != nil || v.OverflowInt(i) {
			d.errorf(n.Line, path, "invalid integer %q", n.Value)
			return
		}
		v.SetInt(i)
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uint:
		u, err := strconv.ParseUint(n.Value, 0, 64)
		if n.Kind != yaml.ScalarNode || err != nil || v.OverflowUint(u) {
			d.errorf(n.Line, path, "invalid integer %q", n.Value)
			return
		}
		v.SetUint(u)
	case reflect.Float64:
		f, err := strconv.ParseFloat(n.Value, 64)
		if n.Kind != yaml.ScalarNode || err != nil {
			d.errorf(n.Line, path, "invalid number %q", n.Value)
			return
		}
		v.SetFloat(f)
	default:
		d.errorf(n.Line, path, "unsupported type %s", v.Type())
	}
}

func (d *yamlDecoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n.Line, path, "want a mapping of keys to values")
		return
	}
	fields := map[string]configField{}
	structFields(v.Type(), nil, fields)
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		key := join(path, k.Value)
		idx, ok := fields[k.Value]
		if !ok {
			d.errorf(k.Line, key, "unknown key")
			continue
		}
		if seen[k.Value] {
			d.errorf(k.Line, key, "key given twice")
			continue
		}
		seen[k.Value] = true
		d.lines[key] = k.Line
		d.decode(val, v.FieldByIndex(idx.index), key, idx.size)
		d.lines[key] = k.Line
	}
}

// configField is a struct field a key decodes into.
type configField struct {
	index []int // for reflect.Value.FieldByIndex
	size  bool  // tagged config:"size"
}

// structFields adds the keys of struct type t to fields: its yaml-tagged
// fields and those of its `yaml:",inline"` embedded structs.
func structFields(t reflect.Type, prefix []int, fields map[string]configField) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		index := append(append([]int(nil), prefix...), i)
		if tag == "" && opts == "inline" && f.Type.Kind() == reflect.Struct {
			structFields(f.Type, index, fields)
			continue
		}
		if tag != "" && tag != "-" {
			fields[tag] = configField{index: index, size: f.Tag.Get("config") == "size"}
		}
	}
}

// marshalConfig writes v (a config struct) as YAML, as yaml.Marshal does,
// except that config:"size" fields are written as sizes ("256KiB"), so
// that the output reads like the file it came from and decodes back to
// the same values.
func marshalConfig(v any) ([]byte, error) {
	var n yaml.Node
	if err := n.Encode(v); err != nil {
		return nil, err
	}
	tidyNode(&n, reflect.ValueOf(v), false)
	return yaml.Marshal(&n)
}

// tidyNode rewrites n, the encoding of v: config:"size" fields are written
// as sizes and, with omitZero, keys whose value is the zero value (or a
// section left empty by that) are removed.
func tidyNode(n *yaml.Node, v reflect.Value, omitZero bool) {
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return
		}
		v = v.Elem()
	}
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	switch {
	case v.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		fields := map[string]configField{}
		structFields(v.Type(), nil, fields)
		var keep []*yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			key, val := n.Content[i], n.Content[i+1]
			f, ok := fields[key.Value]
			if !ok {
				keep = append(keep, key, val)
				continue
			}
			fv := v.FieldByIndex(f.index)
			if omitZero && fv.IsZero() {
				continue
			}
			if f.size && fv.CanInt() {
				val.Kind, val.Tag, val.Style, val.Value = yaml.ScalarNode, "!!str", 0, Size(fv.Int()).String()
			} else {
				tidyNode(val, fv, omitZero)
				if omitZero && fv.Kind() == reflect.Struct && val.Kind == yaml.MappingNode && len(val.Content) == 0 {
					continue
				}
			}
			keep = append(keep, key, val)
		}
		n.Content = keep
	case v.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		for i := 0; i < v.Len() && i < len(n.Content); i++ {
			tidyNode(n.Content[i], v.Index(i), omitZero)
		}
	}
}
