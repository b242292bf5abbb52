package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edged/edged/broker/packet"
)

// TestDBCommands runs edged, stops it, then `edged db check` and
// `edged db compact` on its store; then damages the file and checks that
// edged refuses to start (never silently starting empty) and db check
// reports the damage.
func TestDBCommands(t *testing.T) {
	dir := t.TempDir()
	config := "data_dir: " + dir + "/data\nlisteners:\n  - {name: local, address: 127.0.0.1:0}\n"
	p := startEdged(t, dir, config)
	subscribeAndLeave(t, p.addr, "keeper", "a/#", 1)

	// While edged runs, the file is locked: a clear message, not "damaged".
	cfgPath := filepath.Join(dir, "edged.yaml")
	out, err := exec.Command(edgedBin, "db", "check", "-c", cfgPath).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "in use by a running edged") {
		t.Fatalf("db check on a running store: %v\n%s", err, out)
	}
	p.stop(t)

	out, err = exec.Command(edgedBin, "db", "check", "-c", cfgPath).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "OK") {
		t.Fatalf("db check: %v\n%s", err, out)
	}
	out, err = exec.Command(edgedBin, "db", "compact", "-c", cfgPath).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "compacted from") {
		t.Fatalf("db compact: %v\n%s", err, out)
	}
	// The session survived the compaction.
	p = startEdged(t, dir, config)
	c, present, err := dialMQTT(p.addr, "keeper", false, func(*tclient, packet.Packet) {})
	if err != nil || !present {
		t.Fatalf("session after compact: present=%v err=%v", present, err)
	}
	c.disconnect()
	p.stop(t)

	// Damage the file: garbage over the first pages.
	db := filepath.Join(dir, "data", "edged.db")
	f, err := os.OpenFile(db, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte(strings.Repeat("garbage!", 2048)), 0)
	f.Close()

	cmd := exec.Command(edgedBin, "-c", cfgPath)
	done := make(chan []byte, 1)
	go func() {
		out, _ := cmd.CombinedOutput()
		done <- out
	}()
	select {
	case out := <-done:
		if cmd.ProcessState.ExitCode() == 0 || !strings.Contains(string(out), "corrupt") ||
			!strings.Contains(string(out), "edged db check") {
			t.Fatalf("edged on a damaged store: exit %d\n%s", cmd.ProcessState.ExitCode(), out)
		}
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatal("edged started on a damaged store")
	}
	out, err = exec.Command(edgedBin, "db", "check", "-c", cfgPath).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "damaged") {
		t.Fatalf("db check on a damaged store: %v\n%s", err, out)
	}
	// It never tells you to run itself.
	if strings.Contains(string(out), "db check") {
		t.Fatalf("db check says to run db check:\n%s", out)
	}
}

// Damage that bbolt does not notice: a damaged newest meta page (a silent
// rollback of one transaction) and bytes overwritten inside a payload.
// `edged db check` reports both, naming the lost transaction and the
// session of the damaged message; edged starts, logs them at error level
// (the message when its client resumes and the queue is read), never
// delivers the damaged payload and sets it aside, after which db
// check says OK and notes what was set aside.
func TestDBCheckSilentDamage(t *testing.T) {
	dir := t.TempDir()
	config := "data_dir: " + dir + "/data\nlisteners:\n  - {name: local, address: 127.0.0.1:0}\n"
	cfgPath := filepath.Join(dir, "edged.yaml")
	dbPath := filepath.Join(dir, "data", "edged.db")
	payload := "PAYLOAD-" + strings.Repeat("p", 100)
	p := startEdged(t, dir, config)
	subscribeAndLeave(t, p.addr, "keeper", "a/#", 1)
	acked := make(chan struct{})
	pc, _, err := dialMQTT(p.addr, "pub", true, func(_ *tclient, pk packet.Packet) {
		if _, ok := pk.(*packet.Puback); ok {
			close(acked)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	pc.send(&packet.Publish{QoS: 1, PacketID: 1, Topic: "a/1", Payload: []byte(payload)})
	select {
	case <-acked:
	case <-time.After(10 * time.Second):
		t.Fatal("no PUBACK")
	}
	pc.disconnect()
	// One more transaction: the rollback then loses only it, not the
	// message.
	subscribeAndLeave(t, p.addr, "last", "b", 0)
	p.stop(t)

	b, err := os.ReadFile(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	// Every copy: bbolt copies pages on write, and older copies may be
	// what the rolled-back transaction refers to.
	n := 0
	for i := strings.Index(string(b), payload); i >= 0; i = strings.Index(string(b), payload) {
		copy(b[i+20:], "GARBAGE!")
		n++
	}
	if n == 0 {
		t.Fatal("payload not in the store file")
	}
	ps := os.Getpagesize()
	txid := func(page int) uint64 { return binary.NativeEndian.Uint64(b[page*ps+16+48:]) }
	newest := 0
	if txid(1) > txid(0) {
		newest = 1
	}
	lost := txid(newest)
	b[newest*ps+16+16] ^= 0xA5 // the root page id: the meta checksum fails
	if err := os.WriteFile(dbPath, b, 0o600); err != nil {
		t.Fatal(err)
	}

	out, err := exec.Command(edgedBin, "db", "check", "-c", cfgPath).CombinedOutput()
	if err == nil || !strings.Contains(string(out), fmt.Sprintf("transaction %d, the newest, is lost", lost)) ||
		!strings.Contains(string(out), `session "keeper": queued message`) {
		t.Fatalf("db check: %v\n%s", err, out)
	}
	p = startEdged(t, dir, config)
	logs := p.logText()
	if !strings.Contains(logs, "store rolled back") || !strings.Contains(logs, fmt.Sprintf(`"lost_txid":%d`, lost)) {
		t.Errorf("start-up log does not report the rollback:\n%s", logs)
	}
	got := receiveAll(t, p.addr, "keeper", false, "", 0)
	for pl := range got {
		if strings.Contains(pl, "GARBAGE") {
			t.Errorf("damaged payload delivered: %q", pl)
		}
	}
	// Start-up reads only the messages in flight; the queued one is read,
	// and found damaged, when its client resumes.
	if logs := p.logText(); !strings.Contains(logs, "store record damaged") || !strings.Contains(logs, `session \"keeper\"`) {
		t.Errorf("log does not report the damaged message:\n%s", logs)
	}
	p.stop(t)
	out, err = exec.Command(edgedBin, "db", "check", "-c", cfgPath).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "OK") ||
		!strings.Contains(string(out), `note: set aside as damaged on`) || !strings.Contains(string(out), `session "keeper"`) {
		t.Fatalf("db check after edged set the damage aside: %v\n%s", err, out)
	}
}

// An empty edged.db (cut short, or truncated by hand) is damage: edged
// refuses to start on it with the advice of any damage, instead of
// starting an empty store in its place.
func TestEmptyStoreRefused(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "data", "edged.db"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "edged.yaml")
	config := "data_dir: " + dir + "/data\nlisteners:\n  - {name: local, address: 127.0.0.1:0}\n"
	if err := os.WriteFile(cfgPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, edgedBin, "-c", cfgPath).CombinedOutput()
	if ctx.Err() != nil {
		t.Fatal("edged started on an empty store")
	}
	if err == nil || !strings.Contains(string(out), "corrupt") || !strings.Contains(string(out), "edged db check") {
		t.Fatalf("edged on an empty store: %v\n%s", err, out)
	}
	if fi, err := os.Stat(filepath.Join(dir, "data", "edged.db")); err != nil || fi.Size() != 0 {
		t.Errorf("the empty store was replaced: %v", err)
	}
}

// TestDBCheckSummary: `edged db check` on a healthy store says what it
// holds, counted from the file: a persistent session with queued
// messages, retained messages, a bridge's backlog, the file size and free
// pages.
func TestDBCheckSummary(t *testing.T) {
	dir := t.TempDir()
	config := "data_dir: " + dir + "/data\nlisteners:\n  - {name: local, address: 127.0.0.1:0}\n" +
		"bridges:\n  - name: cloud\n    address: tcp://" + freeAddr(t) + "\n    topics: [{pattern: 'a/#', direction: out, qos: 1}]\n"
	p := startEdged(t, dir, config)
	subscribeAndLeave(t, p.addr, "keeper", "a/#", 1)
	acks := make(chan uint16, 16)
	c, _, err := dialMQTT(p.addr, "pub", true, func(_ *tclient, pk packet.Packet) {
		if a, ok := pk.(*packet.Puback); ok {
			acks <- a.PacketID
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	pubs := []*packet.Publish{
		{QoS: 1, PacketID: 1, Topic: "a/1", Payload: []byte("hello")},
		{QoS: 1, PacketID: 2, Topic: "a/2", Payload: []byte("hello")},
		{QoS: 1, PacketID: 3, Topic: "a/3", Payload: []byte("hello")},
		{QoS: 1, PacketID: 4, Topic: "r/1", Payload: []byte("kept"), Retain: true},
		{QoS: 1, PacketID: 5, Topic: "r/2", Payload: []byte("kept"), Retain: true},
	}
	for _, pk := range pubs {
		c.send(pk)
	}
	for range pubs {
		select {
		case <-acks:
		case <-time.After(10 * time.Second):
			t.Fatal("no PUBACK")
		}
	}
	c.disconnect()
	p.stop(t)

	out, err := exec.Command(edgedBin, "db", "check", "-c", filepath.Join(dir, "edged.yaml")).CombinedOutput()
	if err != nil {
		t.Fatalf("db check: %v\n%s", err, out)
	}
	for _, want := range []string{
		"sessions:           1 persistent session (1 subscription)",
		"queued:             3 messages, 24 bytes", // 3 x (a/N + hello)
		"retained:           2 messages",
		"bridge cloud:       3 messages, 24 bytes waiting to go upstream",
		"format:             ",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("db check output lacks %q:\n%s", want, out)
		}
	}
	fi, err := os.Stat(filepath.Join(dir, "data", "edged.db"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "file:               " + sizeOf(fi.Size()) + ", "; !strings.Contains(string(out), want) {
		t.Errorf("db check output lacks %q:\n%s", want, out)
	}
}
