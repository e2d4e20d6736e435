package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/testenv"
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
	build := exec.Command("go", "build", "-o", binary, "../cmd/gatehouse")
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

var (
	listenRE = regexp.MustCompile(`listening on (\S+)\)`)
	tokenRE  = regexp.MustCompile(`admin token\s+(\S+)`)
	passRE   = regexp.MustCompile(`admin password\s+(\S+)`)
	mqttRE   = regexp.MustCompile(`mqtt\s+mqtt://(\S+)`)
	wsRE     = regexp.MustCompile(`mqtt/ws\s+ws://([^/\s]+)`)
	mqttsRE  = regexp.MustCompile(`mqtts\s+mqtts://(\S+)`)
	httpsRE  = regexp.MustCompile(`https\s+https://(\S+)`)
)

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// stdoutSentinel is the line startServer writes after a server's banner.
const stdoutSentinel = "\x00e2e: end of the banner"

// startServer runs the binary with args and waits for its banner.
func startServer(t *testing.T, args ...string) *server {
	t.Helper()
	s := &server{done: make(chan error, 1)}
	s.cmd = exec.Command(binary, append([]string{"serve", "--http-addr", "127.0.0.1:0", "--mqtt-addr", "127.0.0.1:0", "--ws-addr", "127.0.0.1:0", "--mqtts-addr", "127.0.0.1:0", "--https-addr", "127.0.0.1:0"}, args...)...)
	s.cmd.Env = append(os.Environ(), "GATEHOUSE_LOG_LEVEL=debug")
	// The server writes its stdout into a pipe that the test holds open
	// too, so that it can write a sentinel line after the server's output
	// and know, once the sentinel is read, that everything before it was.
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	s.cmd.Stdout = pw
	s.cmd.Stderr = lockedWriter{&s.mu, &s.stderr}
	if err := s.cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
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
	found, drained := make(chan struct{}), make(chan struct{})
	go func() {
		defer pr.Close()
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			if line == stdoutSentinel {
				close(drained)
				continue
			}
			s.mu.Lock()
			s.stdout.WriteString(line + "\n")
			s.mu.Unlock()
			if strings.Contains(line, "data dir") {
				close(found)
			}
		}
	}()
	select {
	case <-found:
	case err := <-s.done:
		t.Fatalf("server exited early: %v\nstderr:\n%s", err, s.Stderr())
	case <-time.After(30 * time.Second):
		t.Fatalf("server did not start\nstderr:\n%s", s.Stderr())
	}
	// The bootstrap lines, if any, follow the data dir line, all written
	// before the server serves HTTP: once it answers, they are in the
	// pipe, and the sentinel written after them is read after them.
	if m := listenRE.FindStringSubmatch(s.Stdout()); m != nil {
		health := "http://" + m[1] + "/healthz"
		testenv.Eventually(t, 30*time.Second, "the server answering "+health, func() bool {
			resp, err := http.Get(health)
			if err != nil {
				return false
			}
			resp.Body.Close()
			return true
		})
	}
	if _, err := pw.WriteString(stdoutSentinel + "\n"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-drained:
	case <-time.After(30 * time.Second):
		t.Fatal("the sentinel written after the server's banner was not read")
	}
	out := s.Stdout()
	if m := listenRE.FindStringSubmatch(out); m != nil {
		s.URL = "http://" + m[1]
	}
	if m := tokenRE.FindStringSubmatch(out); m != nil {
		s.Token = m[1]
	}
	if m := passRE.FindStringSubmatch(out); m != nil {
		s.Pass = m[1]
	}
	if m := mqttRE.FindStringSubmatch(out); m != nil {
		s.MQTT = m[1]
	}
	if m := wsRE.FindStringSubmatch(out); m != nil {
		s.WS = m[1]
	}
	if m := mqttsRE.FindStringSubmatch(out); m != nil {
		s.MQTTS = m[1]
	}
	if m := httpsRE.FindStringSubmatch(out); m != nil {
		s.HTTPS = m[1]
	}
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
