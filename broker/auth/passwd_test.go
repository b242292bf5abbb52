package auth_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/edged/edged/broker"
	"github.com/edged/edged/broker/auth"
	"github.com/edged/edged/broker/packet"
)

// needTool returns the path of an external program, skipping the test if
// it is missing (failing it when CI is set).
func needTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is required in CI: %v", name, err)
		}
		t.Skipf("%s not installed", name)
	}
	return p
}

func user(name string) *broker.ClientInfo {
	return &broker.ClientInfo{ClientID: "c-" + name, Username: name, HasUsername: true}
}

var anonymous = &broker.ClientInfo{ClientID: "anon"}

type authCase struct {
	name     string
	client   *broker.ClientInfo
	password string
	want     packet.Reason
}

func checkAuth(t *testing.T, p *auth.Passwords, cases []authCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := p.Authenticate(tc.client, []byte(tc.password)); got != tc.want {
				t.Errorf("Authenticate(%q, %q) = %v, want %v", tc.client.Username, tc.password, got, tc.want)
			}
		})
	}
}

// TestMosquittoPasswdFile reads a file written by mosquitto_passwd 2.0.11
// and committed under testdata, so it runs without Mosquitto.
func TestMosquittoPasswdFile(t *testing.T) {
	p, err := auth.LoadPasswords("testdata/mosquitto.passwd")
	if err != nil {
		t.Fatal(err)
	}
	if p.Len() != 5 {
		t.Errorf("Len = %d, want 5", p.Len())
	}
	checkAuth(t, p, []authCase{
		{"$7$ right", user("alice"), "secret", packet.Success},
		{"$7$ wrong", user("alice"), "Secret", packet.BadUserNameOrPassword},
		{"$7$ empty", user("alice"), "", packet.BadUserNameOrPassword},
		{"$7$ colon and unicode", user("bob"), "p@ss:wörd $x", packet.Success},
		{"$7$ user with space", user("carol smith"), "with space", packet.Success},
		{"$6$ CRLF line", user("dave"), "hunter2", packet.Success},
		{"$6$ wrong", user("dave"), "hunter3", packet.BadUserNameOrPassword},
		{"$6$ unicode", user("erin"), "ünï:cøde", packet.Success},
		{"unknown user", user("mallory"), "secret", packet.BadUserNameOrPassword},
		{"user name is case sensitive", user("Alice"), "secret", packet.BadUserNameOrPassword},
		{"empty user name", user(""), "", packet.BadUserNameOrPassword},
		{"anonymous", anonymous, "", packet.NotAuthorized},
	})
}

// TestMosquittoPasswdGenerated runs the real mosquitto_passwd.
func TestMosquittoPasswdGenerated(t *testing.T) {
	tool := needTool(t, "mosquitto_passwd")
	path := filepath.Join(t.TempDir(), "passwd")
	users := []struct{ algo, name, password string }{
		{"sha512-pbkdf2", "u7", "pbkdf2 pass"},
		{"sha512", "u6", "sha512 pass"},
		{"sha512-pbkdf2", "long", strings.Repeat("x", 300)},
	}
	for i, u := range users {
		args := []string{"-H", u.algo, "-b", path, u.name, u.password}
		if i == 0 {
			args = append([]string{"-c"}, args...)
		}
		if out, err := exec.Command(tool, args...).CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_passwd %v: %v\n%s", args, err, out)
		}
	}
	p, err := auth.LoadPasswords(path)
	if err != nil {
		t.Fatal(err)
	}
	var cases []authCase
	for _, u := range users {
		cases = append(cases,
			authCase{u.name + " right", user(u.name), u.password, packet.Success},
			authCase{u.name + " wrong", user(u.name), u.password + "!", packet.BadUserNameOrPassword})
	}
	checkAuth(t, p, cases)
}

var mosquittoShape = regexp.MustCompile(`^\$7\$1000\$[A-Za-z0-9+/]{16}\$[A-Za-z0-9+/]{86}==$`)

func TestHashPassword(t *testing.T) {
	h1, err := auth.HashPassword([]byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	h2, err := auth.HashPassword([]byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{h1, h2} {
		if !mosquittoShape.MatchString(h) {
			t.Errorf("hash %q does not have Mosquitto's $7$ shape", h)
		}
	}
	if h1 == h2 {
		t.Error("two hashes of one password are equal: salt is not random")
	}
	h101, err := auth.HashPasswordIterations([]byte("secret"), 101)
	if err != nil || !strings.HasPrefix(h101, "$7$101$") {
		t.Errorf("HashPasswordIterations(101) = %q, %v", h101, err)
	}

	path := filepath.Join(t.TempDir(), "passwd")
	os.WriteFile(path, []byte("a:"+h1+"\nb:"+h101+"\n"), 0o600)
	p, err := auth.LoadPasswords(path)
	if err != nil {
		t.Fatal(err)
	}
	checkAuth(t, p, []authCase{
		{"default iterations", user("a"), "secret", packet.Success},
		{"101 iterations", user("b"), "secret", packet.Success},
		{"wrong", user("a"), "secreT", packet.BadUserNameOrPassword},
	})

	if _, err := auth.HashPassword(nil); !errors.Is(err, auth.ErrEmptyPassword) {
		t.Errorf("HashPassword(nil) error = %v, want ErrEmptyPassword", err)
	}
	if _, err := auth.HashPasswordIterations([]byte("x"), 0); !errors.Is(err, auth.ErrInvalidIterations) {
		t.Errorf("HashPasswordIterations(0) error = %v, want ErrInvalidIterations", err)
	}
}

const (
	good7 = "$7$101$9MxAVIdVSql9pHYB$Qh9C0IVyc+r9HviqShRnRj1jZIFnpQv0+hkFkSJttjXTtxca0o7l+0hx8Hb3fbe6v7SV+3GoUqg+GSNHtqoylQ=="
	good6 = "$6$hrzV+ldPmWm+s1At$pbOKGJWbqYNxCbpSqAAbmd/ZtEYqEiXe9EdJGSrm+lrjqch/Zz74KgbQk3DBaEZqnEpyzZtdeOb0KW/n0KhXgQ=="
)

func TestLoadPasswordsErrors(t *testing.T) {
	tests := []struct {
		name    string
		text    string
		line    int
		wantErr error
		msg     string
	}{
		{"no colon", "# c\nalice " + good7 + "\n", 2, auth.ErrSyntax, "want username:hash"},
		{"empty user", ":" + good7, 1, auth.ErrSyntax, "empty user name"},
		{"plain text password", "\n\nalice:secret\n", 3, auth.ErrUnknownHash, "want $7$"},
		{"other algorithm", "alice:$2y$10$abc", 1, auth.ErrUnknownHash, "$2y$"},
		{"duplicate", "alice:" + good7 + "\nalice:" + good6, 2, auth.ErrDuplicateUser, `"alice"`},
		{"bad iterations", "alice:$7$zero$9MxAVIdVSql9pHYB$AA==", 1, auth.ErrSyntax, "iteration count"},
		{"negative iterations", "alice:$7$-5$9MxAVIdVSql9pHYB$AA==", 1, auth.ErrSyntax, "iteration count"},
		{"bad salt", "alice:$7$101$!!!$" + good7[24:], 1, auth.ErrSyntax, "bad salt"},
		{"short hash", "alice:$7$101$9MxAVIdVSql9pHYB$AAAA", 1, auth.ErrSyntax, "bad hash"},
		{"missing field", "alice:$7$9MxAVIdVSql9pHYB$" + good7[24:], 1, auth.ErrSyntax, "number of fields"},
		{"$6$ extra field", "alice:$6$1$" + good6[3:], 1, auth.ErrSyntax, "number of fields"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "passwd")
			os.WriteFile(path, []byte(tc.text), 0o600)
			_, err := auth.LoadPasswords(path)
			var le *auth.LineError
			if !errors.As(err, &le) {
				t.Fatalf("error = %v, want a *LineError", err)
			}
			if le.Path != path || le.Line != tc.line {
				t.Errorf("error at %s:%d, want %s:%d", le.Path, le.Line, path, tc.line)
			}
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("error %v does not wrap %v", err, tc.wantErr)
			}
			prefix := path + ":" + strconv.Itoa(tc.line) + ": "
			if s := err.Error(); !strings.HasPrefix(s, prefix) || !strings.Contains(s, tc.msg) {
				t.Errorf("error %q, want prefix %q and %q", s, prefix, tc.msg)
			}
		})
	}

	t.Run("every bad line is reported", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "passwd")
		os.WriteFile(path, []byte("a:x\nb:"+good6+"\nc\n"), 0o600)
		_, err := auth.LoadPasswords(path)
		for _, want := range []string{path + ":1: ", path + ":3: "} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("error %v does not mention %q", err, want)
			}
		}
	})
	t.Run("missing file", func(t *testing.T) {
		_, err := auth.LoadPasswords(filepath.Join(t.TempDir(), "nope"))
		if !errors.Is(err, os.ErrNotExist) {
			t.Errorf("error = %v, want ErrNotExist", err)
		}
	})
}

func TestWritePasswordEntry(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "passwd")
	h := func(pw string) string {
		s, err := auth.HashPasswordIterations([]byte(pw), 101)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}

	must(auth.WritePasswordEntry(path, "alice", h("one")))
	fi, err := os.Stat(path)
	must(err)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("new file mode = %v, want 0600", fi.Mode().Perm())
	}
	// Comments and other users survive an update.
	b, _ := os.ReadFile(path)
	must(os.WriteFile(path, append([]byte("# keep me\n\n"), b...), 0o600))
	must(os.Chmod(path, 0o644)) // the bits for others are dropped on rewrite
	must(auth.WritePasswordEntry(path, "bob", h("two")))
	must(auth.WritePasswordEntry(path, "alice", h("three")))
	must(auth.WritePasswordEntry(path, "carol smith", h("four")))

	b, _ = os.ReadFile(path)
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 5 || lines[0] != "# keep me" || lines[1] != "" ||
		!strings.HasPrefix(lines[2], "alice:$7$101$") || !strings.HasPrefix(lines[3], "bob:") ||
		!strings.HasPrefix(lines[4], "carol smith:") {
		t.Errorf("file after updates:\n%s", b)
	}
	fi, _ = os.Stat(path)
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("updated file mode = %v, want 0640 kept", fi.Mode().Perm())
	}
	p, err := auth.LoadPasswords(path)
	must(err)
	checkAuth(t, p, []authCase{
		{"replaced", user("alice"), "three", packet.Success},
		{"old password", user("alice"), "one", packet.BadUserNameOrPassword},
		{"added", user("bob"), "two", packet.Success},
		{"added with space", user("carol smith"), "four", packet.Success},
	})

	must(auth.RemovePasswordEntry(path, "bob"))
	if err := auth.RemovePasswordEntry(path, "bob"); !errors.Is(err, auth.ErrUnknownUser) {
		t.Errorf("removing a missing user: %v, want ErrUnknownUser", err)
	}
	must(p.Reload())
	if p.Len() != 2 {
		t.Errorf("after remove Len = %d, want 2", p.Len())
	}
	if m, _ := filepath.Glob(filepath.Join(dir, ".*tmp*")); len(m) > 0 {
		t.Errorf("temporary files left: %v", m)
	}

	for _, bad := range []string{"", "a:b", " a", "a\nb", "a\x00"} {
		if err := auth.WritePasswordEntry(path, bad, h("x")); !errors.Is(err, auth.ErrInvalidUsername) {
			t.Errorf("WritePasswordEntry(%q) = %v, want ErrInvalidUsername", bad, err)
		}
	}
	if err := auth.RemovePasswordEntry(path, ""); !errors.Is(err, auth.ErrInvalidUsername) {
		t.Errorf("RemovePasswordEntry(\"\") = %v, want ErrInvalidUsername", err)
	}
	if err := auth.WritePasswordEntry(path, "dave", "plain"); !errors.Is(err, auth.ErrUnknownHash) {
		t.Errorf("WritePasswordEntry with a bad hash = %v, want ErrUnknownHash", err)
	}
}

// TestWritePasswordEntryMosquittoReads checks that mosquitto_passwd accepts a
// file we wrote: it updates another user without complaint and keeps ours.
func TestWritePasswordEntryMosquittoReads(t *testing.T) {
	tool := needTool(t, "mosquitto_passwd")
	path := filepath.Join(t.TempDir(), "passwd")
	h, _ := auth.HashPassword([]byte("ours"))
	if err := auth.WritePasswordEntry(path, "edged", h); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(tool, "-b", path, "mosq", "theirs").CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd: %v\n%s", err, out)
	}
	p, err := auth.LoadPasswords(path)
	if err != nil {
		t.Fatal(err)
	}
	checkAuth(t, p, []authCase{
		{"ours", user("edged"), "ours", packet.Success},
		{"theirs", user("mosq"), "theirs", packet.Success},
	})
}

func TestPasswordsReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "passwd")
	h1, _ := auth.HashPasswordIterations([]byte("one"), 101)
	h2, _ := auth.HashPasswordIterations([]byte("two"), 101)
	os.WriteFile(path, []byte("alice:"+h1+"\n"), 0o600)
	p, err := auth.LoadPasswords(path)
	if err != nil {
		t.Fatal(err)
	}

	// Concurrent checks while the file changes (for -race).
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
					p.Authenticate(user("alice"), []byte("one"))
				}
			}
		})
	}

	os.WriteFile(path, []byte("alice:"+h1+"\nbroken line\n"), 0o600)
	err = p.Reload()
	var le *auth.LineError
	if !errors.As(err, &le) || le.Line != 2 {
		t.Errorf("Reload of a bad file = %v, want a LineError on line 2", err)
	}
	if got := p.Authenticate(user("alice"), []byte("one")); got != packet.Success {
		t.Errorf("after a failed reload the old table is not in use: %v", got)
	}
	os.WriteFile(path, []byte("alice:"+h2+"\n"), 0o600)
	if err := p.Reload(); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	checkAuth(t, p, []authCase{
		{"new password", user("alice"), "two", packet.Success},
		{"old password", user("alice"), "one", packet.BadUserNameOrPassword},
	})
	os.Remove(path)
	if err := p.Reload(); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Reload of a missing file = %v", err)
	}
	if got := p.Authenticate(user("alice"), []byte("two")); got != packet.Success {
		t.Errorf("after a failed reload the old table is not in use: %v", got)
	}
}

// BenchmarkAuthenticate measures the cost a CONNECT pays.
func BenchmarkAuthenticate(b *testing.B) {
	for _, bc := range []struct {
		name, user, password string
		iterations           int
	}{
		{"pbkdf2-101", "u", "secret", 101},
		{"pbkdf2-1000-default", "u", "secret", auth.DefaultIterations},
		{"pbkdf2-10000", "u", "secret", 10000},
		{"sha512-mosquitto-1.x", "dave", "hunter2", 0},
		{"unknown-user", "nobody", "secret", auth.DefaultIterations},
	} {
		b.Run(bc.name, func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "passwd")
			line := "dave:" + good6 + "\n"
			if bc.iterations > 0 {
				h, _ := auth.HashPasswordIterations([]byte(bc.password), bc.iterations)
				line = "u:" + h + "\n"
			}
			os.WriteFile(path, []byte(line), 0o600)
			p, err := auth.LoadPasswords(path)
			if err != nil {
				b.Fatal(err)
			}
			c, pw := user(bc.user), []byte(bc.password)
			want := packet.Success
			if bc.user == "nobody" {
				want = packet.BadUserNameOrPassword
			}
			b.ReportAllocs()
			for b.Loop() {
				if got := p.Authenticate(c, pw); got != want {
					b.Fatalf("Authenticate = %v", got)
				}
			}
		})
	}
}
