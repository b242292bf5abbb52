package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// `edged check-config` (the real binary) accepts a serial section and
// reports each bad serial key as file:line: key: problem, all in one run.
func TestSerialCheckConfig(t *testing.T) {
	tests := []struct {
		name     string
		config   string
		wantCode int
		want     []string // lines of stderr, after the file name
	}{
		{"full serial section", `
listeners:
  - {name: tcp, address: "127.0.0.1:0"}
serial:
  - name: uart0
    device: /dev/serial/by-id/usb-FTDI-if00-port0
    baud: 921600
    data_bits: 8
    parity: even
    stop_bits: 2
    framing: cobs-crc16
    max_frame: 1KiB
    allow_anonymous: false
  - {name: modem, device: /dev/ttyS1, framing: raw}
`, 0, nil},
		{"serial port only, no TCP listener", `
serial:
  - {name: uart0, device: /dev/ttyAMA0}
`, 0, nil},
		{"bad serial keys", `
listeners:
  - {name: tcp, address: "127.0.0.1:0"}
serial:
  - name: uart0
    device: /dev/ttyUSB0
    baud: -9600
    data_bits: 9
    parity: mark
    stop_bits: 3
    framing: slip
    max_frame: 8
  - name: tcp
    device: ""
  - device: /dev/ttyUSB1
    speed: 9600
`, 1, []string{
			":6: serial[0].baud: -9600 is negative",
			":7: serial[0].data_bits: 9 is not 5, 6, 7 or 8",
			":8: serial[0].parity: \"mark\" is not none, even or odd",
			":9: serial[0].stop_bits: 3 is not 1 or 2",
			":10: serial[0].framing: \"slip\" is not cobs-crc16 or raw",
			":11: serial[0].max_frame: 8 is not between 16 and 4194304",
			":12: serial[1].name: duplicate listener or serial port name \"tcp\"",
			":13: serial[1].device: missing",
			":15: serial[2].speed: ",
			":14: serial[2].name: is required",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "edged.yaml")
			if err := os.WriteFile(path, []byte(strings.TrimPrefix(tc.config, "\n")), 0o600); err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			cmd := exec.Command(edgedBin, "check-config", "-c", path)
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			// A -race binary otherwise sleeps 1s before exiting 0.
			cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
			err := cmd.Run()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.wantCode {
				t.Fatalf("exit code %d, want %d\nstdout: %s\nstderr: %s", code, tc.wantCode, stdout.String(), stderr.String())
			}
			if tc.wantCode == 0 {
				if want := path + ": configuration OK\n"; stdout.String() != want {
					t.Fatalf("stdout %q, want %q", stdout.String(), want)
				}
				return
			}
			var lines []string
			for _, l := range strings.Split(strings.TrimSpace(stderr.String()), "\n")[1:] {
				lines = append(lines, strings.TrimPrefix(strings.TrimSpace(l), path))
			}
			for _, w := range tc.want {
				found := false
				for _, l := range lines {
					if strings.HasPrefix(l, w) {
						found = true
					}
				}
				if !found {
					t.Errorf("no error line %q in\n%s", w, strings.Join(lines, "\n"))
				}
			}
			if len(lines) != len(tc.want) {
				t.Errorf("%d error lines, want %d:\n%s", len(lines), len(tc.want), strings.Join(lines, "\n"))
			}
		})
	}
}
