package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edged/edged/broker/auth"
)

// TestHelpEverywhere: every way of asking for help, on every command,
// prints usage to stdout and exits 0 with nothing on stderr.
func TestHelpEverywhere(t *testing.T) {
	var cases [][]string
	for _, h := range []string{"help", "-h", "-help", "--help"} {
		cases = append(cases, []string{h})
	}
	for name := range commands {
		for _, h := range []string{"-h", "--help"} {
			cases = append(cases, []string{name, h}, []string{"help", name})
		}
	}
	cases = append(cases, []string{"db", "check", "--help"}, []string{"passwd", "-b", "--help"},
		[]string{"check-config", "-c", "x.yaml", "-h"}, []string{"-c", "x.yaml", "--help"})
	for _, args := range cases {
		code, stdout, stderr := runEdged(args...)
		if code != 0 || stderr != "" || !strings.Contains(stdout, "usage:") {
			t.Errorf("edged %s: exit %d, stdout %q, stderr %q", strings.Join(args, " "), code, stdout, stderr)
		}
	}
	// A command's help is its own.
	if _, stdout, _ := runEdged("passwd", "--help"); !strings.Contains(stdout, "-U") {
		t.Errorf("passwd --help does not describe -U:\n%s", stdout)
	}
	// Through the binary: stdout, status 0.
	out, err := exec.Command(edgedBin, "--help").Output()
	if err != nil || !strings.Contains(string(out), "import-mosquitto") {
		t.Fatalf("edged --help: %v\n%s", err, out)
	}
}

// TestVersionFlags: version, --version and -v print the version.
func TestVersionFlags(t *testing.T) {
	for _, a := range []string{"version", "--version", "-version", "-v"} {
		code, stdout, _ := runEdged(a)
		if code != 0 || stdout != "edged "+version+"\n" {
			t.Errorf("edged %s: exit %d, %q", a, code, stdout)
		}
	}
}

// TestUsageErrors: mistakes exit 2 with the problem on stderr and nothing
// on stdout.
func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"frobnicate"}, {"help", "frobnicate"}, {"check-config", "-x"}, {"check-config", "extra"},
		{"db"}, {"db", "vacuum"}, {"passwd"}, {"passwd", "-D", "-b", "f", "u", "p"},
		{"passwd", "-H", "sha512", "f", "u"}, {"passwd", "-U"}, {"import-mosquitto"}, {"-c"},
	} {
		code, stdout, stderr := runEdged(args...)
		if code != 2 || stdout != "" || stderr == "" {
			t.Errorf("edged %s: exit %d, stdout %q, stderr %q; want 2 and a message", strings.Join(args, " "), code, stdout, stderr)
		}
	}
}

// TestPasswdMosquittoOptions: -c starts a new file as mosquitto_passwd -c
// does, -U hashes plain-text passwords, -H sha512-pbkdf2 is accepted; the
// files load and hold what they should.
func TestPasswdMosquittoOptions(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "passwd")
	users := func() string {
		t.Helper()
		if _, err := auth.LoadPasswords(file); err != nil {
			t.Fatalf("the file does not load: %v", err)
		}
		b, _ := os.ReadFile(file)
		var names []string
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			name, _, _ := strings.Cut(l, ":")
			names = append(names, name)
		}
		return strings.Join(names, ",")
	}
	must := func(args ...string) {
		t.Helper()
		if code, _, stderr := runEdged(args...); code != 0 {
			t.Fatalf("edged %s: exit %d: %s", strings.Join(args, " "), code, stderr)
		}
	}
	must("passwd", "-c", "-b", file, "alice", "a")
	must("passwd", "-b", file, "bob", "b")
	if got := users(); got != "alice,bob" {
		t.Fatalf("users %s, want alice,bob", got)
	}
	must("passwd", "-b", "-c", "-H", "sha512-pbkdf2", file, "carol", "c")
	if got := users(); got != "carol" {
		t.Fatalf("after -c: users %s, want carol alone", got)
	}

	// -U: plain-text entries are hashed, the rest kept as written.
	plain := filepath.Join(dir, "plain")
	b, _ := os.ReadFile(file)
	os.WriteFile(plain, append(b, "# staff\ndave:secret\nerin: spaced \n"...), 0o600)
	code, stdout, stderr := runEdged("passwd", "-U", plain)
	if code != 0 || !strings.Contains(stdout, "2 plain-text password(s) hashed (dave, erin)") {
		t.Fatalf("passwd -U: exit %d %q %q", code, stdout, stderr)
	}
	pw, err := auth.LoadPasswords(plain)
	if err != nil || pw.Len() != 3 {
		t.Fatalf("after -U: %v, %d users", err, pw.Len())
	}
	after, _ := os.ReadFile(plain)
	if !strings.HasPrefix(string(after), string(b)+"# staff\n") || strings.Contains(string(after), "secret") {
		t.Fatalf("-U did not keep the other lines or left a password:\n%s", after)
	}
	if _, stdout, _ := runEdged("passwd", "-U", plain); !strings.Contains(stdout, " 0 plain-text") {
		t.Fatalf("second -U: %q", stdout)
	}
	if code, _, _ := runEdged("passwd", "-U", filepath.Join(dir, "missing")); code != 1 {
		t.Fatalf("-U on a missing file: exit %d, want 1", code)
	}
	if _, err := os.Stat(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("-U created a missing file")
	}
}

// TestMosquittoConfHint: giving a mosquitto.conf to edged itself says
// what to run.
func TestMosquittoConfHint(t *testing.T) {
	code, _, stderr := runEdged("-c", "testdata/checkconfig/mosquitto.conf")
	if code != 1 || !strings.Contains(stderr, `run "edged import-mosquitto testdata/checkconfig/mosquitto.conf"`) {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	// A broken YAML file gets no such hint.
	path := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(path, []byte("listeners: nope\n"), 0o600)
	if _, _, stderr := runEdged("check-config", "-c", path); strings.Contains(stderr, "mosquitto") {
		t.Fatalf("hint for a YAML file:\n%s", stderr)
	}
}
