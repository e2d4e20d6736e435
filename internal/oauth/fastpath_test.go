package oauth_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse-iot/gatehouse/internal/oauth"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// tokenAnswer is what a token request produced: the HTTP answer with the
// token decoded, the token.issued event, and the counters that moved.
type tokenAnswer struct {
	Status  int
	Headers map[string]string
	// Body is the raw body of an error answer; for a token, the body
	// fields except the token itself, which is decoded into Token.
	Body    string
	Fields  map[string]any
	Token   map[string]any
	Event   map[string]any
	Metrics map[string]float64
}

// TestFastPathMatchesOp sends the same token requests through the client
// credentials fast path and through op's generic handling (fast path
// switched off) and compares everything they produce: status, headers,
// error bodies byte for byte, token header and claims (all but jti),
// token.issued event details (all but jti) and metrics. wantFast says
// whether the fast path is expected to take the request (the others must
// fall through to op untouched).
func TestFastPathMatchesOp(t *testing.T) {
	e := newEnv(t, storetestSQLite(t))
	ctx := t.Context()
	reg := prometheus.NewRegistry()
	if err := e.srv.RegisterMetrics(reg); err != nil {
		t.Fatal(err)
	}
	mustDo(t, func() error {
		_, err := e.registry.CreateThing(ctx, registry.NewThing{Name: "off-1", ThingType: "sensor", State: "disabled"})
		return err
	})
	offSecret, err := e.srv.SetThingSecret(ctx, "off-1")
	if err != nil {
		t.Fatal(err)
	}
	sec := e.secrets["sensor-1"]
	basic := func(id, secret string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(id+":"+secret))
	}
	escaped := func(id, secret string) string { return basic(url.QueryEscape(id), url.QueryEscape(secret)) }
	// Assertions are single-use: each run gets its own jti.
	signed := func(run string) string {
		return url.QueryEscape(assertion(t, e.key, jose.ES256, e.keyID, e.assertionClaims("fast-"+run)))
	}
	const jwtBearer = "urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
	const form = "application/x-www-form-urlencoded"
	tests := []struct {
		name        string
		query       string
		contentType string
		auth        string
		body        func(run string) string
		wantStatus  int
		wantFast    bool
	}{
		{"basic with scope", "", form, escaped("sensor-1", sec), fixed("grant_type=client_credentials&scope=publish"), 200, true},
		{"basic without scope", "", form, escaped("sensor-1", sec), fixed("grant_type=client_credentials"), 200, true},
		{"basic, repeated scopes", "", form, escaped("sensor-1", sec), fixed("grant_type=client_credentials&scope=subscribe+publish%20publish"), 200, true},
		{"basic unescaped", "", form, basic("sensor-1", sec), fixed("grant_type=client_credentials"), 200, true},
		{"post secret", "", form, "", fixed("grant_type=client_credentials&client_id=sensor-1&client_secret=" + url.QueryEscape(sec)), 200, true},
		{"escaped parameter names", "", form, escaped("sensor-1", sec), fixed("grant%5Ftype=client_credentials&sc%6Fpe=publish"), 200, true},
		{"content type with charset", "", form + "; charset=utf-8", escaped("sensor-1", sec), fixed("grant_type=client_credentials"), 200, true},
		{"private_key_jwt", "", form, "", func(run string) string {
			return "grant_type=client_credentials&scope=publish&client_assertion_type=" + jwtBearer + "&client_assertion=" + signed(run)
		}, 200, true},
		{"static confidential client", "", form, escaped("resource-server", "rs-secret"), fixed("grant_type=client_credentials"), 200, true},
		{"thing without type", "", form, escaped("loose-1", e.secrets["loose-1"]), fixed("grant_type=client_credentials"), 200, true},
		{"empty scope", "", form, escaped("sensor-1", sec), fixed("grant_type=client_credentials&scope="), 400, true},
		{"double space in scope", "", form, escaped("sensor-1", sec), fixed("grant_type=client_credentials&scope=publish++subscribe"), 400, true},
		{"scope not allowed", "", form, escaped("sensor-1", sec), fixed("grant_type=client_credentials&scope=publish+admin"), 400, true},
		{"wrong secret", "", form, escaped("sensor-1", "ghcs_wrong"), fixed("grant_type=client_credentials"), 401, true},
		{"unknown client", "", form, escaped("ghost", "x"), fixed("grant_type=client_credentials"), 401, true},
		{"disabled thing", "", form, escaped("off-1", offSecret), fixed("grant_type=client_credentials"), 401, true},
		{"secret not allowed by type", "", form, "", fixed("grant_type=client_credentials&client_id=signer-1&client_secret=x"), 401, true},
		{"client_id only", "", form, "", fixed("grant_type=client_credentials&client_id=sensor-1"), 401, true},
		{"public client", "", form, "", fixed("grant_type=client_credentials&client_id=gatehouse-cli"), 400, true},
		{"no client at all", "", form, "", fixed("grant_type=client_credentials"), 400, true},
		{"basic and post secret", "", form, escaped("sensor-1", sec), fixed("grant_type=client_credentials&client_id=sensor-1&client_secret=x"), 400, true},
		{"assertion and secret", "", form, "", func(run string) string {
			return "grant_type=client_credentials&client_id=signer-1&client_secret=x&client_assertion_type=" + jwtBearer + "&client_assertion=" + signed(run)
		}, 400, true},
		{"bad assertion type", "", form, "", fixed("grant_type=client_credentials&client_assertion_type=saml&client_assertion=x.y.z"), 400, true},
		{"garbage assertion", "", form, "", fixed("grant_type=client_credentials&client_assertion_type=" + jwtBearer + "&client_assertion=x.y.z"), 401, true},
		{"bad escape in basic", "", form, basic("sensor%zz", sec), fixed("grant_type=client_credentials"), 400, true},
		// Everything below is op's.
		{"repeated parameter", "", form, escaped("sensor-1", sec), fixed("grant_type=client_credentials&scope=publish&scope=subscribe"), 400, false},
		{"unknown parameter", "", form, escaped("sensor-1", sec), fixed("grant_type=client_credentials&audience=x"), 200, false},
		{"query string", "?x=1", form, escaped("sensor-1", sec), fixed("grant_type=client_credentials"), 400, false},
		{"semicolon", "", form, escaped("sensor-1", sec), fixed("grant_type=client_credentials;scope=publish"), 400, false},
		{"bad escape in form", "", form, escaped("sensor-1", sec), fixed("grant_type=client_credentials&scope=%zz"), 400, false},
		{"empty pair", "", form, escaped("sensor-1", sec), fixed("grant_type=client_credentials&&scope=publish"), 200, false},
		{"another grant", "", form, escaped("sensor-1", sec), fixed("grant_type=password&username=alice&password=x"), 400, false},
		{"no grant type", "", form, escaped("sensor-1", sec), fixed("scope=publish"), 400, false},
		{"JSON body", "", "application/json", escaped("sensor-1", sec), fixed(`{"grant_type":"client_credentials"}`), 400, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var answers [2]tokenAnswer
			for i, fast := range []bool{true, false} {
				oauth.SetFastPath(e.srv, fast)
				served := oauth.FastPathServed(e.srv)
				answers[i] = e.tokenRequest(reg, tc.query, tc.contentType, tc.auth, tc.body(fmt.Sprint(fast)))
				if took := oauth.FastPathServed(e.srv) > served; took != (fast && tc.wantFast) {
					t.Errorf("fast path %v: took the request = %v, want %v", fast, took, fast && tc.wantFast)
				}
			}
			got, want := answers[0], answers[1]
			if got.Status != tc.wantStatus {
				t.Errorf("status = %d %s, want %d", got.Status, got.Body, tc.wantStatus)
			}
			if !reflect.DeepEqual(got, want) {
				gotJSON, _ := json.MarshalIndent(got, "", " ")
				wantJSON, _ := json.MarshalIndent(want, "", " ")
				t.Errorf("fast path answer:\n%s\nop's answer:\n%s", gotJSON, wantJSON)
			}
		})
	}
	oauth.SetFastPath(e.srv, true)
}

func fixed(body string) func(string) string { return func(string) string { return body } }

// tokenRequest posts to the token endpoint and collects its effects.
func (e *env) tokenRequest(reg *prometheus.Registry, query, contentType, auth, body string) tokenAnswer {
	t := e.t
	t.Helper()
	ctx := t.Context()
	last, err := e.store.LatestEventID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	before := gatherCounters(t, reg)
	req, err := http.NewRequest("POST", e.url(oauth.PathToken)+query, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := e.http.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	a := tokenAnswer{Status: resp.StatusCode, Headers: map[string]string{}, Metrics: map[string]float64{}}
	for _, h := range []string{"Content-Type", "Cache-Control", "WWW-Authenticate", "Pragma"} {
		a.Headers[h] = resp.Header.Get(h)
	}
	for k, v := range gatherCounters(t, reg) {
		if d := v - before[k]; d != 0 {
			a.Metrics[k] = d
		}
	}
	if resp.StatusCode != http.StatusOK {
		a.Body = string(raw)
	} else {
		if !strings.HasSuffix(string(raw), "}\n") {
			t.Errorf("token answer does not end like json.Encoder's: %q", raw)
		}
		if err := json.Unmarshal(raw, &a.Fields); err != nil {
			t.Fatalf("token answer %s: %v", raw, err)
		}
		tok, _ := a.Fields["access_token"].(string)
		delete(a.Fields, "access_token")
		if _, err := e.srv.VerifyAccessToken(ctx, tok); err != nil {
			t.Errorf("issued token does not verify: %v", err)
		}
		parts := strings.Split(tok, ".")
		a.Token = map[string]any{"header": decodeSegment(t, parts[0]), "claims": decodeSegment(t, parts[1])}
		delete(a.Token["claims"].(map[string]any), "jti")
	}
	evs, err := e.store.ListEvents(ctx, store.EventFilter{AfterID: last, Type: "token.issued"})
	if err != nil {
		t.Fatal(err)
	}
	switch len(evs) {
	case 0:
	case 1:
		var d map[string]any
		if err := json.Unmarshal(evs[0].Details, &d); err != nil {
			t.Fatal(err)
		}
		delete(d, "jti")
		a.Event = map[string]any{"subject": evs[0].Subject, "actor": evs[0].Actor, "details": d}
	default:
		t.Errorf("%d token.issued events for one request", len(evs))
	}
	return a
}

func decodeSegment(t testing.TB, seg string) map[string]any {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// gatherCounters reads every counter of reg as "name{label=value,...}".
func gatherCounters(t testing.TB, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			var kv []string
			for _, k := range slices.Sorted(maps.Keys(labels)) {
				kv = append(kv, k+"="+labels[k])
			}
			out[mf.GetName()+"{"+strings.Join(kv, ",")+"}"] = m.GetCounter().GetValue()
		}
	}
	return out
}

// TestFastPathAfterParseForm: when a handler in front already parsed the
// form (the body is gone), the fast path takes the parameters from the
// parsed form, with the same rules and the same answers as op.
func TestFastPathAfterParseForm(t *testing.T) {
	e := newEnv(t, storetestSQLite(t))
	sec := e.secrets["sensor-1"]
	tests := []struct {
		name       string
		body       string
		wantStatus int
		wantFast   bool
	}{
		{"token", "grant_type=client_credentials&scope=publish", 200, true},
		{"unknown scope", "grant_type=client_credentials&scope=admin", 400, true},
		{"wrong secret", "grant_type=client_credentials&client_id=sensor-1&client_secret=nope", 401, true},
		{"repeated parameter", "grant_type=client_credentials&scope=publish&scope=subscribe", 400, false},
		{"another grant", "grant_type=password&username=alice&password=x", 400, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got [2]string
			for i, fast := range []bool{true, false} {
				oauth.SetFastPath(e.srv, fast)
				served := oauth.FastPathServed(e.srv)
				req := httptest.NewRequest("POST", oauth.PathToken, strings.NewReader(tc.body))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				if !strings.Contains(tc.body, "client_secret") {
					req.SetBasicAuth("sensor-1", url.QueryEscape(sec))
				}
				if err := req.ParseForm(); err != nil {
					t.Fatal(err)
				}
				rec := httptest.NewRecorder()
				e.srv.Handler().ServeHTTP(rec, req)
				if rec.Code != tc.wantStatus {
					t.Fatalf("fast %v: status %d %s, want %d", fast, rec.Code, rec.Body, tc.wantStatus)
				}
				if took := oauth.FastPathServed(e.srv) > served; took != (fast && tc.wantFast) {
					t.Errorf("fast %v: took the request = %v", fast, took)
				}
				got[i] = rec.Body.String()
				if rec.Code == 200 {
					var body map[string]any
					if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
						t.Fatal(err)
					}
					claims := decodeSegment(t, strings.Split(body["access_token"].(string), ".")[1])
					delete(claims, "jti")
					delete(body, "access_token")
					b, _ := json.Marshal([]any{body, claims})
					got[i] = string(b)
				}
			}
			if got[0] != got[1] {
				t.Errorf("fast path: %s\nop:        %s", got[0], got[1])
			}
		})
	}
	oauth.SetFastPath(e.srv, true)
}
