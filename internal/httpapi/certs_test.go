package httpapi_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/certs"
	"github.com/gatehouse-iot/gatehouse/internal/events"
	"github.com/gatehouse-iot/gatehouse/internal/httpapi"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/store"
	"github.com/gatehouse-iot/gatehouse/internal/testenv"
)

func TestCertificateRoutes(t *testing.T) {
	env := testenv.Core(t)
	ctx, s, reg, log := env.Ctx, env.Store, env.Registry, env.Events
	boot, err := reg.EnsureBootstrap(ctx)
	if err != nil {
		t.Fatal(err)
	}
	op, _, err := reg.CreateAPIToken(ctx, "ro", "", []string{registry.RoleOperator}, 0)
	if err != nil {
		t.Fatal(err)
	}
	svc := env.Certs()
	if _, err := reg.CreateThingType(events.WithActor(ctx, "test"), registry.ThingTypeSpec{Name: "sensor"}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(httpapi.New(httpapi.Config{Registry: reg, Events: log, Certs: svc}))
	t.Cleanup(srv.Close)
	f := &fixture{srv: srv, store: s, admin: boot.Token, operator: op}

	r := f.do(t, f.admin, "POST", "/api/v1/registration-tokens", `{"thingType":"sensor","maxUses":2,"expiresInSeconds":3600}`)
	tokenSecret, _ := r.body["token"].(string)
	if r.status != 201 || !strings.HasPrefix(tokenSecret, certs.RegistrationTokenPrefix) || r.body["maxUses"] != 2.0 {
		t.Fatalf("create registration token = %d %s", r.status, r.raw)
	}
	if r := f.do(t, f.admin, "GET", "/api/v1/registration-tokens", ""); r.status != 200 || strings.Contains(r.raw, tokenSecret) || strings.Contains(r.raw, `"hash"`) {
		t.Errorf("list registration tokens = %d %s", r.status, r.raw)
	}
	registered, err := svc.Register(ctx, tokenSecret, certs.RegisterRequest{ThingName: "s-1", Version: "1"})
	if err != nil {
		t.Fatal(err)
	}
	id := registered.Certificate.Fingerprint

	devKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr := func(cn string) string {
		der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, devKey)
		b, _ := json.Marshal(map[string]any{"csr": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})), "deactivateOld": true})
		return string(b)
	}
	now := time.Now()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Acme"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	mfgBody, _ := json.Marshal(map[string]any{"name": "acme", "certificatePem": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})),
		"autoRegister": true, "jitStatus": "ACTIVE", "thingType": "sensor"})

	tests := []struct {
		name   string
		token  string
		method string
		path   string
		body   string
		want   int
		detail string
	}{
		{"CA info", f.operator, "GET", "/api/v1/ca", "", 200, "registrationCode"},
		{"list certificates", f.operator, "GET", "/api/v1/certificates?thingName=s-1", "", 200, id},
		{"bad status filter", f.operator, "GET", "/api/v1/certificates?status=ON", "", 400, "status"},
		{"show by colon fingerprint", f.operator, "GET", "/api/v1/certificates/" + colons(id), "", 200, `"status":"ACTIVE"`},
		{"chain: the leaf then Gatehouse's CA", f.operator, "GET", "/api/v1/certificates/" + id + "/chain", "", 200, `"subject":"CN=s-1`},
		{"chain of unknown", f.operator, "GET", "/api/v1/certificates/" + strings.Repeat("ab", 32) + "/chain", "", 404, "not found"},
		{"show unknown", f.operator, "GET", "/api/v1/certificates/" + strings.Repeat("ab", 32), "", 404, "not found"},
		{"operator may not revoke", f.operator, "POST", "/api/v1/certificates/" + id + "/revoke", "", 403, "role"},
		{"deactivate", f.admin, "POST", "/api/v1/certificates/" + id + "/deactivate", "", 200, `"status":"INACTIVE"`},
		{"activate", f.admin, "POST", "/api/v1/certificates/" + id + "/activate", "", 200, `"status":"ACTIVE"`},
		{"rotate with wrong name", f.admin, "POST", "/api/v1/certificates/" + id + "/rotate", csr("s-2"), 400, "common name"},
		{"rotate", f.admin, "POST", "/api/v1/certificates/" + id + "/rotate", csr("s-1"), 201, `"thingName":"s-1"`},
		{"old is inactive", f.operator, "GET", "/api/v1/certificates/" + id, "", 200, `"status":"INACTIVE"`},
		{"revoke bad reason", f.admin, "POST", "/api/v1/certificates/" + id + "/revoke", `{"reason":7}`, 400, "reason"},
		{"revoke", f.admin, "POST", "/api/v1/certificates/" + id + "/revoke", `{"reason":1}`, 200, `"status":"REVOKED"`},
		{"activate revoked", f.admin, "POST", "/api/v1/certificates/" + id + "/activate", "", 409, "cannot become"},
		{"add manufacturer CA", f.admin, "POST", "/api/v1/manufacturer-cas", string(mfgBody), 201, `"autoRegister":true`},
		{"add it twice", f.admin, "POST", "/api/v1/manufacturer-cas", string(mfgBody), 409, "exists"},
		{"manufacturer CA not a CA", f.admin, "POST", "/api/v1/manufacturer-cas", `{"name":"x","certificatePem":` + jsonString(registered.CertificatePEM) + `}`, 400, "not a CA"},
		{"patch manufacturer CA", f.admin, "PATCH", "/api/v1/manufacturer-cas/acme", `{"status":"INACTIVE"}`, 200, `"status":"INACTIVE"`},
		{"list manufacturer CAs", f.operator, "GET", "/api/v1/manufacturer-cas", "", 200, `"acme"`},
		{"manufacturer CA subject", f.operator, "GET", "/api/v1/manufacturer-cas", "", 200, `"subject":"CN=Acme"`},
		{"manufacturer CA expiry", f.operator, "GET", "/api/v1/manufacturer-cas/acme", "", 200, `"notAfter":"` + caTmpl.NotAfter.UTC().Truncate(time.Second).Format(time.RFC3339)},
		{"remove manufacturer CA", f.admin, "DELETE", "/api/v1/manufacturer-cas/acme", "", 204, ""},
		{"import unparseable CA", f.admin, "POST", "/api/v1/ca/import", `{"chainPem":"x","keyPem":"y"}`, 400, "keyPem"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := f.do(t, tc.token, tc.method, tc.path, tc.body)
			if r.status != tc.want || !strings.Contains(r.raw, tc.detail) {
				t.Errorf("%s %s = %d %s, want %d containing %q", tc.method, tc.path, r.status, r.raw, tc.want, tc.detail)
			}
		})
	}
	var tokID string
	if toks, _ := svc.RegistrationTokens(ctx, store.Page{}); len(toks) == 1 {
		tokID = toks[0].ID
	}
	if r := f.do(t, f.admin, "DELETE", "/api/v1/registration-tokens/"+tokID, ""); r.status != 204 {
		t.Errorf("revoke registration token = %d %s", r.status, r.raw)
	}
	if _, err := svc.Register(ctx, tokenSecret, certs.RegisterRequest{ThingName: "s-9"}); err == nil {
		t.Error("a revoked token registered a thing")
	}
	r = f.do(t, f.operator, "GET", "/api/v1/certificates/"+id+"/chain", "")
	var chain struct{ Items []certs.CertSummary }
	_ = json.Unmarshal([]byte(r.raw), &chain)
	info, _ := svc.Info(ctx)
	if len(chain.Items) < 2 || chain.Items[0].Fingerprint != id || chain.Items[0].IsCA || chain.Items[1].Fingerprint != info.Fingerprint || !chain.Items[1].IsCA {
		t.Errorf("chain = %s, want leaf %s then the CA %s", r.raw, id, info.Fingerprint)
	}
	resp, err := http.Get(srv.URL + "/api/v1/certificates")
	if err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Errorf("unauthenticated list = %d", resp.StatusCode)
		}
	}
}

func colons(fp string) string {
	var b strings.Builder
	for i := 0; i < len(fp); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(strings.ToUpper(fp[i : i+2]))
	}
	return b.String()
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
