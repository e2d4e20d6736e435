package e2e

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/gorilla/websocket"

	"github.com/gatehouse-iot/gatehouse/internal/store"
	"github.com/gatehouse-iot/gatehouse/internal/testenv"
)

// closedByServer reads from conn until the server closes it, failing if
// the guard (far longer than any timeout configured here) expires first.
func closedByServer(t *testing.T, conn net.Conn, what string) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	buf := make([]byte, 512)
	for {
		if _, err := conn.Read(buf); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("%s: the server kept the connection open", what)
			}
			return
		}
	}
}

// TestUnauthenticatedSocketsAreClosed: with short timeouts configured,
// the binary closes every kind of socket that holds a place without
// getting anywhere: MQTT with nothing or half a CONNECT, MQTTS and HTTPS
// without a ClientHello, WebSocket upgraded without CONNECT, HTTP headers
// or a body trickling in, an idle keep-alive connection.
func TestUnauthenticatedSocketsAreClosed(t *testing.T) {
	t.Parallel()
	cfg := filepath.Join(t.TempDir(), "gatehouse.yaml")
	yaml := "mqtt:\n  connectTimeout: 200ms\nhttp:\n  readHeaderTimeout: 200ms\n  readTimeout: 300ms\n  idleTimeout: 300ms\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, "--config", cfg, "--data-dir", t.TempDir())
	httpAddr := strings.TrimPrefix(s.URL, "http://")
	dial := func(t *testing.T, addr, send string) net.Conn {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		if send != "" {
			if _, err := io.WriteString(conn, send); err != nil {
				t.Fatal(err)
			}
		}
		return conn
	}
	tests := []struct {
		name string
		open func(t *testing.T) net.Conn
	}{
		{"mqtt, nothing sent", func(t *testing.T) net.Conn { return dial(t, s.MQTT, "") }},
		{"mqtt, half a CONNECT", func(t *testing.T) net.Conn { return dial(t, s.MQTT, "\x10\x14\x00\x04MQ") }},
		{"mqtts, no ClientHello", func(t *testing.T) net.Conn { return dial(t, s.MQTTS, "") }},
		{"mqtts, handshake, no CONNECT", func(t *testing.T) net.Conn {
			conn, err := tls.Dial("tcp", s.MQTTS, &tls.Config{InsecureSkipVerify: true})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { conn.Close() })
			return conn
		}},
		{"websocket, upgraded, no CONNECT", func(t *testing.T) net.Conn {
			d := websocket.Dialer{Subprotocols: []string{"mqtt"}}
			c, _, err := d.Dial("ws://"+s.WS+"/mqtt", nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			return c.UnderlyingConn()
		}},
		{"https, no ClientHello", func(t *testing.T) net.Conn { return dial(t, s.HTTPS, "") }},
		{"http, idle after a request", func(t *testing.T) net.Conn { return dial(t, httpAddr, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n") }},
		{"http, headers trickling", func(t *testing.T) net.Conn { return dial(t, httpAddr, "GET /healthz HTTP/1.1\r\nHost: x\r\n") }},
		{"http, body trickling", func(t *testing.T) net.Conn {
			return dial(t, httpAddr, "POST /oauth2/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ngrant_type=")
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { closedByServer(t, tc.open(t), tc.name) })
	}
	// The server still serves.
	if code, body := curl(t, "GET", s.URL+"/healthz", "", ""); code != 200 {
		t.Errorf("healthz after the slow clients = %d %s", code, body)
	}
	_, metrics := curl(t, "GET", s.URL+"/metrics", "", "")
	for _, want := range []string{`limit="pendingConnectionsPerIP"`, `limit="mqtt.maxTopicBytes"`, `limit="mqtt.maxTopicLevels"`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks the rejection counter %s", want)
		}
	}
}

// failConnects sends n MQTT 5 CONNECTs with a wrong password, one
// connection each, and waits for each refusal.
func failConnects(t *testing.T, addr string, n int) {
	t.Helper()
	for i := range n {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		cp := &packets.Connect{ProtocolName: "MQTT", ProtocolVersion: 5, ClientID: fmt.Sprintf("guess-%d", i), UsernameFlag: true, Username: "pump-1",
			PasswordFlag: true, Password: []byte(fmt.Sprintf("guess-%d", i)), KeepAlive: 30, CleanStart: true}
		if _, err := cp.WriteTo(conn); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		cp2, err := packets.ReadPacket(conn)
		conn.Close()
		if err != nil {
			t.Fatalf("CONNECT %d: %v", i, err)
		}
		if ca, ok := cp2.Content.(*packets.Connack); !ok || ca.ReasonCode == 0 {
			t.Fatalf("CONNECT %d with a wrong password was not refused: %v", i, cp2)
		}
	}
}

// deniedRows lists the broker.denied events: rows, and the occurrences
// they stand for.
func deniedRows(t *testing.T, s *server) (rows, occurrences int) {
	t.Helper()
	code, body := curl(t, "GET", s.URL+"/api/v1/events?type=broker.denied&limit=1000", s.Token, "")
	if code != 200 {
		t.Fatalf("list events = %d %s", code, body)
	}
	var resp struct {
		Items []struct {
			Count int `json:"count"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		t.Fatal(err)
	}
	for _, ev := range resp.Items {
		occurrences += max(ev.Count, 1)
	}
	return len(resp.Items), occurrences
}

// TestDenialAggregation: 300 failed CONNECTs from one address are one row
// each without aggregation, and a couple of rows with a count that adds up
// to 300 with it. The database growth of each is logged (docs/operations.md
// quotes it).
func TestDenialAggregation(t *testing.T) {
	t.Parallel()
	const attempts = 300
	tests := []struct {
		window  string
		maxRows int
	}{
		{"0s", attempts},
		{"3s", 20}, // two rows a window at most
	}
	for _, tc := range tests {
		t.Run("window "+tc.window, func(t *testing.T) {
			dir := t.TempDir()
			cfg := filepath.Join(dir, "gatehouse.yaml")
			if err := os.WriteFile(cfg, []byte("events:\n  denialWindow: "+tc.window+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			data := filepath.Join(dir, "data")
			s := startServer(t, "--config", cfg, "--data-dir", data)
			token := s.Token
			if err := s.stop(t); err != nil {
				t.Fatal(err)
			}
			before := dbBytes(t, data)
			s = startServer(t, "--config", cfg, "--data-dir", data)
			s.Token = token
			start := time.Now()
			failConnects(t, s.MQTT, attempts)
			// The aggregated rows come when their window ends.
			var rows, n int
			testenv.Eventually(t, 30*time.Second, fmt.Sprintf("broker.denied events standing for %d attempts", attempts), func() bool {
				rows, n = deniedRows(t, s)
				return n >= attempts
			})
			if n != attempts {
				t.Fatalf("broker.denied events stand for %d attempts, want %d", n, attempts)
			}
			if rows > tc.maxRows {
				t.Errorf("broker.denied rows = %d, want at most %d", rows, tc.maxRows)
			}
			if err := s.stop(t); err != nil {
				t.Fatal(err)
			}
			t.Logf("denialWindow %s: %d failed CONNECTs in %s: %d rows, database +%d bytes", tc.window, attempts,
				time.Since(start).Round(time.Second), rows, dbBytes(t, data)-before)
		})
	}
}

// dbBytes is the size of the SQLite database with its WAL.
func dbBytes(t *testing.T, dataDir string) int64 {
	t.Helper()
	var n int64
	for _, name := range []string{"gatehouse.db", "gatehouse.db-wal"} {
		if fi, err := os.Stat(filepath.Join(dataDir, name)); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// TestEventRetention: events older than events.retention are deleted by
// the server itself at start (and hourly), recorded by one events.pruned
// event; `gatehouse events prune --before` deletes on demand, and refuses
// a bad --before without deleting anything.
func TestEventRetention(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	s := startServer(t, "--data-dir", data)
	token := s.Token
	if err := s.stop(t); err != nil {
		t.Fatal(err)
	}
	// Three events from 100 days ago, as a server running then wrote them.
	st, err := store.Open(t.Context(), "sqlite:"+filepath.Join(data, "gatehouse.db"))
	if err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-100 * 24 * time.Hour)
	for i := range 3 {
		if err := st.AppendEvent(t.Context(), &store.Event{Time: old, Type: "thing.created", Subject: fmt.Sprintf("thing/old-%d", i), Actor: "admin"}); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()

	s = startServer(t, "--data-dir", data) // default retention: 90 days
	s.Token = token
	code, body := curl(t, "GET", s.URL+"/api/v1/events?type=events.pruned&wait=20s", token, "")
	if code != 200 || !strings.Contains(body, `"deleted":3`) || !strings.Contains(body, `"actor":"system:retention"`) {
		t.Fatalf("events.pruned after start = %d %s; want one deleting 3, by system:retention", code, body)
	}
	if _, body := curl(t, "GET", s.URL+"/api/v1/events?subject=thing/old-0", token, ""); strings.Contains(body, "old-0") {
		t.Errorf("an event older than the retention survived: %s", body)
	}

	if _, stderr, err := s.cli(t, "", "events", "prune", "--before", "last tuesday"); err == nil || !strings.Contains(stderr, "--before") {
		t.Errorf("prune with a bad --before: err %v, stderr %q; want a refusal naming --before", err, stderr)
	}
	out, stderr, err := s.cli(t, "", "events", "prune", "--before", time.Now().Add(time.Minute).UTC().Format(time.RFC3339))
	if err != nil {
		t.Fatalf("events prune: %v %s", err, stderr)
	}
	var res struct {
		Deleted int `json:"deleted"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Deleted < 1 {
		t.Fatalf("events prune printed %q; want how many it deleted", out)
	}
	_, body = curl(t, "GET", s.URL+"/api/v1/events?limit=1000", token, "")
	var left struct {
		Items []struct {
			Type  string `json:"type"`
			Actor string `json:"actor"`
		} `json:"items"`
	}
	_ = json.Unmarshal([]byte(body), &left)
	if len(left.Items) == 0 || left.Items[0].Type != "events.pruned" || left.Items[0].Actor != "user:admin" {
		t.Errorf("events after prune = %s; want the prune's own events.pruned by the admin first", body)
	}
}
