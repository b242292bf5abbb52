//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package persist

import (
	"os"
	"syscall"
	"time"

	berrors "go.etcd.io/bbolt/errors"
)

// lockFile takes the flock that bbolt takes after opening the file (shared
// for a read-only open), so that checkFile reads a file no other edged is
// writing. bbolt's own flock on the same descriptor then succeeds at once.
// It gives up with bbolt's ErrTimeout after timeout.
func lockFile(f *os.File, exclusive bool, timeout time.Duration) error {
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	start := time.Now()
	for {
		err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		switch {
		case err == nil:
			return nil
		case err == syscall.EINTR:
			continue
		case err != syscall.EWOULDBLOCK:
			return err
		case timeout > 0 && time.Since(start) >= timeout:
			return berrors.ErrTimeout
		}
		time.Sleep(50 * time.Millisecond)
	}
}
