//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package persist

import (
	"os"
	"time"
)

// lockFile does nothing here: bbolt locks the file right after checkFile,
// which then may read a file that another process is writing.
func lockFile(*os.File, bool, time.Duration) error { return nil }
