package packet

import (
	"bytes"
	"reflect"
	"testing"
)

func TestPropertyBlockRoundTrip(t *testing.T) {
	pf, exp := byte(1), uint32(60)
	p := &Properties{PayloadFormat: &pf, MessageExpiry: &exp, ContentType: "application/json",
		ResponseTopic: "r/1", CorrelationData: []byte{0, 1, 2},
		User: []UserProperty{{"b", "2"}, {"a", "1"}, {"b", "3"}}}
	b := AppendProperties(nil, p)
	got, err := DecodeProperties(b, PUBLISH)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, p) {
		t.Fatalf("got %+v, want %+v", got, p)
	}
	if g, err := DecodeProperties(AppendProperties(nil, nil), PUBLISH); g != nil || err != nil {
		t.Fatalf("empty block: %v, %v", g, err)
	}
	// Hostile: trailing bytes, a property a PUBLISH may not carry, a
	// truncated block.
	for name, bad := range map[string][]byte{
		"trailing":    append(bytes.Clone(b), 0),
		"not allowed": AppendProperties(nil, &Properties{ReasonString: "x"}),
		"truncated":   b[:len(b)-1],
	} {
		if _, err := DecodeProperties(bad, PUBLISH); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// FuzzPropertyBlock holds DecodeProperties to never panicking and to
// re-encoding what it accepts to the same properties.
func FuzzPropertyBlock(f *testing.F) {
	exp := uint32(5)
	f.Add(AppendProperties(nil, &Properties{MessageExpiry: &exp, User: []UserProperty{{"k", "v"}}}))
	f.Add([]byte{0})
	f.Add([]byte{3, 0x02, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := DecodeProperties(b, PUBLISH)
		if err != nil {
			return
		}
		again, err := DecodeProperties(AppendProperties(nil, p), PUBLISH)
		if err != nil {
			t.Fatalf("re-encoded block does not decode: %v", err)
		}
		if !reflect.DeepEqual(again, p) {
			t.Fatalf("round trip: %+v != %+v", again, p)
		}
	})
}
