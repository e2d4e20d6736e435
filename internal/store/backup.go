package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ErrBackupUnsupported is returned by Backup on PostgreSQL, whose own tools
// (pg_dump, pg_restore) do the job better than Gatehouse could.
var ErrBackupUnsupported = errors.New("store: online backup is for SQLite; back up PostgreSQL with pg_dump (and restore with pg_restore or psql)")

// Backup writes a consistent copy of a SQLite database to path while the
// database stays in use: SQLite's VACUUM INTO reads one snapshot (WAL mode
// lets writers go on meanwhile) and writes a compact, standalone file. path
// must not exist. The copy is written next to path and renamed into place,
// so path holds either nothing or a complete backup.
func (s *Store) Backup(ctx context.Context, path string) error {
	if s.dialect != dialectSQLite {
		return ErrBackupUnsupported
	}
	if path == "" {
		return errors.New("store: backup: no output path")
	}
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("store: backup: %s: %w", path, ErrExists)
	}
	tmp, err := tempName(path)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	// The target is bound, not spliced into the SQL: SQLite evaluates the
	// INTO argument as an expression.
	if _, err := s.db.ExecContext(ctx, `VACUUM INTO ?`, tmp); err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	if err := syncFile(tmp); err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	if err := noReplaceRename(tmp, path); err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	return syncDir(filepath.Dir(path))
}

// SQLiteFileInfo describes a SQLite database file checked by VerifySQLite.
type SQLiteFileInfo struct {
	// SchemaVersion is the newest migration applied to the file; Binary is
	// the newest this binary knows.
	SchemaVersion, Binary int
	// Things counts the registered things, as a sanity figure to print.
	Things int
}

// VerifySQLite opens the SQLite file at path read-only and checks that it
// is an intact Gatehouse database this binary can run: PRAGMA
// integrity_check passes and its schema version is not newer than the
// binary's (ErrTooNew). It never writes to the file.
func VerifySQLite(ctx context.Context, path string) (SQLiteFileInfo, error) {
	var info SQLiteFileInfo
	if _, err := os.Stat(path); err != nil {
		return info, fmt.Errorf("store: %w", err)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		return info, fmt.Errorf("store: open %s: %w", path, err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	var check string
	if err := db.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&check); err != nil {
		return info, fmt.Errorf("store: %s is not a readable SQLite database: %w", path, err)
	}
	if check != "ok" {
		return info, fmt.Errorf("store: %s fails the integrity check: %s", path, check)
	}
	if err := db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&info.SchemaVersion); err != nil {
		return info, fmt.Errorf("store: %s is not a Gatehouse database (no schema version): %w", path, err)
	}
	ms, err := dialectSQLite.migrations()
	if err != nil {
		return info, err
	}
	if len(ms) > 0 {
		info.Binary = ms[len(ms)-1].version
	}
	if info.SchemaVersion > info.Binary {
		return info, fmt.Errorf("store: %s is at schema version %d, this binary knows up to %d: %w", path, info.SchemaVersion, info.Binary, ErrTooNew)
	}
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM things`).Scan(&info.Things); err != nil {
		return info, fmt.Errorf("store: %s: count things: %w", path, err)
	}
	return info, nil
}

// ErrLocked means another process (a running server) has the database open.
var ErrLocked = errors.New("database is open in another process (is the server running?)")

// RestoreSQLite replaces the SQLite database named by dsn ("sqlite:PATH")
// with the backup file at from. It verifies the backup first (see
// VerifySQLite), refuses when PATH exists unless force is set, and refuses
// with ErrLocked when another process has PATH open, which a running
// server always has. The new database is copied next to PATH, synced and
// renamed over it, and stale -wal/-shm files of the old one are removed
// first, so SQLite never applies an old write-ahead log to the new file.
func RestoreSQLite(ctx context.Context, from, dsn string, force bool) (SQLiteFileInfo, error) {
	if !strings.HasPrefix(dsn, "sqlite:") {
		return SQLiteFileInfo{}, ErrBackupUnsupported
	}
	target := strings.TrimPrefix(strings.TrimPrefix(dsn, "sqlite:"), "//")
	if target == "" || target == ":memory:" {
		return SQLiteFileInfo{}, fmt.Errorf("store: restore: %q is not a database file", target)
	}
	info, err := VerifySQLite(ctx, from)
	if err != nil {
		return info, err
	}
	if abs1, err1 := filepath.Abs(from); err1 == nil {
		if abs2, err2 := filepath.Abs(target); err2 == nil && abs1 == abs2 {
			return info, errors.New("store: restore: the backup is the database itself")
		}
	}
	if _, err := os.Stat(target); err == nil {
		if !force {
			return info, fmt.Errorf("store: restore: %s exists (use --force to replace it): %w", target, ErrExists)
		}
		if err := takeOver(ctx, target); err != nil {
			return info, err
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return info, fmt.Errorf("store: restore: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
		return info, fmt.Errorf("store: restore: %w", err)
	}
	tmp, err := tempName(target)
	if err != nil {
		return info, err
	}
	defer os.Remove(tmp)
	if err := copyFile(from, tmp); err != nil {
		return info, fmt.Errorf("store: restore: %w", err)
	}
	// A -wal or -shm left by the old database would be read as belonging
	// to the new one.
	for _, suffix := range []string{"-wal", "-shm", "-journal"} {
		if err := os.Remove(target + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return info, fmt.Errorf("store: restore: %w", err)
		}
	}
	if err := os.Rename(tmp, target); err != nil {
		return info, fmt.Errorf("store: restore: %w", err)
	}
	return info, syncDir(filepath.Dir(target))
}

// takeOver makes sure no other process has the database at path open. It
// switches the database out of WAL mode, which SQLite allows only to the
// sole connection: a running server keeps connections open, so the switch
// fails (or is ignored) and the restore stops before touching anything. The
// switch also checkpoints and removes the old write-ahead log.
func takeOver(ctx context.Context, path string) error {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(0)")
	if err != nil {
		return fmt.Errorf("store: restore: open %s: %w", path, err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	var mode string
	if err := db.QueryRowContext(ctx, `PRAGMA journal_mode=DELETE`).Scan(&mode); err != nil {
		return fmt.Errorf("store: restore: %s: %w (%v)", path, ErrLocked, err)
	}
	if !strings.EqualFold(mode, "delete") {
		return fmt.Errorf("store: restore: %s: %w", path, ErrLocked)
	}
	// A process holding a read transaction (or in rollback mode, any lock)
	// makes an exclusive lock impossible.
	if _, err := db.ExecContext(ctx, `BEGIN EXCLUSIVE; COMMIT`); err != nil {
		return fmt.Errorf("store: restore: %s: %w (%v)", path, ErrLocked, err)
	}
	return nil
}

// tempName returns an unused file name in path's directory.
func tempName(path string) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return "", fmt.Errorf("store: %w", err)
	}
	name := f.Name()
	f.Close()
	// VACUUM INTO refuses an existing (even empty) file.
	if err := os.Remove(name); err != nil {
		return "", fmt.Errorf("store: %w", err)
	}
	return name, nil
}

func copyFile(from, to string) error {
	src, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(src); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// noReplaceRename renames from to to unless to exists (checked then
// renamed: a race with another writer of to is the caller's business).
func noReplaceRename(from, to string) error {
	if err := os.Link(from, to); err == nil {
		return os.Remove(from)
	} else if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%s: %w", to, ErrExists)
	}
	if _, err := os.Lstat(to); err == nil {
		return fmt.Errorf("%s: %w", to, ErrExists)
	}
	return os.Rename(from, to)
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// syncDir makes a rename durable; filesystems that cannot sync a
// directory are not an error.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return nil
	}
	defer f.Close()
	_ = f.Sync()
	return nil
}

// BackupSQLite backs up the SQLite database named by dsn ("sqlite:PATH")
// to out (see Store.Backup) without migrating it or creating it: a running
// server may hold it, and a gatehouse binary newer than that server must
// not change its schema underneath. PostgreSQL DSNs get
// ErrBackupUnsupported.
func BackupSQLite(ctx context.Context, dsn, out string) error {
	if !strings.HasPrefix(dsn, "sqlite:") {
		return ErrBackupUnsupported
	}
	p := strings.TrimPrefix(strings.TrimPrefix(dsn, "sqlite:"), "//")
	if p == "" || p == ":memory:" {
		return fmt.Errorf("store: backup: %q is not a database file", p)
	}
	if _, err := os.Stat(p); err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	db, err := sql.Open("sqlite", "file:"+p+"?mode=rw&_pragma=busy_timeout(10000)")
	if err != nil {
		return fmt.Errorf("store: open sqlite: %w", err)
	}
	s := &Store{conn: conn{ex: db, dialect: dialectSQLite, stmts: &stmtCache{db: db, m: map[string]*sql.Stmt{}}}, db: db}
	defer s.Close()
	if err := db.PingContext(ctx); err != nil {
		return fmt.Errorf("store: connect sqlite: %w", err)
	}
	return s.Backup(ctx, out)
}
