package mosqauth_test

import (
	"context"
	"crypto/rand"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/authn"
	"github.com/gatehouse-iot/gatehouse/internal/live"
	"github.com/gatehouse-iot/gatehouse/internal/mosqauth"
	"github.com/gatehouse-iot/gatehouse/internal/oauth"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/seal"
	"github.com/gatehouse-iot/gatehouse/internal/store"
	"github.com/gatehouse-iot/gatehouse/internal/testenv"
)

// policy: a thing connects as itself, publishes under things/<name>/,
// subscribes to things/#, receives things/* except things/hidden/*, and
// retains nothing.
const policy = `{"Version":"2012-10-17","Statement":[
 {"Effect":"Allow","Action":"iot:Connect","Resource":"client/${iot:Connection.Thing.ThingName}"},
 {"Effect":"Allow","Action":"iot:Publish","Resource":["topic/things/${iot:Connection.Thing.ThingName}/*","topic/$gatehouse/x"]},
 {"Effect":"Allow","Action":"iot:Subscribe","Resource":["topicfilter/things/#","topicfilter/$gatehouse/events/#","topicfilter/$gatehouse/x"]},
 {"Effect":"Allow","Action":"iot:Receive","Resource":["topic/things/*","topic/$gatehouse/*"]},
 {"Effect":"Deny","Action":"iot:Receive","Resource":"topic/things/hidden/*"}]}`

type fixture struct {
	env    *testenv.Env
	p      *mosqauth.Plugin
	tokens map[string]string
	// changed counts Config.Changed calls.
	changed atomic.Int64
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	env := testenv.New(t, testenv.TokenTTL(time.Hour))
	ctx := env.As("admin")
	if _, err := env.Registry.CreatePolicy(ctx, registry.NewPolicy{Name: "dev", Document: []byte(policy)}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Registry.CreateThingType(ctx, registry.ThingTypeSpec{Name: "dev", Scopes: []string{"mqtt"}, DefaultPolicies: []string{"dev"}}); err != nil {
		t.Fatal(err)
	}
	f := &fixture{env: env, tokens: map[string]string{}}
	for name, secret := range env.Things(ctx, "dev", "a", "b") {
		f.tokens[name] = env.Token(name, secret, "mqtt")
	}
	f.p = mosqauth.New(mosqauth.Config{Authn: env.Authn, Registry: env.Registry, Events: env.Events, EventTopicPrefix: "$gatehouse/events",
		Changed: func() { f.changed.Add(1) }})
	return f
}

// token is name's token, verified.
func (f *fixture) token(t *testing.T, name string) *oauth.AccessToken {
	t.Helper()
	at, err := f.env.OAuth.VerifyAccessToken(f.env.Ctx, f.tokens[name])
	if err != nil {
		t.Fatal(err)
	}
	return at
}

func (f *fixture) connect(t *testing.T, cl mosqauth.Client, name string) {
	t.Helper()
	if err := f.p.Connect(f.env.Ctx, cl, mosqauth.Conn{ClientID: name, Username: name, Password: []byte(f.tokens[name]), Address: "127.0.0.1"}); err != nil {
		t.Fatalf("Connect(%s) = %v", name, err)
	}
}

// TestConnect: the token as password logs in as its thing; a forged token,
// no password, or another client id are refused with the error that
// decides Mosquitto's answer.
func TestConnect(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct {
		name string
		conn mosqauth.Conn
		want error
	}{
		{"token", mosqauth.Conn{ClientID: "a", Username: "a", Password: []byte(f.tokens["a"])}, nil},
		{"forged", mosqauth.Conn{ClientID: "a", Username: "a", Password: []byte(f.tokens["a"] + "x")}, mosqauth.ErrBadCredentials},
		{"no password", mosqauth.Conn{ClientID: "a", Username: "a"}, mosqauth.ErrBadCredentials},
		{"other client id", mosqauth.Conn{ClientID: "b", Password: []byte(f.tokens["a"])}, mosqauth.ErrNotAuthorized},
	} {
		err := f.p.Connect(f.env.Ctx, 1, c.conn)
		if (c.want == nil) != (err == nil) || c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("%s: Connect = %v, want %v", c.name, err, c.want)
		}
	}
}

// TestCheck: every ACL check is decided on the client's bound policy, with
// the reserved topics kept to the server.
func TestCheck(t *testing.T) {
	f := newFixture(t)
	f.connect(t, 1, "a")
	for _, c := range []struct {
		access mosqauth.Access
		topic  string
		retain bool
		want   bool
	}{
		{mosqauth.AccessWrite, "things/a/t", false, true},
		{mosqauth.AccessWrite, "things/a/t", true, false}, // no iot:RetainPublish
		{mosqauth.AccessWrite, "things/b/t", false, false},
		{mosqauth.AccessWrite, "$gatehouse/x", false, false}, // reserved, whatever the policy
		{mosqauth.AccessSubscribe, "things/#", false, true},
		{mosqauth.AccessSubscribe, "other/#", false, false},
		{mosqauth.AccessSubscribe, "$gatehouse/x", false, false},
		{mosqauth.AccessSubscribe, "$gatehouse/events/#", false, true}, // the event mirror, as the policy allows
		{mosqauth.AccessRead, "things/b/t", false, true},
		{mosqauth.AccessRead, "things/b/t", true, true}, // a retained message
		{mosqauth.AccessRead, "things/hidden/t", false, false},
		{mosqauth.AccessRead, "$gatehouse/x", false, false},
		{mosqauth.AccessUnsubscribe, "anything", false, true},
	} {
		if got := f.p.Check(1, c.access, c.topic, c.retain); got != c.want {
			t.Errorf("Check(%#x, %q, retain %v) = %v, want %v", c.access, c.topic, c.retain, got, c.want)
		}
	}
	if f.p.Check(2, mosqauth.AccessWrite, "things/a/t", false) {
		t.Error("Check for a client that never connected = true, want false")
	}
	// The answer holds until the token expires.
	exp := f.token(t, "a").ExpiresAt
	if ok, until := f.p.CheckAt(1, mosqauth.AccessRead, "things/b/t", false, exp.Add(-time.Minute)); !ok || !until.Equal(exp) {
		t.Errorf("CheckAt = %v until %v, want true until the token's expiry %v", ok, until, exp)
	}
	if ok, _ := f.p.CheckAt(1, mosqauth.AccessRead, "things/b/t", false, exp); ok {
		t.Error("CheckAt at the token's expiry = true, want false")
	}
}

// TestDisconnectedKeepsWill: Mosquitto checks a will after the disconnect
// event, so the session answers until the next tick.
func TestDisconnectedKeepsWill(t *testing.T) {
	f := newFixture(t)
	f.connect(t, 1, "a")
	f.p.Disconnected(1)
	if !f.p.Check(1, mosqauth.AccessWrite, "things/a/will", false) {
		t.Error("the will's check after the disconnect event = false, want true")
	}
	if k := f.p.Tick(); len(k) != 0 {
		t.Errorf("Tick = %v, want no kicks", k)
	}
	if f.p.Check(1, mosqauth.AccessWrite, "things/a/will", false) {
		t.Error("Check after the tick that dropped the session = true, want false")
	}
}

// TestFollow: a revoked token and a disabled thing end their sessions
// (kicked at the next tick, denied meanwhile); a policy edit rebinds
// live sessions.
func TestFollow(t *testing.T) {
	f := newFixture(t)
	f.connect(t, 1, "a")
	f.connect(t, 2, "b")
	follow, err := f.p.Follower(f.env.Ctx)
	if err != nil {
		t.Fatal(err)
	}
	f.env.Go(func(ctx context.Context) error { follow(ctx); return nil })
	kicked := map[string]bool{}
	tick := func() {
		for _, id := range f.p.Tick() {
			kicked[id] = true
		}
	}

	if err := f.env.OAuth.RevokeAccessToken(f.env.As("admin"), f.tokens["a"]); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "a kicked after its token's revocation", func() bool { tick(); return kicked["a"] })
	if f.p.Check(1, mosqauth.AccessWrite, "things/a/t", false) {
		t.Error("the revoked session may still publish")
	}

	if !f.p.Check(2, mosqauth.AccessWrite, "things/b/t", false) {
		t.Fatal("b may not publish before the edit")
	}
	if _, err := f.env.Registry.CreatePolicyVersion(f.env.As("admin"), "dev", 0, []byte(strings.Replace(policy, `"iot:Publish"`, `"iot:RetainPublish"`, 1)), true); err != nil {
		t.Fatal(err)
	}
	changed := f.changed.Load()
	testenv.Eventually(t, 10*time.Second, "the edited policy applied to b", func() bool {
		return !f.p.Check(2, mosqauth.AccessWrite, "things/b/t", false)
	})
	// The glue's cached answers are dropped on the rebind.
	if got := f.changed.Load(); got <= changed {
		t.Errorf("Changed calls after the rebind = %d, want more than %d", got, changed)
	}

	state := store.StateDisabled
	if _, err := f.env.Registry.UpdateThing(f.env.As("admin"), "b", 0, registry.ThingPatch{State: &state}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "b kicked after being disabled", func() bool { tick(); return kicked["b"] })
	if len(kicked) != 2 {
		t.Errorf("kicked %v, want a and b", slices.Collect(maps.Keys(kicked)))
	}
}

// TestConnectCache: a reconnect with the same credentials reuses the last
// CONNECT's outcome, and a change read from the log drops it: after a
// policy edit that no longer lets a connect, the same CONNECT is refused.
// A token revoked meanwhile is refused even when the verifier has not yet
// reloaded its revocations.
func TestConnectCache(t *testing.T) {
	f := newFixture(t)
	f.connect(t, 1, "a")
	f.connect(t, 2, "a")
	if got := f.p.CachedConnects(); got != 1 {
		t.Fatalf("CachedConnects after two CONNECTs with the same credentials = %d, want 1", got)
	}
	follow, err := f.p.Follower(f.env.Ctx)
	if err != nil {
		t.Fatal(err)
	}
	f.env.Go(func(ctx context.Context) error { follow(ctx); return nil })
	kicked := map[string]bool{}
	tick := func() {
		for _, id := range f.p.Tick() {
			kicked[id] = true
		}
	}
	edited := strings.Replace(policy, "client/${iot:Connection.Thing.ThingName}", "client/nobody", 1)
	if _, err := f.env.Registry.CreatePolicyVersion(f.env.As("admin"), "dev", 0, []byte(edited), true); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "a kicked after the edit", func() bool { tick(); return kicked["a"] })
	if got := f.p.CachedConnects(); got != 0 {
		t.Errorf("CachedConnects after the edit = %d, want 0", got)
	}
	err = f.p.Connect(f.env.Ctx, 3, mosqauth.Conn{ClientID: "a", Username: "a", Password: []byte(f.tokens["a"]), Address: "127.0.0.1"})
	if !errors.Is(err, mosqauth.ErrNotAuthorized) {
		t.Errorf("the same CONNECT after the edit = %v, want ErrNotAuthorized", err)
	}
}

// duringAuth counts authentications and runs fn just after the first: a
// change landing while a CONNECT is being decided.
type duringAuth struct {
	mosqauth.Authenticator
	calls atomic.Int64
	fn    func()
}

func (d *duringAuth) Authenticate(ctx context.Context, c authn.Credentials) (*authn.Identity, error) {
	id, err := d.Authenticator.Authenticate(ctx, c)
	if d.calls.Add(1) == 1 {
		d.fn()
	}
	return id, err
}

// TestConnectDecidedDuringAChange: a change applied to the live sessions
// while a CONNECT is being decided (read from the log after the decision
// read the registry, before the session was one of the live ones it
// re-checks) does not pass that CONNECT by: it is decided again.
func TestConnectDecidedDuringAChange(t *testing.T) {
	f := newFixture(t)
	var p *mosqauth.Plugin
	auth := &duringAuth{Authenticator: f.env.Authn, fn: func() {
		var c live.Changes
		c.Add(store.Event{Type: "policy.created", Subject: "policy/other"})
		p.Apply(f.env.Ctx, &c)
	}}
	p = mosqauth.New(mosqauth.Config{Authn: auth, Registry: f.env.Registry, Events: f.env.Events, EventTopicPrefix: "$gatehouse/events"})
	if err := p.Connect(f.env.Ctx, 1, mosqauth.Conn{ClientID: "a", Username: "a", Password: []byte(f.tokens["a"]), Address: "127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		got, want any
	}{
		{"authentications (decided again after the change)", auth.calls.Load(), int64(2)},
		{"the session publishes as its policy allows", p.Check(1, mosqauth.AccessWrite, "things/a/t", false), true},
		{"the second decision, made after the change, is cached", p.CachedConnects(), 1},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, tc.got, tc.want)
		}
	}
}

// TestConnectRevokedInLog: a token the log says was revoked is refused at
// once, cached or not.
func TestConnectRevokedInLog(t *testing.T) {
	f := newFixture(t)
	f.connect(t, 1, "a")
	var c live.Changes
	c.Add(store.Event{Type: "token.revoked", Details: []byte(`{"jti":"` + f.token(t, "a").JTI + `"}`)})
	f.p.Apply(f.env.Ctx, &c)
	if got := f.p.CachedConnects(); got != 0 {
		t.Errorf("CachedConnects after the revocation = %d, want 0", got)
	}
	err := f.p.Connect(f.env.Ctx, 2, mosqauth.Conn{ClientID: "a", Username: "a", Password: []byte(f.tokens["a"]), Address: "127.0.0.1"})
	if !errors.Is(err, mosqauth.ErrNotAuthorized) {
		t.Errorf("CONNECT with a token revoked in the log = %v, want ErrNotAuthorized", err)
	}
}

// TestLoadConfig: the store must be named; plugin options are settings
// at their YAML paths; an unknown one is an error naming it.
func TestLoadConfig(t *testing.T) {
	if _, err := mosqauth.LoadConfig(map[string]string{}); err == nil || !strings.Contains(err.Error(), "plugin_opt_store.dsn") {
		t.Errorf("LoadConfig without a store = %v, want an error naming plugin_opt_store.dsn", err)
	}
	if _, err := mosqauth.LoadConfig(map[string]string{"dataDir": "/x", "no.such": "1"}); err == nil || !strings.Contains(err.Error(), "plugin_opt_no.such") {
		t.Errorf("LoadConfig with an unknown option = %v, want an error naming it", err)
	}
	c, err := mosqauth.LoadConfig(map[string]string{"dataDir": "/var/lib/gatehouse", "http.externalURL": "https://gh.example/"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Store.DSN != "sqlite:/var/lib/gatehouse/gatehouse.db" || c.Secrets.MasterKeyFile != "/var/lib/gatehouse/master.key" || c.HTTP.ExternalURL != "https://gh.example" {
		t.Errorf("LoadConfig = dsn %q, key %q, issuer %q", c.Store.DSN, c.Secrets.MasterKeyFile, c.HTTP.ExternalURL)
	}
}

// TestOpenRefuses: Open fails, saying why, instead of starting a plugin
// that would refuse (or worse, admit) everyone: no database, a database
// without signing keys, a wrong master key.
func TestOpenRefuses(t *testing.T) {
	dir := t.TempDir()
	dsn := "sqlite:" + filepath.Join(dir, "gatehouse.db")
	keyFile := filepath.Join(dir, "master.key")
	key := make([]byte, 32)
	rand.Read(key)
	if err := seal.WriteKeyFile(keyFile, key); err != nil {
		t.Fatal(err)
	}
	open := func() error {
		c, err := mosqauth.LoadConfig(map[string]string{"store.dsn": dsn, "secrets.masterKeyFile": keyFile, "http.externalURL": "http://127.0.0.1:1"})
		if err != nil {
			return err
		}
		svc, err := mosqauth.Open(t.Context(), c, nil, nil, nil)
		if err == nil {
			svc.Close()
		}
		return err
	}
	if err := open(); err == nil {
		t.Error("Open of a missing database succeeded")
	}
	if _, err := os.Stat(filepath.Join(dir, "gatehouse.db")); err == nil {
		t.Error("Open created the database")
	}
	// A migrated database whose signing keys are sealed under another
	// master key (testenv's).
	env := testenv.New(t, testenv.DSN(dsn))
	if _, err := env.Registry.CreateThingType(env.As("admin"), registry.ThingTypeSpec{Name: "dev"}); err != nil {
		t.Fatal(err)
	}
	secrets := env.Things(env.As("admin"), "dev", "a")
	_ = env.Token("a", secrets["a"]) // creates the signing key
	err := open()
	var unknown *seal.UnknownKeyError
	if !errors.As(err, &unknown) || !strings.Contains(err.Error(), keyFile) {
		t.Errorf("Open with the wrong master key = %v, want an unknown-key error naming %s", err, keyFile)
	}
}
