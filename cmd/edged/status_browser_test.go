package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/edged/edged/broker/auth"
	"github.com/edged/edged/broker/packet"
	"github.com/edged/edged/internal/browsertest"
	"github.com/edged/edged/internal/ptytest"
	"github.com/edged/edged/internal/testutil"
)

// sysTracker keeps the latest value of every $SYS topic an observer gets.
type sysTracker struct {
	mu sync.Mutex
	v  map[string]string
}

func trackSys(t *testing.T, addr string) *sysTracker {
	st := &sysTracker{v: map[string]string{}}
	o := dialObserver(t, addr, "sys-watcher", true)
	o.subscribe(t, "$SYS/#", 0)
	go func() {
		for p := range o.msgs {
			st.mu.Lock()
			st.v[p.Topic] = string(p.Payload)
			st.mu.Unlock()
		}
	}()
	return st
}

func (s *sysTracker) get(topic string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.v["$SYS/broker/"+topic]
}

// statusURL waits for the status page's log line and returns its URL.
func (p *edgedProc) statusURL(t *testing.T) string {
	t.Helper()
	var u string
	testutil.WaitFor(t, 10*time.Second, func() error {
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, r := range p.logs {
			if r["msg"] == "status page" {
				u, _ = r["url"].(string)
				return nil
			}
		}
		return fmt.Errorf("no status page log line")
	})
	return strings.TrimSuffix(u, "/")
}

// The status page of the real edged binary in headless Chromium, with
// network clients, an offline session with a queue, a sensor on a serial
// PTY and a bridge whose uplink is down: every page loads and shows the
// numbers $SYS publishes; disconnect and purge work from the page and are
// logged with the user; a login is required, and an action without the
// token or from another site's page is refused.
func TestStatusPageBrowser(t *testing.T) {
	ctx := browsertest.New(t, 20*time.Second)
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "passwd")
	h, _ := auth.HashPassword([]byte("s3cret"))
	if err := auth.WritePasswordEntry(pwFile, "admin", h); err != nil {
		t.Fatal(err)
	}
	up := testutil.StartMosquitto(t, testutil.MosquittoOptions{})
	px := testutil.StartProxy(t, up.Addr)
	px.SetDown(true)
	master, slave := ptytest.Open(t)
	ed := startEdged(t, dir, fmt.Sprintf(`data_dir: %s/data
sys_interval: 500ms
listeners:
  - {name: local, address: "127.0.0.1:0", allow_anonymous: true}
serial:
  - {name: uart0, device: %s, baud: 115200}
auth: {password_file: %s}
bridges:
  - name: cloud
    address: tcp://%s
    client_id: edged-status-test
    keepalive: 1s
    backoff: {min: 20ms, max: 200ms}
    topics:
      - {pattern: "sensors/#", direction: out, qos: 1}
http: {address: "127.0.0.1:0", users: [admin]}
`, dir, slave, pwFile, px.Addr()))
	base := ed.statusURL(t)
	sys := trackSys(t, ed.addr)

	// Clients: an offline persistent session with a queue, one to
	// disconnect from the page, a publisher, and a sensor on the PTY.
	sleeper := dialObserver(t, ed.addr, "sleeper", false)
	sleeper.subscribe(t, "sensors/#", 1)
	sleeper.c.disconnect()
	victim := dialObserver(t, ed.addr, "victim", true)
	victim.subscribe(t, "cmd/victim", 1)
	testutil.WaitFor(t, 10*time.Second, func() error {
		if sys.get("serial/uart0/open") != "1" {
			return fmt.Errorf("serial port not open")
		}
		return nil
	})
	s1 := newSensor(t, master, nil)
	s1.connect(t, 0, &packet.Connect{ClientID: "s1", KeepAlive: 30})
	for i := range 5 {
		s1.send(t, 0, &packet.Publish{QoS: 1, PacketID: uint16(i + 1), Topic: "sensors/s1/temp", Payload: []byte(fmt.Sprint(20 + i))})
		if _, ok := s1.nextPacket(t, 0).(*packet.Puback); !ok {
			t.Fatal("sensor: want PUBACK")
		}
	}

	get := func(js string) map[string]string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]string](js))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	// match loads path until the values its JavaScript reads equal the
	// $SYS topics they stand for ($SYS is published every 500ms).
	match := func(path, js string, topics map[string]string) {
		t.Helper()
		var last string
		deadline := time.Now().Add(10 * time.Second)
		for {
			if err := chromedp.Do(ctx, chromedp.Navigate(base+path), chromedp.WaitReady(chromedp.ID("main"))); err != nil {
				t.Fatal(err)
			}
			page := get(js)
			var diffs []string
			for k, topic := range topics {
				if page[k] == "" || page[k] != sys.get(topic) {
					diffs = append(diffs, fmt.Sprintf("%s: page %q, $SYS/broker/%s %q", k, page[k], topic, sys.get(topic)))
				}
			}
			if len(diffs) == 0 {
				return
			}
			last = strings.Join(diffs, "; ")
			if time.Now().After(deadline) {
				t.Fatalf("%s does not match $SYS: %s", path, last)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	text := func(sel string) string { return fmt.Sprintf("(document.querySelector(%q)||{}).textContent", sel) }

	if err := chromedp.Do(ctx, browsertest.BasicAuth("admin", "s3cret")); err != nil {
		t.Fatal(err)
	}
	match("/", `({connected: `+text("#clients-connected")+`, offline: `+text("#clients-offline")+`,
		maximum: `+text("#clients-maximum")+`, subscriptions: `+text("#subscriptions")+`})`,
		map[string]string{"connected": "clients/connected", "offline": "clients/inactive",
			"maximum": "clients/maximum", "subscriptions": "subscriptions/count"})
	match("/clients", `({total: `+text("#sessions-total")+`, queued: `+text(`tr[data-client="sleeper"] .queued`)+`})`,
		map[string]string{"total": "clients/total", "queued": "messages/queued"})
	match("/serial", `({frames: `+text(`tr[data-port="uart0"] .frames-in`)+`, opens: `+text(`tr[data-port="uart0"] .opens`)+`,
		crc: `+text(`tr[data-port="uart0"] .crc`)+`})`,
		map[string]string{"frames": "serial/uart0/frames/received", "opens": "serial/uart0/port/opens", "crc": "serial/uart0/errors/crc"})
	match("/bridges", `({queued: `+text(`tr[data-bridge="cloud"] .queued`)+`,
		state: document.querySelector('tr[data-bridge="cloud"] .state').textContent.includes('down') ? "0" : "1"})`,
		map[string]string{"queued": "bridge/cloud/queued", "state": "connection/edged-status-test/state"})
	if q := sys.get("bridge/cloud/queued"); q != "5" {
		t.Errorf("bridge backlog %s, want the sensor's 5 messages", q)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/topics"), chromedp.WaitVisible(chromedp.ID("filter"))); err != nil {
		t.Fatalf("topics page: %v", err)
	}

	// Disconnect from the clients page.
	err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/clients"),
		chromedp.Click(chromedp.CSS(`tr[data-client="victim"] button.disconnect`)),
		browsertest.Until(`(document.getElementById('flash')||{}).textContent === 'client victim disconnected'`),
	)
	if err != nil {
		t.Fatalf("disconnect from the page: %v", err)
	}
	select {
	case <-victim.c.done:
	case <-time.After(5 * time.Second):
		t.Fatal("victim still connected")
	}
	// Purge the bridge queue, confirmed by typing its name.
	err = chromedp.Do(ctx,
		chromedp.Navigate(base+"/bridges"),
		chromedp.SendKeys(chromedp.CSS(`tr[data-bridge="cloud"] input[name=confirm]`), "cloud"),
		chromedp.Click(chromedp.CSS(`tr[data-bridge="cloud"] form.purge button`)),
		browsertest.Until(`(document.getElementById('flash')||{}).textContent === 'bridge cloud: 5 messages purged'`),
	)
	if err != nil {
		t.Fatalf("purge from the page: %v", err)
	}
	testutil.WaitFor(t, 5*time.Second, func() error {
		if q := sys.get("bridge/cloud/queued"); q != "0" {
			return fmt.Errorf("$SYS bridge queue %s after the purge", q)
		}
		return nil
	})
	for _, action := range []string{"disconnect", "purge"} {
		if n := countLog(ed, "status page action", "action", action, "user", "admin"); n != 1 {
			t.Errorf("%d log lines for the %s action by admin, want 1\n%s", n, action, ed.logText())
		}
	}

	// Refused: no login; a script without the token; another site's page
	// that knows the token, in a browser holding the login.
	if r, err := http.Get(base + "/clients"); err != nil || r.StatusCode != 401 {
		t.Errorf("no login: %v %v", r.StatusCode, err)
	}
	req, _ := http.NewRequest("POST", base+"/api/v1/disconnect", strings.NewReader(url.Values{"client_id": {"s1"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("admin", "s3cret")
	if r, err := http.DefaultClient.Do(req); err != nil || r.StatusCode != 403 {
		t.Errorf("no CSRF token: %v %v", r.StatusCode, err)
	}
	// The token, as the API gives it to a logged-in script.
	req, _ = http.NewRequest("GET", base+"/api/v1/overview", nil)
	req.SetBasicAuth("admin", "s3cret")
	var ov struct {
		Token string `json:"csrf_token"`
	}
	if r, err := http.DefaultClient.Do(req); err != nil || json.NewDecoder(r.Body).Decode(&ov) != nil || ov.Token == "" {
		t.Fatalf("overview: %v", err)
	}
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<form id=f method=post action="%s/api/v1/disconnect"><input name=csrf value="%s"><input name=client_id value=s1><input name=back value=/clients></form><script>document.getElementById('f').submit()</script>`,
			base, ov.Token)
	}))
	defer evil.Close()
	err = chromedp.Do(ctx,
		chromedp.Navigate(evil.URL),
		browsertest.Until(`location.href.startsWith(`+fmt.Sprintf("%q", base)+`) && document.body.textContent.includes('forbidden')`),
	)
	if err != nil {
		dbg, _ := chromedp.Run(context.WithoutCancel(ctx), chromedp.Evaluate[string](`location.href + " | " + document.body.textContent`))
		t.Fatalf("cross-site form: %v; page %s\n%s", err, dbg, ed.logText())
	}
	if n := countLog(ed, "status page action refused", "action", "disconnect", "user", "admin"); n != 2 {
		t.Errorf("%d refused actions logged, want 2", n)
	}
	// The cross-site one was refused for where it came from, not for its
	// token, which was right.
	if n := countLog(ed, "status page action refused", "error", "missing or wrong CSRF token"); n != 1 {
		t.Errorf("%d actions refused for their token, want 1 (the script's)", n)
	}
	s1.send(t, 0, &packet.Pingreq{})
	if _, ok := s1.nextPacket(t, 0).(*packet.Pingresp); !ok {
		t.Error("the sensor was disconnected by a refused action")
	}
}

// countLog counts the log lines with msg and the given attributes.
func countLog(p *edgedProc, msg string, kv ...string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
next:
	for _, r := range p.logs {
		if r["msg"] != msg {
			continue
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if fmt.Sprint(r[kv[i]]) != kv[i+1] {
				continue next
			}
		}
		n++
	}
	return n
}
