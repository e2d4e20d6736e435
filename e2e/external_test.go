package e2e

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// TestExternalIssuerTokenTypes is RFC 9068 section 4 and RFC 8725 section
// 3.11 over the wire: an external issuer's JWT logs a thing in over MQTT
// only when typed at+jwt and for the configured audience; "JWT", untyped
// and ID-token-shaped JWTs are refused (0x86), unless the issuer is
// configured with allowUntypedTokens, which still refuses ID tokens. An
// external issuer without an audience is a configuration error.
func TestExternalIssuerTokenTypes(t *testing.T) {
	t.Parallel()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "idp-1", Algorithm: "RS256", Use: "sig"}}})
	}))
	defer jwks.Close()
	const (
		strict = "https://idp.example.test"
		legacy = "https://legacy.example.test"
	)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "gatehouse.yaml")
	noAudience := "oauth:\n  externalIssuers:\n    - issuer: " + strict + "\n      jwksURL: " + jwks.URL + "\n"
	if err := os.WriteFile(cfg, []byte(noAudience), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(binary, "serve", "--config", cfg, "--data-dir", dir).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "audience") {
		t.Errorf("an external issuer without audience: err %v, output:\n%s", err, out)
	}
	yaml := "oauth:\n  externalIssuers:\n" +
		"    - issuer: " + strict + "\n      jwksURL: " + jwks.URL + "\n      audience: gatehouse-mqtt\n" +
		"    - issuer: " + legacy + "\n      jwksURL: " + jwks.URL + "\n      audience: gatehouse-mqtt\n      allowUntypedTokens: true\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, "--config", cfg, "--data-dir", filepath.Join(dir, "data"))
	s.admin(t, "POST", "/api/v1/policies", `{"name":"ext-connect","document":{"Version":"2012-10-17","Statement":[
	  {"Effect":"Allow","Action":"iot:Connect","Resource":"client/${iot:Connection.Thing.ThingName}"}]}}`, 201)
	s.admin(t, "POST", "/api/v1/thing-types", `{"name":"ext","defaultPolicies":["ext-connect"]}`, 201)
	s.admin(t, "POST", "/api/v1/things", `{"name":"ext-1","thingType":"ext"}`, 201)

	sign := func(typ string, claims map[string]any) string {
		opts := (&jose.SignerOptions{}).WithHeader("kid", "idp-1")
		if typ != "" {
			opts = opts.WithType(jose.ContentType(typ))
		}
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, opts)
		if err != nil {
			t.Fatal(err)
		}
		payload, _ := json.Marshal(claims)
		obj, err := signer.Sign(payload)
		if err != nil {
			t.Fatal(err)
		}
		tok, _ := obj.CompactSerialize()
		return tok
	}
	claims := func(iss string, extra ...string) map[string]any {
		c := map[string]any{"iss": iss, "sub": "ext-1", "aud": "gatehouse-mqtt", "exp": time.Now().Add(time.Hour).Unix(), "jti": "j-" + iss}
		for i := 0; i+1 < len(extra); i += 2 {
			c[extra[i]] = extra[i+1]
		}
		return c
	}
	tests := []struct {
		name  string
		token string
		want  byte
	}{
		{"at+jwt", sign("at+jwt", claims(strict)), 0},
		{"at+jwt for another audience", sign("at+jwt", claims(strict, "aud", "web-app")), 0x86},
		{"typ JWT", sign("JWT", claims(strict)), 0x86},
		{"no typ", sign("", claims(strict)), 0x86},
		{"ID token", sign("JWT", claims(strict, "nonce", "n-0S6_WzA2Mj", "at_hash", "77QmUPtjPfzWtF2AnpK9RQ", "azp", "web-app")), 0x86},
		{"typ JWT, issuer allows untyped", sign("JWT", claims(legacy)), 0},
		{"no typ, issuer allows untyped", sign("", claims(legacy)), 0},
		{"ID token, issuer allows untyped", sign("JWT", claims(legacy, "nonce", "n-0S6_WzA2Mj", "azp", "web-app")), 0x86},
	}
	for _, tc := range tests {
		// An accepted client stays until the next one takes its client id
		// over, or the test ends.
		if _, got := mqtt5Connect(t, s, "ext-1", tc.token); got != tc.want {
			t.Errorf("%s: CONNACK = %#x, want %#x", tc.name, got, tc.want)
		}
	}
}
