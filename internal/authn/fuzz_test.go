package authn_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/gatehouse-iot/gatehouse/internal/authn"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/testenv"
)

// FuzzAuthenticateUsername feeds MQTT usernames and passwords, including
// AWS IoT custom-authorizer usernames
// ("name?x-amz-customauthorizer-name=...&x-amz-customauthorizer-signature=...&token=..."),
// to the authenticator of a real registry with one thing (s-1), its access
// token and one custom authorizer (gh) holding an ECDSA key. Whatever the
// input: no panic, a refusal is ErrBadCredentials or ErrNotAuthorized, and
// an acceptance is for s-1 only and only under the username s-1 (the seeds
// include the valid token and the validly signed custom username, so the
// accepting path is exercised too).
func FuzzAuthenticateUsername(f *testing.F) {
	env := testenv.New(f, testenv.RunOAuth())
	ctx, reg := env.Ctx, env.Registry
	admin := env.As("fuzz")
	if _, err := reg.CreateThingType(admin, registry.ThingTypeSpec{Name: "sensor", Scopes: []string{"mqtt"}}); err != nil {
		f.Fatal(err)
	}
	tok := env.Token("s-1", env.Things(admin, "sensor", "s-1")["s-1"])
	signer, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&signer.PublicKey)
	pub := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	if _, err := reg.CreateAuthorizer(admin, registry.AuthorizerSpec{Name: "gh", PublicKeys: map[string]string{"k1": pub}}); err != nil {
		f.Fatal(err)
	}
	sum := sha256.Sum256([]byte(tok))
	sig, err := signer.Sign(rand.Reader, sum[:], crypto.SHA256)
	if err != nil {
		f.Fatal(err)
	}
	valid := "s-1?x-amz-customauthorizer-name=gh&x-amz-customauthorizer-signature=" + url.QueryEscape(base64.StdEncoding.EncodeToString(sig)) + "&token=" + tok
	a := env.Authn
	if id, err := a.Authenticate(ctx, authn.Credentials{ClientID: "s-1", Username: valid}); err != nil || id.Authorizer != "gh" {
		f.Fatalf("the validly signed custom username is refused: %v", err)
	}

	f.Add("s-1", tok)
	f.Add(valid, "")
	f.Add(strings.Replace(valid, "s-1?", "s-2?", 1), "")
	f.Add(strings.Replace(valid, "name=gh", "name=other", 1), "")
	f.Add("s-1?x-amz-customauthorizer-name=gh&token=abc", "")
	f.Add("?x-amz-customauthorizer-signature=%zz", "")
	f.Add("s-1?X-Amz-CustomAuthorizer-Name=gh&x-amz-customauthorizer-signature=++/&token="+tok, "")
	f.Add("", "")
	f.Add("s-1", strings.Repeat("a.", 5000))
	f.Fuzz(func(t *testing.T, username, password string) {
		id, err := a.Authenticate(ctx, authn.Credentials{ClientID: "s-1", Username: username, Password: []byte(password)})
		if err != nil {
			if !errors.Is(err, authn.ErrBadCredentials) && !errors.Is(err, authn.ErrNotAuthorized) {
				t.Fatalf("Authenticate(%q, %q): %v is neither ErrBadCredentials nor ErrNotAuthorized", username, password, err)
			}
			return
		}
		name, _, _ := strings.Cut(username, "?")
		if id.ThingName != "s-1" || name != "s-1" {
			t.Fatalf("Authenticate(%q, %q) accepted thing %q under the name %q", username, password, id.ThingName, name)
		}
	})
}
