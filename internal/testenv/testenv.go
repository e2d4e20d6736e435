// Package testenv builds the real Gatehouse stack that many packages' tests
// need, so that each of them does not repeat the same thirty lines of
// setup: a store (SQLite in t.TempDir(), or any DSN such as the PostgreSQL
// one from storetest), the event log, the registry with cheap password
// hashing, a sealer with a random master key, on demand the certificate
// service with its CA and, with New, the OAuth authorization server served
// over httptest and the authenticator on top. Options cover the pieces
// that differ between tests: database, clock, signing algorithm, access
// token TTL, extra OAuth configuration and whether the server's background
// Run is active.
//
// Nothing here is a fake: every component is the production one. It is
// imported only from _test.go files (internal/archtest checks that).
package testenv

import (
	"context"
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2/clientcredentials"

	"github.com/gatehouse-iot/gatehouse/internal/authn"
	"github.com/gatehouse-iot/gatehouse/internal/certs"
	"github.com/gatehouse-iot/gatehouse/internal/events"
	"github.com/gatehouse-iot/gatehouse/internal/oauth"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/seal"
	"github.com/gatehouse-iot/gatehouse/internal/store"
	"github.com/gatehouse-iot/gatehouse/internal/store/storetest"
)

// CheapHash is the registry's password hashing for tests: valid argon2id,
// but fast enough to create many users and things.
var CheapHash = registry.HashParams{Memory: 64, Time: 1, Threads: 1}

// Env is a running stack. Core fills Store, Events, Registry and Sealer;
// New also OAuth, HTTP, Mux, Issuer and Authn.
type Env struct {
	t testing.TB
	// Ctx lives until the test's cleanup, which cancels it, waits for what
	// Go started, then closes the HTTP server and the store.
	Ctx      context.Context
	Now      func() time.Time
	Store    *store.Store
	Events   *events.Log
	Registry *registry.Service
	Sealer   *seal.Sealer

	OAuth *oauth.Server
	// HTTP serves Mux; Mux routes "/" to the OAuth server's handler, and
	// tests mount what else they serve beside it (Mux.Handle is safe while
	// serving).
	HTTP   *httptest.Server
	Mux    *http.ServeMux
	Issuer string
	// Authn authenticates by access token against OAuth and Registry.
	Authn *authn.Authenticator

	wg sync.WaitGroup
}

type settings struct {
	dsn      string
	now      func() time.Time
	oauthCfg []func(*oauth.Config)
	run      bool
}

// Option adjusts what New and Core build.
type Option func(*settings)

// DSN opens the given database instead of a fresh SQLite file in
// t.TempDir(); pass storetest.PostgresDSN(t) for PostgreSQL.
func DSN(dsn string) Option { return func(s *settings) { s.dsn = dsn } }

// Now is the clock of the event log, the registry and the OAuth server
// (default time.Now).
func Now(now func() time.Time) Option { return func(s *settings) { s.now = now } }

// Algorithm signs access tokens (ES256, EdDSA, RS256; default ES256).
func Algorithm(alg string) Option {
	return OAuthConfig(func(c *oauth.Config) { c.Algorithm = alg })
}

// TokenTTL is the access token lifetime (default the server's, 1h).
func TokenTTL(d time.Duration) Option {
	return OAuthConfig(func(c *oauth.Config) { c.AccessTokenTTL = d })
}

// OAuthConfig changes the OAuth server's configuration before it is built.
func OAuthConfig(f func(*oauth.Config)) Option {
	return func(s *settings) { s.oauthCfg = append(s.oauthCfg, f) }
}

// RunOAuth runs the OAuth server's background work (batched token events,
// key rotation, purges) until the test ends.
func RunOAuth() Option { return func(s *settings) { s.run = true } }

// Core opens the store and builds the event log, the registry and a
// sealer; the store is closed when the test ends.
func Core(t testing.TB, opts ...Option) *Env {
	t.Helper()
	var st settings
	for _, o := range opts {
		o(&st)
	}
	return core(t, &st)
}

func core(t testing.TB, st *settings) *Env {
	t.Helper()
	if st.dsn == "" {
		st.dsn = storetest.SQLiteDSN(t)
	}
	if st.now == nil {
		st.now = time.Now
	}
	ctx, cancel := context.WithCancel(context.Background())
	s, err := store.Open(ctx, st.dsn)
	if err != nil {
		cancel()
		t.Fatalf("store.Open: %v", err)
	}
	e := &Env{t: t, Ctx: ctx, Now: st.now, Store: s}
	t.Cleanup(func() {
		cancel()
		e.wg.Wait()
		if e.HTTP != nil {
			e.HTTP.Close()
		}
		s.Close()
	})
	e.Events = events.NewLog(s, st.now)
	if e.Registry, err = registry.New(registry.Config{Store: s, Events: e.Events, Now: st.now, Hash: CheapHash}); err != nil {
		t.Fatalf("registry.New: %v", err)
	}
	key := make([]byte, seal.KeySize)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	if e.Sealer, err = seal.New(key); err != nil {
		t.Fatalf("seal.New: %v", err)
	}
	return e
}

// New is Core plus the OAuth server, served over httptest at Issuer, and
// the authenticator.
func New(t testing.TB, opts ...Option) *Env {
	t.Helper()
	var st settings
	for _, o := range opts {
		o(&st)
	}
	e := core(t, &st)
	e.HTTP = httptest.NewUnstartedServer(nil)
	e.Issuer = "http://" + e.HTTP.Listener.Addr().String()
	cfg := oauth.Config{Store: e.Store, Registry: e.Registry, Events: e.Events, Issuer: e.Issuer, Sealer: e.Sealer, Now: st.now}
	for _, f := range st.oauthCfg {
		f(&cfg)
	}
	var err error
	if e.OAuth, err = oauth.New(cfg); err != nil {
		e.HTTP.Listener.Close()
		e.HTTP = nil
		t.Fatalf("oauth.New: %v", err)
	}
	e.Mux = http.NewServeMux()
	e.Mux.Handle("/", e.OAuth.Handler())
	e.HTTP.Config.Handler = e.Mux
	e.HTTP.Start()
	if st.run {
		e.Go(e.OAuth.Run)
	}
	e.Authn = authn.New(authn.Config{Tokens: e.OAuth, Registry: e.Registry, Store: e.Store, Now: st.now})
	return e
}

// Go runs f in the background until the test ends; the cleanup cancels its
// context and waits for it before closing the server and the store.
func (e *Env) Go(f func(context.Context) error) {
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		_ = f(e.Ctx)
	}()
}

// Certs builds the certificate service on the stack (store, registry,
// event log, sealer, clock), changed by mutate, and makes sure its CA
// exists.
func (e *Env) Certs(mutate ...func(*certs.Config)) *certs.Service {
	e.t.Helper()
	cfg := certs.Config{Store: e.Store, Registry: e.Registry, Events: e.Events, Sealer: e.Sealer, Now: e.Now}
	for _, m := range mutate {
		m(&cfg)
	}
	svc, err := certs.New(cfg)
	if err != nil {
		e.t.Fatalf("certs.New: %v", err)
	}
	if err := svc.EnsureCA(e.Ctx); err != nil {
		e.t.Fatalf("EnsureCA: %v", err)
	}
	return svc
}

// As is Ctx acting as actor (recorded in the events it causes).
func (e *Env) As(actor string) context.Context { return events.WithActor(e.Ctx, actor) }

// Things creates things of thingType and gives each a client secret; it
// returns the secrets by name.
func (e *Env) Things(ctx context.Context, thingType string, names ...string) map[string]string {
	e.t.Helper()
	secrets := make(map[string]string, len(names))
	for _, name := range names {
		if _, err := e.Registry.CreateThing(ctx, registry.NewThing{Name: name, ThingType: thingType}); err != nil {
			e.t.Fatal(err)
		}
		sec, err := e.OAuth.SetThingSecret(ctx, name)
		if err != nil {
			e.t.Fatal(err)
		}
		secrets[name] = sec
	}
	return secrets
}

// Token gets an access token by client credentials from the server.
func (e *Env) Token(clientID, secret string, scopes ...string) string {
	e.t.Helper()
	cc := clientcredentials.Config{ClientID: clientID, ClientSecret: secret, TokenURL: e.HTTP.URL + oauth.PathToken, Scopes: scopes}
	tok, err := cc.Token(context.Background())
	if err != nil {
		e.t.Fatalf("token for %s: %v", clientID, err)
	}
	return tok.AccessToken
}

// Clock is a settable clock for expiry tests; pass its Now to Now.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock is a clock standing at t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}
