package mosqauth

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/authn"
	"github.com/gatehouse-iot/gatehouse/internal/certs"
	"github.com/gatehouse-iot/gatehouse/internal/config"
	"github.com/gatehouse-iot/gatehouse/internal/events"
	"github.com/gatehouse-iot/gatehouse/internal/oauth"
	"github.com/gatehouse-iot/gatehouse/internal/policy"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/seal"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// ConfigOption is the plugin option naming the server's YAML
// configuration file (plugin_opt_config).
const ConfigOption = "config"

// LoadConfig assembles the server's configuration from plugin options:
// the file named by ConfigOption, then every other option as a setting
// at its dotted YAML path (plugin_opt_store.dsn, plugin_opt_dataDir,
// plugin_opt_http.externalURL, ...). Unlike the server there is no
// default data directory: the store must be named, or the plugin would
// silently follow an empty database.
func LoadConfig(opts map[string]string) (config.Config, error) {
	c := config.Default()
	c.DataDir = ""
	if path := opts[ConfigOption]; path != "" {
		f, err := os.Open(path)
		if err != nil {
			return c, fmt.Errorf("plugin_opt_config: %w", err)
		}
		err = c.DecodeFile(f)
		f.Close()
		if err != nil {
			return c, fmt.Errorf("plugin_opt_config %s: %w", path, err)
		}
	}
	keys := make([]string, 0, len(opts))
	for k := range opts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var errs []error
	for _, k := range keys {
		if k == ConfigOption {
			continue
		}
		if err := c.Set(k, opts[k]); err != nil {
			errs = append(errs, fmt.Errorf("plugin_opt_%s: %w", k, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return c, err
	}
	c.Finish()
	if c.Store.DSN == "" {
		return c, errors.New("no store: set plugin_opt_store.dsn (or plugin_opt_dataDir, or plugin_opt_config naming the server's configuration file)")
	}
	if c.OAuth.Algorithm != oauth.HS256 && c.Secrets.MasterKeyFile == "" {
		return c, errors.New("no master key: set plugin_opt_secrets.masterKeyFile (or plugin_opt_dataDir)")
	}
	return c, nil
}

// Services are what the plugin opened; Close releases them.
type Services struct {
	Store  *store.Store
	Plugin *Plugin
}

// Close closes the store.
func (s *Services) Close() error { return s.Store.Close() }

// Open opens the store read-only and builds, from Gatehouse's own
// packages, what the embedded broker authenticates and authorizes with:
// the registry (policies), the OAuth verifier (signing keys opened with
// the master key; never created or rotated), the certificate service
// (client certificates) and the authenticator (with the configured
// external issuers). It fails, saying why, on a missing or older
// database, a wrong master key or a database without signing keys: the
// plugin then refuses to start rather than fail open. wake and changed
// (either may be nil) are the Plugin's Config.Wake and Config.Changed.
func Open(ctx context.Context, c config.Config, log *slog.Logger, wake, changed func()) (*Services, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := time.Now
	s, err := store.OpenReadOnly(ctx, c.Store.DSN)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()
	evs := events.NewLog(s, now)
	reg, err := registry.New(registry.Config{Store: s, Events: evs, Now: now, Rand: rand.Reader, Logger: log.With("component", "registry")})
	if err != nil {
		return nil, err
	}
	var (
		sealer *seal.Sealer
		keyID  uint32
	)
	if c.OAuth.Algorithm != oauth.HS256 {
		if sealer, keyID, err = openSealer(c); err != nil {
			return nil, err
		}
	}
	var hs256 []byte
	if c.OAuth.HS256Secret != "" {
		hs256 = []byte(c.OAuth.HS256Secret)
	}
	var cs *certs.Service
	tokens, err := oauth.New(oauth.Config{Store: s, Registry: reg, Events: evs, Issuer: c.HTTP.ExternalURL, Sealer: sealer,
		Algorithm: c.OAuth.Algorithm, HS256Secret: hs256, AccessTokenTTL: c.OAuth.AccessTokenTTL, KeyRotation: c.OAuth.KeyRotation,
		Resources: c.OAuth.Resources, Now: now, Logger: log.With("component", "oauth"),
		CertificateStatus: func(ctx context.Context, fingerprint string) error {
			if cs == nil {
				return errors.New("mosqauth: no certificate service (HS256 without a master key)")
			}
			return cs.CheckBoundCertificate(ctx, fingerprint)
		}})
	if err != nil {
		return nil, err
	}
	if err := tokens.LoadKeys(ctx); err != nil {
		var unknown *seal.UnknownKeyError
		if errors.As(err, &unknown) {
			return nil, fmt.Errorf("%w: the database is sealed with master key %08x but %s holds key %08x", err, unknown.KeyID, c.Secrets.MasterKeyFile, keyID)
		}
		return nil, err
	}
	if sealer != nil {
		cs, err = certs.New(certs.Config{Store: s, Registry: reg, Events: evs, Sealer: sealer, Now: now, Logger: log.With("component", "certs")})
		if err != nil {
			return nil, err
		}
		if err := cs.LoadCA(ctx); err != nil {
			return nil, err
		}
	}
	acfg := authn.Config{Tokens: tokens, Registry: reg, Store: s, Now: now}
	if cs != nil {
		acfg.Certificates = cs
	}
	a := authn.New(acfg)
	for _, e := range c.OAuth.ExternalIssuers {
		if err := a.AddExternalIssuer(authn.ExternalIssuer(e)); err != nil {
			return nil, err
		}
	}
	p := New(Config{Authn: a, Registry: reg, Events: evs, Policy: policy.Options{Region: c.MQTT.Region, Account: c.MQTT.Account},
		EventTopicPrefix: c.MQTT.EventTopicPrefix, Wake: wake, Changed: changed, Logger: log, Now: now})
	ok = true
	return &Services{Store: s, Plugin: p}, nil
}

// openSealer reads the master key (and previous ones) without ever
// creating one; it returns the key's id for messages.
func openSealer(c config.Config) (*seal.Sealer, uint32, error) {
	key, err := seal.ReadKeyFile(c.Secrets.MasterKeyFile)
	if err != nil {
		return nil, 0, fmt.Errorf("master key: %w", err)
	}
	var old [][]byte
	for _, p := range c.Secrets.PreviousMasterKeyFiles {
		k, err := seal.ReadKeyFile(p)
		if err != nil {
			return nil, 0, fmt.Errorf("previous master key: %w", err)
		}
		old = append(old, k)
	}
	s, err := seal.New(key, seal.WithOldKeys(old...))
	if err != nil {
		return nil, 0, fmt.Errorf("master key %s: %w", c.Secrets.MasterKeyFile, err)
	}
	return s, s.KeyID(), nil
}
