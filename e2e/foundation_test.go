package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse-iot/gatehouse/internal/store/storetest"
)

// TestQuickStart follows the README: start on the embedded default, use
// the printed admin token with curl and with the CLI, restart, stop.
func TestQuickStart(t *testing.T) {
	t.Parallel()
	for _, d := range storetest.Drivers() {
		t.Run(d.Name, func(t *testing.T) {
			dataDir := t.TempDir()
			args := []string{"--data-dir", dataDir}
			if d.Name == "postgres" {
				args = append(args, "--dsn", d.DSN(t))
			}
			s := startServer(t, args...)
			if s.Token == "" || s.Pass == "" || s.URL == "" {
				t.Fatalf("banner lacks URL, token or password:\n%s", s.Stdout())
			}
			if code, body := curl(t, "GET", s.URL+"/healthz", "", ""); code != 200 || body != "ok\n" {
				t.Errorf("/healthz = %d %q", code, body)
			}
			if code, _ := curl(t, "GET", s.URL+"/readyz", "", ""); code != 200 {
				t.Errorf("/readyz = %d", code)
			}
			code, body := curl(t, "POST", s.URL+"/api/v1/thing-types", s.Token, `{"name":"pump","scopes":["publish"],"attributeSchema":[{"name":"site","required":true}]}`)
			if code != 201 {
				t.Fatalf("create thing type = %d %s", code, body)
			}
			out, errOut, err := s.cli(t, "", "things", "create", "pump-1", "--type", "pump", "--attr", "site=north")
			if err != nil || !strings.Contains(out, `"name": "pump-1"`) {
				t.Fatalf("things create: %v\n%s%s", err, out, errOut)
			}
			_, errOut, err = s.cli(t, "", "things", "create", "pump-2", "--type", "pump")
			if err == nil || !strings.Contains(errOut, "attributes.site: required") {
				t.Errorf("things create without required attribute: err %v, stderr %q", err, errOut)
			}
			if _, _, err := s.cli(t, "correct horse battery\n", "users", "create", "alice", "--password-stdin", "--email", "alice@example.com"); err != nil {
				t.Fatalf("users create: %v", err)
			}
			if out, errOut, err := s.cli(t, "", "relationships", "add", "user", "alice", "owner", "thing", "pump-1"); err != nil {
				t.Fatalf("relationships add: %v %s %s", err, out, errOut)
			}
			out, _, err = s.cli(t, "", "events", "list", "--type", "thing.")
			if err != nil || !strings.Contains(out, `"thing.created"`) || !strings.Contains(out, `"user:admin"`) {
				t.Errorf("events list: %v\n%s", err, out)
			}
			if code, _ := curl(t, "GET", s.URL+"/api/v1/things", "", ""); code != 401 {
				t.Errorf("unauthenticated list = %d, want 401", code)
			}
			if code, body := curl(t, "GET", s.URL+"/metrics", "", ""); code != 200 || !strings.Contains(body, "gatehouse_things 1") || !strings.Contains(body, "gatehouse_http_requests_total") {
				t.Errorf("/metrics = %d, missing gatehouse metrics", code)
			}
			if strings.Contains(s.Stderr(), s.Token) || strings.Contains(s.Stderr(), s.Pass) || strings.Contains(s.Stderr(), "correct horse") {
				t.Errorf("the log contains a secret:\n%s", s.Stderr())
			}
			if err := s.stop(t); err != nil {
				t.Errorf("exit after SIGTERM: %v\n%s", err, s.Stderr())
			}

			// A restart keeps the data and creates no second administrator.
			s2 := startServer(t, args...)
			if strings.Contains(s2.Stdout(), "admin token") {
				t.Errorf("restart bootstrapped again:\n%s", s2.Stdout())
			}
			s2.Token = s.Token
			if code, body := curl(t, "GET", s2.URL+"/api/v1/things/pump-1", s.Token, ""); code != 200 || !strings.Contains(body, `"site":"north"`) {
				t.Errorf("after restart GET pump-1 = %d %s", code, body)
			}
			s2.stop(t)
		})
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "gatehouse.yaml")
	os.WriteFile(cfg, []byte("http:\n  addr: nowhere\nlog:\n  level: loud\n"), 0o600)
	cmd := exec.Command(binary, "serve", "--config", cfg, "--data-dir", dir)
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatal("serve with a bad config succeeded")
	}
	for _, want := range []string{"http.addr", "log.level"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output does not report %s:\n%s", want, out)
		}
	}
	os.WriteFile(cfg, []byte("http:\n  adress: 127.0.0.1:1\n"), 0o600)
	out, err = exec.Command(binary, "serve", "--config", cfg).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "adress") {
		t.Errorf("unknown key: err %v, output:\n%s", err, out)
	}
}

// TestAdminTokenRecovery mints a token offline and uses it.
func TestAdminTokenRecovery(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	s := startServer(t, "--data-dir", dataDir)
	out, err := exec.Command(binary, "admin-token", "--data-dir", dataDir, "--name", "rescue").Output()
	if err != nil {
		t.Fatalf("admin-token: %v", err)
	}
	tok := strings.TrimSpace(string(out))
	if code, body := curl(t, "GET", s.URL+"/api/v1/things", tok, ""); code != 200 {
		t.Errorf("list with recovered token = %d %s", code, body)
	}
	s.stop(t)
}
