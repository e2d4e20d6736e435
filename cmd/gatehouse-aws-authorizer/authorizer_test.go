package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/testenv"
)

// gatehouse is a real Gatehouse authorization server with two things.
type gatehouse struct {
	t       *testing.T
	http    *httptest.Server
	issuer  string
	secrets map[string]string
	fetches atomic.Int64
	down    atomic.Bool // the JWKS endpoint answers 503
	env     *testenv.Env
}

func newGatehouse(t *testing.T) *gatehouse {
	t.Helper()
	env := testenv.New(t, testenv.TokenTTL(time.Hour))
	g := &gatehouse{t: t, env: env, http: env.HTTP, issuer: env.Issuer}
	keys := env.OAuth.Handler()
	env.Mux.Handle("/oauth2/keys", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.fetches.Add(1)
		if g.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		keys.ServeHTTP(w, r)
	}))
	admin := env.As("test")
	if _, err := env.Registry.CreateThingType(admin, registry.ThingTypeSpec{Name: "sensor", Scopes: []string{"mqtt", "alerts"}}); err != nil {
		t.Fatal(err)
	}
	g.secrets = env.Things(admin, "sensor", "sensor1", "pump-7")
	return g
}

func (g *gatehouse) token(thing string, scopes ...string) string {
	g.t.Helper()
	return g.env.Token(thing, g.secrets[thing], scopes...)
}

func (g *gatehouse) authorizer(t *testing.T, now func() time.Time, env map[string]string) *authorizer {
	t.Helper()
	base := map[string]string{
		"GATEHOUSE_JWKS_URL": g.http.URL + "/oauth2/keys", "GATEHOUSE_ISSUER": g.issuer,
		"GATEHOUSE_POLICY_MAP_FILE": "testdata/policy-map.json",
	}
	for k, v := range env {
		base[k] = v
	}
	cfg, err := configFromEnv(func(k string) string { return base[k] }, os.ReadFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Now = now
	a, err := newAuthorizer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// event reads a testdata event and fills in the token.
func event(t *testing.T, file, token string) events.IoTCoreCustomAuthorizerRequest {
	t.Helper()
	raw, err := os.ReadFile("testdata/" + file)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.ReplaceAll(string(raw), "PASSWORD_BASE64", base64.StdEncoding.EncodeToString([]byte(token)))
	s = strings.ReplaceAll(s, "TOKEN", token)
	var req events.IoTCoreCustomAuthorizerRequest
	if err := json.Unmarshal([]byte(s), &req); err != nil {
		t.Fatal(err)
	}
	return req
}

func TestHandle(t *testing.T) {
	g := newGatehouse(t)
	a := g.authorizer(t, time.Now, nil)
	both := g.token("sensor1", "mqtt", "alerts")
	mqttOnly := g.token("sensor1", "mqtt")
	pump := g.token("pump-7", "mqtt")
	cases := []struct {
		name      string
		req       events.IoTCoreCustomAuthorizerRequest
		want      bool
		principal string
		resources []string
	}{
		{"mqtt: token as password", event(t, "mqtt-event.json", both), true, "sensor1", []string{
			"arn:aws:iot:eu-west-1:123456789012:client/sensor1",
			"arn:aws:iot:eu-west-1:123456789012:topic/things/*/firmware",
			"arn:aws:iot:eu-west-1:123456789012:topic/things/sensor1/*",
			"arn:aws:iot:eu-west-1:123456789012:topicfilter/things/sensor1/*",
			"arn:aws:iot:eu-west-1:123456789012:topic/alerts/${iot:ClientId}"}},
		{"http: token from the token key", event(t, "http-event.json", mqttOnly), true, "sensor1", []string{
			"arn:aws:iot:eu-west-1:123456789012:client/sensor1",
			"arn:aws:iot:eu-west-1:123456789012:topic/things/*/firmware",
			"arn:aws:iot:eu-west-1:123456789012:topic/things/sensor1/*",
			"arn:aws:iot:eu-west-1:123456789012:topicfilter/things/sensor1/*"}},
		{"principal id of a name with a dash", event(t, "http-event.json", pump), true, principalID("pump-7"), nil},
		{"mqtt: username of another thing", event(t, "mqtt-event.json", pump), false, "", nil},
		{"garbage token", event(t, "http-event.json", "abc.def.ghi"), false, "", nil},
		{"no token", event(t, "http-event.json", ""), false, "", nil},
		{"tampered token", event(t, "http-event.json", both[:len(both)-4]+"AAAA"), false, "", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, err := a.Handle(context.Background(), c.req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.IsAuthenticated != c.want {
				t.Fatalf("isAuthenticated = %v, want %v", resp.IsAuthenticated, c.want)
			}
			if !c.want {
				if len(resp.PolicyDocuments) != 0 {
					t.Fatal("refusal carries policies")
				}
				return
			}
			if resp.PrincipalID != c.principal {
				t.Errorf("principalId %q, want %q", resp.PrincipalID, c.principal)
			}
			if resp.DisconnectAfterInSeconds < 3500 || resp.DisconnectAfterInSeconds > 3600 {
				t.Errorf("disconnectAfterInSeconds %d, want the token's hour", resp.DisconnectAfterInSeconds)
			}
			if resp.RefreshAfterInSeconds != 300 {
				t.Errorf("refreshAfterInSeconds %d", resp.RefreshAfterInSeconds)
			}
			var got []string
			for _, d := range resp.PolicyDocuments {
				for _, st := range d.Statement {
					got = append(got, st.Resource...)
				}
			}
			if c.resources != nil && strings.Join(got, "\n") != strings.Join(c.resources, "\n") {
				t.Errorf("resources\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(c.resources, "\n"))
			}
			checkWireFormat(t, resp)
		})
	}
}

// checkWireFormat checks the JSON AWS IoT receives.
func checkWireFormat(t *testing.T, resp events.IoTCoreCustomAuthorizerResponse) {
	t.Helper()
	raw, err := json.Marshal(resp)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal(raw, &m)
	for _, k := range []string{"isAuthenticated", "principalId", "disconnectAfterInSeconds", "refreshAfterInSeconds", "policyDocuments"} {
		if _, ok := m[k]; !ok {
			t.Errorf("response lacks %q: %s", k, raw)
		}
	}
	docs := m["policyDocuments"].([]any)
	if len(docs) == 0 || len(docs) > maxDocuments {
		t.Errorf("%d policy documents", len(docs))
	}
	for _, d := range docs {
		b, _ := json.Marshal(d)
		if len(b) > maxDocumentChars {
			t.Errorf("policy document of %d characters", len(b))
		}
		if !strings.Contains(string(b), `"Version":"2012-10-17"`) || !strings.Contains(string(b), `"Effect":`) {
			t.Errorf("policy document %s", b)
		}
	}
	p := m["principalId"].(string)
	if len(p) == 0 || len(p) > 128 || strings.IndexFunc(p, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
	}) >= 0 {
		t.Errorf("principalId %q does not match [a-zA-Z0-9]{1,128}", p)
	}
}

func TestTokenChecks(t *testing.T) {
	g := newGatehouse(t)
	tok := g.token("sensor1", "mqtt")
	for _, c := range []struct {
		name string
		now  func() time.Time
		env  map[string]string
		want bool
	}{
		{"valid", time.Now, nil, true},
		{"expired", func() time.Time { return time.Now().Add(2 * time.Hour) }, nil, false},
		{"issued in the future", func() time.Time { return time.Now().Add(-time.Hour) }, nil, false},
		{"wrong issuer", time.Now, map[string]string{"GATEHOUSE_ISSUER": "https://elsewhere"}, false},
		{"audience not accepted", time.Now, map[string]string{"GATEHOUSE_AUDIENCE": "aws-iot"}, false},
		{"audience accepted", time.Now, map[string]string{"GATEHOUSE_AUDIENCE": "aws-iot, " + g.issuer}, true},
		{"no statement for the scopes", time.Now, map[string]string{"GATEHOUSE_POLICY_MAP": `{"scopes":{"other":[{"Effect":"Allow","Action":["iot:Connect"],"Resource":["*"]}]}}`}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := g.authorizer(t, c.now, c.env)
			resp, _ := a.Handle(context.Background(), event(t, "http-event.json", tok))
			if resp.IsAuthenticated != c.want {
				t.Fatalf("isAuthenticated = %v, want %v", resp.IsAuthenticated, c.want)
			}
		})
	}
	t.Run("short-lived token is clamped to 300 s", func(t *testing.T) {
		a := g.authorizer(t, func() time.Time { return time.Now().Add(time.Hour - time.Minute) }, nil)
		resp, _ := a.Handle(context.Background(), event(t, "http-event.json", tok))
		if !resp.IsAuthenticated || resp.DisconnectAfterInSeconds != 300 || resp.RefreshAfterInSeconds != 300 {
			t.Fatalf("%+v", resp)
		}
	})
}

func TestJWKSCache(t *testing.T) {
	g := newGatehouse(t)
	tok := g.token("sensor1", "mqtt")
	now := time.Now()
	clock := atomic.Pointer[time.Time]{}
	clock.Store(&now)
	a := g.authorizer(t, func() time.Time { return *clock.Load() }, nil)
	for range 5 {
		if resp, _ := a.Handle(context.Background(), event(t, "http-event.json", tok)); !resp.IsAuthenticated {
			t.Fatal("denied")
		}
	}
	if n := g.fetches.Load(); n != 1 {
		t.Fatalf("%d JWKS fetches for 5 tokens, want 1", n)
	}
	// Unknown key ids refetch at most once a minute.
	h, p, _ := strings.Cut(tok, ".")
	hdr, _ := base64.RawURLEncoding.DecodeString(h)
	forged := base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(hdr), `"kid":"`, `"kid":"x`, 1))) + "." + p
	for range 3 {
		a.Handle(context.Background(), event(t, "http-event.json", forged))
	}
	if n := g.fetches.Load(); n != 1 {
		t.Fatalf("%d JWKS fetches, want 1 (the last fetch is under a minute old)", n)
	}
	later := now.Add(11 * time.Minute)
	clock.Store(&later)
	a.Handle(context.Background(), event(t, "http-event.json", tok))
	if n := g.fetches.Load(); n != 2 {
		t.Fatalf("%d JWKS fetches after the TTL, want 2", n)
	}
	// Gatehouse unreachable after the next TTL: the keys it had keep
	// verifying, and invocations do not each try the endpoint again.
	g.down.Store(true)
	down := later.Add(11 * time.Minute)
	clock.Store(&down)
	for i := range 5 {
		if resp, _ := a.Handle(context.Background(), event(t, "http-event.json", tok)); !resp.IsAuthenticated {
			t.Fatalf("invocation %d with Gatehouse down: denied, want the cached keys to verify", i)
		}
	}
	if n := g.fetches.Load(); n != 3 {
		t.Fatalf("%d JWKS fetches with Gatehouse down, want 3 (one attempt, then backoff)", n)
	}
}

func TestPack(t *testing.T) {
	st := func(i int) events.IAMPolicyStatement {
		return events.IAMPolicyStatement{Effect: "Allow", Action: []string{"iot:Publish"},
			Resource: []string{"arn:aws:iot:eu-west-1:123456789012:topic/" + strings.Repeat("x", 200) + string(rune('a'+i%26))}}
	}
	var sts []events.IAMPolicyStatement
	for i := range 30 {
		sts = append(sts, st(i))
	}
	docs, err := pack(sts)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, d := range docs {
		b, _ := json.Marshal(d)
		if len(b) > maxDocumentChars {
			t.Fatalf("document of %d characters", len(b))
		}
		n += len(d.Statement)
	}
	if n != 30 || len(docs) < 4 {
		t.Fatalf("%d statements in %d documents", n, len(docs))
	}
	for range 100 {
		sts = append(sts, st(0))
	}
	if _, err := pack(sts); err == nil {
		t.Fatal("more than 10 documents accepted")
	}
}

func TestSubstitute(t *testing.T) {
	vars := map[string]string{"${gatehouse:ThingName}": "", "${gatehouse:Subject}": "alice"}
	allow := events.IAMPolicyStatement{Effect: "Allow", Action: []string{"iot:Publish"}, Resource: []string{"topic/${gatehouse:ThingName}/x"}}
	if _, ok := substitute(allow, vars); ok {
		t.Error("Allow with a missing thing name kept")
	}
	deny := events.IAMPolicyStatement{Effect: "Deny", Action: []string{"iot:Publish"}, Resource: []string{"topic/${gatehouse:ThingName}/x", "topic/${gatehouse:Subject}"}}
	got, ok := substitute(deny, vars)
	if !ok || got.Resource[0] != "topic/*/x" || got.Resource[1] != "topic/alice" {
		t.Errorf("%v %+v", ok, got)
	}
	if safeValue("a*b") || safeValue(`a"b`) || safeValue("${x}") || !safeValue("pump-7:eu@x.y_z") {
		t.Error("safeValue")
	}
}

func TestConfig(t *testing.T) {
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	good := `{"scopes":{"a":[{"Effect":"Allow","Action":["iot:Connect"],"Resource":["*"]}]}}`
	for _, c := range []struct {
		name string
		env  func(string) string
		ok   bool
	}{
		{"minimal", env("GATEHOUSE_JWKS_URL", "u", "GATEHOUSE_ISSUER", "i", "GATEHOUSE_POLICY_MAP", good), true},
		{"no jwks", env("GATEHOUSE_ISSUER", "i", "GATEHOUSE_POLICY_MAP", good), false},
		{"no map", env("GATEHOUSE_JWKS_URL", "u", "GATEHOUSE_ISSUER", "i"), false},
		{"unknown field", env("GATEHOUSE_JWKS_URL", "u", "GATEHOUSE_ISSUER", "i", "GATEHOUSE_POLICY_MAP", `{"scope":{}}`), false},
		{"bad effect", env("GATEHOUSE_JWKS_URL", "u", "GATEHOUSE_ISSUER", "i", "GATEHOUSE_POLICY_MAP", `{"default":[{"Effect":"allow","Action":["iot:Connect"],"Resource":["*"]}]}`), false},
		{"condition unsupported", env("GATEHOUSE_JWKS_URL", "u", "GATEHOUSE_ISSUER", "i", "GATEHOUSE_POLICY_MAP", `{"default":[{"Effect":"Allow","Action":["iot:Connect"],"Resource":["*"],"Condition":{}}]}`), false},
		{"refresh too small", env("GATEHOUSE_JWKS_URL", "u", "GATEHOUSE_ISSUER", "i", "GATEHOUSE_POLICY_MAP", good, "GATEHOUSE_REFRESH_AFTER", "60"), false},
		{"refresh", env("GATEHOUSE_JWKS_URL", "u", "GATEHOUSE_ISSUER", "i", "GATEHOUSE_POLICY_MAP", good, "GATEHOUSE_REFRESH_AFTER", "900"), true},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := configFromEnv(c.env, os.ReadFile)
			if (err == nil) != c.ok {
				t.Fatalf("err = %v", err)
			}
		})
	}
}
