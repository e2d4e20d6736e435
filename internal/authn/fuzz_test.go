package authn_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2/clientcredentials"

	"github.com/gatehouse-iot/gatehouse/internal/authn"
	"github.com/gatehouse-iot/gatehouse/internal/events"
	"github.com/gatehouse-iot/gatehouse/internal/oauth"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/seal"
	"github.com/gatehouse-iot/gatehouse/internal/store"
	"github.com/gatehouse-iot/gatehouse/internal/store/storetest"
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
	ctx := context.Background()
	s, err := store.Open(ctx, storetest.SQLiteDSN(f))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	log := events.NewLog(s, time.Now)
	reg, err := registry.New(registry.Config{Store: s, Events: log, Hash: registry.HashParams{Memory: 64, Time: 1, Threads: 1}})
	if err != nil {
		f.Fatal(err)
	}
	key := make([]byte, 32)
	rand.Read(key)
	sealer, _ := seal.New(key)
	hs := httptest.NewUnstartedServer(nil)
	own, err := oauth.New(oauth.Config{Store: s, Registry: reg, Events: log, Issuer: "http://" + hs.Listener.Addr().String(), Sealer: sealer})
	if err != nil {
		f.Fatal(err)
	}
	hs.Config.Handler = own.Handler()
	hs.Start()
	f.Cleanup(hs.Close)
	runCtx, cancel := context.WithCancel(ctx)
	f.Cleanup(cancel)
	go own.Run(runCtx)
	admin := events.WithActor(ctx, "fuzz")
	if _, err := reg.CreateThingType(admin, registry.ThingTypeSpec{Name: "sensor", Scopes: []string{"mqtt"}}); err != nil {
		f.Fatal(err)
	}
	if _, err := reg.CreateThing(admin, registry.NewThing{Name: "s-1", ThingType: "sensor"}); err != nil {
		f.Fatal(err)
	}
	secret, err := own.SetThingSecret(admin, "s-1")
	if err != nil {
		f.Fatal(err)
	}
	cc := clientcredentials.Config{ClientID: "s-1", ClientSecret: secret, TokenURL: hs.URL + "/oauth2/token", EndpointParams: url.Values{}}
	tok, err := cc.Token(ctx)
	if err != nil {
		f.Fatal(err)
	}
	signer, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&signer.PublicKey)
	pub := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	if _, err := reg.CreateAuthorizer(admin, registry.AuthorizerSpec{Name: "gh", PublicKeys: map[string]string{"k1": pub}}); err != nil {
		f.Fatal(err)
	}
	sum := sha256.Sum256([]byte(tok.AccessToken))
	sig, err := signer.Sign(rand.Reader, sum[:], crypto.SHA256)
	if err != nil {
		f.Fatal(err)
	}
	valid := "s-1?x-amz-customauthorizer-name=gh&x-amz-customauthorizer-signature=" + url.QueryEscape(base64.StdEncoding.EncodeToString(sig)) + "&token=" + tok.AccessToken
	a := authn.New(authn.Config{Tokens: own, Registry: reg, Store: s})
	if id, err := a.Authenticate(ctx, authn.Credentials{ClientID: "s-1", Username: valid}); err != nil || id.Authorizer != "gh" {
		f.Fatalf("the validly signed custom username is refused: %v", err)
	}

	f.Add("s-1", tok.AccessToken)
	f.Add(valid, "")
	f.Add(strings.Replace(valid, "s-1?", "s-2?", 1), "")
	f.Add(strings.Replace(valid, "name=gh", "name=other", 1), "")
	f.Add("s-1?x-amz-customauthorizer-name=gh&token=abc", "")
	f.Add("?x-amz-customauthorizer-signature=%zz", "")
	f.Add("s-1?X-Amz-CustomAuthorizer-Name=gh&x-amz-customauthorizer-signature=++/&token="+tok.AccessToken, "")
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
