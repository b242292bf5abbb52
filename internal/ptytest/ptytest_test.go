package ptytest_test

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/edged/edged/internal/ptytest"
)

// readN reads n bytes from f or fails after 5s; the reader goroutine ends
// when f is closed by the test's cleanup.
func readN(t *testing.T, f *os.File, n int) []byte {
	t.Helper()
	type result struct {
		b   []byte
		err error
	}
	ch := make(chan result, 1)
	go func() {
		b := make([]byte, n)
		_, err := io.ReadFull(f, b)
		ch <- result{b, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("reading: %v", r.err)
		}
		return r.b
	case <-time.After(5 * time.Second):
		t.Fatal("no data within 5s")
		return nil
	}
}

// TestRawBothWays checks that every byte value crosses the pair unchanged in
// both directions: no CR/LF translation, no echo, no signal characters, no
// flow control.
func TestRawBothWays(t *testing.T) {
	m, slave := ptytest.Open(t)
	s := ptytest.OpenSlave(t, slave)
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	for _, tc := range []struct {
		name     string
		from, to *os.File
	}{
		{"master to slave", m, s},
		{"slave to master", s, m},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tc.from.Write(all); err != nil {
				t.Fatal(err)
			}
			if got := readN(t, tc.to, len(all)); !bytes.Equal(got, all) {
				t.Fatalf("bytes changed in transit:\n got % x\nwant % x", got, all)
			}
		})
	}
	// Nothing was echoed back: a marker written now is the next byte read.
	if _, err := s.Write([]byte{0x5A}); err != nil {
		t.Fatal(err)
	}
	if got := readN(t, m, 1); got[0] != 0x5A {
		t.Fatalf("echo: read %#x, want the marker 0x5a", got[0])
	}
}

func TestLinkAndCopy(t *testing.T) {
	dev := filepath.Join(t.TempDir(), "ttyX")
	m1 := ptytest.Link(t, dev)
	m2 := ptytest.Link(t, dev) // replaces the link
	target, err := os.Readlink(dev)
	if err != nil {
		t.Fatal(err)
	}
	s2 := ptytest.OpenSlave(t, dev)
	m1.Close() // the first pair is no longer linked: it is not needed
	// A relay from m2 (the device side of the second pair) into a pipe.
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	done := make(chan error, 1)
	go func() {
		_, err := ptytest.Copy(pw, m2)
		pw.Close()
		done <- err
	}()
	if _, err := s2.Write([]byte("via " + target)); err != nil {
		t.Fatal(err)
	}
	if got := readN(t, pr, len("via "+target)); string(got) != "via "+target {
		t.Fatalf("relayed %q", got)
	}
	m2.Close()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Copy did not return after its source closed")
	}
}
