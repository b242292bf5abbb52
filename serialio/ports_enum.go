//go:build !darwin || cgo

package serialio

import "go.bug.st/serial/enumerator"

// usbDetails returns what the OS knows about each port (USB IDs and
// strings), without actively probing devices.
func usbDetails() ([]PortInfo, error) {
	details, err := enumerator.GetDetailedPortsList()
	out := make([]PortInfo, 0, len(details))
	for _, d := range details {
		if d == nil || d.Name == "" {
			continue
		}
		out = append(out, PortInfo{
			Path: d.Name, IsUSB: d.IsUSB, VID: d.VID, PID: d.PID, SerialNumber: d.SerialNumber,
			Manufacturer: d.Manufacturer, Product: d.Product,
		})
	}
	return out, err
}
