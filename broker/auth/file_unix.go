//go:build unix

package auth

import (
	"io/fs"
	"os"
	"syscall"
)

// matchOwner gives f the owner and group of old when running as root, so
// that `edged passwd` run by root does not make the file unreadable to a
// broker running as its own user.
func matchOwner(f *os.File, old fs.FileInfo) error {
	st, ok := old.Sys().(*syscall.Stat_t)
	if !ok || os.Geteuid() != 0 {
		return nil
	}
	return f.Chown(int(st.Uid), int(st.Gid))
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
