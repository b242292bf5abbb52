package persist

// Err returns the error that stopped the store (see DB.Commit): once it is
// not nil, no commit succeeds until edged restarts. It is nil while the
// store works.
func (db *DB) Err() error {
	if cause := db.broken.Load(); cause != nil {
		return *cause
	}
	return nil
}
