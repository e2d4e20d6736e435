package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// gatehouse runs the binary offline (no server URL or token).
func gatehouse(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), binary, args...).CombinedOutput()
	return string(out), err
}

// TestBackupRestoreSQLite backs up the database of a running server, wipes
// it after the server stops, restores it and starts again with the same
// master key: the registry is back and a thing's secret still gets a
// token (as does a token issued before the backup still introspect).
func TestBackupRestoreSQLite(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	// A fixed issuer: the HTTP port changes between the two runs.
	args := []string{"--data-dir", dataDir, "--external-url", "http://gatehouse.backup.test"}
	s := startServer(t, args...)
	s.admin(t, "POST", "/api/v1/thing-types", `{"name":"meter","scopes":["read"]}`, 201)
	s.admin(t, "POST", "/api/v1/things", `{"name":"meter-1","thingType":"meter","attributes":{"site":"north"}}`, 201)
	secret := s.admin(t, "POST", "/api/v1/things/meter-1/secret", "", 201)["clientSecret"].(string)
	s.admin(t, "POST", "/api/v1/users", `{"username":"bob","password":"correct horse battery"}`, 201)
	before := clientCredentials(t, s, "meter-1", secret, "read")

	backup := filepath.Join(t.TempDir(), "gatehouse-backup.db")
	out, err := gatehouse(t, "backup", "--data-dir", dataDir, "--out", backup)
	if err != nil {
		t.Fatalf("backup of a running server: %v\n%s", err, out)
	}
	if !strings.Contains(out, "master key") {
		t.Errorf("backup does not remind of the master key:\n%s", out)
	}
	if out, err := gatehouse(t, "backup", "--data-dir", dataDir, "--out", backup); err == nil {
		t.Errorf("backup over an existing file succeeded:\n%s", out)
	}
	if out, err := gatehouse(t, "backup", "--dsn", "postgres://gh@db.invalid/gh", "--out", backup+".pg"); err == nil || !strings.Contains(out, "pg_dump") {
		t.Errorf("backup of PostgreSQL: err %v, want a pg_dump hint:\n%s", err, out)
	}
	// The server holds the database: restore refuses, with or without --force.
	if out, err := gatehouse(t, "restore", "--data-dir", dataDir, "--in", backup); err == nil || !strings.Contains(out, "--force") {
		t.Errorf("restore over an existing database: err %v\n%s", err, out)
	}
	if out, err := gatehouse(t, "restore", "--data-dir", dataDir, "--in", backup, "--force"); err == nil || !strings.Contains(out, "stop the server") {
		t.Errorf("restore under a running server: err %v\n%s", err, out)
	}
	// Written after the backup: gone after the restore.
	s.admin(t, "POST", "/api/v1/things", `{"name":"meter-late","thingType":"meter"}`, 201)
	if err := s.stop(t); err != nil {
		t.Fatalf("stop: %v", err)
	}

	matches, _ := filepath.Glob(filepath.Join(dataDir, "gatehouse.db*"))
	if len(matches) == 0 {
		t.Fatalf("no database in %s", dataDir)
	}
	for _, m := range matches {
		if err := os.Remove(m); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(filepath.Join(dataDir, "master.key")); err != nil {
		t.Fatalf("master key: %v", err)
	}
	out, err = gatehouse(t, "restore", "--data-dir", dataDir, "--in", backup)
	if err != nil {
		t.Fatalf("restore: %v\n%s", err, out)
	}

	s2 := startServer(t, args...)
	if strings.Contains(s2.Stdout(), "admin token") {
		t.Fatalf("the restored server bootstrapped again:\n%s", s2.Stdout())
	}
	s2.Token = s.Token // the admin API token is in the backup
	if m := s2.admin(t, "GET", "/api/v1/things/meter-1", "", 200); m["attributes"].(map[string]any)["site"] != "north" {
		t.Errorf("restored meter-1 = %v", m)
	}
	s2.admin(t, "GET", "/api/v1/users/bob", "", 200)
	s2.admin(t, "GET", "/api/v1/things/meter-late", "", 404)
	after := clientCredentials(t, s2, "meter-1", secret, "read")
	if !introspect(t, s2, "meter-1", secret, after) {
		t.Error("a token issued after the restore is not active")
	}
	if !introspect(t, s2, "meter-1", secret, before) {
		t.Error("a token issued before the backup is not active after the restore (signing keys lost?)")
	}
	if err := s2.stop(t); err != nil {
		t.Errorf("stop: %v", err)
	}
}
