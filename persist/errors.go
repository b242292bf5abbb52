package persist

import "errors"

// Opening and checking a store.
var (
	// ErrCorrupt is returned when the store file is damaged, truncated, or
	// not an edged store at all. The error message says what to do: run
	// `edged db check`, then move the file aside to start empty. edged never
	// starts empty on its own.
	ErrCorrupt = errors.New("store file is corrupt")

	// ErrNewerFormat is returned when the store file was written by a newer
	// edged with a format this version does not understand.
	ErrNewerFormat = errors.New("store file has a newer format")

	// ErrLocked is returned when another process (usually another edged)
	// holds the store file's lock for longer than Options.Timeout.
	ErrLocked = errors.New("store file is locked by another process")
)

// Committing.
var (
	// ErrFull is returned (wrapped, to the done callbacks of a Commit) when a
	// transaction would grow the store file past Options.MaxSize or the disk
	// is full. Later commits that free space, such as Dequeue or
	// QueueDelete, still succeed, unless the store stopped (see DB.Commit).
	ErrFull = errors.New("store is full")

	// ErrClosed is returned when a store is used after Close.
	ErrClosed = errors.New("store is closed")
)
