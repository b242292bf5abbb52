package serialio

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"time"

	"go.bug.st/serial"
)

// Framing names, the values of Config.Framing (config key framing).
const (
	// FramingCOBSCRC16 is the cobs-crc16 wire format of serialio/WIRE.md:
	// several logical MQTT connections per port, CRC, resynchronisation.
	FramingCOBSCRC16 = "cobs-crc16"
	// FramingRaw carries one plain MQTT byte stream, one client per port.
	FramingRaw = "raw"
)

// Parity names, the values of Config.Parity.
const (
	ParityNone = "none"
	ParityEven = "even"
	ParityOdd  = "odd"
)

// Defaults applied to zero-valued Config fields.
const (
	DefaultBaud      = 115200
	DefaultDataBits  = 8
	DefaultReopenMin = 500 * time.Millisecond
	DefaultReopenMax = 30 * time.Second
)

// maxMaxFrame bounds Config.MaxFrame; MQTT's own limit is 256 MiB but a
// serial link at 115200 baud would need over 6 minutes for 4 MiB.
const maxMaxFrame = 4 << 20

// Config configures one serial port (one entry under serial: in the config
// file, which decodes into it directly by the yaml tags; config:"size" marks
// a byte count written with a KiB or MiB suffix). The zero value of every
// field except Device is usable.
type Config struct {
	// Name identifies the port in logs, addresses and $SYS (config key
	// name). Default: the base name of Device.
	Name string `yaml:"name"`
	// Device is the path of the serial device (device), for example
	// /dev/ttyAMA0 or a stable /dev/serial/by-id/... path. Required. It need
	// not exist yet: Listen keeps retrying to open it.
	Device string `yaml:"device"`
	// Baud is the line speed (baud). Default 115200.
	Baud int `yaml:"baud"`
	// DataBits is 5, 6, 7 or 8 (data_bits). Default 8.
	DataBits int `yaml:"data_bits"`
	// Parity is "none", "even" or "odd" (parity). Default "none".
	Parity string `yaml:"parity"`
	// StopBits is 1, 2 or, on Windows only, 1.5 (stop_bits). Default 1.
	StopBits float64 `yaml:"stop_bits"`
	// Framing is "cobs-crc16" or "raw" (framing). Default "cobs-crc16".
	Framing string `yaml:"framing"`
	// MaxFrame is the largest decoded frame, channel, body and CRC, in
	// bytes (max_frame). Larger frames are dropped and counted; an MQTT packet
	// from the broker that does not fit fails the conn's Write. It also
	// bounds each conn's input buffer (16 frames; when it is full the port
	// reader waits up to 2s for the broker, then closes the conn with
	// ErrInputOverflow). Default 4096.
	MaxFrame int `yaml:"max_frame" config:"size"`
	// Logger receives the port's logs. Nil discards them.
	Logger *slog.Logger `yaml:"-"`
	// ReopenMin and ReopenMax bound the exponential backoff between
	// attempts to open the device after it is missing or lost (reopen_min,
	// reopen_max). Defaults 500ms and 30s.
	ReopenMin time.Duration `yaml:"reopen_min"`
	ReopenMax time.Duration `yaml:"reopen_max"`
}

// withDefaults returns c with zero values replaced by defaults.
func (c Config) withDefaults() Config {
	if c.Name == "" && c.Device != "" {
		c.Name = filepath.Base(c.Device)
	}
	if c.Baud == 0 {
		c.Baud = DefaultBaud
	}
	if c.DataBits == 0 {
		c.DataBits = DefaultDataBits
	}
	if c.Parity == "" {
		c.Parity = ParityNone
	}
	if c.StopBits == 0 {
		c.StopBits = 1
	}
	if c.Framing == "" {
		c.Framing = FramingCOBSCRC16
	}
	if c.MaxFrame == 0 {
		c.MaxFrame = DefaultMaxFrame
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.ReopenMin == 0 {
		c.ReopenMin = DefaultReopenMin
	}
	if c.ReopenMax == 0 {
		c.ReopenMax = DefaultReopenMax
	}
	if c.ReopenMax < c.ReopenMin {
		c.ReopenMax = c.ReopenMin
	}
	return c
}

// Validate reports every out-of-range setting, each naming its config key,
// joined into one error wrapping ErrInvalidConfig. Zero values are valid
// (they select the defaults) except for Device.
func (c Config) Validate() error {
	var errs []error
	bad := func(key string, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s: %s", ErrInvalidConfig, key, fmt.Sprintf(format, args...)))
	}
	if c.Device == "" {
		bad("device", "missing")
	}
	if c.Baud < 0 {
		bad("baud", "%d is negative", c.Baud)
	}
	if c.DataBits != 0 && (c.DataBits < 5 || c.DataBits > 8) {
		bad("data_bits", "%d is not 5, 6, 7 or 8", c.DataBits)
	}
	switch c.Parity {
	case "", ParityNone, ParityEven, ParityOdd:
	default:
		bad("parity", "%q is not none, even or odd", c.Parity)
	}
	switch c.StopBits {
	case 0, 1, 2:
	case 1.5:
		if runtime.GOOS != "windows" {
			bad("stop_bits", "1.5 is supported only on Windows")
		}
	default:
		bad("stop_bits", "%v is not 1 or 2", c.StopBits)
	}
	switch c.Framing {
	case "", FramingCOBSCRC16, FramingRaw:
	default:
		bad("framing", "%q is not cobs-crc16 or raw", c.Framing)
	}
	if c.MaxFrame != 0 && (c.MaxFrame < 16 || c.MaxFrame > maxMaxFrame) {
		bad("max_frame", "%d is not between 16 and %d", c.MaxFrame, maxMaxFrame)
	}
	if c.ReopenMin < 0 {
		bad("reopen_min", "%v is negative", c.ReopenMin)
	}
	if c.ReopenMax < 0 {
		bad("reopen_max", "%v is negative", c.ReopenMax)
	}
	if err := errors.Join(errs...); err != nil {
		if c.Name != "" {
			return fmt.Errorf("serial port %q: %w", c.Name, err)
		}
		return err
	}
	return nil
}

// mode returns the go.bug.st/serial mode for c (defaults applied). The
// modem status bits are left alone: setting DTR/RTS fails on a PTY and on
// some adapters.
func (c Config) mode() *serial.Mode {
	m := &serial.Mode{BaudRate: c.Baud, DataBits: c.DataBits}
	switch c.Parity {
	case ParityEven:
		m.Parity = serial.EvenParity
	case ParityOdd:
		m.Parity = serial.OddParity
	}
	switch c.StopBits {
	case 1.5:
		m.StopBits = serial.OnePointFiveStopBits
	case 2:
		m.StopBits = serial.TwoStopBits
	}
	return m
}
