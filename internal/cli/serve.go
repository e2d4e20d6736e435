package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/gatehouse-iot/gatehouse/internal/app"
	"github.com/gatehouse-iot/gatehouse/internal/config"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// loadConfig assembles the configuration: defaults < file < env < flags.
// It registers the server flags on fs and returns a function to call after
// fs is parsed.
func serverFlags(fs *flag.FlagSet) func(env *Env) (config.Config, error) {
	file := fs.String("config", "", "YAML configuration file (env GATEHOUSE_CONFIG)")
	// flags maps command-line flags to configuration keys.
	flags := []struct{ key, name, usage string }{
		{"dataDir", "data-dir", "directory for the SQLite database and keys (default ./gatehouse-data)"},
		{"store.dsn", "dsn", "database: sqlite:PATH or postgres://... (default sqlite in the data dir)"},
		{"http.tlsAddr", "https-addr", "HTTPS (mutual TLS) listen address (default 127.0.0.1:8443)"},
		{"http.addr", "http-addr", "HTTP listen address (default 127.0.0.1:8080)"},
		{"http.externalURL", "external-url", "URL clients use to reach the server; the OAuth issuer"},
		{"log.level", "log-level", "debug, info, warn or error"},
		{"log.format", "log-format", "text or json"},
		{"mqtt.addr", "mqtt-addr", "MQTT listen address (default 127.0.0.1:1884)"},
		{"mqtt.wsAddr", "ws-addr", "MQTT over WebSocket listen address (default 127.0.0.1:8083)"},
		{"mqtt.tlsAddr", "mqtts-addr", "MQTT over TLS (client certificates) listen address (default 127.0.0.1:8883)"},
		{"mqtt.anonymousAddr", "mqtt-anonymous-addr", "unauthenticated MQTT listener for interop test suites, loopback only (default off)"},
		{"mqtt.anonymousPolicy", "mqtt-anonymous-policy", "stored policy the anonymous listener's clients are bound to"},
	}
	values := map[string]*string{}
	for _, f := range flags {
		values[f.name] = fs.String(f.name, "", f.usage)
	}
	return func(env *Env) (config.Config, error) {
		c := config.Default()
		path := *file
		if path == "" {
			path = env.Getenv("GATEHOUSE_CONFIG")
		}
		if path != "" {
			f, err := os.Open(path)
			if err != nil {
				return c, fmt.Errorf("config: %w", err)
			}
			err = c.DecodeFile(f)
			f.Close()
			if err != nil {
				return c, fmt.Errorf("%s: %w", path, err)
			}
		}
		if err := c.ApplyEnv(env.Getenv); err != nil {
			return c, err
		}
		// A flag given on the command line wins even when empty: an empty
		// listener address (--ws-addr=) turns that listener off.
		given := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
		for _, f := range flags {
			if v := *values[f.name]; v != "" || given[f.name] {
				if err := c.Set(f.key, v); err != nil {
					return c, err
				}
			}
		}
		c.Finish()
		if err := c.Validate(); err != nil {
			return c, fmt.Errorf("invalid configuration:\n  %s", strings.ReplaceAll(err.Error(), "\n", "\n  "))
		}
		return c, nil
	}
}

func newLogger(env *Env, c config.Config) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Log.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(env.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(env.Stderr, opts))
}

func runServe(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "serve", "serve [flags]")
	load := serverFlags(fs)
	readyFile := fs.String("ready-file", "", "write the listen addresses (and first-start admin credentials) as JSON to this file once listening, before the banner (file mode 0600)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	c, err := load(env)
	if err != nil {
		return err
	}
	log := newLogger(env, c)
	// Libraries that log through the process default (zitadel/oidc) follow
	// the configured handler and level. Only the command sets it.
	slog.SetDefault(log)
	log.Debug("configuration", "config", c.Redacted())
	a, err := app.New(ctx, c, app.Options{Logger: log, Out: env.Stdout, Version: env.Version, ReadyFile: *readyFile})
	if err != nil {
		return err
	}
	return a.Run(ctx)
}

func runConfig(_ context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "config", "config [flags]: print the effective configuration and the environment variables read")
	load := serverFlags(fs)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	c, err := load(env)
	if err != nil {
		return err
	}
	fmt.Fprint(env.Stdout, c.Redacted())
	fmt.Fprintf(env.Stdout, "# environment variables: %s\n", strings.Join(config.EnvVars(), " "))
	return nil
}

// runAdminToken mints an admin API token straight into the database, for
// when the bootstrap token is lost.
func runAdminToken(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "admin-token", "admin-token [flags]: create an admin API token in the database directly")
	load := serverFlags(fs)
	name := fs.String("name", "recovery", "token name")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	c, err := load(env)
	if err != nil {
		return err
	}
	a, err := app.NewOffline(ctx, c)
	if err != nil {
		return err
	}
	defer a.Close()
	secret, tok, err := a.Registry.CreateAPIToken(ctx, *name, "", []string{"admin"}, 0)
	if err != nil {
		if errors.Is(err, store.ErrExists) {
			return fmt.Errorf("a token named %q exists: %w", *name, err)
		}
		return err
	}
	fmt.Fprintf(env.Stdout, "%s\n", secret)
	fmt.Fprintf(env.Stderr, "created admin API token %s (%s)\n", tok.ID, tok.Name)
	return nil
}
