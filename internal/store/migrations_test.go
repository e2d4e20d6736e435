package store

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMigrationsNeverChange: a migration, once released, is never edited —
// a database that applied it would not see the edit. Each one is written
// once and rendered per dialect; testdata/migrations.sha256 holds the
// SHA-256 of every rendered migration (sha256sum's format, one line per
// dialect), the first ones taken from the two dialects' hand-written
// files before they were folded into one source, so the rendered SQL is
// byte for byte what every database applied. A new migration adds its two
// lines (the failure prints them).
func TestMigrationsNeverChange(t *testing.T) {
	f, err := os.Open(filepath.Join("testdata", "migrations.sha256"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := map[string]string{} // dialect/name -> hex SHA-256
	for sc := bufio.NewScanner(f); sc.Scan(); {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok {
			t.Fatalf("migrations.sha256: %q is not \"<sha256>  <dialect>/<name>\"", sc.Text())
		}
		want[name] = sum
	}
	for _, d := range []dialect{dialectSQLite, dialectPostgres} {
		ms, err := d.migrations()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			key := d.String() + "/" + m.name
			sum := sha256.Sum256([]byte(m.sql))
			got := hex.EncodeToString(sum[:])
			switch w, ok := want[key]; {
			case !ok:
				t.Errorf("%s is not in testdata/migrations.sha256; once it is final, add the line\n%s  %s", key, got, key)
			case got != w:
				t.Errorf("%s renders differently from what databases applied (SHA-256 %s, want %s): released migrations never change; add a new one\n%s", key, got, w, m.sql)
			}
			delete(want, key)
		}
	}
	for key := range want {
		t.Errorf("%s is in testdata/migrations.sha256 but no migration renders it", key)
	}
}

// TestRenderRefusesUnknownPlaceholders: a typo in a placeholder is an
// error, not SQL sent to the database.
func TestRenderRefusesUnknownPlaceholders(t *testing.T) {
	for _, d := range []dialect{dialectSQLite, dialectPostgres} {
		if _, err := d.render("9999_x.sql", "CREATE TABLE x (b {{BYTE}});"); err == nil {
			t.Errorf("%s: {{BYTE}} rendered without an error", d)
		}
		got, err := d.render("9999_x.sql", "CREATE TABLE x (b {{BYTES}});")
		if err != nil || got == "" {
			t.Errorf("%s: {{BYTES}}: %q, %v", d, got, err)
		}
	}
}
