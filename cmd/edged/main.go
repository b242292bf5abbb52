// Command edged is an MQTT broker for the edge. See README.md.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/edged/edged/broker"
	"github.com/edged/edged/persist"
	"github.com/edged/edged/serialio"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func newLogger(c LogConfig, w io.Writer) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// serialPorts implements `edged serial-ports`: one line per port, with the
// /dev/serial/by-id name to put in the config file, since ttyUSB numbers
// change between boots.
func serialPorts(stdout, stderr io.Writer) int {
	ports, err := serialio.Ports()
	if err != nil {
		fmt.Fprintf(stderr, "edged serial-ports: %v\n", err)
		return 1
	}
	if len(ports) == 0 {
		fmt.Fprintln(stdout, "no serial ports found")
		return 0
	}
	for _, p := range ports {
		line := p.Path
		if p.IsUSB {
			line += fmt.Sprintf("  usb %s:%s", p.VID, p.PID)
			if p.SerialNumber != "" {
				line += " serial " + p.SerialNumber
			}
			if desc := strings.TrimSpace(p.Manufacturer + " " + p.Product); desc != "" {
				line += " (" + desc + ")"
			}
		}
		fmt.Fprintln(stdout, line)
		for _, id := range p.ByID {
			fmt.Fprintln(stdout, "    "+id)
		}
	}
	return 0
}

// readPassword asks twice on a terminal without echo, or reads one line
// from a pipe.
func readPassword(in *os.File, stderr io.Writer) ([]byte, error) {
	fd := int(in.Fd())
	if !term.IsTerminal(fd) {
		line, err := bufio.NewReader(in).ReadString('\n')
		if err != nil && line == "" {
			return nil, fmt.Errorf("reading password: %w", err)
		}
		return []byte(strings.TrimRight(line, "\r\n")), nil
	}
	fmt.Fprint(stderr, "Password: ")
	p1, err := term.ReadPassword(fd)
	fmt.Fprintln(stderr)
	if err != nil {
		return nil, fmt.Errorf("reading password: %w", err)
	}
	fmt.Fprint(stderr, "Reenter password: ")
	p2, err := term.ReadPassword(fd)
	fmt.Fprintln(stderr)
	if err != nil {
		return nil, fmt.Errorf("reading password: %w", err)
	}
	if string(p1) != string(p2) {
		return nil, errors.New("passwords do not match")
	}
	return p1, nil
}

// makeDataDir creates data_dir if needed and, when it did, fsyncs its
// parent, so that the directory entry survives a power cut along with the
// store inside it (persist fsyncs data_dir itself for a new file).
func makeDataDir(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("creating data directory: %w", err)
	}
	parent, err := os.Open(filepath.Dir(filepath.Clean(dir)))
	if err != nil {
		return fmt.Errorf("syncing data directory: %w", err)
	}
	defer parent.Close()
	if err := parent.Sync(); err != nil {
		return fmt.Errorf("syncing data directory: %w", err)
	}
	return nil
}

func storePath(cfg *Config) string { return filepath.Join(cfg.DataDir, "edged.db") }

// dbCommand runs `edged db check` or `edged db compact`.
func dbCommand(cmd, path string, stdout, stderr io.Writer) int {
	if _, err := os.Stat(path); err != nil {
		fmt.Fprintf(stderr, "edged: %v\n", err)
		return 1
	}
	switch cmd {
	case "db check":
		sum, notes, err := persist.CheckSummary(path)
		if errors.Is(err, persist.ErrLocked) {
			fmt.Fprintf(stderr, "edged: %s is in use by a running edged; stop it first\n", path)
			return 1
		}
		if err != nil {
			fmt.Fprintf(stderr, "edged: %s is damaged:\n", path)
			for _, e := range flatten(err) {
				fmt.Fprintln(stderr, "  "+e.Error())
			}
			fmt.Fprintln(stderr, "Restore a backup, or stop edged and move the file aside to start with an empty store.")
			return 1
		}
		fmt.Fprintf(stdout, "%s: OK\n", path)
		printSummary(stdout, sum)
		for _, n := range notes {
			fmt.Fprintln(stdout, "  note: "+n)
		}
	case "db compact":
		before, after, err := persist.Compact(path)
		if errors.Is(err, persist.ErrLocked) {
			fmt.Fprintf(stderr, "edged: %s is in use by a running edged; stop it first\n", path)
			return 1
		}
		if err != nil {
			fmt.Fprintf(stderr, "edged: compacting %s: %v\n", path, err)
			return 1
		}
		fmt.Fprintf(stdout, "%s: compacted from %d to %d bytes\n", path, before, after)
	}
	return 0
}

// publishSerialStats publishes each serial port's counters on
// $SYS/broker/serial/<name>/... every sys_interval, as retained QoS 0
// messages like the broker's own $SYS topics.
func publishSerialStats(ctx context.Context, b *broker.Server, cfg *Config, lns []*serialio.Listener) {
	interval := cfg.SysInterval
	if interval == 0 {
		interval = 10 * time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		for i, ln := range lns {
			st := ln.Stats()
			prefix := "$SYS/broker/serial/" + cfg.Serial[i].Name + "/"
			open := "0"
			if st.Open {
				open = "1"
			}
			b.Publish(prefix+"open", []byte(open), 0, true, nil)
			for _, kv := range []struct {
				k string
				v uint64
			}{
				{"frames/received", st.FramesIn}, {"frames/sent", st.FramesOut},
				{"bytes/received", st.BytesIn}, {"bytes/sent", st.BytesOut},
				{"frames/dropped", st.Dropped()}, {"errors/crc", st.CRCErrors},
				{"errors/format", st.FormatErrors}, {"errors/oversize", st.Oversize},
				{"errors/length", st.LengthMismatch}, {"resets", st.ResetsSent},
				{"connections", st.ConnsOpened}, {"port/opens", st.PortOpens},
				{"port/losses", st.PortLosses}, {"overflows", st.Overflows},
			} {
				b.Publish(prefix+kv.k, strconv.AppendUint(nil, kv.v, 10), 0, true, nil)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// listen opens a listener's socket, with TLS and WebSocket if configured.
// A WebSocket listener counts its HTTP connections as pending with gate
// (nil: not counted) and closes those that do not upgrade within
// connectTimeout.
func listen(lc ListenerConfig, gate pendingGate, connectTimeout time.Duration, log *slog.Logger) (net.Listener, error) {
	ln, err := net.Listen("tcp", lc.Address)
	if err != nil {
		return nil, fmt.Errorf("listener %s: %w", lc.Name, err)
	}
	if lc.WebSocket != nil && gate != nil {
		ln = &pendingListener{Listener: ln, gate: gate, name: lc.Name}
	}
	if lc.TLS != nil {
		tc, err := serverTLS(lc.TLS)
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("listener %s: %w", lc.Name, err)
		}
		ln = tls.NewListener(ln, tc)
	}
	if lc.WebSocket != nil {
		ln = listenWebSocket(ln, lc.WebSocket.Path, connectTimeout, log.With("listener", lc.Name))
	}
	return ln, nil
}

func serverTLS(c *TLSConfig) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("loading certificate: %w", err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if c.ClientCAFile != "" {
		pem, err := os.ReadFile(c.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("reading client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("client CA file %s holds no PEM certificate", c.ClientCAFile)
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

// printSummary writes what a sound store holds, for `edged db check`.
func printSummary(w io.Writer, s persist.Summary) {
	Size := func(n int64) string {
		if n%1024 != 0 || n == 0 {
			return strconv.FormatInt(n, 10) + " bytes"
		}
		return sizeOf(n)
	}
	plural := func(n int64, one, many string) string {
		if n == 1 {
			return "1 " + one
		}
		return strconv.FormatInt(n, 10) + " " + many
	}
	fmt.Fprintf(w, "  sessions:           %s (%s)\n", plural(s.Sessions, "persistent session", "persistent sessions"),
		plural(s.Subscriptions, "subscription", "subscriptions"))
	fmt.Fprintf(w, "  queued:             %s, %s\n", plural(s.QueuedMessages, "message", "messages"), Size(s.QueuedBytes))
	fmt.Fprintf(w, "  retained:           %s\n", plural(s.Retained, "message", "messages"))
	for _, q := range s.Queues {
		name, ok := strings.CutPrefix(q.Name, "bridge/")
		if !ok {
			name = q.Name
		}
		fmt.Fprintf(w, "  bridge %-12s %s, %s waiting to go upstream\n", name+":", plural(q.Messages, "message", "messages"), Size(q.Bytes))
	}
	free := int64(s.FreePages+s.PendingPages) * int64(s.PageSize)
	fmt.Fprintf(w, "  file:               %s, %s free (%s of %s)\n", Size(s.FileSize),
		plural(int64(s.FreePages+s.PendingPages), "page", "pages"), Size(free), Size(int64(s.PageSize)))
	fmt.Fprintf(w, "  format:             %d\n", s.Format)
}

func sizeOf(n int64) string { return Size(n).String() }
