// Package ptytest opens kernel pseudo-terminal pairs for tests, so that code
// which opens a serial device (through go.bug.st/serial, as a UART) can be
// driven from the test's end of the pair, the master, as if it were the
// device on the other end of the wire. Like net/http/httptest, it is only
// for tests and never ships in the binary. Linux only (/dev/ptmx).
package ptytest

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edged/edged/internal/testutil"
)

// Open opens a new pseudo-terminal pair in raw mode and returns its master,
// the test's end (the sensor), and the path of its slave, the device that
// the code under test opens. The master is closed by t.Cleanup. Without
// pseudo-terminals the test is skipped, or fails when the environment
// variable CI is set.
func Open(t testing.TB) (master *os.File, slavePath string) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		testutil.Unavailable(t, "no pseudo-terminals: %v", err)
	}
	rc, err := m.SyscallConn()
	if err != nil {
		m.Close()
		t.Fatal(err)
	}
	var n uint32
	var ierr error
	err = rc.Control(func(fd uintptr) {
		if ierr = unix.IoctlSetPointerInt(int(fd), unix.TIOCSPTLCK, 0); ierr != nil {
			ierr = fmt.Errorf("unlocking: %w", ierr)
			return
		}
		if n, ierr = unix.IoctlGetUint32(int(fd), unix.TIOCGPTN); ierr != nil {
			ierr = fmt.Errorf("getting the pty number: %w", ierr)
			return
		}
		// Raw mode before anyone opens the slave, so that nothing is
		// echoed or translated; termios set on the master applies to the
		// pair's line discipline.
		ierr = makeRaw(int(fd))
	})
	if err == nil {
		err = ierr
	}
	if err != nil {
		m.Close()
		t.Fatalf("setting up pty: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return m, fmt.Sprintf("/dev/pts/%d", n)
}

// MakeRaw puts the terminal f in raw mode: 8 data bits, no parity, no echo,
// no input or output translation, no signals, reads return as soon as one
// byte is available.
func MakeRaw(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ierr error
	if err := rc.Control(func(fd uintptr) { ierr = makeRaw(int(fd)) }); err != nil {
		return err
	}
	return ierr
}

func makeRaw(fd int) error {
	tio, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return fmt.Errorf("getting termios: %w", err)
	}
	tio.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON | unix.IXOFF
	tio.Oflag &^= unix.OPOST
	tio.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	tio.Cflag &^= unix.CSIZE | unix.PARENB
	tio.Cflag |= unix.CS8
	tio.Cc[unix.VMIN], tio.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, tio); err != nil {
		return fmt.Errorf("setting termios: %w", err)
	}
	return nil
}

// Link opens a new pair and points the symbolic link path at its slave
// (replacing whatever path was), as udev points /dev/serial/by-id/... at a
// tty. It returns the master.
func Link(t testing.TB, path string) *os.File {
	t.Helper()
	m, slave := Open(t)
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	if err := os.Symlink(slave, path); err != nil {
		t.Fatal(err)
	}
	return m
}

// OpenSlave opens the slave at path, as a device would be opened, and
// closes it in t.Cleanup. Use it for the far end of a relay between two
// pairs.
func OpenSlave(t testing.TB, path string) *os.File {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// IsHangup reports whether err from reading a master means only that its
// slave is not open at the moment (Linux returns EIO then): the reader
// should wait and read again.
func IsHangup(err error) bool { return errors.Is(err, syscall.EIO) }

// Copy copies src, a pty end, to dst until src is closed or dst fails,
// waiting out the hangups (IsHangup) while the other end of src is not
// open. It returns the bytes copied.
func Copy(dst io.Writer, src *os.File) (int64, error) {
	buf := make([]byte, 4096)
	var total int64
	for {
		n, err := src.Read(buf)
		if n > 0 {
			w, werr := dst.Write(buf[:n])
			total += int64(w)
			if werr != nil {
				return total, werr
			}
		}
		if IsHangup(err) {
			time.Sleep(2 * time.Millisecond)
			continue
		}
		if err != nil {
			return total, err
		}
	}
}

// CopyFrames copies src, a pty end, to dst frame by frame, the frames being
// delimited by 0x00 bytes as on an edged serial line: it writes frame(enc)
// for each non-empty frame enc (without delimiters; enc is reused after
// frame returns), so that frame can pass it, spoil it or add noise around
// it; frame must supply the delimiters. Like Copy it waits out hangups and
// returns when src is closed or dst fails.
func CopyFrames(dst io.Writer, src *os.File, frame func(enc []byte) []byte) error {
	buf := make([]byte, 4096)
	var cur []byte
	for {
		k, err := src.Read(buf)
		var out []byte
		for _, b := range buf[:k] {
			if b != 0 {
				cur = append(cur, b)
				continue
			}
			if len(cur) > 0 {
				out = append(out, frame(cur)...)
				cur = cur[:0]
			}
		}
		if len(out) > 0 {
			if _, werr := dst.Write(out); werr != nil {
				return werr
			}
		}
		if IsHangup(err) {
			time.Sleep(2 * time.Millisecond)
			continue
		}
		if err != nil {
			return err
		}
	}
}
