package oauth_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/gatehouse-iot/gatehouse/internal/oauth"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
)

func TestClientCredentials(t *testing.T) {
	drivers(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn)
		ctx := oidcContext(t, e)
		provider, err := gooidc.NewProvider(ctx, e.http.URL)
		if err != nil {
			t.Fatalf("go-oidc discovery: %v", err)
		}
		verifier := provider.Verifier(&gooidc.Config{SkipClientIDCheck: true})
		tests := []struct {
			name      string
			cfg       clientcredentials.Config
			wantSub   string
			wantScope []string
			wantThing string
			wantType  string
		}{
			{"client_secret_basic", clientcredentials.Config{ClientID: "sensor-1", ClientSecret: e.secrets["sensor-1"], Scopes: []string{"publish"},
				AuthStyle: oauth2.AuthStyleInHeader}, "sensor-1", []string{"publish"}, "sensor-1", "sensor"},
			{"client_secret_post", clientcredentials.Config{ClientID: "sensor-2", ClientSecret: e.secrets["sensor-2"],
				AuthStyle: oauth2.AuthStyleInParams}, "sensor-2", []string{"publish", "subscribe"}, "sensor-2", "sensor"},
			{"private_key_jwt", clientcredentials.Config{ClientID: "signer-1", Scopes: []string{"publish"}, AuthStyle: oauth2.AuthStyleInParams,
				EndpointParams: url.Values{"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
					"client_assertion": {assertion(t, e.key, jose.ES256, e.keyID, e.assertionClaims("cc-1"))}}}, "signer-1", []string{"publish"}, "signer-1", "keyonly"},
			{"thing without type gets default scopes", clientcredentials.Config{ClientID: "loose-1", ClientSecret: e.secrets["loose-1"]},
				"loose-1", []string{"telemetry"}, "loose-1", ""},
			{"static confidential client", clientcredentials.Config{ClientID: "resource-server", ClientSecret: "rs-secret"},
				"resource-server", []string{"introspect"}, "", ""},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				tc.cfg.TokenURL = e.url(oauth.PathToken)
				tok, err := tc.cfg.Token(ctx)
				if err != nil {
					t.Fatalf("Token: %v", err)
				}
				if tok.TokenType != "Bearer" || tok.RefreshToken != "" || time.Until(tok.Expiry) < 50*time.Minute {
					t.Errorf("token = type %q, refresh %q, expiry %v; want Bearer, none, ~1h", tok.TokenType, tok.RefreshToken, tok.Expiry)
				}
				at, err := e.srv.VerifyAccessToken(ctx, tok.AccessToken)
				if err != nil {
					t.Fatalf("VerifyAccessToken: %v", err)
				}
				if at.Subject != tc.wantSub || at.ClientID != tc.wantSub || !slices.Equal(at.Scopes, tc.wantScope) || at.ThingName != tc.wantThing ||
					at.ThingType != tc.wantType || at.JTI == "" || !slices.Equal(at.Audience, []string{e.http.URL}) {
					t.Errorf("VerifyAccessToken = %+v, want sub %s scopes %v thing %q type %q", at, tc.wantSub, tc.wantScope, tc.wantThing, tc.wantType)
				}
				// A third-party verifier with the published JWKS agrees.
				idt, err := verifier.Verify(ctx, tok.AccessToken)
				if err != nil {
					t.Fatalf("go-oidc Verify: %v", err)
				}
				if idt.Subject != tc.wantSub || idt.Issuer != e.http.URL {
					t.Errorf("go-oidc: sub %q iss %q", idt.Subject, idt.Issuer)
				}
				header := jwtHeader(t, tok.AccessToken)
				if header["typ"] != "at+jwt" || header["alg"] != "ES256" || header["kid"] == "" {
					t.Errorf("header = %v, want typ at+jwt, alg ES256, a kid", header)
				}
			})
		}
		if n := e.issuedCount(); n != len(tests) {
			t.Errorf("token.issued events = %d, want %d", n, len(tests))
		}
	})
}

func oidcContext(t testing.TB, e *env) context.Context {
	return context.WithValue(t.Context(), oauth2.HTTPClient, e.http.Client())
}

func jwtHeader(t testing.TB, raw string) map[string]any {
	t.Helper()
	h, _, _ := strings.Cut(raw, ".")
	b, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestBadInputIssuesNothing(t *testing.T) {
	e := newEnv(t, storetestSQLite(t))
	ctx := t.Context()
	// A disabled thing, and a thing type restricted to private_key_jwt.
	disabled := "disabled"
	mustDo(t, func() error {
		_, err := e.registry.CreateThing(ctx, registry.NewThing{Name: "off-1", ThingType: "sensor", State: disabled})
		return err
	})
	offSecret, err := e.srv.SetThingSecret(ctx, "off-1")
	if err != nil {
		t.Fatal(err)
	}
	replayed := assertion(t, e.key, jose.ES256, e.keyID, e.assertionClaims("once"))
	if code, body := e.postForm(oauth.PathToken, assertionForm(replayed), "", ""); code != http.StatusOK {
		t.Fatalf("first use of assertion = %d %v", code, body)
	}
	expired := e.assertionClaims("expired")
	expired["exp"] = e.clock.Now().Add(-2 * time.Minute).Unix()
	wrongAud := e.assertionClaims("aud")
	wrongAud["aud"] = "https://elsewhere.example"
	tooLong := e.assertionClaims("long")
	tooLong["pad"] = strings.Repeat("x", 9000)
	noJTI := e.assertionClaims("")
	delete(noJTI, "jti")
	pubJWK, _ := json.Marshal(jose.JSONWebKey{Key: e.key.Public()})
	before := e.issuedCount()

	cc := func(kv ...string) url.Values {
		v := url.Values{"grant_type": {"client_credentials"}}
		for i := 0; i < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	tests := []struct {
		name       string
		form       url.Values
		user, pass string
		wantStatus int
		wantError  string
	}{
		{"wrong secret basic", cc(), "sensor-1", "ghcs_wrong", 401, "invalid_client"},
		{"wrong secret post", cc("client_id", "sensor-1", "client_secret", "nope"), "", "", 401, "invalid_client"},
		{"unknown client", cc(), "ghost", "whatever", 401, "invalid_client"},
		{"no authentication", cc("client_id", "sensor-1"), "", "", 401, "invalid_client"},
		{"disabled thing", cc(), "off-1", offSecret, 401, "invalid_client"},
		{"unknown scope", cc("scope", "publish admin"), "sensor-1", e.secrets["sensor-1"], 400, "invalid_scope"},
		{"scope of another type", cc("scope", "telemetry"), "sensor-1", e.secrets["sensor-1"], 400, "invalid_scope"},
		{"secret not allowed by thing type", cc("client_id", "signer-1", "client_secret", "x"), "", "", 401, "invalid_client"},
		{"public client", cc("client_id", "gatehouse-cli"), "", "", 400, "unauthorized_client"},
		{"unsupported grant", url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"correct horse"}}, "sensor-1", e.secrets["sensor-1"], 400, "unsupported_grant_type"},
		{"assertion alg none", assertionForm(noneJWT(e.assertionClaims("none"))), "", "", 401, "invalid_client"},
		{"assertion HS256 with public key as secret", assertionForm(hsJWT(t, pubJWK, e.keyID, e.assertionClaims("hs"))), "", "", 401, "invalid_client"},
		{"assertion expired", assertionForm(assertion(t, e.key, jose.ES256, e.keyID, expired)), "", "", 401, "invalid_client"},
		{"assertion replayed", assertionForm(replayed), "", "", 401, "invalid_client"},
		{"assertion wrong audience", assertionForm(assertion(t, e.key, jose.ES256, e.keyID, wrongAud)), "", "", 401, "invalid_client"},
		{"assertion over 8 KiB", assertionForm(assertion(t, e.key, jose.ES256, e.keyID, tooLong)), "", "", 401, "invalid_client"},
		{"assertion without jti", assertionForm(assertion(t, e.key, jose.ES256, e.keyID, noJTI)), "", "", 401, "invalid_client"},
		{"assertion by unregistered key", assertionForm(assertion(t, mustECKey(t), jose.ES256, e.keyID, e.assertionClaims("other-key"))), "", "", 401, "invalid_client"},
		{"assertion and secret together", func() url.Values {
			v := assertionForm(assertion(t, e.key, jose.ES256, e.keyID, e.assertionClaims("both")))
			v.Set("client_id", "signer-1")
			v.Set("client_secret", "x")
			return v
		}(), "", "", 400, "invalid_request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body := e.postForm(oauth.PathToken, tc.form, tc.user, tc.pass)
			if status != tc.wantStatus || body["error"] != tc.wantError || body["access_token"] != nil {
				t.Errorf("status %d, body %v; want %d %s", status, body, tc.wantStatus, tc.wantError)
			}
		})
	}
	if after := e.issuedCount(); after != before {
		t.Errorf("token.issued events went from %d to %d; bad requests must issue nothing", before, after)
	}
}

func storetestSQLite(t *testing.T) string { return "sqlite:" + t.TempDir() + "/gatehouse.db" }

func assertionForm(a string) url.Values {
	return url.Values{"grant_type": {"client_credentials"}, "client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {a}}
}

// noneJWT is an unsigned JWT (alg none).
func noneJWT(claims map[string]any) string {
	h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
	b, _ := json.Marshal(claims)
	return h + "." + base64.RawURLEncoding.EncodeToString(b) + "."
}

// hsJWT signs with HS256 using the public key bytes as the MAC key: the
// classic algorithm confusion attack.
func hsJWT(t *testing.T, key []byte, kid string, claims map[string]any) string {
	t.Helper()
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(claims)
	jws, err := sig.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := jws.CompactSerialize()
	return raw
}

func TestVerifyAccessTokenRejects(t *testing.T) {
	e := newEnv(t, storetestSQLite(t))
	ctx := t.Context()
	good := clientToken(t, e, "sensor-1", "publish")
	parts := strings.Split(good, ".")
	tamper := func(claims map[string]any) string {
		b, _ := json.Marshal(claims)
		return parts[0] + "." + base64.RawURLEncoding.EncodeToString(b) + "." + parts[2]
	}
	tests := []struct {
		name string
		raw  string
	}{
		{"empty", ""},
		{"garbage", "not.a.jwt"},
		{"over 8 KiB", good + strings.Repeat("A", 8<<10)},
		{"payload changed", tamper(map[string]any{"iss": e.http.URL, "sub": "admin", "aud": e.http.URL, "exp": time.Now().Add(time.Hour).Unix(), "jti": "x", "client_id": "x"})},
		{"alg none", noneJWT(map[string]any{"iss": e.http.URL, "sub": "x"})},
		{"client assertion is not an access token", assertion(t, e.key, jose.ES256, e.keyID, e.assertionClaims("j"))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if at, err := e.srv.VerifyAccessToken(ctx, tc.raw); !errors.Is(err, oauth.ErrInvalidToken) {
				t.Errorf("VerifyAccessToken = %+v, %v; want ErrInvalidToken", at, err)
			}
		})
	}
	e.clock.Advance(time.Hour + time.Minute)
	if _, err := e.srv.VerifyAccessToken(ctx, good); !errors.Is(err, oauth.ErrInvalidToken) {
		t.Errorf("expired token: err = %v, want ErrInvalidToken", err)
	}
}

// clientToken gets a client credentials token for a thing with a secret.
func clientToken(t testing.TB, e *env, thing string, scopes ...string) string {
	t.Helper()
	cfg := clientcredentials.Config{ClientID: thing, ClientSecret: e.secrets[thing], TokenURL: e.url(oauth.PathToken), Scopes: scopes, AuthStyle: oauth2.AuthStyleInHeader}
	tok, err := cfg.Token(oidcContext(t, e))
	if err != nil {
		t.Fatalf("client credentials for %s: %v", thing, err)
	}
	return tok.AccessToken
}
