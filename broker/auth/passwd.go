package auth

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/edged/edged/broker"
	"github.com/edged/edged/broker/packet"
)

// DefaultIterations is the PBKDF2 iteration count HashPassword uses: ten
// times Mosquitto's 101, while a verification still costs about 0.5 ms on
// amd64 and about 11 ms for ARMv6 (measured under emulation). The count is
// part of every hash, so Mosquitto reads these hashes and edged reads
// Mosquitto's. See the package documentation for the measurements.
const DefaultIterations = 1000

// saltSize is the salt length mosquitto_passwd uses.
const saltSize = 12

var _ broker.Authenticator = (*Passwords)(nil)

// Passwords authenticates clients against a Mosquitto-compatible password
// file. It is safe for concurrent use; Reload swaps the table atomically.
type Passwords struct {
	path  string
	mu    sync.Mutex // serializes Reload
	table atomic.Pointer[passwordTable]
}

type passwordTable struct {
	users map[string]*passwordHash
	// dummy is verified for unknown users so that their refusal costs as
	// much as a wrong password and does not reveal which names exist.
	dummy *passwordHash
}

// passwordHash is one parsed $6$ or $7$ entry.
type passwordHash struct {
	iterations int // 0 for $6$
	salt, sum  []byte
}

// LoadPasswords reads a password file: one "username:hash" per line, where
// hash is "$7$iterations$salt$hash" (PBKDF2-HMAC-SHA512) or "$6$salt$hash"
// (SHA-512 of password then salt), salt and hash in standard base64, as
// written by mosquitto_passwd and WritePasswordEntry. Blank lines and lines
// starting with '#' are ignored. Every bad line is reported with its file
// and line number.
func LoadPasswords(path string) (*Passwords, error) {
	p := &Passwords{path: path}
	if err := p.Reload(); err != nil {
		return nil, err
	}
	return p, nil
}

// Reload reads the file again, for SIGHUP. If the file cannot be read or
// has a bad line, the table in use is kept and the error returned.
func (p *Passwords) Reload() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	b, err := os.ReadFile(p.path)
	if err != nil {
		return fmt.Errorf("reading password file: %w", err)
	}
	t, err := parsePasswords(p.path, string(b))
	if err != nil {
		return err
	}
	p.table.Store(t)
	return nil
}

// Len returns the number of users in the table in use.
func (p *Passwords) Len() int { return len(p.table.Load().users) }

// Authenticate implements broker.Authenticator. A client without a user
// name is refused with packet.NotAuthorized (the broker asks only when the
// listener does not allow anonymous clients); an unknown user or a wrong
// password with packet.BadUserNameOrPassword.
func (p *Passwords) Authenticate(c *broker.ClientInfo, password []byte) packet.Reason {
	if !c.HasUsername {
		return packet.NotAuthorized
	}
	t := p.table.Load()
	h, ok := t.users[c.Username]
	if !ok {
		t.dummy.verify(password)
		return packet.BadUserNameOrPassword
	}
	if !h.verify(password) {
		return packet.BadUserNameOrPassword
	}
	return packet.Success
}

// verify reports whether password matches, comparing in constant time.
func (h *passwordHash) verify(password []byte) bool {
	var sum []byte
	if h.iterations == 0 {
		d := sha512.New()
		d.Write(password)
		d.Write(h.salt)
		sum = d.Sum(nil)
	} else {
		var err error
		sum, err = pbkdf2.Key(sha512.New, string(password), h.salt, h.iterations, len(h.sum))
		if err != nil {
			return false
		}
	}
	return subtle.ConstantTimeCompare(sum, h.sum) == 1
}

// HashPassword returns a "$7$" entry for password with DefaultIterations
// and a random 12-byte salt, in the format mosquitto_passwd writes.
func HashPassword(password []byte) (string, error) {
	return HashPasswordIterations(password, DefaultIterations)
}

// maxIterations bounds the PBKDF2 iterations of a $7$ entry.
const maxIterations = 100000

// HashPasswordIterations is HashPassword with a chosen PBKDF2 iteration
// count, at most 100,000. Mosquitto's own default is 101.
func HashPasswordIterations(password []byte, iterations int) (string, error) {
	if len(password) == 0 {
		return "", ErrEmptyPassword
	}
	if iterations < 1 || iterations > maxIterations {
		return "", fmt.Errorf("%w: %d", ErrInvalidIterations, iterations)
	}
	salt := make([]byte, saltSize)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("generating salt: %w", err)
	}
	sum, err := pbkdf2.Key(sha512.New, string(password), salt, iterations, sha512.Size)
	if err != nil {
		return "", fmt.Errorf("hashing password: %w", err)
	}
	enc := base64.StdEncoding
	return "$7$" + strconv.Itoa(iterations) + "$" + enc.EncodeToString(salt) + "$" + enc.EncodeToString(sum), nil
}

func parsePasswords(path, text string) (*passwordTable, error) {
	t := &passwordTable{users: make(map[string]*passwordHash)}
	var errs []error
	bad := func(n int, err error) { errs = append(errs, &LineError{Path: path, Line: n, Err: err}) }
	for i, line := range strings.Split(text, "\n") {
		n := i + 1
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		name, hash, ok := strings.Cut(line, ":")
		name, hash = strings.TrimSpace(name), strings.TrimSpace(hash)
		switch {
		case !ok:
			bad(n, fmt.Errorf("%w: want username:hash", ErrSyntax))
			continue
		case name == "":
			bad(n, fmt.Errorf("%w: empty user name", ErrSyntax))
			continue
		}
		if _, dup := t.users[name]; dup {
			bad(n, fmt.Errorf("%w %q", ErrDuplicateUser, name))
			continue
		}
		h, err := parseHash(hash)
		if err != nil {
			bad(n, fmt.Errorf("user %q: %w", name, err))
			continue
		}
		t.users[name] = h
		if t.dummy == nil && h.iterations > 0 {
			t.dummy = h
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	iter := DefaultIterations
	if t.dummy != nil {
		iter = t.dummy.iterations
	}
	t.dummy = &passwordHash{iterations: iter, salt: make([]byte, saltSize), sum: make([]byte, sha512.Size)}
	return t, nil
}

// parseHash parses "$7$iterations$salt$hash" or "$6$salt$hash".
func parseHash(s string) (*passwordHash, error) {
	f := strings.Split(s, "$")
	if len(f) < 2 || f[0] != "" {
		return nil, fmt.Errorf("%w: want $7$iterations$salt$hash or $6$salt$hash", ErrNotHashed)
	}
	h := new(passwordHash)
	var salt, sum string
	switch {
	case f[1] == "7" && len(f) == 5:
		n, err := strconv.Atoi(f[2])
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%w: bad iteration count %q", ErrSyntax, f[2])
		}
		if n > maxIterations {
			// Every CONNECT for this user (and for unknown users, whose
			// dummy check copies the first entry's cost) would burn that
			// much CPU: about 10 s per million on an ARMv6 Pi Zero.
			return nil, fmt.Errorf("%w: %d iterations is more than edged accepts (%d)", ErrInvalidIterations, n, maxIterations)
		}
		h.iterations, salt, sum = n, f[3], f[4]
	case f[1] == "6" && len(f) == 4:
		salt, sum = f[2], f[3]
	case f[1] == "6" || f[1] == "7":
		return nil, fmt.Errorf("%w: wrong number of fields in $%s$ hash", ErrSyntax, f[1])
	default:
		return nil, fmt.Errorf("%w: $%s$ (want $7$ or $6$)", ErrUnknownHash, f[1])
	}
	var err error
	if h.salt, err = base64.StdEncoding.DecodeString(salt); err != nil || len(h.salt) == 0 {
		return nil, fmt.Errorf("%w: bad salt", ErrSyntax)
	}
	if h.sum, err = base64.StdEncoding.DecodeString(sum); err != nil || len(h.sum) != sha512.Size {
		return nil, fmt.Errorf("%w: bad hash (want %d bytes in base64)", ErrSyntax, sha512.Size)
	}
	return h, nil
}

// Has reports whether the table in use has username.
func (p *Passwords) Has(username string) bool {
	_, ok := p.table.Load().users[username]
	return ok
}
