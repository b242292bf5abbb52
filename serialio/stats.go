package serialio

import (
	"sync/atomic"
	"time"
)

// Stats is a snapshot of one port's counters since Listen. Frame counters
// stay zero with raw framing.
type Stats struct {
	Open           bool   // the device is open now
	FramesIn       uint64 // valid frames received
	FramesOut      uint64 // frames sent, link control included
	BytesIn        uint64 // bytes read from the device
	BytesOut       uint64 // bytes written to the device
	CRCErrors      uint64 // frames dropped for a CRC mismatch
	FormatErrors   uint64 // frames dropped as invalid COBS or too short
	Oversize       uint64 // frames dropped as longer than MaxFrame
	LengthMismatch uint64 // frames dropped as disagreeing with their MQTT length
	ResetsSent     uint64 // link-control RESET frames sent
	ConnsOpened    uint64 // conns offered to Accept
	PortOpens      uint64 // successful opens of the device, the first included
	PortLosses     uint64 // times the open device failed (unplugged)
	Overflows      uint64 // conns closed because the broker read too slowly
	// LastFrame is when the last valid frame was received; zero if none.
	LastFrame time.Time
}

// Dropped returns the number of received frames that were dropped.
func (s Stats) Dropped() uint64 {
	return s.CRCErrors + s.FormatErrors + s.Oversize + s.LengthMismatch
}

// counters is the live form of Stats.
type counters struct {
	open                                       atomic.Bool
	framesIn, framesOut, bytesIn, bytesOut     atomic.Uint64
	crcErrors, formatErrors, oversize, lenMism atomic.Uint64
	resetsSent, connsOpened, portOpens         atomic.Uint64
	portLosses, overflows                      atomic.Uint64
	lastFrame                                  atomic.Int64 // Unix nanoseconds; 0: none
}

func (c *counters) snapshot() Stats {
	return Stats{
		Open:           c.open.Load(),
		FramesIn:       c.framesIn.Load(),
		FramesOut:      c.framesOut.Load(),
		BytesIn:        c.bytesIn.Load(),
		BytesOut:       c.bytesOut.Load(),
		CRCErrors:      c.crcErrors.Load(),
		FormatErrors:   c.formatErrors.Load(),
		Oversize:       c.oversize.Load(),
		LengthMismatch: c.lenMism.Load(),
		ResetsSent:     c.resetsSent.Load(),
		ConnsOpened:    c.connsOpened.Load(),
		PortOpens:      c.portOpens.Load(),
		PortLosses:     c.portLosses.Load(),
		Overflows:      c.overflows.Load(),
		LastFrame:      unixNano(c.lastFrame.Load()),
	}
}

func unixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}
