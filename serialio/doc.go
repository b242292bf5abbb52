// Package serialio serves MQTT over serial lines: it turns a UART (or a USB
// serial adapter) into a net.Listener whose Accept returns one net.Conn per
// logical MQTT connection, so the broker serves sensors on a serial line
// exactly as it serves TCP clients.
//
// # Framing
//
// With framing cobs-crc16 (the default) the line carries frames: a channel
// byte, one MQTT packet and a CRC-16/CCITT-FALSE, COBS-encoded and delimited
// by 0x00 (specified in WIRE.md in this directory). Each channel 0-254 is a logical connection, so one
// MCU hub can present several sensors; channel 255 carries link control.
// Corrupt frames are dropped, counted (Stats) and resynchronised at the next
// 0x00. The link rules that differ from TCP:
//
//   - A valid frame on a channel without an open conn opens one and offers
//     it to Accept.
//   - A CONNECT on a channel that is open ends the old conn as a network loss
//     (its Read returns ErrChannelReplaced, so its will is published) and
//     opens a new one once the broker has closed the old one (at most 1 s).
//   - A frame that fails its CRC but names an open channel ends that conn
//     (ErrChannelReset) and sends link-control RESET for the channel, so the
//     sensor reconnects at once and resends its unacknowledged packets.
//   - When the broker closes a conn, the sensor is sent RESET for the
//     channel too, unless the sensor's last packet was DISCONNECT: a sensor
//     dropped for a keepalive timeout or a protocol error learns of it at
//     once, as a TCP client would from a closed socket.
//
// A conn's Write takes the broker's MQTT byte stream, in any pieces, and
// sends one frame per complete packet. The package Encode/Decode functions
// (AppendFrame, Decoder, AppendCOBS, DecodeCOBS, CRC16) are the same code the
// Listener uses and are exported for tools and tests. The reference sensor
// implementation in C is in the cref directory.
//
// With framing raw the port is one plain MQTT byte stream and one conn;
// after the broker closes it, the next bytes that arrive open a new conn.
//
// # Device loss
//
// The device is opened by a goroutine owned by the Listener. A device that
// is missing is retried with exponential backoff (Config.ReopenMin to
// ReopenMax); Listen fails only for a bad Config. When the open device fails
// (a USB adapter unplugged), every conn of the port is closed with
// ErrPortLost, which the broker treats as a network loss (wills are
// published), and the device is reopened with backoff.
//
// # Concurrency
//
// A Listener and its conns are safe for concurrent use as net.Listener and
// net.Conn require. Each open device has one writer goroutine that makes all
// its writes, in order, one Write (all its frames, or a RESET) at a time and
// in one piece, and that alone closes the device, after its last write. A
// conn's Write hands the writer a copy of its frames and waits for the
// result. Read and Write honour their deadlines and then return
// os.ErrDeadlineExceeded, and both return once the conn is closed, even
// while a device write is blocked in the driver (the far end stopped
// reading, flow control held): Write stops waiting but a write the writer
// has begun is still completed whole, so the frames on the wire stay intact.
// RESETs are queued without waiting and dropped if writes stay stuck.
//
// Close waits for the Listener's goroutine; the device read polls every
// 100ms, so Close returns within about that. It then waits up to a second
// for a device write in progress, after asking the driver to discard unsent
// output (which frees a UART held by flow control, but not a
// pseudo-terminal nobody reads). A write still blocked after that leaves the
// writer goroutine, with the device open, until the driver returns it; the
// goroutine then closes the device and ends. Likewise, after a device loss
// the device is reopened only once it can be: go.bug.st/serial opens it
// exclusively (TIOCEXCL; root is exempt), so while a stuck write holds the
// old descriptor the open fails and is retried with backoff. Lock order:
// session before conn.
//
// # Imports
//
// serialio is a leaf: it imports no edged package (not broker, not
// broker/packet: it reads MQTT fixed headers itself) and must never do so.
// Its only dependency outside the standard library is go.bug.st/serial.
//
// # Caveats
//
// Baud rate, parity and stop bits have no effect on a pseudo-terminal,
// which the tests use. DTR and RTS are left as the driver sets them, since
// those ioctls fail on a PTY. 1.5 stop bits work only on Windows.
package serialio
