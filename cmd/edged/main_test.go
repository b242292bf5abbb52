package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// edgedBin is the edged binary built once for the tests that run it as a
// child process, as a user or an init system would.
var edgedBin string

func TestMain(m *testing.M) {
	flag.Parse()
	// A fuzz worker runs fuzz targets only, none of which run the binary:
	// building it in every worker would stall fuzzing for a minute.
	if f := flag.Lookup("test.fuzzworker"); f != nil && f.Value.String() == "true" {
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "edged-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	edgedBin = filepath.Join(dir, "edged")
	args := []string{"build", "-o", edgedBin}
	if raceEnabled {
		args = append(args, "-race")
	}
	out, err := exec.Command("go", append(args, ".")...).CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building edged: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// edgedProc is a running edged child process.
type edgedProc struct {
	cmd  *exec.Cmd
	addr string // the first listener's address
	mu   sync.Mutex
	logs []map[string]any
	raw  []string // the log lines as written
	done chan struct{}
	err  error // from Wait, valid after done
}

// startEdged writes config (JSON logs are forced) to a temporary file,
// starts edged with it, and waits until its first listener is up. Listener
// addresses should use port 0; the bound address is read from the log.
func startEdged(t *testing.T, dir, config string) *edgedProc {
	t.Helper()
	path := filepath.Join(dir, "edged.yaml")
	if err := os.WriteFile(path, []byte(config+"\nlog: {level: debug, format: json}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &edgedProc{done: make(chan struct{})}
	p.cmd = exec.Command(edgedBin, "-c", path)
	p.cmd.Dir = dir
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var rec map[string]any
			if json.Unmarshal(sc.Bytes(), &rec) != nil {
				rec = map[string]any{"raw": sc.Text()}
			}
			p.mu.Lock()
			p.logs = append(p.logs, rec)
			p.raw = append(p.raw, sc.Text())
			p.mu.Unlock()
			if rec["msg"] == "listening" {
				// The first network listener: serial ports log
				// "listening" too, with an address that is no host:port.
				a, _ := rec["address"].(string)
				if _, _, err := net.SplitHostPort(a); err == nil {
					select {
					case addrc <- a:
					default:
					}
				}
			}
		}
		io.Copy(io.Discard, stderr)
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { p.kill() })
	select {
	case p.addr = <-addrc:
	case <-p.done:
		t.Fatalf("edged exited before listening: %v\n%s", p.err, p.logText())
	case <-time.After(20 * time.Second):
		t.Fatalf("edged did not start listening\n%s", p.logText())
	}
	return p
}

func (p *edgedProc) logText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	for _, r := range p.logs {
		j, _ := json.Marshal(r)
		b.Write(j)
		b.WriteByte('\n')
	}
	return b.String()
}

func (p *edgedProc) port() string {
	_, port, _ := strings.Cut(p.addr, ":")
	return port
}

// kill sends SIGKILL and waits.
func (p *edgedProc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop sends SIGTERM and waits for a graceful exit.
func (p *edgedProc) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		if p.err != nil {
			t.Fatalf("edged exited with %v after SIGTERM\n%s", p.err, p.logText())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("edged did not stop after SIGTERM")
	}
}
