package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/edged/edged/bridge"
	"github.com/edged/edged/broker"
	"github.com/edged/edged/broker/auth"
	"github.com/edged/edged/cmd/edged/internal/status"
	"github.com/edged/edged/persist"
	"github.com/edged/edged/serialio"
)

// serve runs the broker until SIGINT or SIGTERM; a second signal forces
// exit.
func serve(cfg *Config, log *slog.Logger) error {
	if cfg.MemoryLimit > 0 {
		debug.SetMemoryLimit(int64(cfg.MemoryLimit))
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	e, err := build(cfg, log)
	if err != nil {
		return err
	}
	// A second signal while draining forces exit.
	go func() {
		<-ctx.Done()
		stop()
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGINT, syscall.SIGTERM)
		<-c
		log.Warn("second signal; exiting now")
		os.Exit(1)
	}()
	return e.run(ctx)
}

// instance is a broker built from a configuration, with everything build
// opened for it.
type instance struct {
	cfg       *Config
	log       *slog.Logger
	db        *persist.DB
	broker    *broker.Server
	listeners []boundListener
	serials   []*serialio.Listener
	bridges   []*bridge.Bridge
	reloaders []func() error // re-read the auth files (SIGHUP, the status page)
	passwords *auth.Passwords
	// The status page and its socket; nil when http.address is empty.
	page   *status.Server
	pageLn net.Listener
	// closers undo what build opened, run in reverse order by close.
	closers []func()
}

type boundListener struct {
	ln  net.Listener
	cfg ListenerConfig
}

// build opens everything cfg asks for: the store, the auth files, the
// broker, the listeners' sockets, the bridges and the serial ports. If any
// step fails, what the earlier steps opened is closed again (the store's
// lock and file, bound sockets, serial ports) and build returns the error,
// so a failed start leaves nothing behind.
func build(cfg *Config, log *slog.Logger) (_ *instance, err error) {
	e := &instance{cfg: cfg, log: log}
	defer func() {
		if err != nil {
			// The cause first, before whatever closing logs.
			log.Error("edged did not start", "error", err)
			e.close()
			err = &startError{err}
		}
	}()
	if err := makeDataDir(cfg.DataDir); err != nil {
		return nil, err
	}
	syncMode, _ := persist.ParseSyncMode(cfg.Persistence.Sync) // validated
	e.db, err = persist.Open(persist.Options{
		Path:    storePath(cfg),
		Sync:    syncMode,
		MaxSize: int64(cfg.Persistence.MaxDBSize),
		Logger:  log.With("component", "store"),
	})
	if err != nil {
		return nil, err
	}
	// The store is closed last, after the broker has drained: every
	// commit the broker handed it is applied before the file closes.
	e.onClose(func() {
		if err := e.db.Close(); err != nil {
			log.Error("closing store", "error", err)
		}
	})
	bcfg := broker.Config{
		Limits:         cfg.Limits.Limits,
		Store:          e.db,
		SysInterval:    cfg.SysInterval,
		ConnectTimeout: cfg.Limits.ConnectTimeout,
		Version:        version,
		Logger:         log,
	}
	if cfg.Auth.PasswordFile != "" {
		pw, err := auth.LoadPasswords(cfg.Auth.PasswordFile)
		if err != nil {
			return nil, err
		}
		bcfg.Auth, e.passwords = pw, pw
		e.reloaders = append(e.reloaders, pw.Reload)
	}
	var acl *auth.ACL
	if cfg.Auth.ACLFile != "" {
		if acl, err = auth.LoadACL(cfg.Auth.ACLFile); err != nil {
			return nil, err
		}
		bcfg.ACL = acl
	}
	b, err := broker.New(bcfg)
	if err != nil {
		return nil, err
	}
	e.broker = b
	e.onClose(func() {
		drain, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := b.Shutdown(drain); err != nil {
			log.Warn("shutdown did not drain in time", "error", err)
		}
	})
	if acl != nil {
		e.reloaders = append(e.reloaders, func() error {
			if err := acl.Reload(); err != nil {
				return err
			}
			// Granted subscriptions follow the new rules.
			b.Reauthorize()
			return nil
		})
	}
	for _, lc := range cfg.Listeners {
		ln, err := listen(lc, b, cfg.Limits.ConnectTimeout, log)
		if err != nil {
			return nil, err
		}
		e.listeners = append(e.listeners, boundListener{ln, lc})
		e.onClose(func() { ln.Close() })
	}
	// Bridges register their durable taps before any client is served, so
	// no message matching an out rule can miss the queue.
	if e.bridges, err = setupBridges(cfg.Bridges, cfg.SysInterval, b, e.db, log); err != nil {
		return nil, err
	}
	for _, sc := range cfg.Serial {
		scfg := sc.Config
		scfg.Logger = log // serialio adds serial_port itself
		// A missing device is not fatal: the listener logs it and keeps
		// trying to open it with backoff.
		ln, err := serialio.Listen(scfg)
		if err != nil {
			return nil, fmt.Errorf("serial port %s: %w", sc.Name, err)
		}
		e.serials = append(e.serials, ln)
		e.onClose(func() { ln.Close() })
	}
	if cfg.HTTP.Enabled() {
		if err := e.buildStatusPage(); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// buildStatusPage prepares the status page and binds its socket.
func (e *instance) buildStatusPage() error {
	cfg := e.cfg
	src := status.Sources{
		Broker:    e.broker,
		Store:     e.db,
		Bridges:   e.bridges,
		Passwords: e.passwords,
		Listeners: len(cfg.Listeners) + len(cfg.Serial),
		Loopback:  loopbackAddress,
		Version:   version,
		Logger:    e.log,
	}
	if len(e.reloaders) > 0 {
		src.Reload = e.reloadAuth
	}
	for i, ln := range e.serials {
		src.Serial = append(src.Serial, status.SerialPort{Name: cfg.Serial[i].Name, Device: cfg.Serial[i].Device, Listener: ln})
	}
	page, err := status.New(cfg.HTTP, src)
	if err != nil {
		return err
	}
	ln, err := page.Listen()
	if err != nil {
		return err
	}
	e.page, e.pageLn = page, ln
	e.onClose(func() { ln.Close() })
	return nil
}

// reloadAuth re-reads the password and ACL files; a bad file keeps the
// rules in use and is logged.
func (e *instance) reloadAuth() error {
	var errs []error
	for _, reload := range e.reloaders {
		errs = append(errs, reload())
	}
	err := errors.Join(errs...)
	if err != nil {
		e.log.Warn("reloading auth files; keeping the previous rules", "error", err)
	} else {
		e.log.Info("auth files reloaded")
	}
	return err
}

// startError is an error of build, already logged.
type startError struct{ err error }

func (e *startError) Error() string { return e.err.Error() }
func (e *startError) Unwrap() error { return e.err }

// onClose registers f to run when e is closed, before whatever was
// registered earlier.
func (e *instance) onClose(f func()) { e.closers = append(e.closers, f) }

// close closes everything build opened, the last opened first; it may be
// called more than once.
func (e *instance) close() {
	for i := len(e.closers) - 1; i >= 0; i-- {
		e.closers[i]()
	}
	e.closers = nil
}

// run serves clients, serial ports and bridges until ctx is done or one of
// them fails, then drains the broker and closes everything.
func (e *instance) run(ctx context.Context) error {
	defer e.close()
	cfg, log, b := e.cfg, e.log, e.broker
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if len(e.reloaders) > 0 {
		// SIGHUP re-reads the password and ACL files; a bad file keeps the
		// rules in use and is logged.
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		go func() {
			for {
				select {
				case <-hup:
				case <-ctx.Done():
					return
				}
				e.reloadAuth()
			}
		}()
	}
	warnListenerAccess(cfg, log)
	log.Info("edged started", "version", version, "data_dir", cfg.DataDir, "pid", os.Getpid())

	g, gctx := errgroup.WithContext(ctx)
	// allow_anonymous is never nil here: applyDefaults sets it (true on
	// loopback addresses and serial ports: whoever is wired to a UART has
	// physical access).
	for _, l := range e.listeners {
		g.Go(func() error {
			return b.Serve(gctx, l.ln, broker.WithName(l.cfg.Name), broker.AllowAnonymous(*l.cfg.AllowAnonymous),
				broker.WithMaxConnections(l.cfg.MaxConnections), broker.WithTransport(l.cfg.transport()))
		})
	}
	for i, ln := range e.serials {
		sc := cfg.Serial[i]
		g.Go(func() error {
			return b.Serve(gctx, ln, broker.WithName(sc.Name), broker.AllowAnonymous(*sc.AllowAnonymous),
				broker.WithTransport("serial"))
		})
	}
	for _, br := range e.bridges {
		g.Go(func() error { return br.Run(gctx) })
	}
	if e.page != nil {
		g.Go(func() error { return e.page.Serve(gctx, e.pageLn) })
	}
	if len(e.serials) > 0 && cfg.SysInterval >= 0 {
		g.Go(func() error {
			publishSerialStats(gctx, b, cfg, e.serials)
			return nil
		})
	}
	err := g.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// transport names what a listener speaks: tcp, tls, ws or wss.
func (l ListenerConfig) transport() string {
	switch {
	case l.WebSocket != nil && l.TLS != nil:
		return "wss"
	case l.WebSocket != nil:
		return "ws"
	case l.TLS != nil:
		return "tls"
	}
	return "tcp"
}
