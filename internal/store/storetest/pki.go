package storetest

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/store"
)

func fp(c byte) string { return strings.Repeat(string(c), 64) }

func testPKI(t *testing.T, s *store.Store) {
	ctx := t.Context()

	// Own CA: sealed keys round-trip as bytes, CRL cache and staleness.
	ca := &store.CARecord{Name: "gatehouse", ChainPEM: "-----BEGIN CERTIFICATE-----", SealedKey: []byte{0, 1, 2, 0xff}, IssuerFingerprint: fp('a'),
		RegistrationCode: "code", CRLStale: true, CreatedAt: t0, UpdatedAt: t0}
	if err := s.CreateCA(ctx, ca); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateCA(ctx, &store.CARecord{Name: "gatehouse", SealedKey: []byte{1}}); !errors.Is(err, store.ErrExists) {
		t.Errorf("duplicate CA: err = %v, want ErrExists", err)
	}
	got, err := s.GetCA(ctx, "gatehouse")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.SealedKey, ca.SealedKey) || got.SealedRootKey != nil || got.CRL != nil || !got.CRLStale || got.Version != 1 || !got.CreatedAt.Equal(t0) {
		t.Errorf("GetCA = %+v", got)
	}
	got.CRL, got.CRLNumber, got.CRLStale, got.CRLThisUpdate, got.CRLNextUpdate = []byte{9, 9}, 1, false, t0, t0.Add(time.Hour)
	if err := s.UpdateCA(ctx, got); err != nil {
		t.Fatal(err)
	}
	stale := *got
	stale.Version = 1
	if err := s.UpdateCA(ctx, &stale); !errors.Is(err, store.ErrStale) {
		t.Errorf("UpdateCA with old version: err = %v, want ErrStale", err)
	}
	if err := s.MarkCRLStale(ctx, "gatehouse"); err != nil {
		t.Fatal(err)
	}
	again, _ := s.GetCA(ctx, "gatehouse")
	if again == nil || !again.CRLStale || !bytes.Equal(again.CRL, []byte{9, 9}) || again.CRLNumber != 1 || !again.CRLNextUpdate.Equal(t0.Add(time.Hour)) {
		t.Errorf("after MarkCRLStale: %+v", again)
	}
	if _, err := s.GetCA(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetCA(nope): err = %v, want ErrNotFound", err)
	}

	// Certificates.
	mk := func(c byte, thing, status string) *store.Certificate {
		return &store.Certificate{Fingerprint: fp(c), ThingName: thing, CA: "gatehouse", IssuerFingerprint: fp('a'), SerialNumber: string(c) + "1",
			Subject: "CN=" + thing, PEM: "pem", Status: status, NotBefore: t0, NotAfter: t0.Add(24 * time.Hour), CreatedAt: t0, UpdatedAt: t0}
	}
	for _, c := range []*store.Certificate{mk('1', "pump-1", store.CertActive), mk('2', "pump-1", store.CertInactive), mk('3', "pump-2", store.CertActive)} {
		if err := s.CreateCertificate(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateCertificate(ctx, mk('1', "x", store.CertActive)); !errors.Is(err, store.ErrExists) {
		t.Errorf("duplicate certificate: err = %v, want ErrExists", err)
	}
	list, err := s.ListCertificates(ctx, store.CertificateFilter{ThingName: "pump-1"})
	if err != nil || len(list) != 2 || list[0].Fingerprint != fp('1') {
		t.Errorf("ListCertificates(pump-1) = %+v, %v", list, err)
	}
	list, err = s.ListCertificates(ctx, store.CertificateFilter{Status: store.CertActive, Page: store.Page{After: fp('1')}})
	if err != nil || len(list) != 1 || list[0].Fingerprint != fp('3') {
		t.Errorf("ListCertificates(ACTIVE after 1) = %+v, %v", list, err)
	}
	c3, err := s.GetCertificate(ctx, fp('3'))
	if err != nil || c3.ThingName != "pump-2" || !c3.NotAfter.Equal(t0.Add(24*time.Hour)) || c3.Version != 1 {
		t.Fatalf("GetCertificate = %+v, %v", c3, err)
	}
	c3.Status, c3.RevokedAt, c3.RevocationReason, c3.UpdatedAt = store.CertRevoked, t0.Add(time.Minute), 1, t0.Add(time.Minute)
	if err := s.UpdateCertificate(ctx, c3); err != nil {
		t.Fatal(err)
	}
	old := *c3
	old.Version = 1
	if err := s.UpdateCertificate(ctx, &old); !errors.Is(err, store.ErrStale) {
		t.Errorf("UpdateCertificate with old version: err = %v, want ErrStale", err)
	}
	revoked, err := s.RevokedCertificates(ctx, "gatehouse", fp('a'), t0)
	if err != nil || len(revoked) != 1 || revoked[0].Fingerprint != fp('3') || revoked[0].RevocationReason != 1 || !revoked[0].RevokedAt.Equal(t0.Add(time.Minute)) {
		t.Errorf("RevokedCertificates = %+v, %v", revoked, err)
	}
	if revoked, _ := s.RevokedCertificates(ctx, "gatehouse", fp('a'), t0.Add(48*time.Hour)); len(revoked) != 0 {
		t.Errorf("expired revoked certificates are still listed: %+v", revoked)
	}
	if n, err := s.CountCertificates(ctx); err != nil || n != 3 {
		t.Errorf("CountCertificates = %d, %v", n, err)
	}
	if _, err := s.GetCertificate(ctx, fp('9')); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetCertificate(unknown): err = %v, want ErrNotFound", err)
	}

	// Registration tokens.
	tok := &store.RegistrationToken{ID: "t1", Hash: "h1", ThingType: "pump", MaxUses: 2, ExpiresAt: t0.Add(time.Hour), CreatedAt: t0}
	if err := s.CreateRegistrationToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateRegistrationToken(ctx, &store.RegistrationToken{ID: "t2", Hash: "h1", ThingType: "pump", CreatedAt: t0}); !errors.Is(err, store.ErrExists) {
		t.Errorf("duplicate token hash: err = %v, want ErrExists", err)
	}
	byHash, err := s.RegistrationTokenByHash(ctx, "h1")
	if err != nil || byHash.ID != "t1" || byHash.MaxUses != 2 || !byHash.ExpiresAt.Equal(t0.Add(time.Hour)) {
		t.Errorf("RegistrationTokenByHash = %+v, %v", byHash, err)
	}
	uses := []struct {
		at   time.Time
		want bool
	}{{t0.Add(2 * time.Hour), false}, {t0, true}, {t0, true}, {t0, false}}
	for i, u := range uses {
		if ok, err := s.UseRegistrationToken(ctx, "t1", u.at); err != nil || ok != u.want {
			t.Errorf("use %d: ok = %v, %v; want %v", i, ok, err, u.want)
		}
	}
	unlimited := &store.RegistrationToken{ID: "t3", Hash: "h3", ThingType: "pump", CreatedAt: t0}
	if err := s.CreateRegistrationToken(ctx, unlimited); err != nil {
		t.Fatal(err)
	}
	// Concurrent uses of a token with 5 uses left: exactly 5 succeed.
	five := &store.RegistrationToken{ID: "t5", Hash: "h5", ThingType: "pump", MaxUses: 5, CreatedAt: t0}
	if err := s.CreateRegistrationToken(ctx, five); err != nil {
		t.Fatal(err)
	}
	var ok atomic.Int32
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			_ = s.InTx(ctx, func(tx *store.Tx) error {
				used, err := tx.UseRegistrationToken(ctx, "t5", t0)
				if used {
					ok.Add(1)
				}
				return err
			})
		})
	}
	wg.Wait()
	if ok.Load() != 5 {
		t.Errorf("concurrent uses of a 5-use token succeeded %d times", ok.Load())
	}
	if err := s.RevokeRegistrationToken(ctx, "t3", t0); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeRegistrationToken(ctx, "t3", t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.UseRegistrationToken(ctx, "t3", t0); ok {
		t.Error("a revoked token was used")
	}
	if got, _ := s.GetRegistrationToken(ctx, "t3"); got == nil || !got.RevokedAt.Equal(t0) {
		t.Errorf("revoked token = %+v, want RevokedAt %v", got, t0)
	}
	if err := s.RevokeRegistrationToken(ctx, "nope", t0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("revoke unknown: err = %v, want ErrNotFound", err)
	}
	toks, err := s.ListRegistrationTokens(ctx, store.Page{})
	if err != nil || len(toks) != 3 || toks[0].ID != "t1" || toks[0].Uses != 2 {
		t.Errorf("ListRegistrationTokens = %+v, %v", toks, err)
	}

	// Manufacturer CAs.
	m := &store.ManufacturerCA{Name: "acme", Fingerprint: fp('m'), CertificatePEM: "pem", Status: store.CAActive, AutoRegister: true,
		JITStatus: store.CertPendingActivation, ThingType: "pump", ThingNameTemplate: "acme-${CommonName}", CreatedAt: t0, UpdatedAt: t0}
	if err := s.CreateManufacturerCA(ctx, m); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateManufacturerCA(ctx, &store.ManufacturerCA{Name: "other", Fingerprint: fp('m'), Status: store.CAActive, JITStatus: store.CertActive}); !errors.Is(err, store.ErrExists) {
		t.Errorf("same CA certificate twice: err = %v, want ErrExists", err)
	}
	gm, err := s.GetManufacturerCA(ctx, "acme")
	if err != nil || !gm.AutoRegister || gm.ThingNameTemplate != "acme-${CommonName}" || gm.Verified {
		t.Fatalf("GetManufacturerCA = %+v, %v", gm, err)
	}
	gm.Status, gm.Verified = store.CAInactive, true
	if err := s.UpdateManufacturerCA(ctx, gm); err != nil {
		t.Fatal(err)
	}
	if ms, err := s.ListManufacturerCAs(ctx); err != nil || len(ms) != 1 || ms[0].Status != store.CAInactive || !ms[0].Verified || ms[0].Version != 2 {
		t.Errorf("ListManufacturerCAs = %+v, %v", ms, err)
	}
	if err := s.DeleteManufacturerCA(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteManufacturerCA(ctx, "acme"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("delete twice: err = %v, want ErrNotFound", err)
	}
}
