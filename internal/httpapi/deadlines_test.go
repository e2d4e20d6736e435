package httpapi_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/httpapi"
)

// TestDeadlines: a request body trickling in is cut off at the read
// deadline and a plain response that takes too long at the write
// deadline, while the event stream, older than both, still delivers.
func TestDeadlines(t *testing.T) {
	release := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("POST /echo", func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		_, _ = w.Write(b)
	})
	mux.HandleFunc("GET /api/v1/events/stream", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "first\n")
		_ = http.NewResponseController(w).Flush()
		<-release
		_, _ = io.WriteString(w, "sentinel\n")
	})
	mux.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		<-release
		_, _ = w.Write([]byte(strings.Repeat("x", 1<<20)))
	})
	srv := httptest.NewServer(httpapi.Deadlines(200*time.Millisecond, 200*time.Millisecond, mux))
	defer srv.Close()
	// Ends the blocked handlers however the test ends, or Close waits.
	unblock := sync.OnceFunc(func() { close(release) })
	defer unblock()

	// The stream and the slow response start before anything else.
	stream, err := http.Get(srv.URL + "/api/v1/events/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Body.Close()
	lines := bufio.NewReader(stream.Body)
	if got, _ := lines.ReadString('\n'); got != "first\n" {
		t.Fatalf("stream: got %q", got)
	}
	slow := make(chan error, 1)
	go func() {
		resp, err := http.Get(srv.URL + "/slow")
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		slow <- err
	}()

	// A body that sends its first bytes and then nothing.
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc"); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, err = io.Copy(io.Discard, conn)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("a trickling body kept its connection open")
	}

	// Both deadlines have passed for the stream and the slow response.
	unblock()
	if err := <-slow; err == nil {
		t.Error("a response written after the write deadline arrived whole")
	}
	if got, _ := lines.ReadString('\n'); got != "sentinel\n" {
		t.Errorf("stream after the deadlines: got %q, want the sentinel", got)
	}
	// A body sent in time is read whole.
	resp, err := http.Post(srv.URL+"/echo", "text/plain", strings.NewReader("hello"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "hello" {
		t.Errorf("echo: got %q", b)
	}
}
