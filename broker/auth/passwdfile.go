package auth

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unicode"
)

// WritePasswordEntry sets username's entry in the password file at path to
// hash (as returned by HashPassword), replacing an existing entry or
// appending one; the file is created if missing. Other lines, comments
// included, are kept as they are. The file is replaced atomically (a
// temporary file in the same directory, fsync, rename), so a broker
// reloading it never sees half a file. A new file gets mode 0600; an
// existing one keeps its mode without the bits for others, and its owner
// when run as root.
func WritePasswordEntry(path, username, hash string) error {
	if err := validUsername(username); err != nil {
		return err
	}
	if _, err := parseHash(hash); err != nil {
		return err
	}
	entry := username + ":" + hash
	return rewritePasswords(path, func(lines []string) ([]string, error) {
		out := lines[:0:0]
		done := false
		for _, l := range lines {
			if lineUser(l) == username {
				if !done {
					out = append(out, entry)
					done = true
				}
				continue
			}
			out = append(out, l)
		}
		if !done {
			out = append(out, entry)
		}
		return out, nil
	})
}

// RemovePasswordEntry removes username's entry from the password file at
// path, atomically as WritePasswordEntry does. It returns ErrUnknownUser if
// there is none.
func RemovePasswordEntry(path, username string) error {
	if err := validUsername(username); err != nil {
		return err
	}
	return rewritePasswords(path, func(lines []string) ([]string, error) {
		out := lines[:0:0]
		for _, l := range lines {
			if lineUser(l) != username {
				out = append(out, l)
			}
		}
		if len(out) == len(lines) {
			return nil, fmt.Errorf("%w %q", ErrUnknownUser, username)
		}
		return out, nil
	})
}

// validUsername rejects names that would not read back from the file.
func validUsername(s string) error {
	if s == "" || strings.TrimSpace(s) != s || strings.ContainsRune(s, ':') ||
		strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return fmt.Errorf("%w %q", ErrInvalidUsername, s)
	}
	return nil
}

// lineUser returns the user name of an entry line, or "" for a comment, a
// blank line or a line that is not an entry.
func lineUser(l string) string {
	l = strings.TrimSpace(l)
	if l == "" || l[0] == '#' {
		return ""
	}
	name, _, ok := strings.Cut(l, ":")
	if !ok {
		return ""
	}
	return strings.TrimSpace(name)
}

// rewritePasswords replaces the file's lines with edit's result.
func rewritePasswords(path string, edit func([]string) ([]string, error)) error {
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real // replace the target, not the link
	}
	var lines []string
	mode := fs.FileMode(0o600)
	fi, err := os.Stat(path)
	switch {
	case err == nil:
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("reading password file: %w", err)
		}
		lines = strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
		if len(b) == 0 {
			lines = nil
		}
		mode = fi.Mode().Perm() &^ 0o007
	case errors.Is(err, fs.ErrNotExist):
		fi = nil
	default:
		return fmt.Errorf("reading password file: %w", err)
	}
	lines, err = edit(lines)
	if err != nil {
		return err
	}
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	if err := writeAtomic(path, []byte(b.String()), mode, fi); err != nil {
		return fmt.Errorf("writing password file: %w", err)
	}
	return nil
}

// writeAtomic writes data to a temporary file next to path and renames it
// over path. old, if not nil, is the file being replaced.
func writeAtomic(path string, data []byte, mode fs.FileMode, old fs.FileInfo) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(mode); err != nil {
		return err
	}
	if old != nil {
		if err := matchOwner(f, old); err != nil {
			return err
		}
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// CreatePasswordFile replaces the password file at path with one holding
// only username's entry, atomically as WritePasswordEntry writes: what
// mosquitto_passwd -c does.
func CreatePasswordFile(path, username, hash string) error {
	if err := validUsername(username); err != nil {
		return err
	}
	if _, err := parseHash(hash); err != nil {
		return err
	}
	return rewritePasswords(path, func([]string) ([]string, error) {
		return []string{username + ":" + hash}, nil
	})
}

// HashPlaintextPasswords replaces every entry of the password file at path
// whose password is not a hash (ErrNotHashed) with its hash, keeping the
// other lines: what mosquitto_passwd -U does. It returns the user names
// whose entries it hashed. The file is rewritten only if there was any.
func HashPlaintextPasswords(path string) ([]string, error) {
	var users []string
	err := rewritePasswords(path, func(lines []string) ([]string, error) {
		out := make([]string, 0, len(lines))
		for _, l := range lines {
			name := lineUser(l)
			if name == "" {
				out = append(out, l)
				continue
			}
			_, pw, _ := strings.Cut(strings.TrimSpace(l), ":")
			pw = strings.TrimSpace(pw)
			if _, err := parseHash(pw); !errors.Is(err, ErrNotHashed) {
				out = append(out, l)
				continue
			}
			hash, err := HashPassword([]byte(pw))
			if err != nil {
				return nil, fmt.Errorf("user %q: %w", name, err)
			}
			out = append(out, name+":"+hash)
			users = append(users, name)
		}
		if len(users) == 0 {
			return nil, errNothingToDo
		}
		return out, nil
	})
	if errors.Is(err, errNothingToDo) {
		err = nil
	}
	return users, err
}

var errNothingToDo = errors.New("nothing to do")
