package thing

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	half := func() float64 { return 0.5 }
	tests := []struct {
		name    string
		r       Retry
		attempt int
		after   time.Duration
		want    time.Duration
	}{
		{"first retry: a share of Base", Retry{Rand: half}, 0, 0, 500 * time.Millisecond},
		{"second doubles the ceiling", Retry{Rand: half}, 1, 0, time.Second},
		{"the ceiling stops at Cap", Retry{Rand: half}, 10, 0, 5 * time.Second},
		{"huge attempts do not overflow", Retry{Rand: half}, 200, 0, 5 * time.Second},
		{"Retry-After comes first, jitter on top", Retry{Rand: half}, 0, 3 * time.Second, 3500 * time.Millisecond},
		{"rand 0 is exactly Retry-After", Retry{Rand: func() float64 { return 0 }}, 4, 2 * time.Second, 2 * time.Second},
		{"own Base and Cap", Retry{Rand: half, Base: 100 * time.Millisecond, Cap: 300 * time.Millisecond}, 3, 0, 150 * time.Millisecond},
		{"Cap below Base is Base", Retry{Rand: half, Base: time.Second, Cap: time.Millisecond}, 3, 0, 500 * time.Millisecond},
	}
	for _, tc := range tests {
		if got := tc.r.Backoff(tc.attempt, tc.after); got != tc.want {
			t.Errorf("%s: Backoff(%d, %s) = %s, want %s", tc.name, tc.attempt, tc.after, got, tc.want)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"7", 7 * time.Second},
		{" 1 ", time.Second},
		{"0", 0},
		{"-3", 0},
		{"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{"99999999", 24 * time.Hour},
	}
	for _, tc := range tests {
		if got := parseRetryAfter(tc.in, now); got != tc.want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// sleeps records the SDK's waits instead of waiting.
type sleeps struct {
	mu  sync.Mutex
	got []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.got = append(s.got, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleeps) waits() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.got)
}

// refuser answers the first n requests to path with status (and
// Retry-After when retryAfter is set), then hands them to ok.
type refuser struct {
	path       string
	n          int
	status     int
	retryAfter string
	ok         http.HandlerFunc

	mu    sync.Mutex
	calls int
}

func (f *refuser) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != f.path {
		http.NotFound(w, r)
		return
	}
	f.mu.Lock()
	f.calls++
	refuse := f.calls <= f.n
	f.mu.Unlock()
	if refuse {
		if f.retryAfter != "" {
			w.Header().Set("Retry-After", f.retryAfter)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(f.status)
		w.Write([]byte(`{"error":"temporarily_unavailable","error_description":"too many requests from this address"}`))
		return
	}
	f.ok(w, r)
}

func (f *refuser) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func tokenOK(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, map[string]any{"access_token": "at", "token_type": "Bearer", "expires_in": 3600})
}

// vend answers POST /register with a certificate for the request's CSR,
// signed by a throwaway CA.
func vend(t *testing.T) http.HandlerFunc {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, IsCA: true, BasicConstraintsValid: true,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	return func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			CSR string `json:"csr"`
		}
		json.NewDecoder(r.Body).Decode(&in)
		blk, _ := pem.Decode([]byte(in.CSR))
		if blk == nil {
			http.Error(w, "no csr", 400)
			return
		}
		csr, err := x509.ParseCertificateRequest(blk.Bytes)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(2), Subject: csr.Subject,
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}, ca, csr.PublicKey, caKey)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		writeJSON(w, map[string]any{"certificateId": "c1", "certificateData": map[string]string{"pem": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))},
			"rootCa": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}))})
	}
}

// TestRetryHTTP: every HTTP call of the SDK, against a server that
// answers 429 with Retry-After (or 503 without) twice and then succeeds,
// waits Retry-After plus its jitter (or the bare backoff) and succeeds on
// the third try, reporting both retries.
func TestRetryHTTP(t *testing.T) {
	errShown := errors.New("shown")
	tests := []struct {
		name       string
		path       string
		status     int
		retryAfter string
		ok         http.HandlerFunc
		cfg        func(*Config)
		call       func(context.Context, *Thing) error
		wantOp     string
		wantWaits  []time.Duration
	}{
		{
			name: "register", path: "/register", status: 429, retryAfter: "3", ok: vend(t), wantOp: "register",
			call: func(ctx context.Context, th *Thing) error {
				if _, err := th.Register(ctx, "ghrt_x", "1"); err != nil {
					return err
				}
				if th.CertificateID() != "c1" {
					return errors.New("no certificate stored")
				}
				return nil
			},
			wantWaits: []time.Duration{3500 * time.Millisecond, 4 * time.Second},
		},
		{
			name: "token (client credentials)", path: "/oauth2/token", status: 429, retryAfter: "1", ok: tokenOK, wantOp: "token",
			call: func(ctx context.Context, th *Thing) error {
				tok, err := th.Token(ctx)
				if err == nil && tok != "at" {
					err = errors.New("wrong token " + tok)
				}
				return err
			},
			wantWaits: []time.Duration{1500 * time.Millisecond, 2 * time.Second},
		},
		{
			name: "token (private_key_jwt), 503 without Retry-After", path: "/oauth2/token", status: 503, ok: tokenOK, wantOp: "token",
			cfg:  func(c *Config) { c.Auth = AuthPrivateKeyJWT },
			call: func(ctx context.Context, th *Thing) error { _, err := th.Token(ctx); return err },
			// No Retry-After: the bare backoff, Base then 2×Base, halved.
			wantWaits: []time.Duration{500 * time.Millisecond, time.Second},
		},
		{
			name: "token (things endpoint)", path: "/things/dev-1", status: 429, retryAfter: "2", ok: tokenOK, wantOp: "token",
			cfg:       func(c *Config) { c.Endpoint = EndpointThings },
			call:      func(ctx context.Context, th *Thing) error { _, err := th.Token(ctx); return err },
			wantWaits: []time.Duration{2500 * time.Millisecond, 3 * time.Second},
		},
		{
			name: "device flow (device code)", path: "/oauth2/device/code", status: 429, retryAfter: "1", wantOp: "device code",
			ok: func(w http.ResponseWriter, _ *http.Request) {
				writeJSON(w, map[string]any{"device_code": "dc", "user_code": "BCDF-GHJK", "verification_uri": "http://x/device", "expires_in": 60, "interval": 1})
			},
			call: func(ctx context.Context, th *Thing) error {
				_, err := th.DeviceFlow(ctx, func(_ context.Context, dc DeviceCode) error {
					if dc.UserCode != "BCDF-GHJK" {
						return errors.New("wrong user code")
					}
					return errShown // the code arrived; the polling is TestDeviceFlowSlowDown's
				})
				if errors.Is(err, errShown) {
					return nil
				}
				return err
			},
			wantWaits: []time.Duration{1500 * time.Millisecond, 2 * time.Second},
		},
		{
			name: "HTTPS publish", path: "/topics/t/1", status: 429, retryAfter: "1", wantOp: "publish",
			ok:  func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, map[string]any{}) },
			cfg: func(c *Config) { c.RefreshBefore = time.Second },
			call: func(ctx context.Context, th *Thing) error {
				return th.PublishHTTPS(ctx, "t/1", []byte("x"), HTTPSOptions{QoS: 1})
			},
			wantWaits: []time.Duration{1500 * time.Millisecond, 2 * time.Second},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ref := &refuser{path: tc.path, n: 2, status: tc.status, retryAfter: tc.retryAfter, ok: tc.ok}
			mux := http.NewServeMux()
			if tc.path != "/oauth2/token" {
				mux.HandleFunc("POST /oauth2/token", tokenOK)
			}
			mux.Handle(tc.path, ref)
			srv := httptest.NewServer(mux)
			defer srv.Close()
			var sl sleeps
			var events []RetryEvent
			cfg := Config{ServerURL: srv.URL, Name: "dev-1", StateDir: t.TempDir(),
				Retry: Retry{Rand: func() float64 { return 0.5 }, Sleep: sl.sleep, OnRetry: func(e RetryEvent) { events = append(events, e) }}}
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			th, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Auth == AuthPrivateKeyJWT {
				if _, err := th.Key(); err != nil {
					t.Fatal(err)
				}
			} else if err := th.SetClientSecret("s"); err != nil {
				t.Fatal(err)
			}
			if err := tc.call(t.Context(), th); err != nil {
				t.Fatalf("call after two refusals: %v", err)
			}
			if got := ref.count(); got != 3 {
				t.Errorf("server saw %d tries, want 3", got)
			}
			if got := sl.waits(); !slices.Equal(got, tc.wantWaits) {
				t.Errorf("waits = %v, want %v", got, tc.wantWaits)
			}
			if len(events) != 2 {
				t.Fatalf("retry events = %+v, want 2", events)
			}
			for i, e := range events {
				var he *HTTPError
				if e.Op != tc.wantOp || e.Attempt != i+1 || e.Wait != tc.wantWaits[i] || !errors.As(e.Err, &he) || he.StatusCode != tc.status {
					t.Errorf("retry event %d = %+v, want op %q attempt %d wait %s status %d", i, e, tc.wantOp, i+1, tc.wantWaits[i], tc.status)
				}
			}
		})
	}
}

// TestRetryGivesUp: the policy, the context's deadline and errors that
// are not "for now" end the retrying, with the server's answer as error.
func TestRetryGivesUp(t *testing.T) {
	tests := []struct {
		name      string
		status    int
		retry     Retry
		deadline  time.Duration
		wantTries int
		wantWaits int
		wantInErr string
	}{
		{"disabled: the first 429 is the answer", 429, Retry{Disable: true}, 0, 1, 0, "server answered 429"},
		{"the deadline comes before Retry-After", 429, Retry{}, 10 * time.Second, 1, 0, "deadline comes before the next try"},
		{"MaxWait used up", 429, Retry{MaxWait: 70 * time.Second}, 0, 3, 2, "gave up after 3 tries"},
		{"400 is not retried", 400, Retry{}, 0, 1, 0, "server answered 400"},
		{"401 is not retried", 401, Retry{}, 0, 1, 0, "server answered 401"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ref := &refuser{path: "/oauth2/token", n: 1000, status: tc.status, retryAfter: "30", ok: tokenOK}
			srv := httptest.NewServer(ref)
			defer srv.Close()
			var sl sleeps
			tc.retry.Sleep, tc.retry.Rand = sl.sleep, func() float64 { return 0.5 }
			th, err := New(Config{ServerURL: srv.URL, Name: "dev-1", StateDir: t.TempDir(), Retry: tc.retry})
			if err != nil {
				t.Fatal(err)
			}
			th.SetClientSecret("s")
			ctx := t.Context()
			if tc.deadline > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.deadline)
				defer cancel()
			}
			_, err = th.Token(ctx)
			var he *HTTPError
			if !errors.As(err, &he) || he.StatusCode != tc.status || !strings.Contains(err.Error(), tc.wantInErr) {
				t.Fatalf("Token = %v, want the %d answer mentioning %q", err, tc.status, tc.wantInErr)
			}
			if tc.status == 429 && he.RetryAfter != 30*time.Second {
				t.Errorf("HTTPError.RetryAfter = %s, want 30s", he.RetryAfter)
			}
			if got := ref.count(); got != tc.wantTries {
				t.Errorf("server saw %d tries, want %d", got, tc.wantTries)
			}
			if got := len(sl.waits()); got != tc.wantWaits {
				t.Errorf("waited %d times, want %d", got, tc.wantWaits)
			}
		})
	}
}

// TestRetryStopsWithContext: cancelling the call's context ends a wait.
func TestRetryStopsWithContext(t *testing.T) {
	ref := &refuser{path: "/oauth2/token", n: 1000, status: 429, retryAfter: "300", ok: tokenOK}
	srv := httptest.NewServer(ref)
	defer srv.Close()
	ctx, cancel := context.WithCancel(t.Context())
	th, err := New(Config{ServerURL: srv.URL, Name: "dev-1", StateDir: t.TempDir(), Retry: Retry{
		OnRetry: func(RetryEvent) { cancel() }, // the real timer is running; nothing else ends it
	}})
	if err != nil {
		t.Fatal(err)
	}
	th.SetClientSecret("s")
	_, err = th.Token(ctx)
	var he *HTTPError
	if !errors.Is(err, context.Canceled) || !errors.As(err, &he) || he.StatusCode != 429 {
		t.Fatalf("Token = %v, want the 429 and context.Canceled", err)
	}
}
