package serialio_test

import (
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
