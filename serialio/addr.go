package serialio

import "strconv"

// Addr is the address of a serial listener or conn: network "serial", string
// "NAME/DEVICE" for the port and "NAME/DEVICE#CHANNEL" for a cobs-crc16
// logical connection, for example "uart0/ttyUSB0#3".
type Addr struct {
	Port    string // Config.Name
	Device  string // base name of Config.Device
	Channel int    // 0-254, or -1 for the port itself and raw framing
}

// Network returns "serial".
func (a Addr) Network() string { return "serial" }

// String returns "NAME/DEVICE" or "NAME/DEVICE#CHANNEL".
func (a Addr) String() string {
	s := a.Port + "/" + a.Device
	if a.Channel >= 0 {
		s += "#" + strconv.Itoa(a.Channel)
	}
	return s
}
