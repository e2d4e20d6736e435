package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/store"
	"github.com/gatehouse-iot/gatehouse/internal/store/storetest"
	"github.com/gatehouse-iot/gatehouse/internal/testenv"
)

// TestBackupWhileWriting backs up a SQLite database while writers commit
// transactions that each append a pair of events, then opens the copy: it
// must hold whole transactions only (as many "pair.a" as "pair.b"), at
// least what was committed before the backup started, and nothing
// committed after it finished.
func TestBackupWhileWriting(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := store.Open(ctx, "sqlite:"+filepath.Join(dir, "gatehouse.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	pair := func(n int64) error {
		return s.InTx(ctx, func(tx *store.Tx) error {
			for _, typ := range []string{"pair.a", "pair.b"} {
				if err := tx.AppendEvent(ctx, &store.Event{Time: time.Now(), Type: typ, Subject: fmt.Sprintf("n/%d", n), Actor: "test"}); err != nil {
					return err
				}
			}
			return nil
		})
	}
	var committed atomic.Int64
	for range 50 {
		if err := pair(committed.Add(1)); err != nil {
			t.Fatal(err)
		}
	}
	stop := make(chan struct{})
	var written atomic.Int64 // pairs the writers below committed
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := pair(committed.Add(1)); err != nil {
					errs <- err
					return
				}
				written.Add(1)
			}
		}()
	}
	// The backup starts while the writers are under way.
	testenv.Eventually(t, 10*time.Second, "the writers committing 10 pairs", func() bool { return written.Load() >= 10 })
	before := countEvents(t, s, "pair.a")
	out := filepath.Join(dir, "backup", "copy.db")
	if err := os.Mkdir(filepath.Dir(out), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := s.Backup(ctx, out); err != nil {
		t.Fatalf("Backup: %v", err)
	}
	after := countEvents(t, s, "pair.a")
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("writer: %v", err)
	}
	if err := s.Backup(ctx, out); !errors.Is(err, store.ErrExists) {
		t.Errorf("Backup over an existing file = %v, want ErrExists", err)
	}
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("backup file: %v, mode %v", err, fi.Mode())
	}

	info, err := store.VerifySQLite(ctx, out)
	if err != nil {
		t.Fatalf("VerifySQLite: %v", err)
	}
	if info.SchemaVersion == 0 || info.SchemaVersion != info.Binary {
		t.Errorf("schema version %d, binary %d", info.SchemaVersion, info.Binary)
	}
	c, err := store.Open(ctx, "sqlite:"+out)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	a, b := countEvents(t, c, "pair.a"), countEvents(t, c, "pair.b")
	if a != b {
		t.Errorf("backup holds a torn transaction: %d pair.a, %d pair.b", a, b)
	}
	if a < before || a > after {
		t.Errorf("backup holds %d pairs, want between %d and %d", a, before, after)
	}
	t.Logf("backup holds %d of %d pairs (%d before, %d after)", a, committed.Load(), before, after)
}

func countEvents(t *testing.T, s *store.Store, typ string) int {
	t.Helper()
	n := 0
	var after int64
	for {
		evs, err := s.ListEvents(context.Background(), store.EventFilter{Type: typ, AfterID: after, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 {
			return n
		}
		n += len(evs)
		after = evs[len(evs)-1].ID
	}
}

// TestRestoreSQLite restores a backup: refused over an existing database
// without force, refused while another process (here: another connection)
// has the database open, done atomically otherwise; a backup from a newer
// schema or a file that is no database is refused.
func TestRestoreSQLite(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src, err := store.Open(ctx, "sqlite:"+filepath.Join(dir, "src.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := src.AppendEvent(ctx, &store.Event{Time: time.Now(), Type: "marker", Subject: "x", Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	backup := filepath.Join(dir, "backup.db")
	if err := src.Backup(ctx, backup); err != nil {
		t.Fatal(err)
	}
	src.Close()

	os.Mkdir(filepath.Join(dir, "data"), 0o700)
	targetDSN := "sqlite:" + filepath.Join(dir, "data", "gatehouse.db")
	live, err := store.Open(ctx, targetDSN)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.RestoreSQLite(ctx, backup, targetDSN, false); !errors.Is(err, store.ErrExists) {
		t.Errorf("restore over an existing database without force = %v, want ErrExists", err)
	}
	if _, err := store.RestoreSQLite(ctx, backup, targetDSN, true); !errors.Is(err, store.ErrLocked) {
		t.Errorf("restore while the database is open = %v, want ErrLocked", err)
	}
	if countEvents(t, live, "marker") != 0 {
		t.Fatal("a refused restore changed the live database")
	}
	live.Close()
	if _, err := store.RestoreSQLite(ctx, backup, targetDSN, true); err != nil {
		t.Fatalf("restore: %v", err)
	}
	got, err := store.Open(ctx, targetDSN)
	if err != nil {
		t.Fatal(err)
	}
	if n := countEvents(t, got, "marker"); n != 1 {
		t.Errorf("restored database has %d marker events, want 1", n)
	}
	storetest.MarkMigrated(t, targetDSN, 999999)
	newer := filepath.Join(dir, "newer.db")
	if err := got.Backup(ctx, newer); err != nil {
		t.Fatal(err)
	}
	got.Close()
	if _, err := store.RestoreSQLite(ctx, newer, "sqlite:"+filepath.Join(dir, "other.db"), false); !errors.Is(err, store.ErrTooNew) {
		t.Errorf("restore of a newer schema = %v, want ErrTooNew", err)
	}
	junk := filepath.Join(dir, "junk.db")
	os.WriteFile(junk, []byte("not a database, not at all, really not"), 0o600)
	if _, err := store.RestoreSQLite(ctx, junk, "sqlite:"+filepath.Join(dir, "other.db"), false); err == nil {
		t.Error("restore of a junk file succeeded")
	}
	if _, err := os.Stat(filepath.Join(dir, "other.db")); err == nil {
		t.Error("a refused restore created the target")
	}
}

// TestBackupPostgres: PostgreSQL backups are pg_dump's job.
func TestBackupPostgres(t *testing.T) {
	s, err := store.Open(context.Background(), storetest.PostgresDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.Backup(context.Background(), filepath.Join(t.TempDir(), "x.db"))
	if !errors.Is(err, store.ErrBackupUnsupported) {
		t.Errorf("Backup on PostgreSQL = %v, want ErrBackupUnsupported", err)
	}
}
