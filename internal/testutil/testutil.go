// Package testutil holds helpers shared by the tests of several packages:
// polling, external tools, a real mosquitto, a fault-injecting TCP proxy,
// retained-message reads, TLS test certificates and frame corruption. Like
// net/http/httptest it is for tests only; only _test.go files import it.
//
// It must not import broker, bridge, persist or serialio, so that the tests
// of each of them can use it without an import cycle.
package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// WaitFor polls fn until it returns nil, failing t with fn's last error
// when timeout passes first.
func WaitFor(t testing.TB, timeout time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %s: %v", timeout, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Unavailable reports that something the test needs from the machine is
// missing: it fails t when the environment variable CI is set (CI must
// provide everything) and skips t otherwise.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf(format+" (required when CI is set)", args...)
	}
	t.Skipf(format, args...)
}

// debianPackage names the Debian package of the tools the tests run.
var debianPackage = map[string]string{
	"mosquitto":        "mosquitto",
	"mosquitto_passwd": "mosquitto",
	"mosquitto_pub":    "mosquitto-clients",
	"mosquitto_sub":    "mosquitto-clients",
	"gcc":              "gcc",
	"chromium":         "chromium",
}

// NeedTool returns the path of the program name, looked up in PATH and
// then in /usr/sbin and /sbin (where Debian puts daemons such as
// mosquitto). When it is missing the test fails if CI is set and is
// skipped otherwise (see Unavailable).
func NeedTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		if p, serr := exec.LookPath(filepath.Join(dir, name)); serr == nil {
			return p
		}
	}
	hint := ""
	if pkg, ok := debianPackage[name]; ok {
		hint = fmt.Sprintf("; apt-get install %s", pkg)
	}
	Unavailable(t, "%s is not installed: %v%s", name, err, hint)
	return ""
}
