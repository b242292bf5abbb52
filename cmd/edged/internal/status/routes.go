package status

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/edged/edged/broker"
)

func (s *Server) routes() {
	m := http.NewServeMux()
	m.Handle("GET /static/", s.static())
	m.HandleFunc("GET /{$}", s.page("overview", s.renderOverview))
	m.HandleFunc("GET /clients", s.page("clients", s.renderClients))
	m.HandleFunc("GET /serial", s.page("serial", s.renderSerial))
	m.HandleFunc("GET /bridges", s.page("bridges", s.renderBridges))
	m.HandleFunc("GET /topics", s.page("topics", s.renderTopics))

	m.HandleFunc("GET /api/v1/overview", s.api(func(*http.Request) any { return s.overview() }))
	m.HandleFunc("GET /api/v1/history", s.api(func(*http.Request) any { return s.history() }))
	m.HandleFunc("GET /api/v1/sessions", s.api(func(r *http.Request) any { return s.sessions(limitOf(r)) }))
	m.HandleFunc("GET /api/v1/serial", s.api(func(*http.Request) any { return s.serial() }))
	m.HandleFunc("GET /api/v1/bridges", s.api(func(*http.Request) any { return s.bridges() }))
	m.HandleFunc("GET /api/v1/watch", s.watch)

	m.HandleFunc("POST /api/v1/disconnect", s.action("disconnect", s.doDisconnect))
	m.HandleFunc("POST /api/v1/delete-session", s.action("delete-session", s.doDeleteSession))
	m.HandleFunc("POST /api/v1/purge", s.action("purge", s.doPurge))
	m.HandleFunc("POST /api/v1/reload", s.action("reload", s.doReload))

	m.HandleFunc("GET /metrics", s.metrics)
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	m.HandleFunc("GET /readyz", s.readyz)
	s.mux = m
}

// maxSessionsShown bounds the sessions a page or call lists.
const maxSessionsShown = 1000

func limitOf(r *http.Request) int {
	n, err := strconv.Atoi(r.URL.Query().Get("limit"))
	if err != nil || n <= 0 || n > maxSessionsShown {
		return maxSessionsShown
	}
	return n
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func (s *Server) api(view func(*http.Request) any) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, view(r)) }
}

// readyz reports 200 when the store takes commits and every listener is
// accepting; bridge states are listed but do not make edged unready (an
// uplink down is what the store-and-forward queue is for).
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	type state struct {
		Ready     bool            `json:"ready"`
		Store     string          `json:"store"`
		Listeners string          `json:"listeners"`
		Bridges   map[string]bool `json:"bridges"`
	}
	st := state{Ready: true, Store: "ok", Bridges: map[string]bool{}}
	if s.src.Store != nil {
		if err := s.src.Store.Err(); err != nil {
			st.Ready, st.Store = false, err.Error()
		}
	}
	n := s.src.Broker.Listening()
	st.Listeners = fmt.Sprintf("%d of %d up", n, s.src.Listeners)
	if n < s.src.Listeners {
		st.Ready = false
	}
	for _, br := range s.src.Bridges {
		st.Bridges[br.Name()] = br.Connected()
	}
	code := http.StatusOK
	if !st.Ready {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, st)
}

// action wraps an operator action: the CSRF check, the log line with the
// user, and the answer (JSON for scripts, a redirect back for a form).
func (s *Server) action(name string, do func(r *http.Request) (string, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
		user := userOf(r)
		if err := s.checkCSRF(r); err != nil {
			s.log.Warn("status page action refused", "action", name, "user", user, "remote", r.RemoteAddr, "error", err)
			http.Error(w, "forbidden: "+err.Error(), http.StatusForbidden)
			return
		}
		msg, err := do(r)
		if err != nil {
			s.log.Warn("status page action failed", "action", name, "user", user, "remote", r.RemoteAddr, "error", err)
		} else {
			s.log.Info("status page action", "action", name, "user", user, "remote", r.RemoteAddr, "result", msg)
		}
		if r.PostFormValue("back") != "" && r.Header.Get("X-CSRF-Token") == "" {
			// A plain form: back to the page, with the outcome.
			q := "ok=" + urlQuery(msg)
			if err != nil {
				q = "error=" + urlQuery(err.Error())
			}
			http.Redirect(w, r, safeBack(r.PostFormValue("back"))+"?"+q, http.StatusSeeOther)
			return
		}
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"result": msg})
	}
}

// safeBack keeps a redirect on this site's pages.
func safeBack(p string) string {
	switch p {
	case "/", "/clients", "/serial", "/bridges", "/topics":
		return p
	}
	return "/"
}

func (s *Server) doDisconnect(r *http.Request) (string, error) {
	id := r.PostFormValue("client_id")
	if err := s.src.Broker.Disconnect(id); err != nil {
		return "", fmt.Errorf("disconnecting %q: %w", id, err)
	}
	return "client " + id + " disconnected", nil
}

func (s *Server) doDeleteSession(r *http.Request) (string, error) {
	id := r.PostFormValue("client_id")
	if err := s.src.Broker.DeleteSession(id); err != nil {
		return "", fmt.Errorf("deleting session %q: %w", id, err)
	}
	return "session " + id + " deleted", nil
}

// doPurge needs confirm to repeat the bridge's name: a purge loses data.
func (s *Server) doPurge(r *http.Request) (string, error) {
	name := r.PostFormValue("bridge")
	if r.PostFormValue("confirm") != name {
		return "", errors.New("purge not confirmed: confirm must repeat the bridge name")
	}
	for _, br := range s.src.Bridges {
		if br.Name() == name {
			ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
			defer cancel()
			n, err := br.Purge(ctx)
			if err != nil {
				return "", fmt.Errorf("purging bridge %q after %d messages: %w", name, n, err)
			}
			return fmt.Sprintf("bridge %s: %d messages purged", name, n), nil
		}
	}
	return "", fmt.Errorf("no bridge %q", name)
}

func (s *Server) doReload(*http.Request) (string, error) {
	if s.src.Reload == nil {
		return "", errors.New("no auth files configured")
	}
	if err := s.src.Reload(); err != nil {
		return "", fmt.Errorf("reloading auth files (the previous rules stay): %w", err)
	}
	return "auth files reloaded", nil
}

// watchOf is the identity the ACL checks for a topic browser: the logged-in
// user, as an MQTT client with that name; nil (no check) on an open page.
func watchOf(r *http.Request) *broker.ClientInfo {
	u := userOf(r)
	if u == "" {
		return nil
	}
	return &broker.ClientInfo{ClientID: "edged-http", Username: u, HasUsername: true, Listener: "http"}
}
