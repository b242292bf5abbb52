//go:build darwin && !cgo

package serialio

import "errors"

// usbDetails is unavailable: go.bug.st/serial reads USB details on macOS
// through cgo.
func usbDetails() ([]PortInfo, error) {
	return nil, errors.New("usb details need cgo on darwin")
}
