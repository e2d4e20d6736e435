package certs_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/certs"
	"github.com/gatehouse-iot/gatehouse/internal/pki"
	"github.com/gatehouse-iot/gatehouse/internal/policy"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/seal"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

func TestEnsureCAPersistsSealed(t *testing.T) {
	forEachDriver(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn)
		ctx := context.Background()
		ca, err := f.svc.CA(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(ca.Chain()) != 2 || ca.Root().Subject.CommonName != pki.DefaultRootCommonName {
			t.Fatalf("chain = %d certificates, root %q; want root + intermediate", len(ca.Chain()), ca.Root().Subject.CommonName)
		}
		rec, err := f.store.GetCA(ctx, certs.OwnCA)
		if err != nil {
			t.Fatal(err)
		}
		m, _ := ca.Marshal()
		if bytes.Contains(rec.SealedKey, m.Key[len(m.Key)-32:]) || bytes.Contains(rec.SealedRootKey, m.RootKey[len(m.RootKey)-32:]) {
			t.Error("the stored CA key contains plaintext key material")
		}
		// A second replica with the same master key loads the same CA.
		other := f.newService()
		if err := other.EnsureCA(ctx); err != nil {
			t.Fatal(err)
		}
		ca2, _ := other.CA(ctx)
		if pki.Fingerprint(ca2.Certificate()) != pki.Fingerprint(ca.Certificate()) {
			t.Error("a second EnsureCA created another CA")
		}
		// Another master key cannot open it.
		key := make([]byte, seal.KeySize)
		rand.Read(key)
		wrong, _ := seal.New(key)
		if err := f.newService(func(c *certs.Config) { c.Sealer = wrong }).EnsureCA(ctx); err == nil {
			t.Error("EnsureCA opened the CA with the wrong master key")
		}
		evs, _ := f.store.ListEvents(ctx, store.EventFilter{Type: "ca.created"})
		if len(evs) != 1 {
			t.Errorf("ca.created events = %d, want 1", len(evs))
		}
	})
}

func TestRegister(t *testing.T) {
	forEachDriver(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn)
		ctx := context.Background()
		secret, tok := f.token(2, 3600)
		deviceKey := p256(t)
		tests := []struct {
			name   string
			req    certs.RegisterRequest
			hasKey bool
		}{
			{"server-generated key", certs.RegisterRequest{ThingName: "cvm-1", Version: "1.0.2"}, true},
			{"device CSR", certs.RegisterRequest{ThingName: "cvm-2", Version: "2", CSR: csrPEM(t, deviceKey, "cvm-2")}, false},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				reg, err := f.svc.Register(ctx, secret, tc.req)
				if err != nil {
					t.Fatal(err)
				}
				if got := reg.PrivateKeyPEM != ""; got != tc.hasKey {
					t.Errorf("private key returned = %v, want %v", got, tc.hasKey)
				}
				if reg.Thing.ThingType != "CvmGenericType" || reg.Thing.Attributes["version"] != tc.req.Version || reg.Thing.Attributes["creationDate"] == "" {
					t.Errorf("thing = %+v", reg.Thing)
				}
				parsed, err := pki.ParseCertificatesPEM([]byte(reg.CertificatePEM))
				if err != nil {
					t.Fatal(err)
				}
				leaf := parsed[0]
				if leaf.Subject.CommonName != tc.req.ThingName || pki.Fingerprint(leaf) != reg.Certificate.Fingerprint {
					t.Errorf("certificate CN %q fingerprint %s, record %s", leaf.Subject.CommonName, pki.Fingerprint(leaf), reg.Certificate.Fingerprint)
				}
				if !tc.hasKey && !leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(deviceKey.Public()) {
					t.Error("certificate is not for the CSR's key")
				}
				roots := x509.NewCertPool()
				roots.AppendCertsFromPEM([]byte(reg.RootCAPEM))
				ca, _ := f.svc.CA(ctx)
				inter := x509.NewCertPool()
				inter.AddCert(ca.Certificate())
				if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
					t.Errorf("certificate does not chain to rootCa: %v", err)
				}
				rec, err := f.store.GetCertificate(ctx, reg.Certificate.Fingerprint)
				if err != nil || rec.Status != store.CertActive || rec.ThingName != tc.req.ThingName || rec.CA != certs.OwnCA {
					t.Errorf("stored certificate = %+v, %v", rec, err)
				}
				// The type's policies apply to the certificate's identity.
				res, err := f.reg.ResolvePolicies(ctx, registry.Subject{ThingName: tc.req.ThingName, CertificateFingerprint: rec.Fingerprint}, policy.Options{})
				if err != nil || len(res.Policies) != 1 || res.Policies[0] != "multa_backend_policy_dev" {
					t.Errorf("resolved policies = %+v, %v", res, err)
				}
				if reg.Endpoints["mqtt"] != "mqtts://gatehouse.test:8883" {
					t.Errorf("endpoints = %v", reg.Endpoints)
				}
				for _, typ := range []string{"thing.registered", "certificate.issued"} {
					evs, _ := f.store.ListEvents(ctx, store.EventFilter{Type: typ})
					found := false
					for _, ev := range evs {
						found = found || strings.Contains(ev.Subject, tc.req.ThingName) || strings.Contains(ev.Subject, rec.Fingerprint)
						if reg.PrivateKeyPEM != "" && bytes.Contains(ev.Details, []byte("PRIVATE KEY")) {
							t.Errorf("event %s leaks the private key", typ)
						}
						if strings.Contains(string(ev.Details), secret) || strings.Contains(ev.Actor, secret) {
							t.Errorf("event %s leaks the token", typ)
						}
					}
					if !found {
						t.Errorf("no %s event for %s", typ, tc.req.ThingName)
					}
				}
			})
		}
		got, _ := f.store.GetRegistrationToken(ctx, tok.ID)
		if got.Uses != 2 {
			t.Errorf("token uses = %d, want 2", got.Uses)
		}
	})
}

// Attributes the type's schema does not name are dropped; a type without a
// schema keeps both.
func TestRegisterFiltersAttributes(t *testing.T) {
	f := newFixture(t, "sqlite:"+t.TempDir()+"/g.db")
	ctx := context.Background()
	if _, err := f.reg.CreateThingType(f.admin, registry.ThingTypeSpec{Name: "OnlyVersion", AttributeSchema: []store.AttributeSpec{{Name: "version"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.CreateThingType(f.admin, registry.ThingTypeSpec{Name: "NoSchema"}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		thingType string
		want      []string
	}{{"OnlyVersion", []string{"version"}}, {"NoSchema", []string{"creationDate", "version"}}}
	for _, tc := range tests {
		sec, _, err := f.svc.CreateRegistrationToken(f.admin, certs.NewRegistrationToken{ThingType: tc.thingType})
		if err != nil {
			t.Fatal(err)
		}
		reg, err := f.svc.Register(ctx, sec, certs.RegisterRequest{ThingName: "t-" + tc.thingType, Version: "1"})
		if err != nil {
			t.Fatal(err)
		}
		if len(reg.Thing.Attributes) != len(tc.want) {
			t.Errorf("%s: attributes %v, want keys %v", tc.thingType, reg.Thing.Attributes, tc.want)
		}
		for _, k := range tc.want {
			if _, ok := reg.Thing.Attributes[k]; !ok {
				t.Errorf("%s: attribute %s missing: %v", tc.thingType, k, reg.Thing.Attributes)
			}
		}
	}
}

// Every refusal leaves nothing behind: no thing, no certificate, no event,
// token use counts unchanged.
func TestRegisterRefusals(t *testing.T) {
	forEachDriver(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn)
		ctx := context.Background()
		reusable, _ := f.token(100, 3600)
		used, _ := f.token(1, 0)
		if _, err := f.svc.Register(ctx, used, certs.RegisterRequest{ThingName: "first", Version: "1"}); err != nil {
			t.Fatal(err)
		}
		expired, _ := f.token(5, 60)
		revoked, revokedTok := f.token(5, 0)
		if err := f.svc.RevokeRegistrationToken(f.admin, revokedTok.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := f.reg.CreateThingType(f.admin, registry.ThingTypeSpec{Name: "Doomed"}); err != nil {
			t.Fatal(err)
		}
		orphan, _, err := f.svc.CreateRegistrationToken(f.admin, certs.NewRegistrationToken{ThingType: "Doomed", MaxUses: 5})
		if err != nil {
			t.Fatal(err)
		}
		if err := f.reg.DeleteThingType(f.admin, "Doomed", 0); err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(2 * time.Minute) // expires `expired`
		key := p256(t)
		tests := []struct {
			name   string
			token  string
			req    certs.RegisterRequest
			want   error
			reason pki.Reason
		}{
			{"unknown token", "ghrt_nope", certs.RegisterRequest{ThingName: "a", Version: "1"}, certs.ErrBadToken, ""},
			{"malformed token", "not a token", certs.RegisterRequest{ThingName: "a", Version: "1"}, certs.ErrBadToken, ""},
			{"reused single-use token", used, certs.RegisterRequest{ThingName: "a", Version: "1"}, certs.ErrTokenRejected, ""},
			{"expired token", expired, certs.RegisterRequest{ThingName: "a", Version: "1"}, certs.ErrTokenRejected, ""},
			{"revoked token", revoked, certs.RegisterRequest{ThingName: "a", Version: "1"}, certs.ErrTokenRejected, ""},
			{"thing type gone", orphan, certs.RegisterRequest{ThingName: "a", Version: "1"}, certs.ErrTokenRejected, ""},
			{"existing thing", reusable, certs.RegisterRequest{ThingName: "first", Version: "1"}, certs.ErrThingExists, ""},
			{"invalid thing name", reusable, certs.RegisterRequest{ThingName: "bad name!", Version: "1"}, registry.ErrInvalid, ""},
			{"empty thing name", reusable, certs.RegisterRequest{Version: "1"}, registry.ErrInvalid, ""},
			{"invalid version", reusable, certs.RegisterRequest{ThingName: "a", Version: "1 0"}, registry.ErrInvalid, ""},
			{"malformed CSR", reusable, certs.RegisterRequest{ThingName: "a", CSR: "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"}, nil, pki.ReasonMalformed},
			{"not PEM", reusable, certs.RegisterRequest{ThingName: "a", CSR: "hello"}, nil, pki.ReasonMalformed},
			{"weak RSA key", reusable, certs.RegisterRequest{ThingName: "a", CSR: csrPEM(t, weakRSA(), "a")}, nil, pki.ReasonWeakKey},
			{"CSR name not thing name", reusable, certs.RegisterRequest{ThingName: "a", CSR: csrPEM(t, key, "someone-else")}, nil, pki.ReasonSubject},
			{"oversized CSR", reusable, certs.RegisterRequest{ThingName: "a", CSR: strings.Repeat("A", pki.MaxCSRSize+1)}, registry.ErrInvalid, ""},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				before := f.snapshot()
				_, err := f.svc.Register(ctx, tc.token, tc.req)
				if err == nil {
					t.Fatal("registered")
				}
				if tc.want != nil && !errors.Is(err, tc.want) {
					t.Errorf("err = %v, want %v", err, tc.want)
				}
				if tc.reason != "" && pki.ReasonOf(err) != tc.reason {
					t.Errorf("err = %v, reason %q, want %q", err, pki.ReasonOf(err), tc.reason)
				}
				f.assertUnchanged(before)
			})
		}
	})
}

// Concurrent registrations never use a token more often than allowed.
func TestRegisterTokenLimitUnderConcurrency(t *testing.T) {
	forEachDriver(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn)
		secret, tok := f.token(3, 0)
		var ok, rejected atomic.Int32
		var wg sync.WaitGroup
		for i := range 12 {
			wg.Go(func() {
				_, err := f.svc.Register(context.Background(), secret, certs.RegisterRequest{ThingName: "dev-" + string(rune('a'+i)), Version: "1"})
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, certs.ErrTokenRejected):
					rejected.Add(1)
				default:
					t.Errorf("register: %v", err)
				}
			})
		}
		wg.Wait()
		if ok.Load() != 3 || rejected.Load() != 9 {
			t.Errorf("succeeded %d, rejected %d; want 3 and 9", ok.Load(), rejected.Load())
		}
		got, _ := f.store.GetRegistrationToken(context.Background(), tok.ID)
		if n, _ := f.store.CountThings(context.Background()); got.Uses != 3 || n != 3 {
			t.Errorf("token uses %d, things %d; want 3 and 3", got.Uses, n)
		}
	})
}

func TestCertificateLifecycleAndCRL(t *testing.T) {
	forEachDriver(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn)
		ctx := context.Background()
		secret, _ := f.token(10, 0)
		reg, err := f.svc.Register(ctx, secret, certs.RegisterRequest{ThingName: "pump-1", Version: "1"})
		if err != nil {
			t.Fatal(err)
		}
		id := reg.Certificate.Fingerprint
		ca, _ := f.svc.CA(ctx)
		crlNumber := func() (int64, int) {
			t.Helper()
			der, err := f.svc.CRL(ctx)
			if err != nil {
				t.Fatal(err)
			}
			crl, err := pki.ParseCRL(der, ca.Certificate(), f.clock.Now())
			if err != nil {
				t.Fatal(err)
			}
			return crl.Number.Int64(), len(crl.RevokedCertificateEntries)
		}
		if n, entries := crlNumber(); n != 1 || entries != 0 {
			t.Errorf("first CRL: number %d, %d entries; want 1, 0", n, entries)
		}
		if n, _ := crlNumber(); n != 1 {
			t.Errorf("unchanged CRL was regenerated: number %d", n)
		}
		steps := []struct {
			name string
			op   func() (*store.Certificate, error)
			want string
			err  error
		}{
			{"deactivate", func() (*store.Certificate, error) { return f.svc.DeactivateCertificate(f.admin, id) }, store.CertInactive, nil},
			{"deactivate again is a no-op", func() (*store.Certificate, error) { return f.svc.DeactivateCertificate(f.admin, id) }, store.CertInactive, nil},
			{"activate", func() (*store.Certificate, error) { return f.svc.ActivateCertificate(f.admin, strings.ToUpper(id)) }, store.CertActive, nil},
			{"bad revocation reason", func() (*store.Certificate, error) { return f.svc.RevokeCertificate(f.admin, id, 7) }, "", registry.ErrInvalid},
			{"revoke", func() (*store.Certificate, error) {
				return f.svc.RevokeCertificate(f.admin, id, pki.RevocationKeyCompromise)
			}, store.CertRevoked, nil},
			{"activate revoked", func() (*store.Certificate, error) { return f.svc.ActivateCertificate(f.admin, id) }, "", certs.ErrInvalidTransition},
			{"deactivate revoked", func() (*store.Certificate, error) { return f.svc.DeactivateCertificate(f.admin, id) }, "", certs.ErrInvalidTransition},
			{"unknown", func() (*store.Certificate, error) { return f.svc.ActivateCertificate(f.admin, strings.Repeat("0", 64)) }, "", store.ErrNotFound},
			{"not a fingerprint", func() (*store.Certificate, error) { return f.svc.ActivateCertificate(f.admin, "xyz") }, "", store.ErrNotFound},
		}
		for _, st := range steps {
			got, err := st.op()
			if st.err != nil {
				if !errors.Is(err, st.err) {
					t.Errorf("%s: err = %v, want %v", st.name, err, st.err)
				}
				continue
			}
			if err != nil || got.Status != st.want {
				t.Errorf("%s: %+v, %v; want status %s", st.name, got, err, st.want)
			}
		}
		if n, entries := crlNumber(); n != 2 || entries != 1 {
			t.Errorf("CRL after revocation: number %d, %d entries; want 2, 1", n, entries)
		}
		der, _ := f.svc.CRL(ctx)
		crl, _ := pki.ParseCRL(der, ca.Certificate(), f.clock.Now())
		leaf, _ := pki.ParseCertificatesPEM([]byte(reg.CertificatePEM))
		if !pki.NewRevocationSet(crl).Contains(leaf[0]) {
			t.Error("the CRL does not list the revoked certificate")
		}
		if crl.RevokedCertificateEntries[0].ReasonCode != pki.RevocationKeyCompromise {
			t.Errorf("reason = %d", crl.RevokedCertificateEntries[0].ReasonCode)
		}
		f.clock.Advance(4 * 24 * time.Hour) // past half of the CRL's validity
		if n, _ := crlNumber(); n != 3 {
			t.Errorf("aged CRL not regenerated: number %d, want 3", n)
		}
		evs, _ := f.store.ListEvents(ctx, store.EventFilter{Subject: "certificate/" + id})
		var types []string
		for _, ev := range evs {
			types = append(types, ev.Type)
		}
		if got := strings.Join(types, ","); got != "certificate.issued,certificate.deactivated,certificate.activated,certificate.revoked" {
			t.Errorf("events = %s", got)
		}
	})
}

func TestRotateCertificate(t *testing.T) {
	forEachDriver(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn)
		ctx := context.Background()
		secret, _ := f.token(10, 0)
		reg, err := f.svc.Register(ctx, secret, certs.RegisterRequest{ThingName: "pump-1", Version: "1"})
		if err != nil {
			t.Fatal(err)
		}
		key := p256(t)
		if _, err := f.svc.RotateCertificate(f.admin, reg.Certificate.Fingerprint, certs.RotateRequest{CSR: csrPEM(t, key, "pump-2")}); pki.ReasonOf(err) != pki.ReasonSubject {
			t.Errorf("rotate with another name: %v", err)
		}
		issued, err := f.svc.RotateCertificate(f.admin, reg.Certificate.Fingerprint, certs.RotateRequest{CSR: csrPEM(t, key, "pump-1"), DeactivateOld: true})
		if err != nil {
			t.Fatal(err)
		}
		if issued.PrivateKeyPEM != "" || issued.Certificate.ThingName != "pump-1" || issued.Certificate.Status != store.CertActive {
			t.Errorf("rotated = %+v", issued.Certificate)
		}
		old, _ := f.store.GetCertificate(ctx, reg.Certificate.Fingerprint)
		if old.Status != store.CertInactive {
			t.Errorf("old certificate status = %s, want INACTIVE", old.Status)
		}
		list, _ := f.svc.Certificates(ctx, store.CertificateFilter{ThingName: "pump-1"})
		if len(list) != 2 {
			t.Errorf("pump-1 has %d certificates, want 2", len(list))
		}
		if _, err := f.svc.RevokeCertificate(f.admin, old.Fingerprint, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.RotateCertificate(f.admin, old.Fingerprint, certs.RotateRequest{}); !errors.Is(err, certs.ErrInvalidTransition) {
			t.Errorf("rotate revoked: %v", err)
		}
	})
}

func TestImportCA(t *testing.T) {
	f := newFixture(t, "sqlite:"+t.TempDir()+"/g.db")
	ctx := context.Background()
	other, err := pki.NewCA(pki.CAOptions{CommonName: "Enterprise Root", Intermediate: true})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := other.Marshal()
	key, _ := pki.ParsePKCS8PrivateKey(m.Key)
	keyPEM, _ := pki.EncodePrivateKeyPEM(key)
	req := certs.ImportRequest{ChainPEM: string(m.ChainPEM), KeyPEM: string(keyPEM)}
	if _, err := f.svc.ImportCA(f.admin, req); !errors.Is(err, store.ErrExists) {
		t.Errorf("import over an existing CA without replace: %v", err)
	}
	bad := req
	bad.KeyPEM = string(func() []byte { k, _ := pki.EncodePrivateKeyPEM(p256(t)); return k }())
	if _, err := f.svc.ImportCA(f.admin, bad); !errors.Is(err, registry.ErrInvalid) {
		t.Errorf("import with a key that does not match: %v", err)
	}
	req.Replace = true
	info, err := f.svc.ImportCA(f.admin, req)
	if err != nil {
		t.Fatal(err)
	}
	if info.RootFingerprint != pki.Fingerprint(other.Root()) || info.RootKeyHeldOnline {
		t.Errorf("info = %+v", info)
	}
	// Another replica picks the new CA up.
	replica := f.newService()
	if err := replica.EnsureCA(ctx); err != nil {
		t.Fatal(err)
	}
	secret, _ := f.token(1, 0)
	reg, err := replica.Register(ctx, secret, certs.RegisterRequest{ThingName: "x", Version: "1"})
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := pki.ParseCertificatesPEM([]byte(reg.CertificatePEM))
	if leaf[0].CheckSignatureFrom(other.Certificate()) != nil || reg.RootCAPEM != string(other.ChainPEM()) {
		t.Error("the registration was not issued by the imported CA")
	}
}

func TestManufacturerCAAndJIT(t *testing.T) {
	forEachDriver(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn)
		ctx := context.Background()
		now := f.clock.Now()
		acme := newMfgCA(t, "Acme Devices CA", now.Add(-time.Hour), now.Add(365*24*time.Hour))
		code, err := f.svc.RegistrationCode(ctx)
		if err != nil || code == "" {
			t.Fatalf("RegistrationCode = %q, %v", code, err)
		}
		verif, _ := acme.issue(t, pkix.Name{CommonName: code}, now.Add(-time.Minute), now.Add(time.Hour), false)
		wrongCode, _ := acme.issue(t, pkix.Name{CommonName: "not-the-code"}, now.Add(-time.Minute), now.Add(time.Hour), false)
		stranger := newMfgCA(t, "Stranger CA", now.Add(-time.Hour), now.Add(time.Hour))
		foreign, _ := stranger.issue(t, pkix.Name{CommonName: code}, now.Add(-time.Minute), now.Add(time.Hour), false)
		expiredCA := newMfgCA(t, "Old CA", now.Add(-48*time.Hour), now.Add(-24*time.Hour))
		ownCA, _ := f.svc.CA(ctx)
		adds := []struct {
			name string
			in   certs.NewManufacturerCA
			ok   bool
		}{
			{"verification with wrong code", certs.NewManufacturerCA{Name: "acme", CertificatePEM: acme.pem(), VerificationCertificatePEM: certPEM(wrongCode)}, false},
			{"verification signed by another CA", certs.NewManufacturerCA{Name: "acme", CertificatePEM: acme.pem(), VerificationCertificatePEM: certPEM(foreign)}, false},
			{"expired CA", certs.NewManufacturerCA{Name: "old", CertificatePEM: expiredCA.pem()}, false},
			{"not a CA", certs.NewManufacturerCA{Name: "leaf", CertificatePEM: certPEM(verif)}, false},
			{"own CA", certs.NewManufacturerCA{Name: "own", CertificatePEM: string(pki.EncodeCertificatesPEM(ownCA.Root()))}, false},
			{"reserved name", certs.NewManufacturerCA{Name: "gatehouse", CertificatePEM: acme.pem()}, false},
			{"unknown template variable", certs.NewManufacturerCA{Name: "acme", CertificatePEM: acme.pem(), ThingNameTemplate: "${Nope}"}, false},
			{"unknown thing type", certs.NewManufacturerCA{Name: "acme", CertificatePEM: acme.pem(), ThingType: "Nope"}, false},
			{"bad JIT status", certs.NewManufacturerCA{Name: "acme", CertificatePEM: acme.pem(), JITStatus: "REVOKED"}, false},
			{"garbage PEM", certs.NewManufacturerCA{Name: "acme", CertificatePEM: "hello"}, false},
			{"verified, auto-register ACTIVE", certs.NewManufacturerCA{Name: "acme", CertificatePEM: acme.pem(), VerificationCertificatePEM: certPEM(verif),
				AutoRegister: true, JITStatus: store.CertActive, ThingType: "CvmGenericType", ThingNameTemplate: "acme-${CommonName}"}, true},
			{"same certificate twice", certs.NewManufacturerCA{Name: "acme2", CertificatePEM: acme.pem()}, false},
		}
		for _, tc := range adds {
			m, err := f.svc.AddManufacturerCA(f.admin, tc.in)
			if (err == nil) != tc.ok {
				t.Errorf("%s: err = %v, want ok %v", tc.name, err, tc.ok)
			}
			if tc.ok && (!m.Verified || m.Fingerprint != pki.Fingerprint(acme.cert)) {
				t.Errorf("%s: %+v", tc.name, m)
			}
		}
		// Proof of possession can be required.
		strict := f.newService(func(c *certs.Config) { c.RequireProofOfPossession = true })
		if err := strict.EnsureCA(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := strict.AddManufacturerCA(f.admin, certs.NewManufacturerCA{Name: "lazy", CertificatePEM: stranger.pem()}); !errors.Is(err, registry.ErrInvalid) {
			t.Errorf("unverified CA with proof required: %v", err)
		}
		pendingCA := newMfgCA(t, "Pending CA", now.Add(-time.Hour), now.Add(365*24*time.Hour))
		if _, err := f.svc.AddManufacturerCA(f.admin, certs.NewManufacturerCA{Name: "pend", CertificatePEM: pendingCA.pem(), AutoRegister: true}); err != nil {
			t.Fatal(err)
		}
		manualCA := newMfgCA(t, "Manual CA", now.Add(-time.Hour), now.Add(365*24*time.Hour))
		if _, err := f.svc.AddManufacturerCA(f.admin, certs.NewManufacturerCA{Name: "manual", CertificatePEM: manualCA.pem()}); err != nil {
			t.Fatal(err)
		}
		dev := func(ca *mfgCA, cn string) *x509.Certificate {
			c, _ := ca.issue(t, pkix.Name{CommonName: cn, Organization: []string{"Acme"}}, now.Add(-time.Minute), now.Add(24*time.Hour), true)
			return c
		}
		d1 := dev(acme, "sensor-1")
		expired, _ := acme.issue(t, pkix.Name{CommonName: "sensor-x"}, now.Add(-48*time.Hour), now.Add(-time.Hour), true)
		badName := dev(acme, "has space")
		noEKU, _ := acme.issue(t, pkix.Name{CommonName: "sensor-e"}, now.Add(-time.Minute), now.Add(time.Hour), false)
		if _, err := f.reg.CreateThing(f.admin, registry.NewThing{Name: "acme-taken"}); err != nil {
			t.Fatal(err)
		}
		taken := dev(acme, "taken")
		p1 := dev(pendingCA, "pending-1")
		m1 := dev(manualCA, "manual-1")
		s1 := dev(stranger, "stranger-1")

		tests := []struct {
			name   string
			chain  []*x509.Certificate
			thing  string
			err    error
			reason pki.Reason
			jit    bool
		}{
			{"first connection registers ACTIVE", []*x509.Certificate{d1}, "acme-sensor-1", nil, "", true},
			{"second connection finds it", []*x509.Certificate{d1}, "acme-sensor-1", nil, "", false},
			{"pending CA registers PENDING_ACTIVATION and refuses", []*x509.Certificate{p1}, "", certs.ErrCertificatePending, "", false},
			{"still pending", []*x509.Certificate{p1}, "", certs.ErrCertificatePending, "", false},
			{"CA without auto-registration", []*x509.Certificate{m1}, "", certs.ErrUnknownCertificate, "", false},
			{"unknown manufacturer CA", []*x509.Certificate{s1}, "", nil, pki.ReasonUnknownIssuer, false},
			{"expired device certificate", []*x509.Certificate{expired}, "", nil, pki.ReasonExpired, false},
			{"no client EKU", []*x509.Certificate{noEKU}, "", nil, pki.ReasonKeyUsage, false},
			{"name from template invalid", []*x509.Certificate{badName}, "", certs.ErrUnknownCertificate, "", false},
			{"thing exists", []*x509.Certificate{taken}, "", certs.ErrUnknownCertificate, "", false},
			{"no certificate", nil, "", nil, pki.ReasonInvalid, false},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				var before snapshot
				if tc.err == nil && tc.reason != "" || errors.Is(tc.err, certs.ErrUnknownCertificate) {
					before = f.snapshot()
				}
				au, err := f.svc.AuthenticateCertificate(ctx, tc.chain)
				if tc.err != nil || tc.reason != "" {
					if tc.err != nil && !errors.Is(err, tc.err) {
						t.Errorf("err = %v, want %v", err, tc.err)
					}
					if tc.reason != "" && pki.ReasonOf(err) != tc.reason {
						t.Errorf("err = %v, want reason %s", err, tc.reason)
					}
					if before.lastEvent != 0 {
						f.assertUnchanged(before)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if au.ThingName != tc.thing || au.Registered != tc.jit || au.CA != "acme" || au.Certificate.Subject.CommonName[0] != "sensor-1" ||
					au.Certificate.Issuer.Organization[0] != "Acme" {
					t.Errorf("authenticated = %+v", au)
				}
				th, err := f.store.GetThing(ctx, tc.thing)
				if err != nil || th.ThingType != "CvmGenericType" {
					t.Errorf("JIT thing = %+v, %v", th, err)
				}
			})
		}
		pend, err := f.store.ListCertificates(ctx, store.CertificateFilter{CA: "pend"})
		if err != nil || len(pend) != 1 || pend[0].Status != store.CertPendingActivation || pend[0].ThingName != "pending-1" {
			t.Fatalf("pending certificates = %+v, %v", pend, err)
		}
		evs, _ := f.store.ListEvents(ctx, store.EventFilter{Type: "certificate.registered"})
		if len(evs) != 2 {
			t.Errorf("certificate.registered events = %d, want 2 (acme, pend)", len(evs))
		}
		// Activating lets it in; revoking keeps it out, not re-registered.
		if _, err := f.svc.ActivateCertificate(f.admin, pend[0].Fingerprint); err != nil {
			t.Fatal(err)
		}
		if au, err := f.svc.AuthenticateCertificate(ctx, []*x509.Certificate{p1}); err != nil || au.ThingName != "pending-1" {
			t.Errorf("after activation: %+v, %v", au, err)
		}
		if err := f.svc.CheckCertificate(ctx, pend[0].Fingerprint); err != nil {
			t.Errorf("CheckCertificate active: %v", err)
		}
		if _, err := f.svc.RevokeCertificate(f.admin, pend[0].Fingerprint, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.AuthenticateCertificate(ctx, []*x509.Certificate{p1}); !errors.Is(err, certs.ErrCertificateRevoked) {
			t.Errorf("revoked manufacturer certificate: %v", err)
		}
		if err := f.svc.CheckCertificate(ctx, pend[0].Fingerprint); !errors.Is(err, certs.ErrCertificateRevoked) {
			t.Errorf("CheckCertificate revoked: %v", err)
		}
		// Disabling the CA locks its devices out.
		inactive := store.CAInactive
		if _, err := f.svc.UpdateManufacturerCA(f.admin, "acme", 0, certs.ManufacturerCAPatch{Status: &inactive}); err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.AuthenticateCertificate(ctx, []*x509.Certificate{d1}); pki.ReasonOf(err) != pki.ReasonUnknownIssuer {
			t.Errorf("device of an inactive CA: %v", err)
		}
		if err := f.svc.RemoveManufacturerCA(f.admin, "acme"); err != nil {
			t.Fatal(err)
		}
		if list, _ := f.svc.ManufacturerCAs(ctx); len(list) != 2 {
			t.Errorf("manufacturer CAs after removal = %d", len(list))
		}
	})
}

// A certificate of Gatehouse's own CA without a record is refused.
func TestAuthenticateOwnCertificate(t *testing.T) {
	f := newFixture(t, "sqlite:"+t.TempDir()+"/g.db")
	ctx := context.Background()
	secret, _ := f.token(1, 0)
	reg, err := f.svc.Register(ctx, secret, certs.RegisterRequest{ThingName: "dev-1", Version: "1"})
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := pki.ParseCertificatesPEM([]byte(reg.CertificatePEM))
	au, err := f.svc.AuthenticateCertificate(ctx, leaf)
	if err != nil || au.ThingName != "dev-1" || au.CA != certs.OwnCA || au.Fingerprint != reg.Certificate.Fingerprint || au.Registered {
		t.Fatalf("AuthenticateCertificate = %+v, %v", au, err)
	}
	if len(au.Certificate.SubjectAltName.UniformResourceIdentifier) != 1 {
		t.Errorf("URI SANs = %v", au.Certificate.SubjectAltName.UniformResourceIdentifier)
	}
	ca, _ := f.svc.CA(ctx)
	stray, err := ca.IssueKeyPair("dev-9", pki.IssueOptions{ThingName: "dev-9"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.AuthenticateCertificate(ctx, []*x509.Certificate{stray.Certificate}); !errors.Is(err, certs.ErrUnknownCertificate) {
		t.Errorf("unrecorded own certificate: %v", err)
	}
	f.clock.Advance(366 * 24 * time.Hour)
	if _, err := f.svc.AuthenticateCertificate(ctx, leaf); pki.ReasonOf(err) != pki.ReasonExpired {
		t.Errorf("expired certificate: %v", err)
	}
}
