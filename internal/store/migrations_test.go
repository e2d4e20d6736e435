package store

import (
	"os"
	"path/filepath"
	"testing"
)

// TestMigrationsRenderAsBefore: each migration is written once and rendered
// per dialect; the rendered SQL is byte for byte what the two dialects'
// hand-written files said when they were folded into one
// (testdata/migrations/{sqlite,postgres}), so no database migrated before
// the fold sees a different schema, and both dialects keep the same set of
// migrations.
func TestMigrationsRenderAsBefore(t *testing.T) {
	for _, d := range []dialect{dialectSQLite, dialectPostgres} {
		t.Run(d.String(), func(t *testing.T) {
			ms, err := d.migrations()
			if err != nil {
				t.Fatal(err)
			}
			rendered := map[string]string{}
			for _, m := range ms {
				rendered[m.name] = m.sql
			}
			golden, err := filepath.Glob(filepath.Join("testdata", "migrations", d.String(), "*.sql"))
			if err != nil || len(golden) == 0 {
				t.Fatalf("no golden migrations: %v", err)
			}
			for _, g := range golden {
				want, err := os.ReadFile(g)
				if err != nil {
					t.Fatal(err)
				}
				got, ok := rendered[filepath.Base(g)]
				if !ok {
					t.Errorf("%s: no migration renders it", g)
					continue
				}
				if got != string(want) {
					t.Errorf("%s: rendered SQL differs from the golden file:\n%s", g, got)
				}
			}
		})
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
