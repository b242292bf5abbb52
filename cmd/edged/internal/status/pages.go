package status

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"
)

var pageNames = []string{"overview", "clients", "serial", "bridges", "topics"}

// pageData is what every page template gets.
type pageData struct {
	Page    string
	Version string
	User    string
	CSRF    string
	Reload  bool // the reload action is offered
	OK      string
	Error   string
	Data    any
}

var funcs = template.FuncMap{
	"bytes": func(v any) string {
		var n float64
		switch x := v.(type) {
		case int64:
			n = float64(x)
		case uint64:
			n = float64(x)
		case float64:
			n = x
		case int:
			n = float64(x)
		}
		return humanBytes(n)
	},
	"secs": func(v int64) string { return humanDuration(time.Duration(v) * time.Second) },
	"ago": func(unix int64) string {
		if unix == 0 {
			return "never"
		}
		return humanDuration(time.Since(time.Unix(unix, 0)).Round(time.Second)) + " ago"
	},
	"agoms": func(ms int64) string {
		if ms == 0 {
			return "never"
		}
		return humanDuration(time.Since(time.UnixMilli(ms)).Round(time.Second)) + " ago"
	},
	"rate": func(v float64) string { return fmt.Sprintf("%.1f", v) },
	"eta": func(v float64) string {
		switch {
		case v < 0:
			return "not draining"
		case v == 0:
			return "empty"
		}
		return humanDuration(time.Duration(v) * time.Second)
	},
	"join": strings.Join,
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

func (s *Server) parsePages() error {
	s.pages = map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(webFS, "web/layout.html", "web/"+name+".html")
		if err != nil {
			return fmt.Errorf("status: parsing page %s: %w", name, err)
		}
		s.pages[name] = t
	}
	return nil
}

// page renders a page with view's data. The page is rendered into a
// buffer first, so a template error is a clean 500.
func (s *Server) page(name string, view func(*http.Request) any) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		d := pageData{Page: name, Version: s.src.Version, User: userOf(r), CSRF: s.token,
			Reload: s.src.Reload != nil, OK: q.Get("ok"), Error: q.Get("error"), Data: view(r)}
		var buf bytes.Buffer
		if err := s.pages[name].Execute(&buf, d); err != nil {
			s.log.Error("rendering status page", "page", name, "error", err)
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		s.setCSRFCookie(w)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Write(buf.Bytes())
	}
}
