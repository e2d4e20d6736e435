package oauth_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/gatehouse-iot/gatehouse/internal/oauth"
	"github.com/gatehouse-iot/gatehouse/internal/store"
	"github.com/gatehouse-iot/gatehouse/internal/testenv"
)

func TestDiscovery(t *testing.T) {
	e := newEnv(t, storetestSQLite(t))
	for _, path := range []string{oauth.PathDiscoveryOIDC, oauth.PathDiscoveryOAuth} {
		t.Run(path, func(t *testing.T) {
			req, _ := http.NewRequest("GET", e.url(path), nil)
			status, doc := e.do(req)
			if status != 200 {
				t.Fatalf("GET %s = %d", path, status)
			}
			want := map[string]string{
				"issuer": e.http.URL, "token_endpoint": e.url("/oauth2/token"), "jwks_uri": e.url("/oauth2/keys"),
				"introspection_endpoint": e.url("/oauth2/introspect"), "revocation_endpoint": e.url("/oauth2/revoke"),
				"device_authorization_endpoint": e.url("/oauth2/device/code"),
			}
			for k, v := range want {
				if doc[k] != v {
					t.Errorf("%s = %v, want %s", k, doc[k], v)
				}
			}
			methods, _ := json.Marshal(doc["token_endpoint_auth_methods_supported"])
			for _, m := range []string{"client_secret_basic", "client_secret_post", "private_key_jwt"} {
				if !strings.Contains(string(methods), m) {
					t.Errorf("token_endpoint_auth_methods_supported = %s, want %s", methods, m)
				}
			}
			// RFC 8705: no mutual-TLS listener, so no tls_client_auth.
			if strings.Contains(string(methods), "tls_client_auth") || doc["mtls_endpoint_aliases"] != nil || doc["tls_client_certificate_bound_access_tokens"] != nil {
				t.Errorf("without a mutual-TLS listener the metadata advertises it: %s, aliases %v", methods, doc["mtls_endpoint_aliases"])
			}
			// Scopes clients can ask for, thing types' included (RFC 8414 2).
			scopes, _ := json.Marshal(doc["scopes_supported"])
			for _, sc := range []string{"telemetry", "openid", "publish", "subscribe"} {
				if !strings.Contains(string(scopes), `"`+sc+`"`) {
					t.Errorf("scopes_supported = %s, want %s among them", scopes, sc)
				}
			}
			if doc["authorization_response_iss_parameter_supported"] != true {
				t.Errorf("authorization_response_iss_parameter_supported = %v, want true (RFC 9207)", doc["authorization_response_iss_parameter_supported"])
			}
		})
	}
}

// TestDiscoveryMTLS: with a mutual-TLS listener the metadata advertises
// tls_client_auth, certificate-bound tokens and the endpoints on that
// listener (RFC 8705 sections 2.1.1, 3.3, 5).
func TestDiscoveryMTLS(t *testing.T) {
	const base = "https://gatehouse.example:8443"
	e := newEnv(t, storetestSQLite(t), func(cfg *oauth.Config) {
		cfg.MTLSBaseURL = base + "/"
		cfg.ClientCertificates = func(context.Context, []*x509.Certificate) (string, error) {
			return "", errors.New("no certificates here")
		}
	})
	req, _ := http.NewRequest("GET", e.url(oauth.PathDiscoveryOAuth), nil)
	status, doc := e.do(req)
	if status != 200 {
		t.Fatalf("GET metadata = %d", status)
	}
	methods, _ := json.Marshal(doc["token_endpoint_auth_methods_supported"])
	if !strings.Contains(string(methods), `"tls_client_auth"`) {
		t.Errorf("token_endpoint_auth_methods_supported = %s, want tls_client_auth", methods)
	}
	if doc["tls_client_certificate_bound_access_tokens"] != true {
		t.Errorf("tls_client_certificate_bound_access_tokens = %v, want true", doc["tls_client_certificate_bound_access_tokens"])
	}
	got, _ := doc["mtls_endpoint_aliases"].(map[string]any)
	want := map[string]any{
		"token_endpoint": base + oauth.PathToken, "introspection_endpoint": base + oauth.PathIntrospect,
		"revocation_endpoint": base + oauth.PathRevoke, "device_authorization_endpoint": base + oauth.PathDeviceCode,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("mtls_endpoint_aliases = %v, want %v", got, want)
	}
}

func TestIntrospection(t *testing.T) {
	drivers(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn)
		own := clientToken(t, e, "sensor-1", "publish")
		other := clientToken(t, e, "sensor-2")
		introspect := func(token, user, pass string) (int, map[string]any) {
			return e.postForm(oauth.PathIntrospect, url.Values{"token": {token}}, user, pass)
		}
		tests := []struct {
			name       string
			token      string
			user, pass string
			wantStatus int
			wantActive bool
		}{
			{"own token", own, "sensor-1", e.secrets["sensor-1"], 200, true},
			{"another thing's token", other, "sensor-1", e.secrets["sensor-1"], 200, false},
			{"resource server sees all", other, "resource-server", "rs-secret", 200, true},
			{"garbage", "garbage", "resource-server", "rs-secret", 200, false},
			{"too long", own + strings.Repeat("x", 9000), "resource-server", "rs-secret", 200, false},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				status, body := introspect(tc.token, tc.user, tc.pass)
				if status != tc.wantStatus || body["active"] != tc.wantActive {
					t.Fatalf("introspect = %d %v, want %d active=%v", status, body, tc.wantStatus, tc.wantActive)
				}
				if tc.wantActive && (body["thing_name"] == nil || body["client_id"] == nil || body["scope"] == nil || body["exp"] == nil || body["jti"] == nil) {
					t.Errorf("active answer lacks claims: %v", body)
				}
			})
		}
		if status, body := introspect(own, "sensor-1", "wrong"); status != 401 || body["error"] != "invalid_client" {
			t.Errorf("wrong secret = %d %v, want 401 invalid_client", status, body)
		}
		if status, body := e.postForm(oauth.PathIntrospect, url.Values{"token": {own}, "client_id": {"gatehouse-cli"}}, "", ""); status != 401 || body["error"] != "invalid_client" {
			t.Errorf("public client = %d %v, want 401 invalid_client", status, body)
		}
	})
}

func TestRevocation(t *testing.T) {
	drivers(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn)
		ctx := t.Context()
		tok := clientToken(t, e, "sensor-1")
		// Another client cannot revoke it; the answer is 200 regardless.
		if status, _ := e.postForm(oauth.PathRevoke, url.Values{"token": {tok}}, "sensor-2", e.secrets["sensor-2"]); status != 200 {
			t.Errorf("foreign revoke = %d, want 200", status)
		}
		if _, err := e.srv.VerifyAccessToken(ctx, tok); err != nil {
			t.Fatalf("token revoked by another client: %v", err)
		}
		if status, _ := e.postForm(oauth.PathRevoke, url.Values{"token": {tok}, "token_type_hint": {"access_token"}}, "sensor-1", e.secrets["sensor-1"]); status != 200 {
			t.Errorf("revoke = %d, want 200", status)
		}
		if _, err := e.srv.VerifyAccessToken(ctx, tok); !errors.Is(err, oauth.ErrInvalidToken) {
			t.Errorf("VerifyAccessToken after revoke: err = %v", err)
		}
		if status, body := e.postForm(oauth.PathIntrospect, url.Values{"token": {tok}}, "sensor-1", e.secrets["sensor-1"]); status != 200 || body["active"] != false {
			t.Errorf("introspect after revoke = %d %v", status, body)
		}
		if status, _ := e.postForm(oauth.PathRevoke, url.Values{"token": {"garbage"}}, "sensor-1", e.secrets["sensor-1"]); status != 200 {
			t.Errorf("revoke garbage = %d, want 200", status)
		}
		if status, body := e.postForm(oauth.PathRevoke, url.Values{"token": {tok}}, "sensor-1", "wrong"); status != 401 || body["error"] != "invalid_client" {
			t.Errorf("revoke with wrong secret = %d %v", status, body)
		}
		if evs, _ := e.store.ListEvents(ctx, store.EventFilter{Type: "token.revoked"}); len(evs) != 1 {
			t.Errorf("token.revoked events = %d, want 1", len(evs))
		}
	})
}

func TestKeyRotation(t *testing.T) {
	drivers(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, func(c *oauth.Config) { c.KeyRotation = 24 * time.Hour })
		ctx := t.Context()
		jwksKids := func() []string {
			req, _ := http.NewRequest("GET", e.url(oauth.PathKeys), nil)
			_, set := e.do(req)
			var kids []string
			for _, k := range set["keys"].([]any) {
				kids = append(kids, k.(map[string]any)["kid"].(string))
			}
			return kids
		}
		old := clientToken(t, e, "sensor-1")
		oldKid := jwtHeader(t, old)["kid"].(string)
		if err := e.srv.RotateKeys(ctx); err != nil {
			t.Fatalf("RotateKeys: %v", err)
		}
		mid := clientToken(t, e, "sensor-1")
		midKid := jwtHeader(t, mid)["kid"].(string)
		if midKid == oldKid {
			t.Fatalf("kid did not change after rotation")
		}
		if kids := jwksKids(); len(kids) != 2 || kids[0] != midKid || kids[1] != oldKid {
			t.Errorf("JWKS kids = %v, want [%s %s]", kids, midKid, oldKid)
		}
		if _, err := e.srv.VerifyAccessToken(ctx, old); err != nil {
			t.Errorf("token of the previous key: %v", err)
		}
		// Scheduled rotation: a day later the next token rotates the keys;
		// the first key is dropped and its tokens no longer verify.
		e.clock.Advance(24*time.Hour + time.Minute)
		fresh := clientToken(t, e, "sensor-1")
		freshKid := jwtHeader(t, fresh)["kid"].(string)
		if kids := jwksKids(); len(kids) != 2 || kids[0] != freshKid || kids[1] != midKid {
			t.Errorf("JWKS kids after scheduled rotation = %v, want [%s %s]", kids, freshKid, midKid)
		}
		if _, err := e.srv.VerifyAccessToken(ctx, old); !errors.Is(err, oauth.ErrInvalidToken) {
			t.Errorf("token of a dropped key: err = %v, want ErrInvalidToken", err)
		}
		if evs, _ := e.store.ListEvents(ctx, store.EventFilter{Type: "key.rotated"}); len(evs) != 3 {
			t.Errorf("key.rotated events = %d, want 3 (first key, command, schedule)", len(evs))
		}
		// Keys are stored sealed: no private key material in the table.
		keys, err := e.store.ListSigningKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			if bytes.Contains(k.SealedPrivate, []byte("PRIVATE")) || bytes.Contains(k.PublicJWK, []byte(`"d"`)) {
				t.Errorf("key %s stored in the clear", k.KID)
			}
		}
	})
}

func TestAlgorithms(t *testing.T) {
	tests := []struct {
		alg    string
		secret []byte
		jwks   int
	}{
		{oauth.ES256, nil, 1},
		{oauth.EdDSA, nil, 1},
		{oauth.RS256, nil, 1},
		{oauth.HS256, bytes.Repeat([]byte("k"), 32), 0},
	}
	for _, tc := range tests {
		t.Run(tc.alg, func(t *testing.T) {
			e := newEnv(t, storetestSQLite(t), func(c *oauth.Config) { c.Algorithm, c.HS256Secret = tc.alg, tc.secret })
			tok := clientToken(t, e, "sensor-1")
			if h := jwtHeader(t, tok); h["alg"] != tc.alg || h["typ"] != "at+jwt" {
				t.Errorf("header = %v, want alg %s typ at+jwt", h, tc.alg)
			}
			if _, err := e.srv.VerifyAccessToken(t.Context(), tok); err != nil {
				t.Errorf("VerifyAccessToken: %v", err)
			}
			req, _ := http.NewRequest("GET", e.url(oauth.PathKeys), nil)
			_, set := e.do(req)
			if n := len(set["keys"].([]any)); n != tc.jwks {
				t.Errorf("JWKS has %d keys, want %d", n, tc.jwks)
			}
			if tc.alg == oauth.HS256 {
				if err := e.srv.RotateKeys(t.Context()); !errors.Is(err, oauth.ErrRotationUnsupported) {
					t.Errorf("RotateKeys in HS256 mode: %v", err)
				}
			}
		})
	}
	// HS256 tokens are not accepted by an asymmetric server and vice versa.
	hs := newEnv(t, storetestSQLite(t), func(c *oauth.Config) { c.Algorithm, c.HS256Secret = oauth.HS256, bytes.Repeat([]byte("k"), 32) })
	es := newEnv(t, storetestSQLite(t))
	if _, err := es.srv.VerifyAccessToken(t.Context(), clientToken(t, hs, "sensor-1")); !errors.Is(err, oauth.ErrInvalidToken) {
		t.Errorf("ES256 server accepted an HS256 token: %v", err)
	}
	if _, err := hs.srv.VerifyAccessToken(t.Context(), clientToken(t, es, "sensor-1")); !errors.Is(err, oauth.ErrInvalidToken) {
		t.Errorf("HS256 server accepted an ES256 token: %v", err)
	}
}

func TestThingEndpoint(t *testing.T) {
	e := newEnv(t, storetestSQLite(t))
	ctx := t.Context()
	edPub, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwk, _ := json.Marshal(jose.JSONWebKey{Key: edPub, KeyID: "ed-1"})
	if kid, err := e.srv.AddThingKey(ctx, "sensor-2", jwk); err != nil || kid != "ed-1" {
		t.Fatalf("AddThingKey = %q, %v", kid, err)
	}
	signed := func(path, jti string) string {
		now := e.clock.Now()
		return assertion(t, edKey, jose.EdDSA, "ed-1", map[string]any{"iss": "sensor-2", "sub": "sensor-2", "aud": e.url(path), "exp": now.Add(time.Minute).Unix(), "jti": jti})
	}
	replay := signed("/things/sensor-2", "nonce-replay")
	call := func(path, auth, body string) (int, map[string]any) {
		req, _ := http.NewRequest("POST", e.url(path), strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept-API-Version", "protocol=2.0,resource=1.0")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		return e.do(req)
	}
	basic := func(id, secret string) string {
		r, _ := http.NewRequest("GET", "/", nil)
		r.SetBasicAuth(id, secret)
		return r.Header.Get("Authorization")
	}
	const action = "?_action=get_access_token"
	tests := []struct {
		name       string
		path, auth string
		body       string
		wantStatus int
		wantError  string
		wantScope  string
	}{
		{"secret", "/things/sensor-1" + action, basic("sensor-1", e.secrets["sensor-1"]), `{"scope":["publish"]}`, 200, "", "publish"},
		{"things star", "/things/*" + action, basic("sensor-1", e.secrets["sensor-1"]), `{"scope":["subscribe"]}`, 200, "", "subscribe"},
		{"signed JWT", "/things/sensor-2" + action, "Bearer " + signed("/things/sensor-2", "n1"), `{"scope":["publish"]}`, 200, "", "publish"},
		{"signed JWT first use", "/things/sensor-2" + action, "Bearer " + replay, `{}`, 200, "", "publish subscribe"},
		{"signed JWT replayed", "/things/sensor-2" + action, "Bearer " + replay, `{}`, 401, "invalid_client", ""},
		{"no authentication", "/things/sensor-1" + action, "", `{}`, 401, "invalid_client", ""},
		{"wrong secret", "/things/sensor-1" + action, basic("sensor-1", "nope"), `{}`, 401, "invalid_client", ""},
		{"another thing's name", "/things/sensor-2" + action, basic("sensor-1", e.secrets["sensor-1"]), `{}`, 400, "unauthorized_client", ""},
		{"unknown scope", "/things/sensor-1" + action, basic("sensor-1", e.secrets["sensor-1"]), `{"scope":["admin"]}`, 400, "invalid_scope", ""},
		{"bad action", "/things/sensor-1?_action=delete", basic("sensor-1", e.secrets["sensor-1"]), `{}`, 400, "invalid_request", ""},
		{"bad body", "/things/sensor-1" + action, basic("sensor-1", e.secrets["sensor-1"]), `{"scope":`, 400, "invalid_request", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body := call(tc.path, tc.auth, tc.body)
			if status != tc.wantStatus || (tc.wantError != "" && body["error"] != tc.wantError) {
				t.Fatalf("status %d body %v, want %d %s", status, body, tc.wantStatus, tc.wantError)
			}
			if tc.wantStatus == 200 {
				at, err := e.srv.VerifyAccessToken(ctx, body["access_token"].(string))
				if err != nil || strings.Join(at.Scopes, " ") != tc.wantScope || body["scope"] != tc.wantScope {
					t.Errorf("token = %+v, %v; body %v; want scope %q", at, err, body, tc.wantScope)
				}
			}
		})
	}
}

func TestCredentialManagement(t *testing.T) {
	e := newEnv(t, storetestSQLite(t))
	ctx := t.Context()
	old := e.secrets["sensor-1"]
	fresh, err := e.srv.SetThingSecret(ctx, "sensor-1")
	if err != nil || !strings.HasPrefix(fresh, oauth.SecretPrefix) || fresh == old {
		t.Fatalf("SetThingSecret = %q, %v", fresh, err)
	}
	cfg := clientcredentials.Config{ClientID: "sensor-1", TokenURL: e.url(oauth.PathToken)}
	octx := context.WithValue(ctx, oauth2.HTTPClient, e.http.Client())
	cfg.ClientSecret = old
	if _, err := cfg.Token(octx); err == nil {
		t.Error("old secret still works")
	}
	cfg.ClientSecret = fresh
	if _, err := cfg.Token(octx); err != nil {
		t.Errorf("new secret: %v", err)
	}
	if _, err := e.srv.SetThingSecret(ctx, "ghost"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("secret for unknown thing: err = %v", err)
	}
	priv := mustECKey(t)
	privJWK, _ := json.Marshal(jose.JSONWebKey{Key: priv})
	hmacJWK, _ := json.Marshal(jose.JSONWebKey{Key: []byte("0123456789abcdef0123456789abcdef")})
	badKeys := map[string][]byte{"private key": privJWK, "symmetric key": hmacJWK, "not JSON": []byte("{"), "wrong alg": []byte(`{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","alg":"ES256"}`)}
	for name, k := range badKeys {
		if _, err := e.srv.AddThingKey(ctx, "sensor-1", k); err == nil {
			t.Errorf("AddThingKey(%s) succeeded", name)
		}
	}
	keys, err := e.srv.ListThingKeys(ctx, "signer-1")
	if err != nil || len(keys) != 1 || keys[0].KID != e.keyID || keys[0].Algorithm != "ES256" {
		t.Fatalf("ListThingKeys = %+v, %v", keys, err)
	}
	if err := e.srv.RemoveThingKey(ctx, "signer-1", e.keyID); err != nil {
		t.Fatal(err)
	}
	status, body := e.postForm(oauth.PathToken, assertionForm(assertion(t, e.key, jose.ES256, e.keyID, e.assertionClaims("after-removal"))), "", "")
	if status != 401 || body["error"] != "invalid_client" {
		t.Errorf("assertion after key removal = %d %v", status, body)
	}
	for _, typ := range []string{"thing.secret_set", "thing.key_added", "thing.key_removed"} {
		evs, _ := e.store.ListEvents(ctx, store.EventFilter{Type: typ})
		for _, ev := range evs {
			if strings.Contains(string(ev.Details), oauth.SecretPrefix) {
				t.Errorf("%s event leaks a secret: %s", typ, ev.Details)
			}
		}
		if len(evs) == 0 {
			t.Errorf("no %s event", typ)
		}
	}
}

// TestRunBatchesEventsAndCaches checks the background loop: token events are
// written in batches and a disabled thing is refused at once although
// clients are cached.
func TestRunBatchesEventsAndCaches(t *testing.T) {
	e := newEnv(t, storetestSQLite(t))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- e.srv.Run(ctx) }()
	before := e.issuedCount()
	for range 5 {
		clientToken(t, e, "sensor-1")
	}
	disabled := "disabled"
	if _, err := e.registry.UpdateThing(t.Context(), "sensor-1", 0, registryPatchState(disabled)); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 2*time.Second, "the disabled thing refused tokens (401 invalid_client)", func() bool {
		status, body := e.postForm(oauth.PathToken, url.Values{"grant_type": {"client_credentials"}}, "sensor-1", e.secrets["sensor-1"])
		return status == 401 && body["error"] == "invalid_client"
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := e.issuedCount() - before; got < 5 || got > 6 {
		t.Errorf("token.issued events after Run = %d, want 5 (or 6)", got)
	}
}
