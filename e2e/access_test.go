package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// as runs a client command of the binary against s with another API token.
func (s *server) as(t *testing.T, token string, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(os.Environ(), "GATEHOUSE_SERVER="+s.URL, "GATEHOUSE_TOKEN="+token)
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	return o.String(), e.String(), err
}

// userToken creates a user and an API token with role user for them.
func userToken(t *testing.T, s *server, name string) string {
	t.Helper()
	if _, e, err := s.cli(t, "long-enough-password\n", "users", "create", name, "--password-stdin"); err != nil {
		t.Fatalf("users create %s: %v %s", name, err, e)
	}
	out, e, err := s.cli(t, "", "api-tokens", "create", name+"-cli", "--role", "user", "--user", name)
	if err != nil {
		t.Fatalf("api-tokens create: %v %s", err, e)
	}
	var tok struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal([]byte(out), &tok); err != nil || tok.Token == "" {
		t.Fatalf("token output %q: %v", out, err)
	}
	return tok.Token
}

// TestAccessRequestsCLI walks the access request commands of docs/walkthroughs/access-requests.md: a user
// asks, the owner approves for a while, the grant shows as an expiring
// relationship; a second request is cancelled.
func TestAccessRequestsCLI(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--data-dir", t.TempDir())
	if _, e, err := s.cli(t, "", "things", "create", "pump-1"); err != nil {
		t.Fatalf("things create: %v %s", err, e)
	}
	alice, bob := userToken(t, s, "alice"), userToken(t, s, "bob")
	if _, e, err := s.cli(t, "", "relationships", "add", "user", "alice", "owner", "thing", "pump-1"); err != nil {
		t.Fatalf("relationships add: %v %s", err, e)
	}

	out, e, err := s.as(t, bob, "access-requests", "create", "pump-1", "--relation", "operator", "--reason", "replace the seal")
	if err != nil {
		t.Fatalf("create: %v %s", err, e)
	}
	var req struct {
		ID, State, GrantExpiresAt string
	}
	if err := json.Unmarshal([]byte(out), &req); err != nil || req.State != "pending" {
		t.Fatalf("create output %q: %v", out, err)
	}
	if _, e, err := s.as(t, bob, "access-requests", "approve", req.ID); err == nil || !strings.Contains(e, "403") {
		t.Errorf("requester approving: err %v, stderr %q; want a 403", err, e)
	}
	if out, _, _ := s.as(t, alice, "access-requests", "list", "--state", "pending"); !strings.Contains(out, req.ID) {
		t.Errorf("owner's pending list lacks the request: %s", out)
	}
	out, e, err = s.as(t, alice, "access-requests", "approve", req.ID, "--ttl", "8h", "--note", "today only")
	if err != nil {
		t.Fatalf("approve: %v %s", err, e)
	}
	if err := json.Unmarshal([]byte(out), &req); err != nil || req.State != "approved" || req.GrantExpiresAt == "" {
		t.Fatalf("approve output %q: %v", out, err)
	}
	out, _, _ = s.cli(t, "", "relationships", "list", "--subject", "bob")
	if !strings.Contains(out, `"relation": "operator"`) || !strings.Contains(out, `"expiresAt"`) {
		t.Errorf("bob's relationships: %s", out)
	}

	// An administrator can grant for a while directly, too.
	if out, e, err := s.cli(t, "", "relationships", "add", "user", "alice", "viewer", "thing", "pump-1", "--ttl", "1h"); err != nil || !strings.Contains(out, `"expiresAt"`) {
		t.Errorf("relationships add --ttl: %v %s %s", err, out, e)
	}
	if _, e, err := s.cli(t, "", "relationships", "add", "user", "bob", "viewer", "thing", "pump-1", "--expires", "2001-01-01T00:00:00Z"); err == nil || !strings.Contains(e, "expiresAt") {
		t.Errorf("relationships add with a past expiry: %v %s", err, e)
	}

	out, _, err = s.as(t, bob, "access-requests", "create", "pump-1", "--relation", "viewer", "--reason", "dashboards")
	if err != nil {
		t.Fatal(err)
	}
	_ = json.Unmarshal([]byte(out), &req)
	if out, e, err := s.as(t, bob, "access-requests", "cancel", req.ID); err != nil || !strings.Contains(out, `"cancelled"`) {
		t.Errorf("cancel: %v %s %s", err, out, e)
	}
	out, _, _ = s.cli(t, "", "events", "list", "--type", "access_request.approved")
	if !strings.Contains(out, "user:alice") {
		t.Errorf("approval event: %s", out)
	}
}

// TestRegistryExportImportCLI exports one server's registry, imports it
// into another (dry run first), and imports it again to see nothing change.
func TestRegistryExportImportCLI(t *testing.T) {
	t.Parallel()
	a := startServer(t, "--data-dir", t.TempDir())
	b := startServer(t, "--data-dir", t.TempDir())
	for _, args := range [][]string{
		{"thing-types", "create", "pump", "--attribute", "site:required"},
		{"things", "create", "pump-1", "--type", "pump", "--attr", "site=north"},
		{"things", "create", "pump-2", "--type", "pump", "--attr", "site=south"},
		{"groups", "create", "north"},
		{"groups", "add-member", "north", "thing", "pump-1"},
	} {
		if _, e, err := a.cli(t, "", args...); err != nil {
			t.Fatalf("%v: %v %s", args, err, e)
		}
	}
	dir := t.TempDir()
	for _, format := range []string{"json", "csv"} {
		file := filepath.Join(dir, "registry."+format)
		if _, e, err := a.cli(t, "", "registry", "export", "--format", format, "--out", file); err != nil {
			t.Fatalf("export %s: %v %s", format, err, e)
		}
		if _, e, err := a.cli(t, "", "registry", "export", "--format", format, "--out", file); err == nil {
			t.Errorf("export over an existing file succeeded: %s", e)
		}
		out, e, err := b.cli(t, "", "registry", "import", "--dry-run", file)
		if err != nil {
			t.Fatalf("dry run %s: %v %s", format, err, e)
		}
		if format == "json" && !strings.Contains(out, "dry run: would create 4") {
			t.Errorf("dry run output:\n%s", out)
		}
		if list, _, _ := b.cli(t, "", "things", "list"); format == "json" && strings.Contains(list, "pump-1") {
			t.Errorf("dry run imported things: %s", list)
		}
		if _, e, err := b.cli(t, "", "registry", "import", file); err != nil {
			t.Fatalf("import %s: %v %s", format, err, e)
		}
		out, e, err = b.cli(t, "", "registry", "import", file)
		if err != nil || !strings.Contains(out, "nothing to change") {
			t.Errorf("second import of %s: %v\n%s%s", format, err, out, e)
		}
	}
	bad := filepath.Join(dir, "bad.csv")
	if err := os.WriteFile(bad, []byte("kind,name,thing_type,attributes\nthing,pump-9,pump,\nthing,ok-2,,\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, e, err := b.cli(t, "", "registry", "import", bad)
	if err == nil || !strings.Contains(e, "row 2 (thing pump-9): attributes.site") {
		t.Errorf("bad file: err %v, stderr:\n%s", err, e)
	}
	if list, _, _ := b.cli(t, "", "things", "list"); strings.Contains(list, "ok-2") {
		t.Errorf("a rejected import applied a valid row: %s", list)
	}
}
