package status

import (
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/VictoriaMetrics/metrics"
)

// /metrics is Prometheus' text format. github.com/VictoriaMetrics/metrics
// writes the process_* and go_* families (resident memory, CPU, open file
// descriptors, GC) and the metadata lines; edged's own families are written
// from the same snapshots as the pages, at scrape time.

func init() { metrics.ExposeMetadata(true) }

// family writes one metric family: its HELP and TYPE lines, then one
// sample per label set.
type family struct {
	w    io.Writer
	name string
}

func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	st := s.src.Broker.Stats()
	one := func(name, typ, help string, v float64) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n%s %s\n", name, help, name, typ, name, num(v))
	}
	one("edged_uptime_seconds", "gauge", "Seconds since edged started.", st.Uptime.Seconds())
	fmt.Fprintf(w, "# HELP edged_build_info The running version.\n# TYPE edged_build_info gauge\nedged_build_info{version=%s} 1\n", label(s.src.Version))
	one("edged_clients_connected", "gauge", "Clients connected now.", float64(st.ClientsConnected))
	one("edged_clients_maximum", "gauge", "Most clients connected at once since start.", float64(st.ClientsMaximum))
	one("edged_sessions", "gauge", "Sessions: connected clients and offline persistent sessions.", float64(st.ClientsTotal))
	one("edged_connections_total", "counter", "Clients admitted since start.", float64(st.Connects))
	one("edged_messages_received_total", "counter", "PUBLISH messages received (clients, bridges, serial ports).", float64(st.MsgsReceived))
	one("edged_messages_sent_total", "counter", "PUBLISH messages sent to clients.", float64(st.MsgsSent))
	one("edged_messages_dropped_total", "counter", "Messages dropped over a queue limit or a full write queue.", float64(st.MsgsDropped))
	one("edged_bytes_received_total", "counter", "Bytes received from network clients.", float64(st.BytesReceived))
	one("edged_bytes_sent_total", "counter", "Bytes sent to network clients.", float64(st.BytesSent))
	one("edged_messages_queued", "gauge", "Messages held for sessions (inflight and queued).", float64(st.QueuedMessages))
	one("edged_subscriptions", "gauge", "Topic filters subscribed.", float64(st.Subscriptions))
	one("edged_retained_messages", "gauge", "Retained messages.", float64(st.Retained))
	one("edged_slow_consumers_total", "counter", "Clients disconnected as slow consumers.", float64(st.SlowConsumers))
	one("edged_store_errors_total", "counter", "Messages the broker could not hand to the store.", float64(st.StoreErrors))
	one("edged_heap_bytes", "gauge", "Go heap in use ($SYS/broker/heap/current).", float64(st.HeapBytes))
	if s.src.Store != nil {
		ps := s.src.Store.Stats()
		one("edged_store_file_bytes", "gauge", "Size of the store file.", float64(ps.FileSize))
		one("edged_store_commits_total", "counter", "Store transactions committed.", float64(ps.Commits))
		one("edged_store_fsyncs_total", "counter", "Store transactions made durable with fsync.", float64(ps.Fsyncs))
		one("edged_store_written_bytes_total", "counter", "Bytes of pages the store wrote (flash wear).", float64(ps.Written))
		one("edged_store_commit_errors_total", "counter", "Store transactions that failed.", float64(ps.CommitErrors))
		one("edged_store_pending_commits", "gauge", "Commits queued and not yet durable.", float64(ps.Pending))
		one("edged_store_damaged_records_total", "counter", "Damaged records found and set aside.", float64(ps.Damaged))
		up := 1.0
		if s.src.Store.Err() != nil {
			up = 0
		}
		one("edged_store_up", "gauge", "1 while the store takes commits.", up)
	}
	if len(s.src.Serial) > 0 {
		ser := s.serial()
		by := func(name, typ, help string, v func(Serial) uint64) {
			f := family{w, name}
			f.head(typ, help)
			for _, p := range ser {
				f.line("port="+label(p.Name), float64(v(p)))
			}
		}
		by("edged_serial_open", "gauge", "1 while the serial device is open.", func(p Serial) uint64 { return b2u(p.Open) })
		by("edged_serial_port_opens_total", "counter", "Successful opens of the serial device.", func(p Serial) uint64 { return p.PortOpens })
		by("edged_serial_port_losses_total", "counter", "Times the open serial device failed.", func(p Serial) uint64 { return p.PortLosses })
		by("edged_serial_frames_received_total", "counter", "Valid frames received.", func(p Serial) uint64 { return p.FramesIn })
		by("edged_serial_frames_sent_total", "counter", "Frames sent.", func(p Serial) uint64 { return p.FramesOut })
		by("edged_serial_bytes_received_total", "counter", "Bytes read from the device.", func(p Serial) uint64 { return p.BytesIn })
		by("edged_serial_bytes_sent_total", "counter", "Bytes written to the device.", func(p Serial) uint64 { return p.BytesOut })
		by("edged_serial_crc_errors_total", "counter", "Frames dropped for a CRC mismatch.", func(p Serial) uint64 { return p.CRCErrors })
		by("edged_serial_frames_dropped_total", "counter", "Received frames dropped (CRC, format, size, length).", func(p Serial) uint64 { return p.Dropped })
		by("edged_serial_resets_sent_total", "counter", "Link-control RESET frames sent.", func(p Serial) uint64 { return p.Resets })
	}
	if len(s.src.Bridges) > 0 {
		brs := s.bridges()
		by := func(name, typ, help string, v func(Bridge) float64) {
			f := family{w, name}
			f.head(typ, help)
			for _, b := range brs {
				f.line("bridge="+label(b.Name), v(b))
			}
		}
		by("edged_bridge_up", "gauge", "1 while the upstream connection is up.", func(b Bridge) float64 { return float64(b2u(b.Connected)) })
		by("edged_bridge_queued_messages", "gauge", "Messages in the bridge's durable queue.", func(b Bridge) float64 { return float64(b.Queued) })
		by("edged_bridge_queued_bytes", "gauge", "Bytes in the bridge's durable queue.", func(b Bridge) float64 { return float64(b.QueuedBytes) })
		by("edged_bridge_oldest_age_seconds", "gauge", "Age of the oldest queued message.", func(b Bridge) float64 { return float64(b.OldestAge) })
		by("edged_bridge_sent_total", "counter", "Messages acknowledged upstream.", func(b Bridge) float64 { return float64(b.Sent) })
		by("edged_bridge_sent_bytes_total", "counter", "Topic and payload bytes acknowledged upstream.", func(b Bridge) float64 { return float64(b.SentBytes) })
		f := family{w, "edged_bridge_dropped_total"}
		f.head("counter", "Queued messages dropped, by reason: limit (max_messages/max_bytes), max_age, purged (by an operator), "+
			"offline_qos0 (QoS 0 messages offline_qos0 threw away while offline), expired (MQTT 5 message expiry), oversize (over the upstream's maximum packet size), refused (by the upstream).")
		for _, b := range brs {
			for _, reason := range []string{"limit", "max_age", "purged", "offline_qos0", "expired", "oversize", "refused"} {
				f.line("bridge="+label(b.Name)+",reason="+label(reason), float64(b.Dropped[reason]))
			}
		}
	}
	metrics.WriteProcessMetrics(w)
}

func (f family) head(typ, help string) {
	fmt.Fprintf(f.w, "# HELP %s %s\n# TYPE %s %s\n", f.name, help, f.name, typ)
}

func (f family) line(labels string, v float64) {
	fmt.Fprintf(f.w, "%s{%s} %s\n", f.name, labels, num(v))
}

func num(v float64) string { return fmt.Sprintf("%g", v) }

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// label quotes a label value as the text format wants: backslash, double
// quote and line feed escaped, everything else as is.
func label(v string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(v) + `"`
}
