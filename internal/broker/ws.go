package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/gorilla/websocket"
)

// wsListener serves MQTT over WebSocket. Unlike mochi's own listener it
// binds where it is told (":0" works), and it keeps the upgrade request's
// headers and query with the connection so custom-authorizer credentials
// can travel there, as with AWS IoT over WSS.
type wsListener struct {
	b      *Broker
	id     string
	ln     net.Listener
	srv    *http.Server
	upgr   websocket.Upgrader
	closed chan struct{}
}

func (b *Broker) addWS(id, addr string, tlsConfig *tls.Config) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("broker: %s listener: %w", id, err)
	}
	// Pending from the first byte: the TLS handshake, the upgrade and the
	// CONNECT must all fit in the connect deadline.
	ln = b.pending.listen(ln)
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
	}
	l := &wsListener{b: b, id: id, ln: ln, closed: make(chan struct{}),
		upgr: websocket.Upgrader{Subprotocols: []string{"mqtt"}, CheckOrigin: func(*http.Request) bool { return true }}}
	mux := http.NewServeMux()
	mux.HandleFunc("/mqtt", l.handle)
	mux.HandleFunc("/", l.handle)
	l.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: b.cfg.ConnectTimeout}
	b.wsServers = append(b.wsServers, l)
	b.addrs[id] = ln.Addr().String()
	return nil
}

func (l *wsListener) serve() {
	if err := l.srv.Serve(l.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		l.b.log.Error("websocket listener stopped", "listener", l.id, "err", err)
	}
}

func (l *wsListener) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = l.srv.Shutdown(ctx)
	l.ln.Close()
}

func (l *wsListener) handle(w http.ResponseWriter, r *http.Request) {
	c, err := l.upgr.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer c.Close()
	conn := &wsConn{Conn: c.UnderlyingConn(), c: c, header: r.Header.Clone(), query: r.URL.Query()}
	defer l.b.hook.connectionEnded(conn)
	if err := l.b.server.EstablishConnection(l.id, conn); err != nil && !errors.Is(err, io.EOF) {
		l.b.log.Debug("websocket client ended", "listener", l.id, "err", err)
	}
}

// wsConn is a WebSocket connection as a net.Conn carrying binary MQTT
// frames, with the HTTP upgrade request's headers and query.
type wsConn struct {
	net.Conn
	c      *websocket.Conn
	r      io.Reader
	header http.Header
	query  map[string][]string
}

func (ws *wsConn) Read(p []byte) (int, error) {
	for {
		if ws.r == nil {
			op, r, err := ws.c.NextReader()
			if err != nil {
				return 0, err
			}
			if op != websocket.BinaryMessage {
				return 0, errors.New("broker: websocket message is not binary")
			}
			ws.r = r
		}
		n, err := ws.r.Read(p)
		if errors.Is(err, io.EOF) {
			ws.r = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

func (ws *wsConn) Write(p []byte) (int, error) {
	if err := ws.c.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// lookup finds a custom-authorizer value in the upgrade request: header
// first, then query parameter.
func (ws *wsConn) lookup(key string) string {
	if v := ws.header.Get(key); v != "" {
		return v
	}
	if vs := ws.query[key]; len(vs) > 0 {
		return vs[0]
	}
	return ""
}
