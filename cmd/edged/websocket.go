package main

import (
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// wsListener is a net.Listener of MQTT over WebSocket connections (MQTT
// 3.1.1 §6): an HTTP server on ln upgrades requests for path with the
// subprotocol "mqtt" and hands each as a net.Conn to Accept, so the broker
// serves it like a TCP connection. gorilla/websocket is already linked in
// through the paho client of the bridge, so this costs little binary size.
type wsListener struct {
	ln     net.Listener
	srv    *http.Server
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
}

var _ net.Listener = (*wsListener)(nil)

// listenWebSocket serves WebSocket upgrades on ln. timeout bounds reading a
// request's headers and an idle HTTP keep-alive connection, so that a
// client which never upgrades is closed like one that never sends CONNECT
// (the broker's limits.connect_timeout).
func listenWebSocket(ln net.Listener, path string, timeout time.Duration, log *slog.Logger) *wsListener {
	l := &wsListener{ln: ln, conns: make(chan net.Conn), closed: make(chan struct{})}
	up := websocket.Upgrader{
		// "mqttv3.1" is what some MQTT 3.1 clients offer.
		Subprotocols: []string{"mqtt", "mqttv3.1"},
		// Browsers connect from any page; authentication is MQTT's job.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	mux := http.NewServeMux()
	mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		if !websocket.IsWebSocketUpgrade(r) {
			http.Error(w, "MQTT over WebSocket: connect with a WebSocket client", http.StatusBadRequest)
			return
		}
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return // Upgrade has answered the client
		}
		if ws.Subprotocol() == "" {
			// The client MUST offer "mqtt" [MQTT-6.0.0-3]; refusing it
			// tells a misconfigured client at once.
			ws.WriteControl(websocket.CloseMessage,
				websocket.FormatCloseMessage(websocket.CloseProtocolError, "subprotocol mqtt required"),
				time.Now().Add(time.Second))
			ws.Close()
			return
		}
		select {
		case l.conns <- &wsConn{ws: ws}:
		case <-l.closed:
			ws.Close()
		}
	})
	l.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: timeout,
		// Without it an idle keep-alive connection stays open forever.
		IdleTimeout: timeout,
		// A WebSocket handshake is a few hundred bytes (plus cookies); the
		// default of 1 MiB would let each pending connection hold that much.
		MaxHeaderBytes: wsMaxHeaderBytes,
		// A connection counted by pendingListener stops counting when it is
		// upgraded (the broker counts it from then until CONNECT) or closed.
		ConnState: func(c net.Conn, st http.ConnState) {
			if st == http.StateHijacked || st == http.StateClosed {
				releasePending(c)
			}
		},
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		l.srv.Serve(ln)
	}()
	return l
}

// wsMaxHeaderBytes bounds an HTTP request's headers on a WebSocket listener.
const wsMaxHeaderBytes = 16 << 10

// pendingGate counts connections that have not sent CONNECT yet;
// *broker.Server implements it.
type pendingGate interface {
	HoldPending(listener string, addr net.Addr) (release func(), ok bool)
}

// pendingListener counts each accepted connection as pending with gate
// until it is released (see releasePending) or closed; one over the
// broker's pending limits is closed at once. It wraps the TCP listener of
// a WebSocket listener, below TLS, so that HTTP connections that never
// upgrade count against limits.max_pending_connections.
type pendingListener struct {
	net.Listener
	gate pendingGate
	name string
}

func (l *pendingListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		release, ok := l.gate.HoldPending(l.name, c.RemoteAddr())
		if !ok {
			c.Close()
			continue
		}
		return &pendingConn{Conn: c, release: release}, nil
	}
}

// pendingConn is a connection counted as pending until release is called
// (it may be called more than once).
type pendingConn struct {
	net.Conn
	release func()
}

func (c *pendingConn) Close() error {
	c.release()
	return c.Conn.Close()
}

// releasePending stops counting c, a pendingConn possibly under TLS.
func releasePending(c net.Conn) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if pc, ok := c.(*pendingConn); ok {
		pc.release()
	}
}

// Accept returns the next upgraded connection.
func (l *wsListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

// Close stops the HTTP server; connections already accepted stay open
// (the broker closes them).
func (l *wsListener) Close() error {
	l.once.Do(func() {
		close(l.closed)
		l.srv.Close()
		l.wg.Wait()
	})
	return nil
}

// Addr returns the listening address.
func (l *wsListener) Addr() net.Addr { return l.ln.Addr() }

// wsConn is a WebSocket connection as a byte stream: MQTT packets may span
// WebSocket messages and a message may hold several packets [MQTT-6.0.0-2].
type wsConn struct {
	ws *websocket.Conn
	r  io.Reader // the current message
}

var _ net.Conn = (*wsConn)(nil)

// errTextFrame is returned when a client sends a text message.
var errTextFrame = errors.New("websocket: MQTT data must be sent in binary messages")

func (c *wsConn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			typ, r, err := c.ws.NextReader()
			if err != nil {
				if websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway, websocket.CloseNoStatusReceived) {
					return 0, io.EOF
				}
				return 0, err
			}
			if typ != websocket.BinaryMessage {
				// [MQTT-6.0.0-1]: close the connection.
				return 0, errTextFrame
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if err == io.EOF {
			c.r = nil
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
}

// Write sends p as one binary message; the broker's writer coalesces
// packets before it writes, so a burst is one message.
func (c *wsConn) Write(p []byte) (int, error) {
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *wsConn) Close() error                       { return c.ws.Close() }
func (c *wsConn) LocalAddr() net.Addr                { return c.ws.LocalAddr() }
func (c *wsConn) RemoteAddr() net.Addr               { return c.ws.RemoteAddr() }
func (c *wsConn) SetReadDeadline(t time.Time) error  { return c.ws.SetReadDeadline(t) }
func (c *wsConn) SetWriteDeadline(t time.Time) error { return c.ws.SetWriteDeadline(t) }
func (c *wsConn) SetDeadline(t time.Time) error {
	if err := c.ws.SetReadDeadline(t); err != nil {
		return err
	}
	return c.ws.SetWriteDeadline(t)
}
