package authn_test

import (
	"context"
	"crypto/rand"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"golang.org/x/oauth2/clientcredentials"

	"github.com/gatehouse-iot/gatehouse/internal/authn"
	"github.com/gatehouse-iot/gatehouse/internal/events"
	"github.com/gatehouse-iot/gatehouse/internal/oauth"
	"github.com/gatehouse-iot/gatehouse/internal/policy"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/seal"
	"github.com/gatehouse-iot/gatehouse/internal/store"
	"github.com/gatehouse-iot/gatehouse/internal/store/storetest"
)

// BenchmarkAuthenticateToken measures the authentication step of an MQTT
// CONNECT with an access token as password: ES256 verification, revocation
// check, thing lookup, policy resolution (cached) and binding to the
// connection's context. It excludes the network and the MQTT handshake,
// which BenchmarkConnectJWT in internal/broker measures.
//
//	go test -run '^$' -bench AuthenticateToken -benchtime 3s -cpu 1 ./internal/authn/
func BenchmarkAuthenticateToken(b *testing.B) {
	for _, alg := range []string{"ES256", "EdDSA", "RS256"} {
		b.Run(alg, func(b *testing.B) { benchmarkAuthenticate(b, alg) })
	}
}

func benchmarkAuthenticate(b *testing.B, alg string) {
	ctx := context.Background()
	s, err := store.Open(ctx, storetest.SQLiteDSN(b))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	log := events.NewLog(s, time.Now)
	reg, err := registry.New(registry.Config{Store: s, Events: log, Hash: registry.HashParams{Memory: 64, Time: 1, Threads: 1}})
	if err != nil {
		b.Fatal(err)
	}
	key := make([]byte, 32)
	rand.Read(key)
	sealer, _ := seal.New(key)
	hs := httptest.NewUnstartedServer(nil)
	own, err := oauth.New(oauth.Config{Store: s, Registry: reg, Events: log, Issuer: "http://" + hs.Listener.Addr().String(), Sealer: sealer, Algorithm: alg})
	if err != nil {
		b.Fatal(err)
	}
	hs.Config.Handler = own.Handler()
	hs.Start()
	defer hs.Close()
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go own.Run(runCtx)
	admin := events.WithActor(ctx, "bench")
	doc := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"client/${iot:Connection.Thing.ThingName}"},
	 {"Effect":"Allow","Action":["iot:Publish","iot:Receive"],"Resource":"topic/things/${iot:Connection.Thing.ThingName}/*"}]}`
	if _, err := reg.CreatePolicy(admin, registry.NewPolicy{Name: "p", Document: []byte(doc)}); err != nil {
		b.Fatal(err)
	}
	if _, err := reg.CreateThingType(admin, registry.ThingTypeSpec{Name: "sensor", Scopes: []string{"mqtt"}, DefaultPolicies: []string{"p"}}); err != nil {
		b.Fatal(err)
	}
	if _, err := reg.CreateThing(admin, registry.NewThing{Name: "s-1", ThingType: "sensor"}); err != nil {
		b.Fatal(err)
	}
	secret, err := own.SetThingSecret(admin, "s-1")
	if err != nil {
		b.Fatal(err)
	}
	cc := clientcredentials.Config{ClientID: "s-1", ClientSecret: secret, TokenURL: hs.URL + "/oauth2/token", EndpointParams: url.Values{}}
	tok, err := cc.Token(ctx)
	if err != nil {
		b.Fatal(err)
	}
	a := authn.New(authn.Config{Tokens: own, Registry: reg, Store: s})
	creds := authn.Credentials{ClientID: "s-1", Username: "s-1", Password: []byte(tok.AccessToken)}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		id, err := a.Authenticate(ctx, creds)
		if err != nil {
			b.Fatal(err)
		}
		res, err := reg.ResolvePolicies(ctx, id.Subject, policy.Options{})
		if err != nil {
			b.Fatal(err)
		}
		bound := res.Set.Bind(registry.PolicyContext(res, "s-1", creds.SourceIP, nil, id.Token))
		if !bound.Allowed(policy.ActionConnect, "s-1") {
			b.Fatal("connect denied")
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "auths/s")
}
