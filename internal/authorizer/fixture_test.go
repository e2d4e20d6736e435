package authorizer_test

import (
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

	"github.com/gatehouse-iot/gatehouse/internal/authorizer"
	"github.com/gatehouse-iot/gatehouse/internal/oauth"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/testenv"
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
	env      *testenv.Env
}

func newFixture(t testing.TB, mod func(*authorizer.Config)) *fixture {
	t.Helper()
	env := testenv.New(t, testenv.TokenTTL(time.Hour))
	f := &fixture{t: t, reg: env.Registry, oauth: env.OAuth, http: env.HTTP, env: env}
	cfg := authorizer.Config{
		Authn:    env.Authn,
		Registry: env.Registry,
		Store:    env.Store,
		Revoked:  env.OAuth.Revoked,
		Events:   env.Events,
		Keys:     []string{testKey},
	}
	if stdos.Getenv("GATEHOUSE_TEST_LOG") != "" {
		cfg.Logger = slog.New(slog.NewTextHandler(stdos.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if mod != nil {
		mod(&cfg)
	}
	f.adapters = authorizer.New(cfg)
	env.Mux.Handle("/authorizer/", f.adapters.Handler())

	admin := env.As("test")
	if _, err := f.reg.CreatePolicy(admin, registry.NewPolicy{Name: "telemetry", Document: []byte(telemetry)}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.CreateThingType(admin, registry.ThingTypeSpec{Name: "sensor", Scopes: []string{"mqtt"}, DefaultPolicies: []string{"telemetry"}}); err != nil {
		t.Fatal(err)
	}
	f.secrets = env.Things(admin, "sensor", "s-1", "s-2")
	return f
}

// token gets an access token for a thing by client credentials.
func (f *fixture) token(thing string) string {
	f.t.Helper()
	return f.env.Token(thing, f.secrets[thing])
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
