package serialio_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edged/edged/internal/testutil"
	"github.com/edged/edged/serialio"
)

// copyPTY copies src to dst until src is closed, waiting out EIO while the
// other end of src is not open.
func copyPTY(src, dst *os.File) {
	buf := make([]byte, 4096)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			dst.Write(buf[:n])
		}
		if errors.Is(err, syscall.EIO) {
			time.Sleep(2 * time.Millisecond)
			continue
		}
		if err != nil {
			return
		}
	}
}

// fakeBroker answers just enough MQTT for the cref example. On the first
// conn it drops the first QoS 1 PUBLISH unacknowledged and closes the conn,
// so the client must reconnect (after the RESET that closing sends) and
// resend with DUP.
type fakeBroker struct {
	mu        sync.Mutex
	conns     int
	publishes map[string]int
	dups      int
}

func (b *fakeBroker) serve(c io.ReadWriteCloser) {
	defer c.Close()
	b.mu.Lock()
	b.conns++
	first := b.conns == 1
	b.mu.Unlock()
	for {
		p, err := readPacket(c)
		if err != nil {
			return
		}
		hdr := 2
		for p[hdr-1]&0x80 != 0 {
			hdr++
		}
		switch p[0] >> 4 {
		case 1: // CONNECT
			c.Write([]byte{0x20, 2, 0, 0})
		case 8: // SUBSCRIBE
			c.Write([]byte{0x90, 3, p[hdr], p[hdr+1], 1})
			c.Write(publish("cref/in", []byte("hello sensor")))
		case 3: // PUBLISH
			tlen := int(p[hdr])<<8 | int(p[hdr+1])
			id := p[hdr+2+tlen : hdr+4+tlen]
			payload := string(p[hdr+4+tlen:])
			b.mu.Lock()
			b.publishes[payload]++
			if p[0]&0x08 != 0 {
				b.dups++
			}
			b.mu.Unlock()
			if first {
				return // lost PUBACK: close, which sends RESET
			}
			c.Write([]byte{0x40, 2, id[0], id[1]})
		case 12: // PINGREQ
			c.Write([]byte{0xD0, 0})
		case 14: // DISCONNECT
			return
		}
	}
}

func TestCRefExample(t *testing.T) {
	gcc := testutil.NeedTool(t, "gcc")
	bin := filepath.Join(t.TempDir(), "example")
	build := exec.Command(gcc, "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2", "-o", bin,
		"cref/example.c", "cref/edged_mqtt.c", "cref/edged_frame.c")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("compiling cref: %v\n%s", err, out)
	}

	// example ── PTY A ── relay ── PTY B ── Listener ── fake broker.
	mA, slaveA := openPTY(t)
	dir := t.TempDir()
	dev := filepath.Join(dir, "ttyCREF")
	mB := linkPTY(t, dev)
	l, err := serialio.Listen(serialio.Config{Name: "cref", Device: dev})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	waitOpen(t, l, 1)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); copyPTY(mA, mB) }()
	go func() { defer wg.Done(); copyPTY(mB, mA) }()
	t.Cleanup(func() {
		mA.Close()
		mB.Close()
		wg.Wait()
	})

	b := &fakeBroker{publishes: map[string]int{}}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); b.serve(c) }()
		}
	}()
	t.Cleanup(func() { l.Close() })

	const n = 8
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, slaveA, "8")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("example: %v\n%s", err, out.String())
	}
	t.Logf("example output:\n%s", out.String())
	b.mu.Lock()
	defer b.mu.Unlock()
	for i := range n {
		payload := "reading " + string(rune('0'+i))
		if b.publishes[payload] == 0 {
			t.Errorf("%q never published; got %v", payload, b.publishes)
		}
	}
	if b.dups == 0 || b.conns < 2 {
		t.Errorf("no reconnect with DUP resend: %d conns, %d dups", b.conns, b.dups)
	}
	if !bytes.Contains(out.Bytes(), []byte("message on cref/in: hello sensor")) {
		t.Error("subscription message not received")
	}
	if st := l.Stats(); st.ResetsSent == 0 || st.Dropped() != 0 {
		t.Errorf("stats %+v", st)
	}
}
