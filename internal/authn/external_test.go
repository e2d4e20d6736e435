package authn_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-iot/gatehouse/internal/authn"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/testenv"
)

// TestExternalIssuer: another issuer's JWT access tokens are accepted when
// typed at+jwt (RFC 9068 section 4), for the configured audience, signed
// by a published key, and unexpired by the issuer's leeway; untyped
// tokens only where the issuer allows them, ID tokens never.
func TestExternalIssuer(t *testing.T) {
	clk := testenv.NewClock(time.Now().UTC().Truncate(time.Second))
	// Gatehouse's own server is consulted first and refuses these tokens.
	env := testenv.New(t, testenv.Now(clk.Now))
	reg := env.Registry
	if _, err := reg.CreateThing(t.Context(), registry.NewThing{Name: "thingymabot"}); err != nil {
		t.Fatal(err)
	}
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	var fetches atomic.Int32
	published := []jose.JSONWebKey{{Key: &rsaKey.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: published})
	}))
	defer jwks.Close()
	const (
		iss     = "https://am.example.com/oauth2"
		untyped = "https://legacy.example.com"
		lenient = "https://skewed.example.com"
	)
	a := env.Authn
	for _, ei := range []authn.ExternalIssuer{
		{Issuer: iss, JWKSURL: jwks.URL, Audience: "mqtt"},
		{Issuer: untyped, JWKSURL: jwks.URL, Audience: "mqtt", AllowUntypedTokens: true},
		{Issuer: lenient, JWKSURL: jwks.URL, Audience: "mqtt", Leeway: 30 * time.Second},
	} {
		if err := a.AddExternalIssuer(ei); err != nil {
			t.Fatal(err)
		}
	}
	for _, bad := range []authn.ExternalIssuer{
		{Issuer: "x", JWKSURL: jwks.URL, Audience: "mqtt", Algorithms: []string{"HS256"}},
		{Issuer: "x", JWKSURL: jwks.URL},
		{Issuer: "x", JWKSURL: jwks.URL, Audience: "mqtt", Leeway: time.Hour},
	} {
		if err := a.AddExternalIssuer(bad); err == nil {
			t.Errorf("external issuer %+v was accepted", bad)
		}
	}
	sign := func(alg jose.SignatureAlgorithm, key any, kid, typ string, claims map[string]any) string {
		opts := (&jose.SignerOptions{}).WithHeader("kid", kid)
		if typ != "" {
			opts = opts.WithType(jose.ContentType(typ))
		}
		sig, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
		if err != nil {
			t.Fatal(err)
		}
		payload, _ := json.Marshal(claims)
		obj, err := sig.Sign(payload)
		if err != nil {
			t.Fatal(err)
		}
		out, _ := obj.CompactSerialize()
		return out
	}
	now := clk.Now()
	good := map[string]any{"iss": iss, "sub": "thingymabot", "aud": "mqtt", "exp": now.Add(time.Hour).Unix(), "scope": "publish", "jti": "j1"}
	with := func(kv ...any) map[string]any {
		c := map[string]any{}
		for kk, vv := range good {
			c[kk] = vv
		}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(c, kv[i].(string))
			} else {
				c[kv[i].(string)] = kv[i+1]
			}
		}
		return c
	}
	at := func(claims map[string]any) string { return sign(jose.RS256, rsaKey, "k1", "at+jwt", claims) }
	tests := []struct {
		name  string
		token string
		ok    bool
		// expires is the identity's ExpiresAt when ok.
		expires time.Time
	}{
		{"valid RS256", at(good), true, now.Add(time.Hour)},
		{"typ application/at+jwt", sign(jose.RS256, rsaKey, "k1", "application/at+jwt", good), true, now.Add(time.Hour)},
		{"typ JWT", sign(jose.RS256, rsaKey, "k1", "JWT", good), false, time.Time{}},
		{"no typ", sign(jose.RS256, rsaKey, "k1", "", good), false, time.Time{}},
		{"ID token", sign(jose.RS256, rsaKey, "k1", "JWT", with("nonce", "n-1", "at_hash", "x", "azp", "web")), false, time.Time{}},
		{"typ JWT, issuer allows untyped", sign(jose.RS256, rsaKey, "k1", "JWT", with("iss", untyped)), true, now.Add(time.Hour)},
		{"no typ, issuer allows untyped", sign(jose.RS256, rsaKey, "k1", "", with("iss", untyped)), true, now.Add(time.Hour)},
		{"ID token, issuer allows untyped", sign(jose.RS256, rsaKey, "k1", "JWT", with("iss", untyped, "nonce", "n-1")), false, time.Time{}},
		{"at+jwt with an ID token's at_hash", at(with("at_hash", "x")), false, time.Time{}},
		{"wrong audience", at(with("aud", "web")), false, time.Time{}},
		{"no audience", at(with("aud", nil)), false, time.Time{}},
		{"1s before exp", at(with("exp", now.Add(time.Second).Unix())), true, now.Add(time.Second)},
		{"at exp", at(with("exp", now.Unix())), false, time.Time{}},
		{"expired by 1s", at(with("exp", now.Add(-time.Second).Unix())), false, time.Time{}},
		{"expired by 1s, issuer leeway 30s", at(with("iss", lenient, "exp", now.Add(-time.Second).Unix())), true, now.Add(29 * time.Second)},
		{"expired by 30s, issuer leeway 30s", at(with("iss", lenient, "exp", now.Add(-30*time.Second).Unix())), false, time.Time{}},
		{"expired", at(with("exp", now.Add(-time.Hour).Unix())), false, time.Time{}},
		{"no exp", at(with("exp", nil)), false, time.Time{}},
		{"unknown issuer", at(with("iss", "https://evil")), false, time.Time{}},
		{"signed by another key with the same kid", sign(jose.ES256, ecKey, "k1", "at+jwt", good), false, time.Time{}},
		{"unknown kid", sign(jose.ES256, ecKey, "k2", "at+jwt", good), false, time.Time{}},
		{"HS256 with the public key as secret", sign(jose.HS256, []byte("0123456789abcdef0123456789abcdef"), "k1", "at+jwt", good), false, time.Time{}},
	}
	for _, tc := range tests {
		id, err := a.Authenticate(t.Context(), authn.Credentials{Username: "thingymabot", Password: []byte(tc.token)})
		if (err == nil) != tc.ok {
			t.Errorf("%s: err = %v, want ok=%v", tc.name, err, tc.ok)
			continue
		}
		if err != nil && !errors.Is(err, authn.ErrBadCredentials) {
			t.Errorf("%s: err = %v, want ErrBadCredentials", tc.name, err)
		}
		if tc.ok && (id.ThingName != "thingymabot" || id.Token.Scope[0] != "publish" || !id.ExpiresAt.Equal(tc.expires)) {
			t.Errorf("%s: identity = %+v, want thingymabot, publish, expiring at %s", tc.name, id, tc.expires)
		}
	}
	// A rotated key is picked up once the refetch interval has passed;
	// unknown kids do not hammer the JWKS endpoint.
	if n := fetches.Load(); n > 4 {
		t.Errorf("JWKS fetched %d times, want at most 4 (first use by each of 3 issuers, one unknown kid)", n)
	}
}
