package bridge

import "errors"

// Errors of New and Config.Validate.
var (
	// ErrInvalidConfig is wrapped by every error Config.Validate returns.
	ErrInvalidConfig = errors.New("bridge: invalid configuration")
)

// Errors of a connection to the upstream broker. They end one connection;
// Run logs them and reconnects with backoff.
var (
	// ErrConnectionLost is returned when the upstream connection dropped or
	// a keepalive ping went unanswered.
	ErrConnectionLost = errors.New("bridge: upstream connection lost")
	// ErrPublishFailed is returned when paho failed a publish on a live
	// connection; the connection is dropped so the window is resent in order.
	ErrPublishFailed = errors.New("bridge: upstream publish failed")
	// ErrSubscribeRefused is returned when the upstream broker refused the
	// subscription of an in rule (SUBACK return code 0x80).
	ErrSubscribeRefused = errors.New("bridge: upstream refused subscription")
	// ErrLocalPublish is returned when a message that came down an in rule
	// could not be stored locally; it is not acknowledged upstream and the
	// connection is dropped so the upstream broker resends it.
	ErrLocalPublish = errors.New("bridge: local publish failed")
)

// FieldError is a configuration error about one key. Key is relative to
// Config, named as in the configuration file (for example
// "topics[1].direction").
type FieldError struct {
	Key string
	Err error
}

// Error implements error.
func (e *FieldError) Error() string { return e.Key + ": " + e.Err.Error() }

// Unwrap returns the underlying error.
func (e *FieldError) Unwrap() error { return e.Err }

// Is reports that a FieldError is an ErrInvalidConfig.
func (e *FieldError) Is(target error) bool { return target == ErrInvalidConfig }
