package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/gatehouse-iot/gatehouse/internal/store"
)

const pgBackupHint = "the database is PostgreSQL: back it up with pg_dump and restore with pg_restore (see docs/operations.md)"

func runBackup(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "backup", "backup --out FILE [--data-dir DIR | --dsn sqlite:PATH | --config FILE]: "+
		"write a consistent copy of the SQLite database; the server may keep running. "+
		"The master key is NOT included: back it up separately")
	load := serverFlags(fs)
	out := fs.String("out", "", "backup file to write (must not exist)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected arguments %q", pos)
	}
	if *out == "" {
		return usagef("--out FILE is required")
	}
	c, err := load(env)
	if err != nil {
		return err
	}
	if !strings.HasPrefix(c.Store.DSN, "sqlite:") {
		return errors.New(pgBackupHint)
	}
	if err := store.BackupSQLite(ctx, c.Store.DSN, *out); err != nil {
		if errors.Is(err, store.ErrExists) {
			return fmt.Errorf("%s exists; choose a new file name", *out)
		}
		return err
	}
	info, err := store.VerifySQLite(ctx, *out)
	if err != nil {
		return fmt.Errorf("the backup written to %s does not verify: %w", *out, err)
	}
	fmt.Fprintf(env.Stderr, "backed up %s to %s (schema version %d, %d things)\n",
		strings.TrimPrefix(c.Store.DSN, "sqlite:"), *out, info.SchemaVersion, info.Things)
	fmt.Fprintf(env.Stderr, "the master key (%s) is not in the backup: keep a copy of it, stored apart from the backup\n", c.Secrets.MasterKeyFile)
	return nil
}

func runRestore(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "restore", "restore --in FILE [--force] [--data-dir DIR | --dsn sqlite:PATH | --config FILE]: "+
		"replace the SQLite database with a backup; stop the server first")
	load := serverFlags(fs)
	in := fs.String("in", "", "backup file made by `gatehouse backup`")
	force := fs.Bool("force", false, "replace an existing database")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected arguments %q", pos)
	}
	if *in == "" {
		return usagef("--in FILE is required")
	}
	c, err := load(env)
	if err != nil {
		return err
	}
	if !strings.HasPrefix(c.Store.DSN, "sqlite:") {
		return errors.New(pgBackupHint)
	}
	info, err := store.RestoreSQLite(ctx, *in, c.Store.DSN, *force)
	target := strings.TrimPrefix(c.Store.DSN, "sqlite:")
	switch {
	case errors.Is(err, store.ErrExists):
		return fmt.Errorf("%s exists; stop the server and pass --force to replace it", target)
	case errors.Is(err, store.ErrLocked):
		return fmt.Errorf("%s is in use: stop the server before restoring", target)
	case errors.Is(err, store.ErrTooNew):
		return fmt.Errorf("%w; restore it with a newer gatehouse", err)
	case err != nil:
		return err
	}
	fmt.Fprintf(env.Stderr, "restored %s to %s (schema version %d, %d things)\n", *in, target, info.SchemaVersion, info.Things)
	key := filepath.Clean(c.Secrets.MasterKeyFile)
	if _, err := os.Stat(key); err != nil {
		fmt.Fprintf(env.Stderr, "WARNING: no master key at %s: put the key the backup was made with there before starting the server,\n"+
			"or the server creates a new one and cannot open the CA and signing keys in the restored database\n", key)
		return nil
	}
	fmt.Fprintf(env.Stderr, "start the server with the master key the backup was made with (%s); keys sealed with another key cannot be read\n", key)
	return nil
}
