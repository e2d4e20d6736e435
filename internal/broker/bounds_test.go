package broker_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/gorilla/websocket"

	"github.com/gatehouse-iot/gatehouse/internal/broker"
	"github.com/gatehouse-iot/gatehouse/internal/ratelimit"
	"github.com/gatehouse-iot/gatehouse/internal/testenv"
)

// serverTLS is a TLS server configuration with httptest's certificate.
func serverTLS(t *testing.T) *tls.Config {
	t.Helper()
	s := httptest.NewTLSServer(nil)
	cfg := s.TLS.Clone()
	s.Close()
	return cfg
}

// waitClosedByServer reads from conn until the server closes it; it fails
// if the guard (far longer than any connect timeout in these tests)
// expires first, that is if the server kept the connection open.
func waitClosedByServer(t *testing.T, conn net.Conn, what string) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	buf := make([]byte, 512)
	for {
		_, err := conn.Read(buf)
		if err == nil {
			continue // a CONNACK or DISCONNECT may come first
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("%s: the server kept the connection open", what)
		}
		return // io.EOF, or a reset
	}
}

func newBoundsRejections(t *testing.T) (func(string) float64, *ratelimit.Rejections) {
	t.Helper()
	reg, rej := newRejections(t)
	return func(name string) float64 { return rejections(t, reg, name) }, rej
}

// TestConnectTimeout: a connection that has not completed an
// authenticated CONNECT within mqtt.connectTimeout is closed by the
// server, on every listener and whatever it stopped at; an authenticated
// connection older than that stays.
func TestConnectTimeout(t *testing.T) {
	tlsCfg := serverTLS(t)
	f := newFixtureWith(t, time.Hour, func(c *broker.Config) {
		// Long enough for a TLS handshake and a WebSocket upgrade under
		// -race on a loaded machine; the cases below wait it out in
		// parallel.
		c.ConnectTimeout = time.Second
		c.TLSAddr, c.TLSConfig, c.WSSAddr = "127.0.0.1:0", tlsCfg, "127.0.0.1:0"
	})
	// Authenticated before every idle socket below is opened, so past
	// its connect deadline once they are closed.
	live := f.mustConnect("s-1", "s-1", []byte(f.token("s-1", "mqtt")))

	dial := func(t *testing.T, listener string) net.Conn {
		conn, err := net.Dial("tcp", f.broker.Addr(listener))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	tests := []struct {
		name string
		open func(t *testing.T) net.Conn
	}{
		{"tcp, nothing sent", func(t *testing.T) net.Conn { return dial(t, "mqtt") }},
		{"tcp, half a CONNECT", func(t *testing.T) net.Conn {
			conn := dial(t, "mqtt")
			if _, err := conn.Write([]byte{0x10, 20, 0, 4, 'M', 'Q', 'T'}); err != nil {
				t.Fatal(err)
			}
			return conn
		}},
		{"tls, no ClientHello", func(t *testing.T) net.Conn { return dial(t, "mqtts") }},
		{"tls, handshake done, no CONNECT", func(t *testing.T) net.Conn {
			conn, err := tls.Dial("tcp", f.broker.Addr("mqtts"), &tls.Config{InsecureSkipVerify: true})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { conn.Close() })
			return conn
		}},
		{"ws, no upgrade", func(t *testing.T) net.Conn { return dial(t, "ws") }},
		{"ws, upgraded, no CONNECT", func(t *testing.T) net.Conn { return dialWS(t, f.broker.Addr("ws")) }},
		{"wss, upgraded, no CONNECT", func(t *testing.T) net.Conn {
			d := websocket.Dialer{Subprotocols: []string{"mqtt"}, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
			c, _, err := d.Dial("wss://"+f.broker.Addr("wss")+"/mqtt", nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			return &wsClientConn{Conn: c.UnderlyingConn(), c: c}
		}},
	}
	t.Run("idle", func(t *testing.T) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				waitClosedByServer(t, tc.open(t), tc.name)
			})
		}
	})
	// The authenticated connection is older than the connect timeout and
	// still works: a message to itself comes back.
	if got := subscribe(t, live, "things/s-1/sentinel"); got != 1 {
		t.Fatalf("subscribe on the live connection: %#x", got)
	}
	if got := publish(t, live, "things/s-1/sentinel", 1, false); got != 0 {
		t.Fatalf("publish on the live connection: %#x", got)
	}
	live.waitFor(t, "things/s-1/sentinel")
}

// TestPendingConnectionsPerIP: one address may hold only so many
// connections that have not completed CONNECT; the next is closed at once
// and counted. An authenticated connection no longer counts.
func TestPendingConnectionsPerIP(t *testing.T) {
	count, rej := newBoundsRejections(t)
	f := newFixtureWith(t, time.Hour, func(c *broker.Config) {
		c.ConnectTimeout = time.Minute
		c.PendingConnectionsPerIP = 2
		c.Rejections = rej
	})
	tok := []byte(f.token("s-1", "mqtt"))
	idle := func() net.Conn {
		conn, err := net.Dial("tcp", f.broker.Addr("mqtt"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	first := idle()
	// Authenticated connections come and stay without using up the
	// address's pending places.
	f.mustConnect("s-1", "s-1", tok)
	f.mustConnect("s-2", "s-2", []byte(f.token("s-2", "mqtt")))
	idle()
	third := idle()
	waitClosedByServer(t, third, "a third idle connection")
	if got := count("pendingConnectionsPerIP"); got != 1 {
		t.Errorf("pendingConnectionsPerIP rejections = %v, want 1", got)
	}
	// Closing an idle one frees its place.
	first.Close()
	testenv.Eventually(t, 10*time.Second, "a pending place coming free", func() bool {
		c, code, _ := f.connect("s-1", "s-1", tok, nil)
		if c != nil && code == 0 {
			_ = c.Disconnect(&paho.Disconnect{})
			return true
		}
		return false
	})
}

// TestTopicLimits: topic names and filters over mqtt.maxTopicBytes or
// mqtt.maxTopicLevels are refused (publish: the connection is closed;
// subscribe: 0x8F for that filter; will: CONNACK 0x90) and counted.
func TestTopicLimits(t *testing.T) {
	count, rej := newBoundsRejections(t)
	f := newFixtureWith(t, time.Hour, func(c *broker.Config) {
		c.MaxTopicBytes, c.MaxTopicLevels = 64, 8
		c.Rejections = rej
	})
	tok := []byte(f.token("s-1", "mqtt"))
	c := f.mustConnect("s-1", "s-1", tok)
	subTests := []struct {
		filter string
		want   byte
	}{
		{"things/s-1/a/b/c/d/e/f", 1},                // 8 levels
		{"things/s-1/a/b/c/d/e/f/g", 0x8F},           // 9 levels
		{"things/s-1/" + strings.Repeat("x", 53), 1}, // 64 bytes
		{"things/s-1/" + strings.Repeat("x", 54), 0x8F},
	}
	for _, tc := range subTests {
		if got := subscribe(t, c, tc.filter); got != tc.want {
			t.Errorf("subscribe %d bytes, %d levels: %#x, want %#x", len(tc.filter), strings.Count(tc.filter, "/")+1, got, tc.want)
		}
	}
	if got := publish(t, c, "things/s-1/a/b/c/d/e/f", 1, false); got != 0 {
		t.Errorf("publish to 8 levels: %#x, want 0", got)
	}
	c.waitFor(t, "things/s-1/a/b/c/d/e/f")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _ = c.Publish(ctx, &paho.Publish{Topic: "things/s-1/a/b/c/d/e/f/g", QoS: 0, Payload: []byte("x")})
	waitDisconnect(t, c, 0x90, "a publish to 9 levels did not end the connection")

	// HTTPS publish: 400 before any authentication.
	resp, err := http.Post(f.http.URL+"/topics/alerts/a/b/c/d/e/f/g/h", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("HTTPS publish to 9 levels: %d, want 400", resp.StatusCode)
	}

	will := &paho.WillMessage{Topic: "things/s-1/" + strings.Repeat("w", 60), Payload: []byte("gone")}
	if _, got, _ := f.connect("s-1", "s-1", tok, will); got != 0x90 {
		t.Errorf("will over maxTopicBytes: CONNACK %#x, want 0x90", got)
	}
	if got := count("mqtt.maxTopicLevels"); got != 3 {
		t.Errorf("mqtt.maxTopicLevels rejections = %v, want 3", got)
	}
	if got := count("mqtt.maxTopicBytes"); got != 2 {
		t.Errorf("mqtt.maxTopicBytes rejections = %v, want 2", got)
	}
}
