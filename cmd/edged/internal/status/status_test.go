package status

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/edged/edged/broker"
	"github.com/edged/edged/broker/auth"
	"github.com/edged/edged/broker/brokertest"
	"github.com/edged/edged/broker/packet"
	"github.com/edged/edged/persist"
)

func loopback(addr string) bool {
	host, _, _ := net.SplitHostPort(addr)
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// env is a real broker with a bbolt store, password and ACL files, and
// the status page serving on 127.0.0.1:0.
type env struct {
	b    *broker.Server
	db   *persist.DB
	mqtt string
	url  string
	srv  *Server
	logs *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func writePasswords(t *testing.T, dir string, users ...string) string {
	t.Helper()
	path := filepath.Join(dir, "passwd")
	for _, u := range users {
		h, err := auth.HashPassword([]byte(u + "-pw"))
		if err != nil {
			t.Fatal(err)
		}
		if err := auth.WritePasswordEntry(path, u, h); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

func startEnv(t *testing.T, cfg Config) *env {
	t.Helper()
	dir := t.TempDir()
	pw, err := auth.LoadPasswords(writePasswords(t, dir, "alice", "bob"))
	if err != nil {
		t.Fatal(err)
	}
	aclPath := filepath.Join(dir, "acl")
	os.WriteFile(aclPath, []byte("topic readwrite #\nuser alice\ntopic read sensors/#\n"), 0o600)
	acl, err := auth.LoadACL(aclPath)
	if err != nil {
		t.Fatal(err)
	}
	db, err := persist.Open(persist.Options{Path: filepath.Join(dir, "edged.db")})
	if err != nil {
		t.Fatal(err)
	}
	b, addr := brokerStart(t, broker.Config{Store: db, ACL: acl, SysInterval: 100 * time.Millisecond, Version: "test"})
	t.Cleanup(func() { db.Close() })
	logs := &syncBuffer{}
	if cfg.Address == "" {
		cfg.Address = "127.0.0.1:0"
	}
	srv, err := New(cfg, Sources{Broker: b, Store: db, Passwords: pw, Reload: pw.Reload, Listeners: 1,
		Loopback: loopback, Version: "test", Logger: slog.New(slog.NewTextHandler(logs, nil)), SampleEvery: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := srv.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return &env{b: b, db: db, mqtt: addr, url: "http://" + ln.Addr().String(), srv: srv, logs: logs}
}

func brokerStart(t *testing.T, cfg broker.Config) (*broker.Server, string) {
	return brokertest.Start(t, cfg, broker.WithName("lan"))
}

func (e *env) get(t *testing.T, path, user string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("GET", e.url+path, nil)
	if user != "" {
		req.SetBasicAuth(user, user+"-pw")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// mqttClient connects a raw MQTT client that stays connected.
func mqttClient(t *testing.T, addr, id string) net.Conn {
	t.Helper()
	return mqttClientSession(t, addr, id, true)
}

func mqttClientSession(t *testing.T, addr, id string, clean bool) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Write(packet.Encode(&packet.Connect{ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: id, CleanSession: clean, KeepAlive: 60}, packet.V311)); err != nil {
		t.Fatal(err)
	}
	p, err := packet.Read(bufio.NewReader(c), 1<<20, packet.V311)
	if ca, ok := p.(*packet.Connack); err != nil || !ok || ca.Reason != packet.Success {
		t.Fatalf("CONNACK: %v %v", p, err)
	}
	return c
}

func TestConfigValidate(t *testing.T) {
	has := func(u string) bool { return u == "alice" }
	for _, tc := range []struct {
		cfg     Config
		hasUser func(string) bool
		want    string // "" = valid
	}{
		{Config{}, nil, ""},
		{Config{Address: "127.0.0.1:8080"}, nil, ""},
		{Config{Address: "[::1]:8080"}, nil, ""},
		{Config{Address: "0.0.0.0:8080"}, has, "users: 0.0.0.0:8080 is not a loopback address"},
		{Config{Address: "192.168.1.5:80", Users: []string{"alice"}}, has, ""},
		{Config{Address: "192.168.1.5:80", Users: []string{"alice"}}, nil, "users[0]: user \"alice\" needs auth.password_file"},
		{Config{Address: "127.0.0.1:80", Users: []string{"mallory"}}, has, "users[0]: user \"mallory\" is not in auth.password_file"},
		{Config{Address: "8080"}, nil, "address: want host:port"},
		{Config{Address: "127.0.0.1:8443", TLS: &TLSConfig{CertFile: "c.pem"}}, nil, "tls.key_file: is required"},
	} {
		err := tc.cfg.Validate(loopback, tc.hasUser)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: %v", tc.cfg, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%+v: got %v, want %q", tc.cfg, err, tc.want)
		}
		var fe *broker.FieldError
		if err != nil && !errors.As(err, &fe) {
			t.Errorf("%+v: %v is not a FieldError", tc.cfg, err)
		}
	}
	// New refuses what Validate refuses: a non-loopback address without
	// users does not start.
	if _, err := New(Config{Address: "0.0.0.0:0"}, Sources{Loopback: loopback}); err == nil {
		t.Error("New accepted a non-loopback address without users")
	}
}

// With users, every page and API call needs a login of one of them;
// /healthz and /readyz stay open.
func TestLogin(t *testing.T) {
	e := startEnv(t, Config{Users: []string{"alice"}})
	for _, p := range []string{"/", "/clients", "/serial", "/bridges", "/topics", "/api/v1/overview", "/metrics", "/static/app.js"} {
		if r := e.get(t, p, ""); r.StatusCode != 401 || !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Basic ") {
			t.Errorf("%s without login: %d %q", p, r.StatusCode, r.Header.Get("WWW-Authenticate"))
		}
		if r := e.get(t, p, "bob"); r.StatusCode != 401 {
			t.Errorf("%s as bob (in the password file, not in users): %d", p, r.StatusCode)
		}
		if r := e.get(t, p, "alice"); r.StatusCode != 200 {
			t.Errorf("%s as alice: %d", p, r.StatusCode)
		}
	}
	req, _ := http.NewRequest("GET", e.url+"/", nil)
	req.SetBasicAuth("alice", "wrong")
	if r, err := http.DefaultClient.Do(req); err != nil || r.StatusCode != 401 {
		t.Errorf("wrong password: %v %v", r.StatusCode, err)
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		if r := e.get(t, p, ""); r.StatusCode != 200 {
			t.Errorf("%s: %d", p, r.StatusCode)
		}
	}
	if !strings.Contains(e.logs.String(), "status page login refused") {
		t.Error("a refused login is not logged")
	}
}

func (e *env) post(t *testing.T, path string, form url.Values, hdr map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", e.url+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("alice", "alice-pw")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// An action needs the process token; a browser's request from another
// origin or without the SameSite cookie is refused; a refused action does
// nothing; a done one is logged with the user.
func TestActionsCSRF(t *testing.T) {
	e := startEnv(t, Config{Users: []string{"alice"}})
	c := mqttClient(t, e.mqtt, "victim")
	tok := e.srv.token
	form := url.Values{"client_id": {"victim"}}
	withTok := url.Values{"client_id": {"victim"}, "csrf": {tok}}
	host := strings.TrimPrefix(e.url, "http://")
	cookie := csrfCookie + "=" + tok
	for _, tc := range []struct {
		name string
		form url.Values
		hdr  map[string]string
	}{
		{"no token", form, nil},
		{"wrong token", url.Values{"client_id": {"victim"}, "csrf": {strings.Repeat("0", len(tok))}}, nil},
		{"other origin", withTok, map[string]string{"Origin": "http://evil.example", "Cookie": cookie}},
		{"cross-site fetch", withTok, map[string]string{"Sec-Fetch-Site": "cross-site", "Cookie": cookie}},
		{"browser without cookie", withTok, map[string]string{"Origin": "http://" + host}},
	} {
		if code, body := e.post(t, "/api/v1/disconnect", tc.form, tc.hdr); code != 403 {
			t.Errorf("%s: %d %s, want 403", tc.name, code, body)
		}
	}
	if e.b.Stats().ClientsConnected != 1 {
		t.Fatal("a refused action disconnected the client")
	}
	// A browser form from the page itself.
	code, body := e.post(t, "/api/v1/disconnect", withTok, map[string]string{"Origin": "http://" + host, "Cookie": cookie,
		"Sec-Fetch-Site": "same-origin"})
	if code != 200 || !strings.Contains(body, "disconnected") {
		t.Fatalf("disconnect: %d %s", code, body)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(c); err != nil {
		t.Fatalf("client not closed: %v", err)
	}
	if !strings.Contains(e.logs.String(), "action=disconnect user=alice") {
		t.Errorf("action not logged with the user:\n%s", e.logs.String())
	}
	// A script with the header token; unknown ids are errors.
	code, body = e.post(t, "/api/v1/delete-session", form, map[string]string{"X-CSRF-Token": tok})
	if code != 400 || !strings.Contains(body, "no such session") {
		t.Errorf("delete of an unknown session: %d %s", code, body)
	}
	if code, body = e.post(t, "/api/v1/reload", nil, map[string]string{"X-CSRF-Token": tok}); code != 200 {
		t.Errorf("reload: %d %s", code, body)
	}
	if code, body = e.post(t, "/api/v1/purge", url.Values{"bridge": {"x"}, "confirm": {"y"}}, map[string]string{"X-CSRF-Token": tok}); code != 400 ||
		!strings.Contains(body, "not confirmed") {
		t.Errorf("unconfirmed purge: %d %s", code, body)
	}
	// A GET changes nothing.
	if r := e.get(t, "/api/v1/disconnect?client_id=victim&csrf="+tok, "alice"); r.StatusCode != 405 {
		t.Errorf("GET of an action: %d", r.StatusCode)
	}
}

// /metrics parses with Prometheus' own parser and agrees with the broker.
func TestMetricsParse(t *testing.T) {
	e := startEnv(t, Config{})
	mqttClient(t, e.mqtt, "m1")
	mqttClient(t, e.mqtt, "m2")
	r := e.get(t, "/metrics", "")
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("Content-Type %q", ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r.Body)
	if err != nil {
		t.Fatalf("Prometheus cannot parse /metrics: %v", err)
	}
	val := func(name string) float64 {
		f := fams[name]
		if f == nil || len(f.Metric) == 0 {
			t.Errorf("no %s", name)
			return -1
		}
		m := f.Metric[0]
		if m.Gauge != nil {
			return m.Gauge.GetValue()
		}
		if m.Counter != nil {
			return m.Counter.GetValue()
		}
		return m.Untyped.GetValue()
	}
	if v := val("edged_clients_connected"); v != 2 {
		t.Errorf("edged_clients_connected = %v, want 2", v)
	}
	if v := val("edged_connections_total"); v != 2 {
		t.Errorf("edged_connections_total = %v, want 2", v)
	}
	if v := val("edged_store_file_bytes"); v <= 0 {
		t.Errorf("edged_store_file_bytes = %v", v)
	}
	for _, name := range []string{"edged_build_info", "edged_messages_received_total", "edged_store_fsyncs_total",
		"edged_store_written_bytes_total", "edged_store_up", "process_resident_memory_bytes", "go_goroutines"} {
		if fams[name] == nil {
			t.Errorf("no %s", name)
		}
	}
	if fams["edged_messages_received_total"].GetType().String() != "COUNTER" {
		t.Errorf("edged_messages_received_total is a %v", fams["edged_messages_received_total"].GetType())
	}
}

// /readyz fails while a listener is missing, and lists bridges.
func TestReadyz(t *testing.T) {
	e := startEnv(t, Config{})
	e.srv.src.Listeners = 2
	r := e.get(t, "/readyz", "")
	var st struct {
		Ready     bool
		Listeners string
	}
	json.NewDecoder(r.Body).Decode(&st)
	if r.StatusCode != 503 || st.Ready || st.Listeners != "1 of 2 up" {
		t.Errorf("readyz with a listener missing: %d %+v", r.StatusCode, st)
	}
	if r := e.get(t, "/healthz", ""); r.StatusCode != 200 {
		t.Errorf("healthz: %d", r.StatusCode)
	}
}

// The topic browser's stream carries live messages of its filter as the
// ACL lets the logged-in user read; a denied filter is refused.
func TestWatchStream(t *testing.T) {
	e := startEnv(t, Config{Users: []string{"alice"}})
	if r := e.get(t, "/api/v1/watch?filter=secret/%23", "alice"); r.StatusCode != 403 {
		t.Errorf("denied filter: %d", r.StatusCode)
	}
	if r := e.get(t, "/api/v1/watch?filter=a/%23/b", "alice"); r.StatusCode != 400 {
		t.Errorf("invalid filter: %d", r.StatusCode)
	}
	r := e.get(t, "/api/v1/watch?filter=%23", "alice")
	if r.StatusCode != 200 || r.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("watch: %d %s", r.StatusCode, r.Header.Get("Content-Type"))
	}
	sc := bufio.NewScanner(r.Body)
	if !sc.Scan() || sc.Text() != "event: open" {
		t.Fatalf("first line %q", sc.Text())
	}
	pub := mqttClient(t, e.mqtt, "pub")
	big := strings.Repeat("x", 5000)
	for _, m := range [][2]string{{"other/t", "hidden"}, {"sensors/t", big}, {"sensors/bin", "\xff\x00"}} {
		pub.Write(packet.Encode(&packet.Publish{Topic: m[0], Payload: []byte(m[1])}, packet.V311))
	}
	var got []Watched
	deadline := time.AfterFunc(5*time.Second, func() { r.Body.Close() })
	defer deadline.Stop()
	for len(got) < 2 && sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok && strings.HasPrefix(d, "{") {
			var w Watched
			if err := json.Unmarshal([]byte(d), &w); err != nil {
				t.Fatal(err)
			}
			got = append(got, w)
		}
	}
	if len(got) != 2 || got[0].Topic != "sensors/t" || !got[0].Truncated || got[0].Size != 5000 || len(got[0].Payload) != maxShownPayload ||
		got[1].Topic != "sensors/bin" || !got[1].Binary || got[1].Payload != "ff00" {
		t.Errorf("got %+v", got)
	}
}

// The history ring is bounded and the queue of a stream drops, counted,
// what a slow browser cannot take.
func TestBounds(t *testing.T) {
	var h history
	t0 := time.Unix(1000, 0)
	for i := range 500 {
		h.add(sample{t: t0.Add(time.Duration(i) * time.Minute), msgsIn: uint64(i)})
	}
	all := h.all()
	if len(all) != historyLen+1 || all[0].msgsIn != 500-historyLen-1 || all[len(all)-1].msgsIn != 499 {
		t.Errorf("history holds %d samples from %d to %d", len(all), all[0].msgsIn, all[len(all)-1].msgsIn)
	}
	q := &watchQueue{wake: make(chan struct{}, 1)}
	for range watchBuffer + 10 {
		q.push(broker.WatchedMessage{Topic: "t", Payload: []byte("p")})
	}
	items, dropped := q.take()
	if len(items) != watchBuffer || dropped != 10 {
		t.Errorf("queue kept %d, dropped %d", len(items), dropped)
	}
	long := broker.WatchedMessage{Topic: strings.Repeat("t", 5000), Payload: bytes.Repeat([]byte("p"), 100000)}
	for range 300 {
		q.push(long)
	}
	items, _ = q.take()
	n := 0
	for _, it := range items {
		n += len(it.Topic) + len(it.Payload)
	}
	if n > watchBytes || len(items) == 0 || len(items) == 300 {
		t.Errorf("queue held %d messages, %d bytes", len(items), n)
	}
}

// Values from clients are escaped on the pages: a client id, a user name
// or a topic filter cannot inject markup.
func TestPagesEscape(t *testing.T) {
	e := startEnv(t, Config{})
	evil := `"><script>alert(1)</script><x y='`
	c := mqttClientSession(t, e.mqtt, evil, false)
	c.Write(packet.Encode(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "a/<b>/#"}}}, packet.V311))
	time.Sleep(100 * time.Millisecond)
	for _, p := range []string{"/clients", "/topics?filter=" + url.QueryEscape(evil), "/?ok=" + url.QueryEscape(evil)} {
		r := e.get(t, p, "")
		b, _ := io.ReadAll(r.Body)
		page := string(b)
		if strings.Contains(page, "<script>") || strings.Contains(page, "<b>") || strings.Contains(page, "<x y=") {
			t.Errorf("%s renders client input as markup:\n%s", p, page)
		}
		if !strings.Contains(page, "&lt;script&gt;") {
			t.Errorf("%s does not show the escaped value", p)
		}
	}
}
