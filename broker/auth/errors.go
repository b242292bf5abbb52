package auth

import (
	"errors"
	"fmt"
)

// Loading a password or ACL file.
var (
	// ErrSyntax is returned, inside a *LineError, when a line of a password
	// or ACL file cannot be parsed.
	ErrSyntax = errors.New("auth: syntax error")

	// ErrUnknownHash is returned, inside a *LineError when loading, when a
	// password entry is not a $6$ or $7$ hash in Mosquitto's format.
	ErrUnknownHash = errors.New("auth: unsupported password hash")

	// ErrNotHashed wraps ErrUnknownHash for an entry that is no hash at
	// all (it does not start with '$'): most likely a plain-text password,
	// which Mosquitto's files may hold until mosquitto_passwd -U hashes
	// them.
	ErrNotHashed = fmt.Errorf("%w: not a hash (a plain-text password?)", ErrUnknownHash)

	// ErrDuplicateUser is returned, inside a *LineError, when a password
	// file names the same user twice.
	ErrDuplicateUser = errors.New("auth: duplicate user")
)

// Writing a password file.
var (
	// ErrInvalidUsername is returned when a user name is empty, has leading
	// or trailing white space, or contains ':' or a control character: it
	// could not be read back from a password file.
	ErrInvalidUsername = errors.New("auth: invalid user name")

	// ErrEmptyPassword is returned by HashPassword when the password is
	// empty: a client that sends no password would otherwise match it.
	ErrEmptyPassword = errors.New("auth: empty password")

	// ErrInvalidIterations is returned by HashPasswordIterations when the
	// iteration count is below 1.
	ErrInvalidIterations = errors.New("auth: invalid iteration count")

	// ErrUnknownUser is returned by RemovePasswordEntry when the file has
	// no entry for the user.
	ErrUnknownUser = errors.New("auth: unknown user")
)

// LineError reports a problem on one line of a password or ACL file.
// Loading collects every bad line and returns them joined (errors.Join),
// so errors.As finds the first one and errors.Is finds the sentinels.
type LineError struct {
	Path string // the file as given to the loader
	Line int    // 1-based
	Err  error  // wraps ErrSyntax, ErrUnknownHash or ErrDuplicateUser
}

// Error formats the error as path:line: message.
func (e *LineError) Error() string { return fmt.Sprintf("%s:%d: %v", e.Path, e.Line, e.Err) }

// Unwrap returns the underlying error.
func (e *LineError) Unwrap() error { return e.Err }
