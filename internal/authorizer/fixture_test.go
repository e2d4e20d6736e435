package authorizer_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	stdos "os"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2/clientcredentials"

	"github.com/gatehouse-iot/gatehouse/internal/authn"
	"github.com/gatehouse-iot/gatehouse/internal/authorizer"
	"github.com/gatehouse-iot/gatehouse/internal/events"
	"github.com/gatehouse-iot/gatehouse/internal/oauth"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/seal"
	"github.com/gatehouse-iot/gatehouse/internal/store"
	"github.com/gatehouse-iot/gatehouse/internal/store/storetest"
)

// telemetry is the embedded broker tests' policy: a thing connects as
// itself, publishes and receives under things/<name>/ and commands/, may
// subscribe there, never touches firmware topics, and retains only
// things/<name>/state.
const telemetry = `{"Version":"2012-10-17","Statement":[
 {"Effect":"Allow","Action":"iot:Connect","Resource":"client/${iot:Connection.Thing.ThingName}"},
 {"Effect":"Allow","Action":["iot:Publish","iot:Receive"],"Resource":["topic/things/${iot:Connection.Thing.ThingName}/*","topic/commands/*"]},
 {"Effect":"Allow","Action":"iot:Subscribe","Resource":["topicfilter/things/${iot:Connection.Thing.ThingName}/*","topicfilter/commands/#"]},
 {"Effect":"Allow","Action":"iot:RetainPublish","Resource":"topic/things/${iot:Connection.Thing.ThingName}/state"},
 {"Effect":"Deny","Action":["iot:Publish","iot:Receive"],"Resource":"topic/*/firmware"}]}`

const testKey = "adapter-secret-for-tests"

type fixture struct {
	t        testing.TB
	reg      *registry.Service
	oauth    *oauth.Server
	http     *httptest.Server
	adapters *authorizer.Adapters
	secrets  map[string]string
	now      time.Time
	clock    func() time.Time
}

func newFixture(t testing.TB, mod func(*authorizer.Config)) *fixture {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s, err := store.Open(ctx, storetest.SQLiteDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	log := events.NewLog(s, time.Now)
	reg, err := registry.New(registry.Config{Store: s, Events: log, Hash: registry.HashParams{Memory: 64, Time: 1, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 32)
	rand.Read(key)
	sealer, err := seal.New(key)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(nil)
	issuer := "http://" + hs.Listener.Addr().String()
	os, err := oauth.New(oauth.Config{Store: s, Registry: reg, Events: log, Issuer: issuer, Sealer: sealer, AccessTokenTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, reg: reg, oauth: os, secrets: map[string]string{}}
	cfg := authorizer.Config{
		Authn:    authn.New(authn.Config{Tokens: os, Registry: reg, Store: s}),
		Registry: reg,
		Keys:     []string{testKey},
	}
	if stdos.Getenv("GATEHOUSE_TEST_LOG") != "" {
		cfg.Logger = slog.New(slog.NewTextHandler(stdos.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if mod != nil {
		mod(&cfg)
	}
	f.adapters = authorizer.New(cfg)
	mux := http.NewServeMux()
	mux.Handle("/authorizer/", f.adapters.Handler())
	mux.Handle("/", os.Handler())
	hs.Config.Handler = mux
	hs.Start()
	f.http = hs
	t.Cleanup(func() { cancel(); hs.Close(); s.Close() })

	admin := events.WithActor(ctx, "test")
	if _, err := reg.CreatePolicy(admin, registry.NewPolicy{Name: "telemetry", Document: []byte(telemetry)}); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.CreateThingType(admin, registry.ThingTypeSpec{Name: "sensor", Scopes: []string{"mqtt"}, DefaultPolicies: []string{"telemetry"}}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"s-1", "s-2"} {
		if _, err := reg.CreateThing(admin, registry.NewThing{Name: name, ThingType: "sensor"}); err != nil {
			t.Fatal(err)
		}
		sec, err := os.SetThingSecret(admin, name)
		if err != nil {
			t.Fatal(err)
		}
		f.secrets[name] = sec
	}
	return f
}

// token gets an access token for a thing by client credentials.
func (f *fixture) token(thing string) string {
	f.t.Helper()
	cc := clientcredentials.Config{ClientID: thing, ClientSecret: f.secrets[thing], TokenURL: f.http.URL + "/oauth2/token"}
	tok, err := cc.Token(context.Background())
	if err != nil {
		f.t.Fatalf("token for %s: %v", thing, err)
	}
	return tok.AccessToken
}

// postJSON posts body with the adapter key and returns status and body.
func (f *fixture) postJSON(path string, body any) (int, string) {
	f.t.Helper()
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, f.http.URL+path, strings.NewReader(string(raw)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(authorizer.KeyHeader, testKey)
	return f.do(req)
}

// postForm posts form as rabbitmq_auth_backend_http does (key in the URL).
func (f *fixture) postForm(path string, form url.Values) (int, string) {
	f.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, f.http.URL+path+"?"+authorizer.KeyParam+"="+testKey, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return f.do(req)
}

func (f *fixture) do(req *http.Request) (int, string) {
	f.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}
