package certs_test

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/certs"
	"github.com/gatehouse-iot/gatehouse/internal/pki"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

func (f *fixture) server() *httptest.Server {
	srv := httptest.NewServer(f.svc.DeviceHandler())
	f.t.Cleanup(srv.Close)
	return srv
}

type httpResult struct {
	status int
	header http.Header
	body   []byte
}

func post(t *testing.T, url, auth, contentType, body string) httpResult {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "POST", url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return httpResult{resp.StatusCode, resp.Header, b}
}

func jsonBody(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestRegisterHTTP(t *testing.T) {
	forEachDriver(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn)
		srv := f.server()
		secret, _ := f.token(1, 0)
		key := p256(t)
		res := post(t, srv.URL+"/register", "DeviceToken "+secret, "application/json",
			jsonBody(map[string]string{"thingName": "cvm-1", "version": "1.0", "csr": csrPEM(t, key, "cvm-1")}))
		if res.status != 200 {
			t.Fatalf("POST /register = %d %s", res.status, res.body)
		}
		if cc := res.header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("Cache-Control = %q", cc)
		}
		var got certs.RegisterResponse
		if err := json.Unmarshal(res.body, &got); err != nil {
			t.Fatal(err)
		}
		var raw map[string]map[string]any
		_ = json.Unmarshal(res.body, &raw)
		if _, ok := raw["certificateData"]["key_pair"]; !ok {
			t.Errorf("response lacks certificateData.key_pair: %s", res.body)
		}
		if got.CertificateData.KeyPair.PrivateKey != "" || !strings.HasPrefix(got.CertificateData.KeyPair.PublicKey, "-----BEGIN PUBLIC KEY") ||
			!strings.HasPrefix(got.CertificateData.PEM, "-----BEGIN CERTIFICATE") || !strings.HasPrefix(got.RootCA, "-----BEGIN CERTIFICATE") ||
			len(got.CertificateID) != 64 || got.Endpoints["mqtt"] == "" {
			t.Errorf("response = %s", res.body)
		}

		// Server-generated key: the private key comes back once.
		secret2, _ := f.token(1, 0)
		res = post(t, srv.URL+"/register", "DeviceToken "+secret2, "", `{"thingName":"cvm-2","version":"1.0"}`)
		if res.status != 200 {
			t.Fatalf("POST /register = %d %s", res.status, res.body)
		}
		_ = json.Unmarshal(res.body, &got)
		kp, err := pki.ParsePrivateKeyPEM([]byte(got.CertificateData.KeyPair.PrivateKey))
		if err != nil {
			t.Fatalf("private key: %v", err)
		}
		leaf, _ := pki.ParseCertificatesPEM([]byte(got.CertificateData.PEM))
		if !kp.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(leaf[0].PublicKey) {
			t.Error("returned key does not match the certificate")
		}

		// GET /ca and GET /crl.
		resp, err := http.Get(srv.URL + "/ca")
		if err != nil {
			t.Fatal(err)
		}
		chainPEM, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		chain, err := pki.ParseCertificatesPEM(chainPEM)
		if err != nil || len(chain) != 2 || leaf[0].CheckSignatureFrom(chain[0]) != nil {
			t.Errorf("GET /ca: %d certificates, %v", len(chain), err)
		}
		for _, path := range []string{"/crl", "/crl/gatehouse", "/crl?format=pem"} {
			resp, err := http.Get(srv.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if _, err := pki.ParseCRL(b, chain[0], f.clock.Now()); resp.StatusCode != 200 || err != nil {
				t.Errorf("GET %s = %d, %v", path, resp.StatusCode, err)
			}
		}
		if resp, _ := http.Get(srv.URL + "/crl/acme"); resp.StatusCode != 404 {
			t.Errorf("GET /crl/acme = %d, want 404", resp.StatusCode)
		}
	})
}

// Every bad input answers the seed's error shape and creates nothing.
func TestRegisterHTTPRefusals(t *testing.T) {
	forEachDriver(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn)
		srv := f.server()
		ctx := context.Background()
		reusable, _ := f.token(100, 86400)
		used, _ := f.token(1, 0)
		if _, err := f.svc.Register(ctx, used, certs.RegisterRequest{ThingName: "existing", Version: "1"}); err != nil {
			t.Fatal(err)
		}
		expired, _ := f.token(5, 60)
		f.clock.Advance(time.Hour)
		key := p256(t)
		body := func(name, csr string) string {
			m := map[string]string{"thingName": name, "version": "1.0"}
			if csr != "" {
				m["csr"] = csr
			}
			return jsonBody(m)
		}
		tests := []struct {
			name        string
			auth        string
			contentType string
			body        string
			want        int
			msg         string
		}{
			{"no Authorization", "", "application/json", body("a", ""), 401, "DeviceToken"},
			{"Bearer scheme", "Bearer " + reusable, "application/json", body("a", ""), 401, "DeviceToken"},
			{"three parts", "DeviceToken " + reusable + " extra", "application/json", body("a", ""), 401, "DeviceToken"},
			{"unknown token", "DeviceToken ghrt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "application/json", body("a", ""), 401, "DeviceToken"},
			{"reused single-use token", "DeviceToken " + used, "application/json", body("a", ""), 403, "registration token not accepted: single-use token"},
			{"expired token", "DeviceToken " + expired, "application/json", body("a", ""), 403, "registration token not accepted: token"},
			{"existing thing", "DeviceToken " + reusable, "application/json", body("existing", ""), 400, "Thing exists"},
			{"malformed JSON", "DeviceToken " + reusable, "application/json", `{"thingName":`, 400, "malformed JSON"},
			{"unknown field", "DeviceToken " + reusable, "application/json", `{"thingName":"a","version":"1","accountToken":"x"}`, 400, "unknown field"},
			{"trailing data", "DeviceToken " + reusable, "application/json", `{"thingName":"a","version":"1"} {}`, 400, "after the object"},
			{"empty body", "DeviceToken " + reusable, "application/json", ``, 400, "empty"},
			{"wrong content type", "DeviceToken " + reusable, "text/plain", body("a", ""), 415, "Content-Type"},
			{"oversized body", "DeviceToken " + reusable, "application/json", `{"thingName":"a","version":"` + strings.Repeat("1", 70<<10) + `"}`, 413, "too large"},
			{"invalid thing name", "DeviceToken " + reusable, "application/json", body("../etc", ""), 400, "thingName"},
			{"malformed CSR", "DeviceToken " + reusable, "application/json", body("a", "-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n"), 400, "csr"},
			{"weak RSA key", "DeviceToken " + reusable, "application/json", body("a", csrPEM(t, weakRSA(), "a")), 400, "1024 bits"},
			{"CSR name mismatch", "DeviceToken " + reusable, "application/json", body("a", csrPEM(t, key, "b")), 400, "common name"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				before := f.snapshot()
				res := post(t, srv.URL+"/register", tc.auth, tc.contentType, tc.body)
				if res.status != tc.want {
					t.Errorf("status = %d %s, want %d", res.status, res.body, tc.want)
				}
				var e struct {
					Status *bool  `json:"status"`
					Error  string `json:"error"`
				}
				if err := json.Unmarshal(res.body, &e); err != nil || e.Status == nil || *e.Status || !strings.Contains(e.Error, tc.msg) {
					t.Errorf("body = %s, want {\"status\":false,\"error\":...%s...}", res.body, tc.msg)
				}
				if strings.Contains(string(res.body), reusable) {
					t.Error("the answer echoes the token")
				}
				f.assertUnchanged(before)
			})
		}
		if n, _ := f.store.CountCertificates(ctx); n != 1 {
			t.Errorf("certificates = %d, want 1", n)
		}
		things, _ := f.store.ListThings(ctx, store.ThingFilter{})
		if len(things) != 1 {
			t.Errorf("things = %+v", things)
		}
	})
}

// FuzzRegister posts arbitrary bodies (with valid, broken or foreign CSRs)
// to POST /register: the answer is 200 with a certificate for the named
// thing, or an error in the seed's shape with nothing created; never a 500.
func FuzzRegister(f *testing.F) {
	fx := newFixture(f, "sqlite:"+f.TempDir()+"/fuzz.db")
	secret, _ := fx.token(-1, 3600)
	h := fx.svc.DeviceHandler()
	key := p256(f)
	f.Add(`{"thingName":"a","version":"1"}`)
	f.Add(jsonBody(map[string]string{"thingName": "b", "version": "2", "csr": csrPEM(f, key, "b")}))
	f.Add(jsonBody(map[string]string{"thingName": "c", "csr": csrPEM(f, key, "d")}))
	f.Add(jsonBody(map[string]string{"thingName": "e", "csr": csrPEM(f, weakRSA(), "e")}))
	f.Add(`{"thingName":"f","csr":"-----BEGIN CERTIFICATE REQUEST-----\nMAA=\n-----END CERTIFICATE REQUEST-----"}`)
	f.Add(`{"thingName":["x"]}`)
	f.Add(`{"thingName":"g","version":"1","csr":"\u0030\u0082"}`)
	f.Add(`[]`)
	f.Fuzz(func(t *testing.T, body string) {
		before := fx.snapshotWith(t)
		req := httptest.NewRequest("POST", "/register", strings.NewReader(body))
		req.Header.Set("Authorization", "DeviceToken "+secret)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code == 200 {
			var got certs.RegisterResponse
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatalf("200 with body %s", rec.Body)
			}
			leaf, err := pki.ParseCertificatesPEM([]byte(got.CertificateData.PEM))
			if err != nil || leaf[0].Subject.CommonName != got.ThingName {
				t.Fatalf("200 with certificate %v for %q", err, got.ThingName)
			}
			if err := fx.svc.CheckCertificate(context.Background(), got.CertificateID); err != nil {
				t.Fatalf("issued certificate not active: %v", err)
			}
			if _, err := leaf[0].Verify(x509.VerifyOptions{}); err == nil {
				t.Fatal("leaf verifies without roots")
			}
			return
		}
		if rec.Code >= 500 {
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body)
		}
		var e struct {
			Status *bool  `json:"status"`
			Error  string `json:"error"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Status == nil || *e.Status || e.Error == "" {
			t.Fatalf("error body %s", rec.Body)
		}
		after := fx.snapshotWith(t)
		if after.things != before.things || after.certs != before.certs {
			t.Fatalf("refused request created something: %+v -> %+v", before, after)
		}
	})
}
