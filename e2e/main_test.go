package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binary is the gatehouse binary built once for all tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gatehouse-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "gatehouse")
	args := []string{"build", "-o", binary}
	if raceBuild {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "../cmd/gatehouse")...)
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build gatehouse:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// server is a running `gatehouse serve`.
type server struct {
	cmd    *exec.Cmd
	URL    string
	MQTT   string // host:port of the MQTT listener
	WS     string // host:port of the MQTT over WebSocket listener
	MQTTS  string // host:port of the MQTT over TLS listener
	HTTPS  string // host:port of the mutual-TLS HTTPS listener
	Token  string
	Pass   string
	mu     sync.Mutex
	stdout bytes.Buffer
	stderr bytes.Buffer
	done   chan error
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// startServer runs the binary with args and waits for its banner.
func startServer(t *testing.T, args ...string) *server {
	t.Helper()
	s := &server{done: make(chan error, 1)}
	ready := filepath.Join(t.TempDir(), "ready.json")
	s.cmd = exec.Command(binary, append([]string{"serve", "--ready-file", ready, "--http-addr", "127.0.0.1:0", "--mqtt-addr", "127.0.0.1:0", "--ws-addr", "127.0.0.1:0", "--mqtts-addr", "127.0.0.1:0", "--https-addr", "127.0.0.1:0"}, args...)...)
	s.cmd.Env = append(os.Environ(), "GATEHOUSE_LOG_LEVEL=debug")
	pr, pw := io.Pipe()
	// The buffer first: once the scanner below has read a line, Stdout has it.
	s.cmd.Stdout = io.MultiWriter(lockedWriter{&s.mu, &s.stdout}, pw)
	s.cmd.Stderr = lockedWriter{&s.mu, &s.stderr}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- s.cmd.Wait(); pw.Close() }()
	t.Cleanup(func() {
		if s.cmd.ProcessState == nil {
			s.cmd.Process.Kill()
			<-s.done
		}
		if t.Failed() {
			t.Logf("server stdout:\n%s\nserver stderr:\n%s", s.Stdout(), s.Stderr())
		}
	})
	// The banner ends with its "data dir" line, or, on a first start, with
	// the bootstrap credentials' "try:" line.
	found, bootstrapped := make(chan struct{}), make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "  data dir  ") {
				close(found)
			}
			if strings.Contains(sc.Text(), "  try: curl") {
				close(bootstrapped)
				break
			}
		}
		io.Copy(io.Discard, pr)
	}()
	select {
	case <-found:
	case err := <-s.done:
		t.Fatalf("server exited early: %v\nstderr:\n%s", err, s.Stderr())
	case <-time.After(30 * time.Second):
		t.Fatalf("server did not start\nstderr:\n%s", s.Stderr())
	}
	// The server wrote the ready file before its banner.
	b, err := os.ReadFile(ready)
	if err != nil {
		t.Fatalf("ready file: %v", err)
	}
	var r struct {
		HTTP, HTTPS, MQTT, MQTTS, WS string
		AdminPassword, AdminToken    string
	}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("ready file: %v\n%s", err, b)
	}
	if r.AdminToken != "" {
		select {
		case <-bootstrapped:
		case <-time.After(30 * time.Second):
			t.Fatalf("the banner's bootstrap lines did not follow:\n%s", s.Stdout())
		}
	}
	s.URL, s.Token, s.Pass = "http://"+r.HTTP, r.AdminToken, r.AdminPassword
	s.MQTT, s.WS, s.MQTTS, s.HTTPS = r.MQTT, r.WS, r.MQTTS, r.HTTPS
	return s
}

func (s *server) Stdout() string { s.mu.Lock(); defer s.mu.Unlock(); return s.stdout.String() }
func (s *server) Stderr() string { s.mu.Lock(); defer s.mu.Unlock(); return s.stderr.String() }

// stop sends SIGTERM and returns the exit error.
func (s *server) stop(t *testing.T) error {
	t.Helper()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.done:
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("server did not stop on SIGTERM")
		return nil
	}
}

// cli runs a client command of the binary against s.
func (s *server) cli(t *testing.T, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(os.Environ(), "GATEHOUSE_SERVER="+s.URL, "GATEHOUSE_TOKEN="+s.Token)
	cmd.Stdin = strings.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// curl sends one HTTP request the way the README's curl lines do.
func curl(t *testing.T, method, url, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
