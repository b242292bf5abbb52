package testutil

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// MosquittoOptions configures StartMosquitto. The zero value is a plain
// broker without persistence.
type MosquittoOptions struct {
	// Persistence turns persistence on, with the database in Dir saved
	// after every change (autosave_on_changes, autosave_interval 1), so
	// that little is lost to SIGKILL.
	Persistence bool
	// SaveOnStop, with Persistence, saves the database only at a clean
	// stop (Stop, SIGTERM) instead of after every change: as fast as no
	// persistence, but SIGKILL loses everything since the last start.
	SaveOnStop bool
	// MaxInflight is max_inflight_messages; 0 means 100.
	MaxInflight int
	// LogAll logs everything (log_type all) instead of errors and
	// warnings only.
	LogAll bool
	// Extra are more configuration lines, verbatim (for example
	// "max_packet_size 1000").
	Extra []string
	// ACLFile and PasswordFile, if set, are mosquitto's acl_file and
	// password_file (anonymous clients are still allowed).
	ACLFile, PasswordFile string
}

// Mosquitto is a real mosquitto process (the Debian package) on a free
// loopback port. Stop or Kill it and Restart it on the same port, with the
// same configuration and persistence database.
type Mosquitto struct {
	Addr string // host:port
	Dir  string // configuration, log and persistence database

	bin, conf string
	cmd       *exec.Cmd
	done      chan struct{} // closed when cmd has exited
}

// StartMosquitto starts mosquitto with a generated configuration and waits
// until it accepts connections. Without mosquitto the test is skipped, or
// fails when CI is set. t.Cleanup kills it and, if the test failed, logs
// the tail of mosquitto's log.
func StartMosquitto(t testing.TB, opts MosquittoOptions) *Mosquitto {
	t.Helper()
	bin := NeedTool(t, "mosquitto")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	m := &Mosquitto{Addr: fmt.Sprintf("127.0.0.1:%d", port), Dir: t.TempDir(), bin: bin}
	m.conf = filepath.Join(m.Dir, "mosquitto.conf")
	var c strings.Builder
	// Run as root, mosquitto would switch to user mosquitto, which can
	// write neither its database nor its log to t.TempDir().
	if os.Geteuid() == 0 {
		c.WriteString("user root\n")
	}
	fmt.Fprintf(&c, "listener %d 127.0.0.1\nallow_anonymous true\n", port)
	if opts.ACLFile != "" {
		fmt.Fprintf(&c, "acl_file %s\n", opts.ACLFile)
	}
	if opts.PasswordFile != "" {
		fmt.Fprintf(&c, "password_file %s\n", opts.PasswordFile)
	}
	if opts.Persistence {
		fmt.Fprintf(&c, "persistence true\npersistence_location %s/\npersistence_file mosquitto.db\n", m.Dir)
		if opts.SaveOnStop {
			c.WriteString("autosave_interval 0\n")
		} else {
			c.WriteString("autosave_interval 1\nautosave_on_changes true\n")
		}
	} else {
		c.WriteString("persistence false\n")
	}
	inflight := opts.MaxInflight
	if inflight == 0 {
		inflight = 100
	}
	fmt.Fprintf(&c, "max_queued_messages 0\nmax_inflight_messages %d\nset_tcp_nodelay true\nlog_dest stderr\n", inflight)
	for _, line := range opts.Extra {
		c.WriteString(line + "\n")
	}
	if opts.LogAll {
		c.WriteString("log_type all\n")
	} else {
		c.WriteString("log_type error\nlog_type warning\n")
	}
	if err := os.WriteFile(m.conf, []byte(c.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if m.cmd != nil {
			m.cmd.Process.Kill()
			<-m.done
			m.cmd = nil
		}
		if t.Failed() {
			t.Logf("mosquitto log (tail):\n%s", m.Log())
		}
	})
	m.start(t)
	return m
}

// logFile holds what mosquitto wrote to stdout and stderr (its log), over
// all its runs.
func (m *Mosquitto) logFile() string { return filepath.Join(m.Dir, "mosquitto.log") }

// Log returns the last 64 KiB of mosquitto's log.
func (m *Mosquitto) Log() string {
	b, err := os.ReadFile(m.logFile())
	if err != nil {
		return err.Error()
	}
	if len(b) > 64<<10 {
		b = b[len(b)-64<<10:]
	}
	return string(b)
}

// DBFile is the persistence database (with Persistence).
func (m *Mosquitto) DBFile() string { return filepath.Join(m.Dir, "mosquitto.db") }

// start starts mosquitto and waits until it accepts connections.
func (m *Mosquitto) start(t testing.TB) {
	t.Helper()
	out, err := os.OpenFile(m.logFile(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close() // the child has its own copy
	cmd := exec.Command(m.bin, "-c", m.conf)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	m.cmd, m.done = cmd, done
	WaitFor(t, 10*time.Second, func() error {
		select {
		case <-done:
			t.Fatalf("mosquitto exited: %s", m.Log())
		default:
		}
		c, err := net.Dial("tcp", m.Addr)
		if err != nil {
			return err
		}
		return c.Close()
	})
}

// signal sends sig and waits for mosquitto to exit.
func (m *Mosquitto) signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if m.cmd == nil {
		t.Fatal("mosquitto is not running")
	}
	m.cmd.Process.Signal(sig)
	select {
	case <-m.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("mosquitto did not exit after %s", sig)
	}
	m.cmd = nil
}

// Stop stops mosquitto with SIGTERM, as a clean shutdown, and waits for it
// to exit.
func (m *Mosquitto) Stop(t testing.TB) {
	t.Helper()
	m.signal(t, syscall.SIGTERM)
}

// Kill kills mosquitto with SIGKILL and waits for it to exit.
func (m *Mosquitto) Kill(t testing.TB) {
	t.Helper()
	m.signal(t, syscall.SIGKILL)
}

// Restart starts mosquitto again on the same port with the same
// configuration and persistence database, stopping it first (SIGTERM) if it
// is running, and waits until it accepts connections.
func (m *Mosquitto) Restart(t testing.TB) {
	t.Helper()
	if m.cmd != nil {
		m.Stop(t)
	}
	m.start(t)
}

// CPUTime is the CPU time (user and system) the running mosquitto has used
// so far, from /proc (Linux), in clock ticks of 10 ms (USER_HZ is 100 on
// every Linux architecture). Benchmarks report it per message: on a
// shared machine the upstream's cost is part of what a drain rate means.
func (m *Mosquitto) CPUTime() (time.Duration, error) {
	if m.cmd == nil {
		return 0, errors.New("mosquitto is not running")
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", m.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	// The fields after the command name, which is in parentheses and may
	// hold spaces: state is the first, utime the 12th and stime the 13th.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", m.cmd.Process.Pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", m.cmd.Process.Pid, len(f))
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", m.cmd.Process.Pid, err)
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}
