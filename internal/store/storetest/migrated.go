package storetest

import (
	"database/sql"
	"strings"
	"testing"

	_ "modernc.org/sqlite" // the "sqlite" driver, as the store uses it
)

// MarkMigrated records migration version in the database at dsn without
// running it, over a connection of its own, to simulate a database that a
// newer binary migrated. The store has no such method: production code
// cannot fake its schema version. On SQLite it sets no busy timeout on
// purpose: called right after Store.Close, it finds the file locked if
// the store left a connection open (it did while a statement was being
// prepared in the background: "database is locked (261)").
func MarkMigrated(t testing.TB, dsn string, version int) {
	t.Helper()
	driver, source, placeholder := "pgx", dsn, "$1, $2, $3"
	if p, ok := strings.CutPrefix(dsn, "sqlite:"); ok {
		driver, source, placeholder = "sqlite", "file:"+strings.TrimPrefix(p, "//"), "?, ?, ?"
	}
	db, err := sql.Open(driver, source)
	if err != nil {
		t.Fatalf("open %s: %v", driver, err)
	}
	defer db.Close()
	if _, err := db.ExecContext(t.Context(), `INSERT INTO schema_migrations (version, name, applied_at) VALUES (`+placeholder+`)`, version, "test", 0); err != nil {
		t.Fatalf("mark migration %d: %v", version, err)
	}
}
