package persist

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// BenchmarkRecords311 measures the record encodings on the path of every
// 3.1.1 QoS 1 message (stored, queued, read, dequeued): a 200-byte
// message and its queue ref, encoded with room for the checksum, decoded
// and sized, and a subscription record. record-bytes is the size of the
// message and ref records, which format 3 keeps as format 2 wrote them.
func BenchmarkRecords311(b *testing.B) {
	m := Message{Topic: "sensors/temp", Payload: bytes.Repeat([]byte("p"), 200), QoS: 1, Time: 1700000000000000000}
	sub := Subscription{Seq: 1, Filter: "sensors/#", QoS: 1}
	var n int
	for b.Loop() {
		// putRec appends the checksum to the encoding
		v := binary.BigEndian.AppendUint32(encodeMessage(&m), 0)
		r := binary.BigEndian.AppendUint32(encodeRef(&Queued{QoS: 1}), 0)
		n = len(v) + len(r) - 2*sumLen
		v, r = v[:len(v)-sumLen], r[:len(r)-sumLen]
		if d, err := decodeMessage(v); err != nil || messageSize(v) != d.Size() {
			b.Fatal(err)
		}
		var q Queued
		if err := decodeRef(r, &q); err != nil {
			b.Fatal(err)
		}
		if _, err := decodeSub(u64key(1), binary.BigEndian.AppendUint32(encodeSub(&sub), 0)[:len(sub.Filter)+1]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n), "record-bytes")
}
