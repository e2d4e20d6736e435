package store_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/gatehouse-iot/gatehouse/internal/store"
	"github.com/gatehouse-iot/gatehouse/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	for _, d := range storetest.Drivers() {
		t.Run(d.Name, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) string { return d.DSN(t) })
		})
	}
}

// TestSQLiteFilesArePrivate: the SQLite database and its -wal and -shm
// files are created 0600 in a world-writable data directory, whatever the
// umask lets through.
func TestSQLiteFilesArePrivate(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	probe := filepath.Join(dir, "probe")
	if err := os.WriteFile(probe, nil, 0o666); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(probe); err != nil || fi.Mode().Perm()&0o077 == 0 {
		t.Logf("the umask already hides group and other bits (%v): the test cannot fail here", fi.Mode())
	}
	path := filepath.Join(dir, "gatehouse.db")
	s, err := store.Open(context.Background(), "sqlite:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Migrations wrote through the WAL, so all three files exist now.
	for _, name := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != 0o600 {
			t.Errorf("%s: mode %v, want 0600", filepath.Base(name), got)
		}
	}
}

// TestOpenReadOnly: a read-only store reads what the server wrote and
// refuses every write; a database that does not exist or was never
// migrated is refused, not created.
func TestOpenReadOnly(t *testing.T) {
	ctx := context.Background()
	for _, d := range storetest.Drivers() {
		t.Run(d.Name, func(t *testing.T) {
			dsn := d.DSN(t)
			w, err := store.Open(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			if err := w.CreateThingType(ctx, &store.ThingType{Name: "sensor"}); err != nil {
				t.Fatal(err)
			}
			r, err := store.OpenReadOnly(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if _, err := r.GetThingType(ctx, "sensor"); err != nil {
				t.Errorf("GetThingType = %v, want the server's thing type", err)
			}
			if err := r.CreateThingType(ctx, &store.ThingType{Name: "other"}); err == nil {
				t.Error("CreateThingType through the read-only store succeeded, want an error")
			}
		})
	}
	t.Run("missing", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "none.db")
		if s, err := store.OpenReadOnly(ctx, "sqlite:"+path); err == nil {
			s.Close()
			t.Fatal("OpenReadOnly of a missing file succeeded, want an error")
		}
		if _, err := os.Stat(path); err == nil {
			t.Error("OpenReadOnly created the database file")
		}
	})
}
