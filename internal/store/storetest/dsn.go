package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver for schema set-up
)

// PostgresEnv names the environment variable holding the PostgreSQL URL
// tests run against, e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable.
const PostgresEnv = "GATEHOUSE_TEST_POSTGRES"

// SQLiteDSN returns the DSN of a new SQLite database in t.TempDir().
func SQLiteDSN(t testing.TB) string {
	return "sqlite:" + filepath.Join(t.TempDir(), "gatehouse.db")
}

// PostgresDSN creates a fresh schema on the server named by
// GATEHOUSE_TEST_POSTGRES and returns a DSN whose search_path selects it;
// the schema is dropped when the test ends. Without the variable the test is
// skipped.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	base := os.Getenv(PostgresEnv)
	if base == "" {
		t.Skip(PostgresEnv + " is not set: no PostgreSQL runs (make test sets one up)")
	}
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	schema := "t_" + hex.EncodeToString(b)
	db, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("open %s: %v", PostgresEnv, err)
	}
	if err := db.PingContext(t.Context()); err != nil {
		db.Close()
		t.Fatalf("PostgreSQL at %s=%s does not answer: run `make test-deps` to set it up, or set %s= (empty) to skip the PostgreSQL runs", PostgresEnv, base, PostgresEnv)
	}
	if _, err := db.ExecContext(t.Context(), "CREATE SCHEMA "+schema); err != nil {
		db.Close()
		t.Fatalf("create schema on %s: %v", PostgresEnv, err)
	}
	t.Cleanup(func() {
		defer db.Close()
		// The DROP can be chosen as a deadlock victim (40P01) against the
		// last statements of a pool that is closing; it is tried again.
		var err error
		for range 5 {
			if _, err = db.Exec("DROP SCHEMA " + schema + " CASCADE"); err == nil || !strings.Contains(err.Error(), "40P01") {
				break
			}
		}
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parse %s: %v", PostgresEnv, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// Drivers lists the store drivers a test should run against, by name, with a
// function making a fresh DSN for each.
func Drivers() []struct {
	Name string
	DSN  func(testing.TB) string
} {
	return []struct {
		Name string
		DSN  func(testing.TB) string
	}{{"sqlite", SQLiteDSN}, {"postgres", PostgresDSN}}
}

// LosablePostgresDSN is PostgresDSN with an application name of its own,
// and a function that ends every server connection opened with it (as a
// failover or an administrator's pg_terminate_backend would) and returns
// once PostgreSQL lists none: for tests of lost connections. Without
// GATEHOUSE_TEST_POSTGRES the test is skipped.
func LosablePostgresDSN(t testing.TB) (dsn string, terminate func(t testing.TB)) {
	t.Helper()
	dsn = PostgresDSN(t)
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	app := "gh-losable-" + hex.EncodeToString(b)
	admin, err := sql.Open("pgx", os.Getenv(PostgresEnv))
	if err != nil {
		t.Fatalf("open %s: %v", PostgresEnv, err)
	}
	t.Cleanup(func() { admin.Close() })
	terminate = func(t testing.TB) {
		t.Helper()
		// Background pollers may open new connections meanwhile: those
		// are ended too, until none is left.
		deadline := time.Now().Add(10 * time.Second)
		for {
			var n int
			if err := admin.QueryRowContext(context.Background(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1`, app).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d connections survive pg_terminate_backend", n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return dsn + "&application_name=" + app, terminate
}
