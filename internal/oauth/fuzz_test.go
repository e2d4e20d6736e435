package oauth_test

import (
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
	for _, seed := range []string{
		good, "", ".", "..", "a.b.c", parts[0] + "." + parts[1] + ".", parts[0] + ".." + parts[2],
		noneJWT(map[string]any{"iss": e.http.URL}), strings.Repeat("A", 9000),
		assertion(f, e.key, jose.ES256, e.keyID, e.assertionClaims("fuzz")),
	} {
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
