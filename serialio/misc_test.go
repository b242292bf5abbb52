package serialio_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/edged/edged/serialio"
)

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  serialio.Config
		keys []string // keys the error must name; none means valid
	}{
		{"zero but device", serialio.Config{Device: "/dev/ttyS0"}, nil},
		{"full", serialio.Config{Name: "u", Device: "/dev/x", Baud: 9600, DataBits: 7, Parity: "even", StopBits: 2, Framing: "raw", MaxFrame: 256}, nil},
		{"no device", serialio.Config{}, []string{"device"}},
		{"many bad", serialio.Config{Name: "uart9", Device: "/dev/x", Baud: -1, DataBits: 9, Parity: "mark", StopBits: 3, Framing: "slip", MaxFrame: 8, ReopenMin: -1},
			[]string{"baud", "data_bits", "parity", "stop_bits", "framing", "max_frame", "reopen_min", `"uart9"`}},
		{"1.5 stop bits", serialio.Config{Device: "/dev/x", StopBits: 1.5}, []string{"stop_bits"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if len(tc.keys) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if !errors.Is(err, serialio.ErrInvalidConfig) {
				t.Fatalf("Validate = %v, want ErrInvalidConfig", err)
			}
			for _, k := range tc.keys {
				if !strings.Contains(err.Error(), k) {
					t.Errorf("error %q does not name %s", err, k)
				}
			}
			if _, lerr := serialio.Listen(tc.cfg); lerr == nil {
				t.Error("Listen accepted a bad config")
			}
		})
	}
}

func TestAddr(t *testing.T) {
	a := serialio.Addr{Port: "uart0", Device: "ttyUSB0", Channel: 3}
	if a.String() != "uart0/ttyUSB0#3" || a.Network() != "serial" {
		t.Fatalf("%s %s", a.Network(), a)
	}
	a.Channel = -1
	if a.String() != "uart0/ttyUSB0" {
		t.Fatal(a.String())
	}
}

func TestPorts(t *testing.T) {
	ports, err := serialio.Ports()
	if err != nil {
		t.Skipf("no port list here: %v", err)
	}
	for _, p := range ports {
		if p.Path == "" {
			t.Errorf("port without a path: %+v", p)
		}
	}
}
