package persist_test

import (
	"path/filepath"
	"reflect"
	"testing"

	"github.com/edged/edged/persist"
)

// A session's owner survives a restart in both stores; a session stored
// without one (as by an earlier edged) loads with a nil Owner; deleting the
// session forgets it.
func TestSessionOwner(t *testing.T) {
	path := filepath.Join(t.TempDir(), "edged.db")
	db := mustOpenStore(t, persist.Options{Path: path})
	mem := persist.NewMemory()
	t.Cleanup(func() { mem.Close() })
	ops := []persist.Op{
		persist.PutSession{ClientID: "legacy"},
		persist.PutSession{ClientID: "bob-dev"},
		persist.SetOwner{ClientID: "bob-dev", Owner: persist.Owner{Username: "bob", HasUsername: true}},
		persist.SetOwner{ClientID: "anon-dev"}, // creates the session
		persist.PutSession{ClientID: "gone"},
		persist.SetOwner{ClientID: "gone", Owner: persist.Owner{Username: "x", HasUsername: true}},
		persist.DeleteSession{ClientID: "gone"},
		persist.PutSession{ClientID: "gone"},
		persist.SetOwner{ClientID: "empty-user", Owner: persist.Owner{HasUsername: true}},
	}
	want := map[string]*persist.Owner{
		"legacy":     nil,
		"bob-dev":    {Username: "bob", HasUsername: true},
		"anon-dev":   {},
		"gone":       nil,
		"empty-user": {HasUsername: true},
	}
	check := func(name string, s persist.Store) {
		t.Helper()
		got := map[string]*persist.Owner{}
		for _, ss := range mustLoad(t, s).Sessions {
			got[ss.ClientID] = ss.Owner
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: owners %v, want %v", name, fmtOwners(got), fmtOwners(want))
		}
	}
	mustCommit(t, db, ops...)
	mustCommit(t, mem, ops...)
	check("memory", mem)
	check("bbolt", db)
	db = reopen(t, db, persist.Options{Path: path})
	check("bbolt after restart", db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := persist.Check(path); err != nil {
		t.Errorf("Check: %v", err)
	}
}

func fmtOwners(m map[string]*persist.Owner) map[string]string {
	out := map[string]string{}
	for id, o := range m {
		switch {
		case o == nil:
			out[id] = "unknown"
		case !o.HasUsername:
			out[id] = "anonymous"
		default:
			out[id] = "user " + o.Username
		}
	}
	return out
}
