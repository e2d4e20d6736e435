package broker_test

import (
	"net"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// dialWS opens an MQTT-over-WebSocket connection as a net.Conn.
func dialWS(t testing.TB, addr string) net.Conn {
	t.Helper()
	d := websocket.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: 5 * time.Second}
	c, _, err := d.Dial("ws://"+addr+"/mqtt", nil)
	if err != nil {
		t.Fatal(err)
	}
	return &wsClientConn{Conn: c.UnderlyingConn(), c: c}
}

type wsClientConn struct {
	net.Conn
	c   *websocket.Conn
	buf []byte
	mu  sync.Mutex // paho writes from several goroutines
}

func (w *wsClientConn) Read(p []byte) (int, error) {
	for len(w.buf) == 0 {
		_, msg, err := w.c.ReadMessage()
		if err != nil {
			return 0, err
		}
		w.buf = msg
	}
	n := copy(p, w.buf)
	w.buf = w.buf[n:]
	return n, nil
}

func (w *wsClientConn) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.c.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}
