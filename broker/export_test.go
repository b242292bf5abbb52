package broker

// RetainCursors returns the number of retained-message cursors under way,
// for tests that check none is left behind.
func RetainCursors(s *Server) int64 { return s.retained.cursors.Load() }
