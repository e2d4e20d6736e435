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

func TestExternalIssuer(t *testing.T) {
	// Gatehouse's own server is consulted first and refuses these tokens.
	env := testenv.New(t)
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
	const iss = "https://am.example.com/oauth2"
	a := env.Authn
	if err := a.AddExternalIssuer(authn.ExternalIssuer{Issuer: iss, JWKSURL: jwks.URL, Audience: "mqtt"}); err != nil {
		t.Fatal(err)
	}
	if err := a.AddExternalIssuer(authn.ExternalIssuer{Issuer: "x", JWKSURL: jwks.URL, Algorithms: []string{"HS256"}}); err == nil {
		t.Error("an HS256 external issuer was accepted")
	}
	sign := func(alg jose.SignatureAlgorithm, key any, kid string, claims map[string]any) string {
		sig, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", kid))
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
	now := time.Now()
	good := map[string]any{"iss": iss, "sub": "thingymabot", "aud": "mqtt", "exp": now.Add(time.Hour).Unix(), "scope": "publish", "jti": "j1"}
	with := func(k string, v any) map[string]any {
		c := map[string]any{}
		for kk, vv := range good {
			c[kk] = vv
		}
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	tests := []struct {
		name  string
		token string
		ok    bool
	}{
		{"valid RS256", sign(jose.RS256, rsaKey, "k1", good), true},
		{"wrong audience", sign(jose.RS256, rsaKey, "k1", with("aud", "web")), false},
		{"expired", sign(jose.RS256, rsaKey, "k1", with("exp", now.Add(-time.Hour).Unix())), false},
		{"no exp", sign(jose.RS256, rsaKey, "k1", with("exp", nil)), false},
		{"unknown issuer", sign(jose.RS256, rsaKey, "k1", with("iss", "https://evil")), false},
		{"signed by another key with the same kid", sign(jose.ES256, ecKey, "k1", good), false},
		{"unknown kid", sign(jose.ES256, ecKey, "k2", good), false},
		{"HS256 with the public key as secret", sign(jose.HS256, []byte("0123456789abcdef0123456789abcdef"), "k1", good), false},
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
		if tc.ok && (id.ThingName != "thingymabot" || id.Token.Scope[0] != "publish") {
			t.Errorf("%s: identity = %+v", tc.name, id)
		}
	}
	// A rotated key is picked up once the refetch interval has passed;
	// unknown kids do not hammer the JWKS endpoint.
	if n := fetches.Load(); n > 2 {
		t.Errorf("JWKS fetched %d times, want at most 2 (first use, one unknown kid)", n)
	}
}
