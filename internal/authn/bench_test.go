package authn_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"strings"
	"syscall"
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
//
// Each algorithm runs twice: "reconnect" presents the same token every time
// (a device reconnecting within its token's lifetime: the signature check
// comes from the server's verified-token cache), "first-use" a token never
// presented before every time (the full verification).
func BenchmarkAuthenticateToken(b *testing.B) {
	for _, alg := range []string{"ES256", "EdDSA", "RS256"} {
		b.Run(alg+"/reconnect", func(b *testing.B) { benchmarkAuthenticate(b, alg, false) })
		b.Run(alg+"/first-use", func(b *testing.B) { benchmarkAuthenticate(b, alg, true) })
	}
}

func benchmarkAuthenticate(b *testing.B, alg string, firstUse bool) {
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
	var fresh [][]byte
	if firstUse {
		// Tokens issued through the handler (no network), one per iteration.
		h := own.Handler()
		for range b.N {
			req := httptest.NewRequest("POST", oauth.PathToken, strings.NewReader("grant_type=client_credentials"))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth("s-1", secret)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			var out struct {
				AccessToken string `json:"access_token"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.AccessToken == "" {
				b.Fatalf("token: %d %s", rec.Code, rec.Body)
			}
			fresh = append(fresh, []byte(out.AccessToken))
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU(b)
	for i := range b.N {
		if firstUse {
			creds.Password = fresh[i]
		}
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
	// On a shared machine wall time includes waiting for the CPU; the
	// process's CPU time per operation does not.
	b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N), "cpu-ns/op")
}

// processCPU is the CPU time (user and system) the process used so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
