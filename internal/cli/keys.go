package cli

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	iofs "io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/app"
	"github.com/gatehouse-iot/gatehouse/internal/seal"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// runKeys is `gatehouse keys`: the key lifecycle. `rotate` makes a new
// OAuth signing key through the admin API of a running server (the old
// one stays in the JWKS, so tokens it signed keep verifying);
// `rotate-master` re-seals every sealed value in the database under a new
// master key, offline.
func runKeys(ctx context.Context, env *Env, args []string) error {
	return sub(ctx, env, "keys", args, map[string]func(context.Context, *Env, []string) error{
		"rotate": func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "keys rotate", "keys rotate: make a new OAuth signing key now (the previous one stays published until the next rotation)")
			c, _, err := setup(env, fs, args, 0)
			if err != nil {
				return err
			}
			if err := c.do(ctx, "POST", "/api/v1/oauth/rotate-keys", nil, nil, nil); err != nil {
				return err
			}
			fmt.Fprintln(env.Stdout, "rotated: new tokens are signed with a new key; tokens signed before stay valid")
			return nil
		},
		"rotate-master": runRotateMaster,
	})
}

func runRotateMaster(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "keys rotate-master", "keys rotate-master --new-key-file F [--data-dir DIR | --dsn DSN | --config FILE] [--master-key-file M]: "+
		"re-seal every key in the database under the master key in F (created if missing) and install it; the server must be stopped")
	load := serverFlags(fs)
	newFile := fs.String("new-key-file", "", "the new master key (base64, as the master key file); created with a random key if it does not exist")
	online := fs.Bool("online", false, "the servers keep running: every one must already run with the new key as secrets.masterKeyFile and the current one in secrets.previousMasterKeyFiles; the key files are not touched")
	force := fs.Bool("force", false, "skip the check that no server uses the database (PostgreSQL: sessions named gatehouse); only with every server stopped")
	keyFile := fs.String("master-key-file", "", "the current master key file (default secrets.masterKeyFile: <data dir>/master.key)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected arguments %q", pos)
	}
	if *newFile == "" {
		return usagef("--new-key-file F is required")
	}
	cfg, err := load(env)
	if err != nil {
		return err
	}
	if *keyFile != "" {
		cfg.Secrets.MasterKeyFile = *keyFile
	}
	current := filepath.Clean(cfg.Secrets.MasterKeyFile)
	if filepath.Clean(*newFile) == current {
		return usagef("--new-key-file must not be the current master key file %s", current)
	}
	oldKey, err := seal.ReadKeyFile(current)
	if err != nil {
		return fmt.Errorf("current master key: %w", err)
	}
	newKey, err := seal.ReadKeyFile(*newFile)
	if errors.Is(err, iofs.ErrNotExist) && !*online {
		if newKey, err = seal.LoadOrCreateKeyFile(*newFile, rand.Reader); err == nil {
			fmt.Fprintf(env.Stderr, "created a new master key in %s\n", *newFile)
		}
	}
	if err != nil {
		return fmt.Errorf("new master key: %w", err)
	}
	oldID, _ := seal.KeyIDOf(oldKey)
	newID, _ := seal.KeyIDOf(newKey)
	if oldID == newID {
		return errors.New("the new master key is the current one")
	}
	// Online, the servers open values under either key, so they may run.
	if !*online {
		if err := store.CheckUnused(ctx, cfg.Store.DSN); err != nil && !(*force && errors.Is(err, store.ErrLocked)) {
			if errors.Is(err, store.ErrLocked) {
				return fmt.Errorf("%w: stop every server using the database before rotating the master key (or see --online)", err)
			}
			return err
		}
	}
	n, err := app.ResealMasterKey(ctx, cfg.Store.DSN, oldKey, newKey)
	if err != nil {
		return err
	}
	resealed, already := n.Resealed, n.Already
	if *online {
		fmt.Fprintf(env.Stdout, "re-sealed %d values (%d already under the new key) from master key %08x to %08x in one transaction\n", resealed, already, oldID, newID)
		fmt.Fprintf(env.Stdout, "the servers no longer need %s: remove it from secrets.previousMasterKeyFiles at the next restart\n", current)
		return nil
	}
	// The database now needs the new key. Keep the old one beside it, then
	// install the new one in its place.
	backup := current + ".old-" + time.Now().UTC().Format("20060102T150405Z")
	if err := os.Link(current, backup); err != nil {
		return fmt.Errorf("the database is resealed under %s, but keeping the old key failed: %w; install %s as %s yourself", *newFile, err, *newFile, current)
	}
	if err := seal.WriteKeyFile(current, newKey); err != nil {
		return fmt.Errorf("the database is resealed under %s, but installing it failed: %w; copy %s to %s yourself", *newFile, err, *newFile, current)
	}
	fmt.Fprintf(env.Stdout, "re-sealed %d values (%d already under the new key) from master key %08x to %08x in one transaction\n", resealed, already, oldID, newID)
	fmt.Fprintf(env.Stdout, "installed the new master key at %s; the old key is kept at %s\n", current, backup)
	fmt.Fprintf(env.Stdout, "every replica needs the new key before it starts; backups made before now need the old key\n")
	return nil
}
