package serialio

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"go.bug.st/serial"
)

// byIDDir holds udev's stable links to serial devices on Linux.
const byIDDir = "/dev/serial/by-id"

// PortInfo describes a serial port found on the system, for the
// `edged serial-ports` subcommand.
type PortInfo struct {
	// Path is the device path, for example /dev/ttyUSB0.
	Path string
	// IsUSB is true for USB serial adapters.
	IsUSB bool
	// VID and PID are the USB vendor and product IDs in hex, if known.
	VID, PID string
	// SerialNumber is the USB serial number, if known.
	SerialNumber string
	// Manufacturer and Product are the USB descriptor strings, if known.
	Manufacturer, Product string
	// ByID lists the /dev/serial/by-id links that point at Path: the stable
	// names to put in the config file.
	ByID []string
}

// Ports lists the serial ports of the system with what is known about them.
// It tolerates partial failures: an error is returned only if no list could
// be made at all; details that cannot be read are left empty.
func Ports() ([]PortInfo, error) {
	byPath := map[string]*PortInfo{}
	get := func(path string) *PortInfo {
		if p, ok := byPath[path]; ok {
			return p
		}
		p := &PortInfo{Path: path}
		byPath[path] = p
		return p
	}
	names, listErr := serial.GetPortsList()
	for _, n := range names {
		get(n)
	}
	details, detailErr := usbDetails()
	for _, d := range details {
		p := get(d.Path)
		p.IsUSB = d.IsUSB
		p.VID, p.PID, p.SerialNumber = d.VID, d.PID, d.SerialNumber
		p.Manufacturer, p.Product = d.Manufacturer, d.Product
	}
	if entries, err := os.ReadDir(byIDDir); err == nil {
		for _, e := range entries {
			link := filepath.Join(byIDDir, e.Name())
			target, err := filepath.EvalSymlinks(link)
			if err != nil {
				continue
			}
			p := get(target)
			p.ByID = append(p.ByID, link)
		}
	}
	if listErr != nil && detailErr != nil && len(byPath) == 0 {
		return nil, fmt.Errorf("listing serial ports: %w", errors.Join(listErr, detailErr))
	}
	out := make([]PortInfo, 0, len(byPath))
	for _, p := range byPath {
		sort.Strings(p.ByID)
		out = append(out, *p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}
