package authn_test

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/authn"
	"github.com/gatehouse-iot/gatehouse/internal/oauth"
	"github.com/gatehouse-iot/gatehouse/internal/policy"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/testenv"
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
	env := testenv.New(b, testenv.Algorithm(alg), testenv.RunOAuth())
	ctx, own, reg := env.Ctx, env.OAuth, env.Registry
	admin := env.As("bench")
	doc := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"client/${iot:Connection.Thing.ThingName}"},
	 {"Effect":"Allow","Action":["iot:Publish","iot:Receive"],"Resource":"topic/things/${iot:Connection.Thing.ThingName}/*"}]}`
	if _, err := reg.CreatePolicy(admin, registry.NewPolicy{Name: "p", Document: []byte(doc)}); err != nil {
		b.Fatal(err)
	}
	if _, err := reg.CreateThingType(admin, registry.ThingTypeSpec{Name: "sensor", Scopes: []string{"mqtt"}, DefaultPolicies: []string{"p"}}); err != nil {
		b.Fatal(err)
	}
	secret := env.Things(admin, "sensor", "s-1")["s-1"]
	tok := env.Token("s-1", secret)
	a := env.Authn
	creds := authn.Credentials{ClientID: "s-1", Username: "s-1", Password: []byte(tok)}
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
