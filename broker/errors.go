package broker

import "errors"

// ErrServerClosed is returned by Serve when it is called after Shutdown.
var ErrServerClosed = errors.New("broker: server closed")
