package oauth_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"

	"github.com/gatehouse-iot/gatehouse/internal/events"
	"github.com/gatehouse-iot/gatehouse/internal/oauth"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/store"
	"github.com/gatehouse-iot/gatehouse/internal/store/storetest"
	"github.com/gatehouse-iot/gatehouse/internal/testenv"
)

// env is a running authorization server with a registry holding:
//   - thing type "sensor" (scopes publish, described, and subscribe; approver relation owner)
//   - thing type "keyonly" (scopes publish; auth method private_key_jwt only)
//   - things sensor-1 and sensor-2 (sensor, with secrets), signer-1
//     (keyonly, with an EC key), loose-1 (no type), and user alice.
type env struct {
	t        testing.TB
	srv      *oauth.Server
	http     *httptest.Server
	store    *store.Store
	registry *registry.Service
	events   *events.Log
	clock    *testenv.Clock
	secrets  map[string]string
	key      *ecdsa.PrivateKey
	keyID    string
}

type envOption func(*oauth.Config)

func newEnv(t testing.TB, dsn string, opts ...envOption) *env {
	t.Helper()
	clk := testenv.NewClock(time.Now().UTC().Truncate(time.Second))
	envOpts := []testenv.Option{testenv.DSN(dsn), testenv.Now(clk.Now), testenv.OAuthConfig(func(cfg *oauth.Config) {
		cfg.DevicePollInterval = time.Second
		cfg.DefaultScopes = []string{"telemetry"}
		cfg.Clients = []oauth.StaticClient{
			{ID: "gatehouse-cli", Scopes: []string{"openid", "profile"}},
			{ID: "resource-server", SecretHash: oauth.HashSecret("rs-secret"), Scopes: []string{"introspect"}, GrantTypes: []string{"client_credentials"}, Introspect: true},
		}
		cfg.Logger = slog.New(slog.DiscardHandler)
	})}
	for _, o := range opts {
		envOpts = append(envOpts, testenv.OAuthConfig(o))
	}
	te := testenv.New(t, envOpts...)
	ctx, reg, srv := t.Context(), te.Registry, te.OAuth
	e := &env{t: t, srv: srv, http: te.HTTP, store: te.Store, registry: reg, events: te.Events, clock: clk, secrets: map[string]string{}}
	mustDo(t, func() error {
		_, err := reg.CreateThingType(ctx, registry.ThingTypeSpec{Name: "sensor", Scopes: []string{"publish", "subscribe"}, ApproverRelation: "owner",
			ScopeDescriptions: map[string]string{"publish": "Send its readings & alarms"}})
		return err
	})
	mustDo(t, func() error {
		_, err := reg.CreateThingType(ctx, registry.ThingTypeSpec{Name: "keyonly", Scopes: []string{"publish"}, AuthMethods: []string{"private_key_jwt"}})
		return err
	})
	for name, typ := range map[string]string{"sensor-1": "sensor", "sensor-2": "sensor", "signer-1": "keyonly", "loose-1": ""} {
		mustDo(t, func() error {
			_, err := reg.CreateThing(ctx, registry.NewThing{Name: name, ThingType: typ})
			return err
		})
	}
	for _, name := range []string{"sensor-1", "sensor-2", "loose-1"} {
		sec, err := srv.SetThingSecret(ctx, name)
		if err != nil {
			t.Fatalf("SetThingSecret(%s): %v", name, err)
		}
		e.secrets[name] = sec
	}
	var err error
	e.key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := json.Marshal(jose.JSONWebKey{Key: e.key.Public()})
	if err != nil {
		t.Fatal(err)
	}
	if e.keyID, err = srv.AddThingKey(ctx, "signer-1", pub); err != nil {
		t.Fatalf("AddThingKey: %v", err)
	}
	mustDo(t, func() error {
		_, err := reg.CreateUser(ctx, registry.NewUser{Username: "alice", Password: "correct horse"})
		return err
	})
	return e
}

func mustDo(t testing.TB, f func() error) {
	t.Helper()
	if err := f(); err != nil {
		t.Fatal(err)
	}
}

// drivers runs f once per store driver.
func drivers(t *testing.T, f func(t *testing.T, dsn string)) {
	for _, d := range storetest.Drivers() {
		t.Run(d.Name, func(t *testing.T) { f(t, d.DSN(t)) })
	}
}

func (e *env) url(path string) string { return e.http.URL + path }

func (e *env) endpoint() oauth2.Endpoint {
	return oauth2.Endpoint{TokenURL: e.url(oauth.PathToken), DeviceAuthURL: e.url(oauth.PathDeviceCode)}
}

// assertion makes a private_key_jwt client assertion signed by key.
func assertion(t testing.TB, key crypto.Signer, alg jose.SignatureAlgorithm, kid string, claims map[string]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid != "" {
		opts = opts.WithHeader("kid", kid)
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := sig.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// assertionClaims are valid claims for signer-1 to the token endpoint.
func (e *env) assertionClaims(jti string) map[string]any {
	now := e.clock.Now()
	return map[string]any{"iss": "signer-1", "sub": "signer-1", "aud": e.url(oauth.PathToken), "exp": now.Add(time.Minute).Unix(), "iat": now.Unix(), "jti": jti}
}

// postForm posts a form and decodes a JSON answer.
func (e *env) postForm(path string, form url.Values, basicUser, basicPass string) (int, map[string]any) {
	e.t.Helper()
	req, err := http.NewRequest("POST", e.url(path), strings.NewReader(form.Encode()))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basicUser != "" {
		req.SetBasicAuth(url.QueryEscape(basicUser), url.QueryEscape(basicPass))
	}
	return e.do(req)
}

func (e *env) do(req *http.Request) (int, map[string]any) {
	e.t.Helper()
	resp, err := e.http.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	var out map[string]any
	if len(b) > 0 && json.Unmarshal(b, &out) != nil {
		e.t.Fatalf("%s %s: answer is not JSON: %s", req.Method, req.URL.Path, b)
	}
	return resp.StatusCode, out
}

// issuedCount counts token.issued events.
func (e *env) issuedCount() int {
	e.t.Helper()
	evs, err := e.store.ListEvents(context.Background(), store.EventFilter{Type: "token.issued", Limit: 1000})
	if err != nil {
		e.t.Fatal(err)
	}
	return len(evs)
}

// browser is an http.Client with a cookie jar, for the verification page.
func (e *env) browser() *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		e.t.Fatal(err)
	}
	c := e.http.Client()
	return &http.Client{Transport: c.Transport, Jar: jar}
}

var (
	csrfRE    = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	consentRE = regexp.MustCompile(`name="consent" value="([^"]+)"`)
)

// page fetches a page and returns status and body.
func page(t testing.TB, c *http.Client, method, u string, form url.Values) (int, string) {
	t.Helper()
	var (
		resp *http.Response
		err  error
	)
	if method == "GET" {
		resp, err = c.Get(u)
	} else {
		resp, err = c.PostForm(u, form)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func match(t testing.TB, re *regexp.Regexp, body string) string {
	t.Helper()
	m := re.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("page has no %s:\n%s", re, body)
	}
	return m[1]
}

// approve plays the person on the verification page: open the complete
// verification URI, log in, then approve (or deny).
func (e *env) approve(verificationURIComplete, username, password string, yes bool) {
	t := e.t
	t.Helper()
	b := e.browser()
	status, body := page(t, b, "GET", verificationURIComplete, nil)
	if status != http.StatusOK {
		t.Fatalf("GET verification page = %d", status)
	}
	csrf := match(t, csrfRE, body)
	code := match(t, regexp.MustCompile(`name="user_code" value="([^"]+)"`), body)
	status, body = page(t, b, "POST", e.url(oauth.PathDevice), url.Values{"csrf": {csrf}, "step": {"login"}, "user_code": {code}, "username": {username}, "password": {password}})
	if status != http.StatusOK {
		t.Fatalf("POST login = %d:\n%s", status, body)
	}
	consent := match(t, consentRE, body)
	action := "deny"
	if yes {
		action = "approve"
	}
	status, body = page(t, b, "POST", e.url(oauth.PathDevice), url.Values{"csrf": {csrf}, "step": {"decide"}, "user_code": {code}, "consent": {consent}, "action": {action}})
	if status != http.StatusOK {
		t.Fatalf("POST decide = %d:\n%s", status, body)
	}
}

func mustECKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func registryPatchState(state string) registry.ThingPatch { return registry.ThingPatch{State: &state} }
