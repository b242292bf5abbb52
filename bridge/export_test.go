package bridge

// Inflight5 returns the most QoS 1/2 publishes a bridge ever had awaiting
// their acknowledgement on an MQTT 5.0 link, and the upstream's Receive
// Maximum on the last one.
func Inflight5(br *Bridge) (peak, recvMax int) {
	return int(br.peak5.Load()), int(br.recvMax5.Load())
}
