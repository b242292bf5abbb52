package status

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/edged/edged/bridge"
	"github.com/edged/edged/broker"
	"github.com/edged/edged/broker/auth"
	"github.com/edged/edged/persist"
	"github.com/edged/edged/serialio"
)

//go:embed web/static
var webFS embed.FS

// Sources is what the status page shows and acts on.
type Sources struct {
	Broker *broker.Server
	Store  *persist.DB
	Serial []SerialPort
	// Bridges must not change after New.
	Bridges []*bridge.Bridge
	// Passwords checks logins; nil when there is no password file.
	Passwords *auth.Passwords
	// Reload re-reads the auth files (as SIGHUP does); nil hides the action.
	Reload func() error
	// Listeners is how many listeners (network and serial) the broker
	// serves when all are up: /readyz checks it.
	Listeners int
	// Loopback tells loopback addresses (no login needed without users).
	Loopback func(addr string) bool
	Version  string
	Logger   *slog.Logger
	// SampleEvery is the interval of the history's samples. Default one
	// minute (tests shorten it).
	SampleEvery time.Duration
}

// SerialPort is one configured serial port.
type SerialPort struct {
	Name     string
	Device   string
	Listener *serialio.Listener
}

// Server is the status page's HTTP handler and its history.
type Server struct {
	cfg   Config
	src   Sources
	log   *slog.Logger
	start time.Time
	auth  bool   // every page needs a login
	token string // the per-process CSRF token
	mux   *http.ServeMux
	hist  history
	tls   *tls.Config

	loginMu sync.Mutex
	logins  map[string]login // recent good logins, by user; at most len(cfg.Users)

	watchMu sync.Mutex
	watches int // open topic browser streams
}

type login struct {
	sum [32]byte // SHA-256 of the process token and the password
	at  time.Time
}

// loginCache is how long a checked password is not checked again: the
// page refreshes every few seconds and PBKDF2 is slow on a small CPU.
const loginCache = time.Minute

// New checks cfg (as Config.Validate) and prepares the handler.
func New(cfg Config, src Sources) (*Server, error) {
	if src.Loopback == nil {
		return nil, errors.New("status: Sources.Loopback is required")
	}
	var hasUser func(string) bool
	if src.Passwords != nil {
		hasUser = src.Passwords.Has
	}
	if err := cfg.Validate(src.Loopback, hasUser); err != nil {
		return nil, err
	}
	if src.Logger == nil {
		src.Logger = slog.New(slog.DiscardHandler)
	}
	if src.SampleEvery <= 0 {
		src.SampleEvery = time.Minute
	}
	var tok [32]byte
	rand.Read(tok[:])
	s := &Server{
		cfg:    cfg,
		src:    src,
		log:    src.Logger.With("component", "http"),
		start:  time.Now(),
		auth:   cfg.needsAuth(src.Loopback),
		token:  hex.EncodeToString(tok[:]),
		logins: map[string]login{},
	}
	if cfg.TLS != nil {
		cert, err := tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("http: loading certificate: %w", err)
		}
		s.tls = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	s.routes()
	s.hist.add(s.sample(time.Now()))
	return s, nil
}

// Listen opens the configured address (with TLS if configured).
func (s *Server) Listen() (net.Listener, error) {
	ln, err := net.Listen("tcp", s.cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("http: %w", err)
	}
	if s.tls != nil {
		ln = tls.NewListener(ln, s.tls)
	}
	return ln, nil
}

// Serve serves ln and samples the history until ctx is done.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	scheme := "http"
	if s.tls != nil {
		scheme = "https"
	}
	s.log.Info("status page", "address", ln.Addr().String(), "url", scheme+"://"+ln.Addr().String()+"/", "login", s.auth)
	if s.auth && s.tls == nil && !s.src.Loopback(s.cfg.Address) {
		s.log.Warn("status page logins travel in clear text; set http.tls", "address", s.cfg.Address)
	}
	hs := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    16 << 10,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		t := time.NewTicker(s.src.SampleEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				sd, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				hs.Shutdown(sd)
				cancel()
				return
			case <-done:
				return
			case now := <-t.C:
				s.hist.add(s.sample(now))
			}
		}
	}()
	if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("http: %w", err)
	}
	return nil
}

// ServeHTTP implements http.Handler: the login check, then the routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'")
	if r.URL.Path != "/healthz" && r.URL.Path != "/readyz" {
		user, ok := s.login(r)
		if !ok {
			h.Set("WWW-Authenticate", `Basic realm="edged", charset="UTF-8"`)
			http.Error(w, "login required", http.StatusUnauthorized)
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), userKey{}, user))
	}
	s.mux.ServeHTTP(w, r)
}

type userKey struct{}

// userOf returns the logged-in user of r; "" on an open page.
func userOf(r *http.Request) string {
	u, _ := r.Context().Value(userKey{}).(string)
	return u
}

// login checks r's basic auth when a login is needed.
func (s *Server) login(r *http.Request) (user string, ok bool) {
	if !s.auth {
		return "", true
	}
	user, pass, ok := r.BasicAuth()
	if !ok || s.src.Passwords == nil {
		return "", false
	}
	allowed := false
	for _, u := range s.cfg.Users {
		allowed = allowed || u == user
	}
	if !allowed {
		return "", false
	}
	sum := sha256.Sum256([]byte(s.token + "\x00" + pass))
	now := time.Now()
	s.loginMu.Lock()
	l, cached := s.logins[user]
	s.loginMu.Unlock()
	if cached && now.Sub(l.at) < loginCache && subtle.ConstantTimeCompare(l.sum[:], sum[:]) == 1 {
		return user, true
	}
	ci := &broker.ClientInfo{Username: user, HasUsername: true, Listener: "http"}
	if s.src.Passwords.Authenticate(ci, []byte(pass)) != 0 {
		s.log.Warn("status page login refused", "user", user, "remote", r.RemoteAddr)
		return "", false
	}
	s.loginMu.Lock()
	s.logins[user] = login{sum: sum, at: now}
	s.loginMu.Unlock()
	return user, true
}

// checkCSRF refuses a state-changing request that does not carry the
// process token, or that a browser says comes from another site.
func (s *Server) checkCSRF(r *http.Request) error {
	tok := r.Header.Get("X-CSRF-Token")
	if tok == "" {
		tok = r.PostFormValue("csrf")
	}
	if subtle.ConstantTimeCompare([]byte(tok), []byte(s.token)) != 1 {
		return errors.New("missing or wrong CSRF token")
	}
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
	default:
		return errors.New("cross-site request")
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			return fmt.Errorf("origin %q is not this page", o)
		}
		// A browser's request must also carry the SameSite=Strict cookie,
		// which another site's page cannot make it send.
		if c, err := r.Cookie(csrfCookie); err != nil || subtle.ConstantTimeCompare([]byte(c.Value), []byte(s.token)) != 1 {
			return errors.New("missing CSRF cookie")
		}
	}
	return nil
}

const csrfCookie = "edged_csrf"

func (s *Server) setCSRFCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: csrfCookie, Value: s.token, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: s.tls != nil})
}

func (s *Server) static() http.Handler {
	sub, _ := fs.Sub(webFS, "web/static")
	fsrv := http.StripPrefix("/static/", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=300")
		fsrv.ServeHTTP(w, r)
	})
}
