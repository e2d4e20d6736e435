package oauth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/gatehouse-iot/gatehouse/internal/oauth"
	"github.com/gatehouse-iot/gatehouse/internal/oauth/oauthload"
	"github.com/gatehouse-iot/gatehouse/internal/ratelimit"
)

// BenchmarkClientCredentials measures client credentials grants (ES256,
// client_secret_basic) over keep-alive HTTP against an in-process server,
// next to a minimal provider built the zitadel/oidc example way (op.Provider
// with in-memory storage) in the same run. Client and server share the CPUs
// the benchmark runs on; run with -cpu 1 for a per-core figure:
//
//	go test -run '^$' -bench ClientCredentials -cpu 1 -benchtime 5s ./internal/oauth/
func BenchmarkClientCredentials(b *testing.B) {
	b.Run("gatehouse", func(b *testing.B) {
		e := newEnv(b, "sqlite:"+b.TempDir()+"/bench.db")
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- e.srv.Run(ctx) }()
		benchTokens(b, e.url(oauth.PathToken), "sensor-1", e.secrets["sensor-1"])
		cancel()
		<-done
	})
	b.Run("zitadel-example-provider", func(b *testing.B) {
		hs := newPlainProvider(b)
		benchTokens(b, hs.URL+"/oauth/token", "plain-client", "plain-secret")
	})
}

// BenchmarkTokenHandler is the server's share of a client credentials
// grant without the network: the handler is called directly with a
// recorded response, Run active (batched events). Its allocations are the
// server's per token.
//
//	go test -run '^$' -bench TokenHandler -benchmem -cpu 1 ./internal/oauth/
//
// "fast-path+limits" adds the token endpoint's per-address and per-client
// limits (gatehouse serve's default), set high enough never to refuse, to
// show what counting costs.
func BenchmarkTokenHandler(b *testing.B) {
	unlimited := ratelimit.Rate{Burst: 1 << 30, Per: time.Nanosecond}
	for _, tc := range []struct {
		name         string
		fast, limits bool
	}{{"fast-path", true, false}, {"fast-path+limits", true, true}, {"op", false, false}} {
		b.Run(tc.name, func(b *testing.B) {
			var opts []envOption
			if tc.limits {
				opts = append(opts, func(c *oauth.Config) {
					c.Limits.TokenPerIP = ratelimit.New("tokenPerIP", unlimited, ratelimit.Options{})
					c.Limits.TokenPerClient = ratelimit.New("tokenPerClient", unlimited, ratelimit.Options{})
				})
			}
			e := newEnv(b, "sqlite:"+b.TempDir()+"/bench.db", opts...)
			oauth.SetFastPath(e.srv, tc.fast)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- e.srv.Run(ctx) }()
			h := e.srv.Handler()
			body := "grant_type=client_credentials&scope=publish"
			auth := "Basic " + base64.StdEncoding.EncodeToString([]byte("sensor-1:"+e.secrets["sensor-1"]))
			serve := func() {
				req := httptest.NewRequest("POST", oauth.PathToken, strings.NewReader(body))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("Authorization", auth)
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("status %d: %s", rec.Code, rec.Body)
				}
			}
			serve() // key generation
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := processCPU(b)
			for b.Loop() {
				serve()
			}
			b.StopTimer()
			// The batched events are written by Run's goroutine: CPU time
			// counts them, and not the waiting a shared machine adds.
			b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N), "cpu-ns/op")
			cancel()
			<-done
		})
	}
}

// benchTokens posts client credentials grants from 16 keep-alive
// connections and reports tokens per second.
func benchTokens(b *testing.B, tokenURL, id, secret string) {
	tr := &http.Transport{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 64}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	body := url.Values{"grant_type": {"client_credentials"}, "scope": {"publish"}}.Encode()
	// Warm up: key generation, connection set-up.
	if err := postToken(c, tokenURL, id, secret, body); err != nil {
		b.Fatal(err)
	}
	b.SetParallelism(16)
	b.ReportAllocs()
	b.ResetTimer()
	start, cpu0 := time.Now(), processCPU(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := postToken(c, tokenURL, id, secret, body); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "tokens/s")
	// Client and server CPU per token: with -cpu 1, the tokens per core-second.
	b.ReportMetric(float64(b.N)/(processCPU(b)-cpu0).Seconds(), "tokens/cpu-s")
}

// processCPU is the CPU time (user and system) the process used so far.
func processCPU(b testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func postToken(c *http.Client, tokenURL, id, secret, body string) error {
	req, err := http.NewRequest("POST", tokenURL, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"access_token"`) {
		return errors.New("token request failed: " + resp.Status + " " + string(b))
	}
	return nil
}

// ---- A minimal provider in the style of zitadel/oidc's example ----

// plainStorage implements just the op.Storage methods the client
// credentials grant reaches; the embedded nil interface satisfies the rest.
type plainStorage struct {
	op.Storage
	key *ecdsa.PrivateKey
}

type plainKey struct{ k *ecdsa.PrivateKey }

func (k plainKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.ES256 }
func (k plainKey) Key() any                                    { return k.k }
func (k plainKey) ID() string                                  { return "plain-1" }

type plainPublicKey struct{ k *ecdsa.PrivateKey }

func (k plainPublicKey) ID() string                         { return "plain-1" }
func (k plainPublicKey) Algorithm() jose.SignatureAlgorithm { return jose.ES256 }
func (k plainPublicKey) Use() string                        { return "sig" }
func (k plainPublicKey) Key() any                           { return &k.k.PublicKey }

type plainClient struct{ op.Client }

func (plainClient) GetID() string                       { return "plain-client" }
func (plainClient) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeJWT }
func (plainClient) GrantTypes() []oidc.GrantType {
	return []oidc.GrantType{oidc.GrantTypeClientCredentials}
}
func (plainClient) AuthMethod() oidc.AuthMethod  { return oidc.AuthMethodBasic }
func (plainClient) ClockSkew() time.Duration     { return 0 }
func (plainClient) IsScopeAllowed(s string) bool { return s == "publish" }
func (plainClient) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

type plainTokenRequest struct{ scopes []string }

func (r plainTokenRequest) GetSubject() string    { return "plain-client" }
func (r plainTokenRequest) GetAudience() []string { return []string{"plain-client"} }
func (r plainTokenRequest) GetScopes() []string   { return r.scopes }

func (s *plainStorage) ClientCredentials(ctx context.Context, id, secret string) (op.Client, error) {
	if id != "plain-client" || subtle.ConstantTimeCompare([]byte(secret), []byte("plain-secret")) != 1 {
		return nil, oidc.ErrInvalidClient()
	}
	return plainClient{}, nil
}

func (s *plainStorage) ClientCredentialsTokenRequest(ctx context.Context, id string, scopes []string) (op.TokenRequest, error) {
	return plainTokenRequest{scopes: scopes}, nil
}

func (s *plainStorage) CreateAccessToken(ctx context.Context, r op.TokenRequest) (string, time.Time, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", time.Time{}, err
	}
	return string(b), time.Now().Add(time.Hour), nil
}

func (s *plainStorage) GetPrivateClaimsFromScopes(ctx context.Context, userID, clientID string, scopes []string) (map[string]any, error) {
	return nil, nil
}

func (s *plainStorage) SigningKey(ctx context.Context) (op.SigningKey, error) {
	return plainKey{s.key}, nil
}

func (s *plainStorage) SignatureAlgorithms(ctx context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.ES256}, nil
}

func (s *plainStorage) KeySet(ctx context.Context) ([]op.Key, error) {
	return []op.Key{plainPublicKey{s.key}}, nil
}

func (s *plainStorage) Health(ctx context.Context) error { return nil }

func newPlainProvider(b testing.TB) *httptest.Server {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	var h http.Handler
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	b.Cleanup(hs.Close)
	var crypto [32]byte
	if _, err := rand.Read(crypto[:]); err != nil {
		b.Fatal(err)
	}
	p, err := op.NewProvider(&op.Config{CryptoKey: crypto}, &plainStorage{key: key}, op.StaticIssuer(hs.URL), op.WithAllowInsecure())
	if err != nil {
		b.Fatal(err)
	}
	h = p
	return hs
}

// newFloorServer is the least a token endpoint can do over net/http: read
// the form, check the client secret and answer a token response of the
// usual size; with sign, the token is an ES256 JWS signed per request. It
// measures the floor under Gatehouse's figures on the same machine.
func newFloorServer(t testing.TB, sign bool) *httptest.Server {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	header := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"ES256","kid":"floor-kid-0123456789","typ":"at+jwt"}`))
	payload := base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"http://127.0.0.1:40000","sub":"sensor-1","aud":["http://127.0.0.1:40000"],"exp":1900000000,"iat":1899996400,` +
		`"jti":"0123456789abcdefghijkl","client_id":"sensor-1","scope":"publish","thing_name":"sensor-1","thing_type":"sensor"}`))
	input := header + "." + payload
	fixedSig := base64.RawURLEncoding.EncodeToString(make([]byte, 64))
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if id, secret, ok := r.BasicAuth(); !ok || id != "floor-client" || subtle.ConstantTimeCompare([]byte(secret), []byte("floor-secret")) != 1 {
			http.Error(w, "invalid_client", http.StatusUnauthorized)
			return
		}
		sig := fixedSig
		if sign {
			digest := sha256.Sum256([]byte(input))
			der, err := ecdsa.SignASN1(rand.Reader, key, digest[:])
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			sig = base64.RawURLEncoding.EncodeToString(der[len(der)-64:]) // the size of R||S; the bytes do not matter here
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"access_token":"`+input+"."+sig+`","token_type":"Bearer","expires_in":3600,"scope":"publish"}`+"\n")
	}))
	t.Cleanup(hs.Close)
	return hs
}

// TestBenchServe and TestBenchLoad measure server CPU alone: the server and
// the load generator run as separate processes, each pinned to its own core.
// They are skipped unless the environment asks for them:
//
//	GATEHOUSE_BENCH_SERVE=/tmp/target GATEHOUSE_BENCH_KIND=gatehouse|plain|floor-http|floor-es256 GOMAXPROCS=1 \
//	  taskset -c 0 go test -run TestBenchServe -timeout 0 ./internal/oauth/ &
//	GATEHOUSE_BENCH_TARGET=/tmp/target taskset -c 1 go test -run TestBenchLoad -v ./internal/oauth/
//
// The target file holds "tokenURL clientID secret"; TestBenchLoad prints
// tokens/s and latency, and (when the server runs under `go test`) the
// server's CPU time per token is printed by TestBenchServe on exit.
func TestBenchServe(t *testing.T) {
	target := os.Getenv("GATEHOUSE_BENCH_SERVE")
	if target == "" {
		t.Skip("GATEHOUSE_BENCH_SERVE not set")
	}
	var line string
	switch kind := os.Getenv("GATEHOUSE_BENCH_KIND"); kind {
	case "plain":
		hs := newPlainProvider(t)
		line = hs.URL + "/oauth/token plain-client plain-secret"
	case "floor-http", "floor-es256":
		hs := newFloorServer(t, kind == "floor-es256")
		line = hs.URL + "/token floor-client floor-secret"
	default:
		e := newEnv(t, "sqlite:"+t.TempDir()+"/bench.db")
		go func() { _ = e.srv.Run(t.Context()) }()
		line = e.url(oauth.PathToken) + " sensor-1 " + e.secrets["sensor-1"]
	}
	if err := os.WriteFile(target, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	cpu := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			t.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	before := cpu()
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	<-stop
	t.Logf("server CPU time while serving: %s", cpu()-before)
	if err := os.WriteFile(target+".cpu", []byte((cpu() - before).String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestBenchLoad(t *testing.T) {
	target := os.Getenv("GATEHOUSE_BENCH_TARGET")
	if target == "" {
		t.Skip("GATEHOUSE_BENCH_TARGET not set")
	}
	b, err := os.ReadFile(target)
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b))
	if len(f) != 3 {
		t.Fatalf("target file %q: want tokenURL clientID secret", b)
	}
	// GATEHOUSE_BENCH_RAW=1 uses oauthload's minimal HTTP client, which one
	// core of load can drive a one-core server to saturation with.
	raw := os.Getenv("GATEHOUSE_BENCH_RAW") != ""
	res, err := oauthload.Run(t.Context(), oauthload.Config{TokenURL: f[0], ClientID: f[1], ClientSecret: f[2], Scope: "publish", Concurrency: 16, Duration: 10 * time.Second, Raw: raw})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %s", f[0], res)
}
