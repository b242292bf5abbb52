package status

import (
	"fmt"
	"html"
	"net/http"
	"strings"
	"time"
)

// The pages are written by the Go code below rather than by html/template:
// text/template calls methods by name through reflection, which makes the
// linker keep every exported method of every type in the binary, 1.5 MiB
// on ARM, more than the rest of the status page together (see the README's
// binary sizes). Every value that comes from outside (client ids, user
// names, topics, errors) goes through esc, and every attribute is quoted.

// esc escapes s for HTML text and for a double-quoted attribute value.
func esc(s string) string { return html.EscapeString(s) }

// pageWriter builds one page.
type pageWriter struct {
	strings.Builder
}

// f writes format with args; %s arguments must already be escaped.
func (w *pageWriter) f(format string, args ...any) { fmt.Fprintf(w, format, args...) }

var navPages = []struct{ path, name, title string }{
	{"/", "overview", "Overview"}, {"/clients", "clients", "Clients"}, {"/serial", "serial", "Serial"},
	{"/bridges", "bridges", "Bridges"}, {"/topics", "topics", "Topics"},
}

// pageCtx is what every page needs besides its data.
type pageCtx struct {
	name, user, csrf string
	reload           bool
	ok, err          string
}

func (s *Server) layout(w *pageWriter, c pageCtx, content func(*pageWriter)) {
	w.f(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>edged · %s</title>
<link rel="stylesheet" href="/static/style.css">
<script src="/static/app.js" defer></script>
</head>
<body>
<header>
  <strong class="brand">edged</strong>
  <nav>`, c.name)
	for _, p := range navPages {
		cur := ""
		if p.name == c.name {
			cur = ` aria-current="page"`
		}
		w.f(`<a href="%s"%s>%s</a>`, p.path, cur, p.title)
	}
	w.f("</nav>\n  <span class=\"who\">%s</span>\n</header>\n", esc(c.user))
	if c.ok != "" {
		w.f("<p class=\"flash ok\" id=\"flash\">%s</p>\n", esc(c.ok))
	}
	if c.err != "" {
		w.f("<p class=\"flash err\" id=\"flash\">%s</p>\n", esc(c.err))
	}
	refresh := ` data-refresh="5"`
	if c.name == "topics" {
		refresh = ""
	}
	w.f("<main id=\"main\" data-page=\"%s\"%s>\n", c.name, refresh)
	content(w)
	w.f("</main>\n<footer>edged %s · <a href=\"/metrics\">metrics</a> · <a href=\"/api/v1/overview\">api</a>\n", esc(s.src.Version))
	if c.reload {
		back := "/"
		if c.name != "overview" {
			back += c.name
		}
		w.f(`<form method="post" action="/api/v1/reload" class="inline">%s<button id="reload-auth">Reload auth files</button></form>`,
			hidden(c.csrf, back))
	}
	w.f("\n</footer>\n</body>\n</html>\n")
}

// hidden is the token and the page to come back to, for an action's form.
func hidden(csrf, back string) string {
	return fmt.Sprintf(`<input type="hidden" name="csrf" value="%s"><input type="hidden" name="back" value="%s">`, esc(csrf), esc(back))
}

// page serves a page rendered by render.
func (s *Server) page(name string, render func(*pageWriter, *http.Request, pageCtx)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		c := pageCtx{name: name, user: userOf(r), csrf: s.token, reload: s.src.Reload != nil, ok: q.Get("ok"), err: q.Get("error")}
		var pw pageWriter
		s.layout(&pw, c, func(pw *pageWriter) { render(pw, r, c) })
		s.setCSRFCookie(w)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Write([]byte(pw.String()))
	}
}

func dl(w *pageWriter, rows ...[3]string) {
	w.f("<dl>")
	for _, r := range rows {
		w.f(`<dt>%s</dt><dd id="%s">%s</dd>`, r[0], r[1], esc(r[2]))
	}
	w.f("</dl>")
}

func (s *Server) renderOverview(w *pageWriter, _ *http.Request, _ pageCtx) {
	o := s.overview()
	n := func(v any) string { return fmt.Sprint(v) }
	w.f(`<section class="cards"><div class="card"><h2>Broker</h2>`)
	dl(w, [3]string{"Version", "version", o.Version}, [3]string{"Uptime", "uptime", humanDuration(time.Duration(o.UptimeSeconds) * time.Second)},
		[3]string{"Heap", "heap", humanBytes(float64(o.HeapBytes))})
	w.f(`</div><div class="card"><h2>Clients</h2>`)
	dl(w, [3]string{"Connected", "clients-connected", n(o.ClientsConnected)}, [3]string{"Offline sessions", "clients-offline", n(o.ClientsOffline)},
		[3]string{"Maximum", "clients-maximum", n(o.ClientsMaximum)}, [3]string{"Subscriptions", "subscriptions", n(o.Subscriptions)})
	w.f(`</div><div class="card"><h2>Messages</h2>`)
	dl(w, [3]string{"Received", "messages-received", n(o.MsgsReceived)}, [3]string{"Sent", "messages-sent", n(o.MsgsSent)},
		[3]string{"In / out per s", "message-rates", fmt.Sprintf("%.1f / %.1f", o.MsgsInPerSec, o.MsgsOutPerSec)},
		[3]string{"Queued", "queued", n(o.Queued)}, [3]string{"Retained", "retained", n(o.Retained)}, [3]string{"Dropped", "dropped", n(o.MsgsDropped)})
	w.f(`</div><div class="card"><h2>Store</h2>`)
	rows := [][3]string{{"Size", "store-size", humanBytes(float64(o.StoreBytes))}, {"Fsyncs per s", "fsyncs", fmt.Sprintf("%.1f", o.FsyncsPerSec)},
		{"Written per hour", "written-per-hour", humanBytes(o.WrittenPerHour)}, {"Written", "written", humanBytes(float64(o.StoreWritten))}}
	if o.StoreStopped != "" {
		rows = append(rows, [3]string{"Stopped", "store-stopped", o.StoreStopped})
	}
	dl(w, rows...)
	w.f(`</div></section>
<section class="charts">
  <figure><figcaption>Messages received per minute, last hour</figcaption><div class="chart" data-chart="messages_received"></div></figure>
  <figure><figcaption>Messages sent per minute, last hour</figcaption><div class="chart" data-chart="messages_sent"></div></figure>
  <figure><figcaption>Bytes written per minute (flash wear)</figcaption><div class="chart" data-chart="written_bytes"></div></figure>
</section>
`)
}

func (s *Server) renderClients(w *pageWriter, r *http.Request, c pageCtx) {
	ss := s.sessions(limitOf(r))
	w.f(`<p><span id="sessions-online">%d</span> online of <span id="sessions-total">%d</span> sessions`, ss.Online, ss.Total)
	if len(ss.Sessions) < ss.Total {
		w.f(" (first %d shown)", len(ss.Sessions))
	}
	w.f(`.</p>
<div class="scroll"><table id="sessions">
<thead><tr><th>Client id</th><th>State</th><th>User</th><th>Listener</th><th>Subscriptions</th><th>Inflight</th><th>Queued</th><th>Queued bytes</th><th></th></tr></thead>
<tbody>
`)
	for _, v := range ss.Sessions {
		id := esc(v.ClientID)
		w.f(`<tr data-client="%s"><td class="id">%s<small>%s</small></td><td>`, id, id, esc(v.Remote))
		if v.Online {
			w.f(`<span class="good">online</span>`)
		} else {
			w.f(`<span class="dim">offline %s</span>`, ago(time.Unix(v.OfflineSince, 0), v.OfflineSince == 0))
		}
		if !v.Persistent {
			w.f(" <small>clean</small>")
		}
		user := `<span class="dim">anonymous</span>`
		if v.HasUser {
			user = esc(v.User)
		}
		w.f(`</td><td>%s</td><td>%s</td><td class="subs" title="%s">%d</td><td>%d</td><td class="queued">%d</td><td>%s</td><td class="actions">`,
			user, esc(v.Listener), esc(strings.Join(v.Filters, ", ")), v.Subscriptions, v.Inflight, v.Queued, humanBytes(float64(v.QueuedBytes)))
		idField := fmt.Sprintf(`<input type="hidden" name="client_id" value="%s">`, id)
		if v.Online {
			w.f(`<form method="post" action="/api/v1/disconnect">%s%s<button class="disconnect">Disconnect</button></form>`, hidden(c.csrf, "/clients"), idField)
		}
		w.f(`<form method="post" action="/api/v1/delete-session" data-confirm="Delete the session of %s with its subscriptions and queued messages?">%s%s<button class="danger delete">Delete session</button></form></td></tr>
`, id, hidden(c.csrf, "/clients"), idField)
	}
	if len(ss.Sessions) == 0 {
		w.f(`<tr><td colspan="9" class="dim">No sessions.</td></tr>`)
	}
	w.f("</tbody></table></div>\n")
}

func (s *Server) renderSerial(w *pageWriter, _ *http.Request, _ pageCtx) {
	w.f(`<div class="scroll"><table id="serial">
<thead><tr><th>Port</th><th>State</th><th>Opens</th><th>Frames in / out</th><th>CRC errors</th><th>Dropped</th><th>Resets</th><th>Last frame</th></tr></thead>
<tbody>
`)
	ports := s.serial()
	for _, p := range ports {
		state := `<span class="bad">closed</span>`
		if p.Open {
			state = `<span class="good">open</span>`
		}
		w.f(`<tr data-port="%s"><td class="id">%s<small>%s</small></td><td class="state">%s</td><td class="opens">%d</td>`+
			`<td><span class="frames-in">%d</span> / <span class="frames-out">%d</span></td><td class="crc">%d</td><td class="dropped">%d</td>`+
			`<td class="resets">%d</td><td>%s</td></tr>
`, esc(p.Name), esc(p.Name), esc(p.Device), state, p.PortOpens, p.FramesIn, p.FramesOut, p.CRCErrors, p.Dropped, p.Resets,
			ago(time.UnixMilli(p.LastFrame), p.LastFrame == 0))
	}
	if len(ports) == 0 {
		w.f(`<tr><td colspan="8" class="dim">No serial ports configured.</td></tr>`)
	}
	w.f("</tbody></table></div>\n")
}

func (s *Server) renderBridges(w *pageWriter, _ *http.Request, c pageCtx) {
	w.f(`<div class="scroll"><table id="bridges">
<thead><tr><th>Bridge</th><th>State</th><th>Backlog</th><th>Oldest</th><th>Sent / s</th><th>Sent / h</th><th>Drain / s</th><th>Time to empty</th><th>Dropped</th><th></th></tr></thead>
<tbody>
`)
	brs := s.bridges()
	for _, b := range brs {
		name := esc(b.Name)
		state := `<span class="bad">down</span>`
		if b.Connected {
			state = `<span class="good">connected</span>`
		}
		if b.Since != 0 {
			state += "<small>" + ago(time.Unix(b.Since, 0), false) + "</small>"
		}
		proto := ""
		if b.Protocol != "" {
			proto = " · MQTT " + esc(b.Protocol)
		}
		eta := humanDuration(time.Duration(b.TimeToEmpty) * time.Second)
		switch {
		case b.TimeToEmpty < 0:
			eta = "not draining"
		case b.TimeToEmpty == 0:
			eta = "empty"
		}
		w.f(`<tr data-bridge="%s"><td class="id">%s<small>%s · %s%s</small></td><td class="state">%s</td>`+
			`<td><span class="queued">%d</span> msgs<small>%s</small></td><td>%s</td><td>%.1f</td><td>%s</td><td>%.1f</td><td>%s</td>`+
			`<td class="dropped">limit %d<br>max_age %d<br>purged %d<br>offline_qos0 %d<br>expired %d<br>oversize %d<br>refused %d</td><td class="actions">`+
			`<form method="post" action="/api/v1/purge" class="purge">%s<input type="hidden" name="bridge" value="%s">`+
			`<label>Type <code>%s</code> to purge its queue<input name="confirm" autocomplete="off" required></label>`+
			`<button class="danger">Purge queue</button></form></td></tr>
`, name, name, esc(b.Address), esc(b.ClientID), proto, state, b.Queued, humanBytes(float64(b.QueuedBytes)),
			humanDuration(time.Duration(b.OldestAge)*time.Second), b.SentPerSec, humanBytes(float64(b.SentBytesHour)), b.DrainPerSec, eta,
			b.Dropped["limit"], b.Dropped["max_age"], b.Dropped["purged"], b.Dropped["offline_qos0"],
			b.Dropped["expired"], b.Dropped["oversize"], b.Dropped["refused"], hidden(c.csrf, "/bridges"), name, name)
	}
	if len(brs) == 0 {
		w.f(`<tr><td colspan="10" class="dim">No bridges configured.</td></tr>`)
	}
	w.f("</tbody></table></div>\n")
}

func (s *Server) renderTopics(w *pageWriter, r *http.Request, _ pageCtx) {
	w.f(`<form id="watch-form" class="watch">
  <label>Topic filter <input id="filter" name="filter" value="%s" placeholder="sensors/#" autocomplete="off" required></label>
  <button id="watch">Watch</button> <button type="button" id="stop" disabled>Stop</button>
  <span id="watch-state" class="dim"></span>
</form>
<p class="dim">Live messages only (no retained ones), newest first; the page keeps the last 200. Payloads are cut at 1 KiB.</p>
<div class="scroll"><table id="messages">
<thead><tr><th>Time</th><th>Topic</th><th>QoS</th><th>Payload</th></tr></thead>
<tbody></tbody></table></div>
`, esc(r.URL.Query().Get("filter")))
}

// ago is how long ago t was; never when unset.
func ago(t time.Time, unset bool) string {
	if unset {
		return "never"
	}
	return humanDuration(time.Since(t).Round(time.Second)) + " ago"
}

func humanBytes(n float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for n >= 1024 && i < len(units)-1 {
		n /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%.0f B", n)
	}
	return fmt.Sprintf("%.1f %s", n, units[i])
}

func humanDuration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	s := int64(d / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	case s < 86400:
		return fmt.Sprintf("%dh%02dm", s/3600, s%3600/60)
	}
	return fmt.Sprintf("%dd%02dh", s/86400, s%86400/3600)
}
