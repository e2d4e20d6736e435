package oauth_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-iot/gatehouse/internal/oauth"
)

// FuzzVerifyAccessToken feeds arbitrary strings to the token verifier: it
// must never panic, and only the genuine token may verify.
func FuzzVerifyAccessToken(f *testing.F) {
	e := newEnv(f, "sqlite:"+f.TempDir()+"/fuzz.db")
	good := clientToken(f, e, "sensor-1")
	want, err := e.srv.VerifyAccessToken(f.Context(), good)
	if err != nil {
		f.Fatal(err)
	}
	parts := strings.Split(good, ".")
	for _, seed := range append(algConfusion(f, e, parts[1]),
		good, "", ".", "..", "a.b.c", parts[0]+"."+parts[1]+".", parts[0]+".."+parts[2],
		noneJWT(map[string]any{"iss": e.http.URL}), strings.Repeat("A", 9000),
		assertion(f, e.key, jose.ES256, e.keyID, e.assertionClaims("fuzz")),
	) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		at, err := e.srv.VerifyAccessToken(t.Context(), raw)
		if err != nil {
			return
		}
		if at.JTI != want.JTI || at.Subject != want.Subject || !at.ExpiresAt.Equal(want.ExpiresAt) {
			t.Fatalf("forged token verified: %q -> %+v", raw, at)
		}
	})
}

// FuzzClientAssertion posts arbitrary client assertions to the token
// endpoint: never a panic, never a 200 or a server error.
func FuzzClientAssertion(f *testing.F) {
	e := newEnv(f, "sqlite:"+f.TempDir()+"/fuzz.db")
	h := e.srv.Handler()
	valid := assertion(f, e.key, jose.ES256, e.keyID, e.assertionClaims("seed"))
	for _, seed := range []string{valid, "", "x.y.z", valid + "x", noneJWT(e.assertionClaims("n")), strings.Repeat("e", 9000)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, a string) {
		if a == valid {
			return // the one genuine assertion (usable once)
		}
		form := url.Values{"grant_type": {"client_credentials"}, "client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {a}}
		req := httptest.NewRequest("POST", oauth.PathToken, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code == http.StatusOK || rec.Code >= 500 {
			t.Fatalf("assertion %q: status %d %s", a, rec.Code, rec.Body)
		}
	})
}

// algConfusion returns the genuine token's payload under HS256 headers
// naming the server's ES256 key, MACed with that public key in the forms a
// confused verifier might use as the secret (the JWKS member, the whole
// JWKS, PEM, DER): only the running server's key makes these seeds, so
// they are added here rather than in testdata.
func algConfusion(f *testing.F, e *env, payload string) []string {
	resp, err := e.http.Client().Get(e.url(oauth.PathKeys))
	if err != nil {
		f.Fatal(err)
	}
	defer resp.Body.Close()
	jwksJSON, err := io.ReadAll(resp.Body)
	if err != nil {
		f.Fatal(err)
	}
	var jwks jose.JSONWebKeySet
	if err := json.Unmarshal(jwksJSON, &jwks); err != nil || len(jwks.Keys) == 0 {
		f.Fatalf("JWKS %s: %v", jwksJSON, err)
	}
	var out []string
	for _, k := range jwks.Keys {
		member, _ := json.Marshal(k)
		der, err := x509.MarshalPKIXPublicKey(k.Key)
		if err != nil {
			f.Fatal(err)
		}
		pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
		header, _ := json.Marshal(map[string]string{"alg": "HS256", "kid": k.KeyID, "typ": "at+jwt"})
		input := base64.RawURLEncoding.EncodeToString(header) + "." + payload
		for _, secret := range [][]byte{member, jwksJSON, pemKey, der} {
			m := hmac.New(sha256.New, secret)
			m.Write([]byte(input))
			out = append(out, input+"."+base64.RawURLEncoding.EncodeToString(m.Sum(nil)))
		}
	}
	return out
}
