package broker

// Hooks for the black-box tests in package broker_test.

// SessionWindow is sessionWindow.
const SessionWindow = sessionWindow

// SessionQueue reports how many queued messages the session of client id
// holds in memory (pending, beyond the inflight window) and how many only
// on disk (spilled); ok is false if there is no such session.
func (s *Server) SessionQueue(id string) (pending, spilled int, ok bool) {
	s.mu.Lock()
	ss := s.sessions[id]
	s.mu.Unlock()
	if ss == nil {
		return 0, 0, false
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.pending.len(), ss.spilled, true
}

// RetainCursors returns the number of retained-message cursors under way,
// for tests that check none is left behind.
func RetainCursors(s *Server) int64 { return s.retained.cursors.Load() }
