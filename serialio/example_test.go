package serialio_test

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/edged/edged/serialio"
)

// A serial port served like a TCP listener; the broker's Serve loop would
// take the place of the Accept loop here.
func ExampleListen() {
	ln, err := serialio.Listen(serialio.Config{
		Name:   "uart0",
		Device: "/dev/serial/by-id/usb-FTDI_FT232R_A50285BI-if00-port0",
		Baud:   115200,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, nil)),
	})
	if err != nil {
		return // a bad Config; a missing device is retried in the background
	}
	defer ln.Close()
	for {
		c, err := ln.Accept() // one net.Conn per logical MQTT connection
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			// serve MQTT on c, with read deadlines for keepalive
		}()
	}
}

// The cobs-crc16 framing of WIRE.md: AppendFrame wraps one MQTT packet for
// a channel; a Decoder fed the bytes in any pieces gives the frames back,
// and reports a frame damaged on the line (here one flipped bit) instead
// of passing it on.
func ExampleDecoder() {
	pingreq := []byte{0xc0, 0x00}
	wire := serialio.AppendFrame(nil, 3, pingreq)
	fmt.Printf("% x\n", wire)

	damaged := serialio.AppendFrame(nil, 3, pingreq)
	damaged[3] ^= 0x01
	stream := append(append([]byte{}, damaged...), wire...)

	d := serialio.NewDecoder(0)
	for _, chunk := range [][]byte{stream[:5], stream[5:]} { // the UART delivers bytes in pieces
		d.Feed(chunk, func(f serialio.Frame, err error) {
			if err != nil {
				fmt.Println("dropped:", err)
				return
			}
			fmt.Printf("channel %d: % x\n", f.Channel, f.Body)
		})
	}
	st := d.Stats()
	fmt.Println("frames", st.Frames, "crc errors", st.CRCErrors)
	// Output:
	// 00 03 03 c0 03 83 98 00
	// dropped: frame crc mismatch
	// channel 3: c0 00
	// frames 1 crc errors 1
}
