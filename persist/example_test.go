package persist_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/edged/edged/persist"
)

// A store is opened, handed a batch of mutations, closed and opened again:
// Load returns what was committed. Commit never blocks; its callback runs
// once the batch is durable, which is when a broker may acknowledge.
func Example() {
	dir, err := os.MkdirTemp("", "persist-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "edged.db")

	db, err := persist.Open(persist.Options{Path: path, Sync: persist.SyncBatch})
	if err != nil {
		panic(err)
	}
	msg := persist.Message{Topic: "cmd/reboot", Payload: []byte("now"), QoS: 1}
	done := make(chan error, 1)
	db.Commit([]persist.Op{
		persist.PutSession{ClientID: "sensor-1"},
		persist.PutSubscription{ClientID: "sensor-1", Sub: persist.Subscription{Seq: 1, Filter: "cmd/#", QoS: 1}},
		persist.PutMessage{ID: 1, Msg: msg},
		persist.Enqueue{ClientID: "sensor-1", MsgID: 1, QoS: 1},
		persist.PutRetained{Msg: persist.Message{Topic: "status/sensor-1", Payload: []byte("online"), Retain: true}},
	}, func(err error) { done <- err })
	if err := <-done; err != nil {
		panic(err)
	}
	if err := db.Close(); err != nil {
		panic(err)
	}

	db, err = persist.Open(persist.Options{Path: path})
	if err != nil {
		panic(err)
	}
	defer db.Close()
	snap, err := db.Load()
	if err != nil {
		panic(err)
	}
	for _, s := range snap.Sessions {
		fmt.Printf("session %s: %d subscription(s), %d message(s) of %d bytes waiting\n",
			s.ClientID, len(s.Subs), s.Waiting, s.WaitingBytes)
	}
	for _, m := range snap.Retained {
		fmt.Printf("retained %s = %s\n", m.Topic, m.Payload)
	}
	// Output:
	// session sensor-1: 1 subscription(s), 1 message(s) of 13 bytes waiting
	// retained status/sensor-1 = online
}
