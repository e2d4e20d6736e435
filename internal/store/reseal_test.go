package store

import (
	"io/fs"
	"regexp"
	"slices"
	"testing"
)

// TestSealedColumnsCoverSchema: every sealed_* column the migrations
// create is in sealedColumns, so a master key rotation reseals it (both
// dialects render from the same files).
func TestSealedColumnsCoverSchema(t *testing.T) {
	known := SealedColumns()
	re := regexp.MustCompile(`(?m)(?:^\s*|ADD COLUMN )(\w*sealed\w*|assignment_secret)\s`)
	table := regexp.MustCompile(`(?i)CREATE TABLE (\w+)|ALTER TABLE (\w+) ADD COLUMN`)
	err := fs.WalkDir(migrationFS, "migrations", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := migrationFS.ReadFile(path)
		if err != nil {
			return err
		}
		text := string(b)
		for _, m := range re.FindAllStringSubmatchIndex(text, -1) {
			col := text[m[2]:m[3]]
			// The table is the last CREATE/ALTER TABLE before the column.
			var name string
			for _, tm := range table.FindAllStringSubmatch(text[:m[3]], -1) {
				name = tm[1] + tm[2]
			}
			if !slices.Contains(known, name+"."+col) {
				t.Errorf("%s: %s.%s holds sealed values but is not in store.sealedColumns", path, name, col)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
