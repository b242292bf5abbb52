package main

import (
	"bufio"
	"context"
	"io"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edged/edged/internal/testutil"
)

// mosqSub is a running mosquitto_sub whose output lines arrive on a
// channel.
type mosqSub struct {
	cmd   *exec.Cmd
	lines chan string
}

// startSub starts mosquitto_sub in debug mode and waits for its SUBACK, so
// that what is published afterwards reaches it.
func startSub(t *testing.T, port string, args ...string) *mosqSub {
	t.Helper()
	bin := testutil.NeedTool(t, "mosquitto_sub")
	ctx, cancel := context.WithCancel(context.Background())
	// mosquitto_sub's debug lines are block-buffered on a pipe; stdbuf
	// (coreutils) makes them line-buffered so the SUBACK line arrives.
	args = append([]string{"-oL", bin, "-h", "127.0.0.1", "-p", port, "-d"}, args...)
	cmd := exec.CommandContext(ctx, "stdbuf", args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &mosqSub{cmd: cmd, lines: make(chan string, 100)}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
	})
	subacked := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		acked := false
		for sc.Scan() {
			line := sc.Text()
			if strings.Contains(line, "received SUBACK") && !acked {
				acked = true
				close(subacked)
				continue
			}
			if !strings.HasPrefix(line, "Client ") && !strings.HasPrefix(line, "Subscribed") {
				s.lines <- line
			}
		}
		io.Copy(io.Discard, out)
		close(s.lines)
	}()
	select {
	case <-subacked:
	case <-time.After(10 * time.Second):
		t.Fatal("mosquitto_sub got no SUBACK")
	}
	return s
}

// expectLines reads n message lines and compares them as a set (QoS 0, 1 and
// 2 flows of different publishers may interleave).
func (s *mosqSub) expectLines(t *testing.T, want ...string) {
	t.Helper()
	got := map[string]int{}
	for range want {
		select {
		case l, ok := <-s.lines:
			if !ok {
				t.Fatalf("mosquitto_sub exited; got %v, want %q", got, want)
			}
			got[l]++
		case <-time.After(10 * time.Second):
			t.Fatalf("timed out; got %v, want %q", got, want)
		}
	}
	for _, w := range want {
		if got[w] == 0 {
			t.Fatalf("missing %q; got %v", w, got)
		}
		got[w]--
	}
}

func mosqPub(t *testing.T, port string, args ...string) {
	t.Helper()
	bin := testutil.NeedTool(t, "mosquitto_pub")
	out, err := exec.Command(bin, append([]string{"-h", "127.0.0.1", "-p", port}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("mosquitto_pub %v: %v\n%s", args, err, out)
	}
}

// TestMosquittoClients runs Debian's mosquitto_pub and mosquitto_sub, an
// independent MQTT implementation, against the real edged binary.
func TestMosquittoClients(t *testing.T) {
	testutil.NeedTool(t, "mosquitto_sub")
	dir := t.TempDir()
	p := startEdged(t, dir, "data_dir: "+dir+"/data\nlisteners:\n  - {name: local, address: 127.0.0.1:0}\n")
	port := p.port()

	t.Run("qos", func(t *testing.T) {
		sub := startSub(t, port, "-t", "interop/#", "-q", "2", "-v", "-F", "%t %q %p")
		mosqPub(t, port, "-t", "interop/q0", "-q", "0", "-m", "zero")
		mosqPub(t, port, "-t", "interop/q1", "-q", "1", "-m", "one")
		mosqPub(t, port, "-t", "interop/q2", "-q", "2", "-m", "two")
		sub.expectLines(t, "interop/q0 0 zero", "interop/q1 1 one", "interop/q2 2 two")
	})

	t.Run("downgrade", func(t *testing.T) {
		sub := startSub(t, port, "-t", "down/#", "-q", "1", "-F", "%t %q %p")
		mosqPub(t, port, "-t", "down/x", "-q", "2", "-m", "capped")
		sub.expectLines(t, "down/x 1 capped")
	})

	t.Run("retained", func(t *testing.T) {
		mosqPub(t, port, "-t", "keep/a", "-q", "1", "-r", "-m", "first")
		mosqPub(t, port, "-t", "keep/a", "-q", "1", "-r", "-m", "second")
		mosqPub(t, port, "-t", "keep/b", "-q", "0", "-r", "-m", "bee")
		sub := startSub(t, port, "-t", "keep/#", "-q", "1", "-F", "%r %t %p")
		sub.expectLines(t, "1 keep/a second", "1 keep/b bee")
		// A live message carries retain 0 [MQTT-3.3.1-9].
		mosqPub(t, port, "-t", "keep/a", "-q", "1", "-r", "-m", "third")
		sub.expectLines(t, "0 keep/a third")
		// An empty retained payload deletes it.
		mosqPub(t, port, "-t", "keep/b", "-r", "-n")
		sub.expectLines(t, "0 keep/b ")
		sub2 := startSub(t, port, "-t", "keep/#", "-F", "%r %t %p")
		sub2.expectLines(t, "1 keep/a third")
		select {
		case l := <-sub2.lines:
			t.Fatalf("deleted retained message delivered: %q", l)
		case <-time.After(200 * time.Millisecond):
		}
	})

	t.Run("will", func(t *testing.T) {
		watcher := startSub(t, port, "-t", "wills/#", "-q", "1", "-F", "%t %q %p")
		// A client with a will that dies without DISCONNECT.
		victim := startSub(t, port, "-t", "nothing", "-i", "victim",
			"--will-topic", "wills/victim", "--will-payload", "gone", "--will-qos", "1")
		victim.cmd.Process.Signal(syscall.SIGKILL)
		watcher.expectLines(t, "wills/victim 1 gone")
		// One that disconnects cleanly: no will [MQTT-3.14.4-3].
		polite := startSub(t, port, "-t", "nothing", "-i", "polite",
			"--will-topic", "wills/polite", "--will-payload", "gone")
		polite.cmd.Process.Signal(syscall.SIGINT)
		select {
		case l := <-watcher.lines:
			t.Fatalf("will published after DISCONNECT: %q", l)
		case <-time.After(300 * time.Millisecond):
		}
	})

	p.stop(t)
}
