package pki

import (
	"crypto/x509"
	"errors"
	"math/big"
	"testing"
	"time"
)

func TestCRLRoundTrip(t *testing.T) {
	ca := newTestCA(t, CAOptions{Intermediate: true})
	other := newTestCA(t, CAOptions{})
	revoked, err := ca.IssueKeyPair("stolen", IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kept, err := ca.IssueKeyPair("fine", IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	entries := []RevokedCert{
		{SerialNumber: revoked.Certificate.SerialNumber, RevokedAt: t0.Add(-time.Hour), ReasonCode: RevocationKeyCompromise},
		{SerialNumber: big.NewInt(12345), RevokedAt: t0.Add(-2 * time.Hour)},
	}
	der, err := ca.CreateCRL(entries, big.NewInt(7), t0, t0.Add(24*time.Hour))
	if err != nil {
		t.Fatalf("CreateCRL: %v", err)
	}
	for _, form := range []struct {
		name string
		data []byte
	}{{"DER", der}, {"PEM", EncodeCRLPEM(der)}} {
		crl, err := ParseCRL(form.data, ca.Certificate(), t0.Add(time.Hour))
		if err != nil {
			t.Fatalf("%s: ParseCRL: %v", form.name, err)
		}
		if crl.Number.Cmp(big.NewInt(7)) != 0 {
			t.Errorf("%s: Number = %v, want 7", form.name, crl.Number)
		}
		if got := len(crl.RevokedCertificateEntries); got != 2 {
			t.Fatalf("%s: %d entries, want 2", form.name, got)
		}
		e := crl.RevokedCertificateEntries[0]
		if e.SerialNumber.Cmp(revoked.Certificate.SerialNumber) != 0 || e.ReasonCode != RevocationKeyCompromise || !e.RevocationTime.Equal(t0.Add(-time.Hour)) {
			t.Errorf("%s: entry 0 = %v %d %v, want %v %d %v", form.name, e.SerialNumber, e.ReasonCode, e.RevocationTime,
				revoked.Certificate.SerialNumber, RevocationKeyCompromise, t0.Add(-time.Hour))
		}
		set := NewRevocationSet(crl)
		if set.Len() != 2 {
			t.Errorf("%s: RevocationSet.Len = %d, want 2", form.name, set.Len())
		}
		if !set.Contains(revoked.Certificate) {
			t.Errorf("%s: revoked certificate not in set", form.name)
		}
		if set.Contains(kept.Certificate) {
			t.Errorf("%s: kept certificate in set", form.name)
		}
	}

	// Wired into a Verifier.
	crl, err := ParseCRL(der, ca.Certificate(), t0)
	if err != nil {
		t.Fatal(err)
	}
	own := ca.Trusted()
	v, err := NewVerifier(VerifierOptions{Own: &own, IsRevoked: NewRevocationSet(crl).IsRevoked})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify([]*x509.Certificate{revoked.Certificate}, t0); ReasonOf(err) != ReasonRevoked {
		t.Errorf("Verify(revoked) error = %v, want ReasonRevoked", err)
	}
	if _, err := v.Verify([]*x509.Certificate{kept.Certificate}, t0); err != nil {
		t.Errorf("Verify(kept) error = %v, want nil", err)
	}

	// Rejections.
	for _, tc := range []struct {
		name      string
		data      []byte
		issuer    *x509.Certificate
		now       time.Time
		wantStale bool
	}{
		{name: "wrong issuer", data: der, issuer: other.Root(), now: t0},
		{name: "root instead of intermediate", data: der, issuer: ca.Root(), now: t0},
		{name: "garbage", data: []byte("not a crl"), issuer: ca.Certificate(), now: t0},
		{name: "certificate PEM", data: revoked.CertificatePEM, issuer: ca.Certificate(), now: t0},
		{name: "no issuer", data: der, issuer: nil, now: t0},
		{name: "expired", data: der, issuer: ca.Certificate(), now: t0.Add(25 * time.Hour), wantStale: true},
		{name: "from the future", data: der, issuer: ca.Certificate(), now: t0.Add(-time.Hour), wantStale: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			crl, err := ParseCRL(tc.data, tc.issuer, tc.now)
			if err == nil {
				t.Fatalf("ParseCRL = %v, nil; want error", crl.Number)
			}
			if got := errors.Is(err, ErrStaleCRL); got != tc.wantStale {
				t.Errorf("ParseCRL error %v: stale = %v, want %v", err, got, tc.wantStale)
			}
		})
	}
}

func TestCreateCRLRejects(t *testing.T) {
	ca := newTestCA(t, CAOptions{})
	ok := RevokedCert{SerialNumber: big.NewInt(1), RevokedAt: t0}
	for _, tc := range []struct {
		name    string
		revoked []RevokedCert
		number  *big.Int
		next    time.Time
	}{
		{"nil number", nil, nil, t0.Add(time.Hour)},
		{"negative number", nil, big.NewInt(-1), t0.Add(time.Hour)},
		{"nextUpdate before now", nil, big.NewInt(1), t0.Add(-time.Hour)},
		{"nil serial", []RevokedCert{{RevokedAt: t0}}, big.NewInt(1), t0.Add(time.Hour)},
		{"zero time", []RevokedCert{{SerialNumber: big.NewInt(1)}}, big.NewInt(1), t0.Add(time.Hour)},
		{"reason 7", []RevokedCert{{SerialNumber: big.NewInt(1), RevokedAt: t0, ReasonCode: 7}}, big.NewInt(1), t0.Add(time.Hour)},
		{"reason 11", []RevokedCert{ok, {SerialNumber: big.NewInt(2), RevokedAt: t0, ReasonCode: 11}}, big.NewInt(1), t0.Add(time.Hour)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if der, err := ca.CreateCRL(tc.revoked, tc.number, t0, tc.next); err == nil {
				t.Errorf("CreateCRL = %d bytes, nil; want error", len(der))
			}
		})
	}
	// An empty CRL is fine.
	der, err := ca.CreateCRL(nil, big.NewInt(1), t0, t0.Add(time.Hour))
	if err != nil {
		t.Fatalf("CreateCRL(empty): %v", err)
	}
	crl, err := ParseCRL(der, ca.Certificate(), t0)
	if err != nil {
		t.Fatalf("ParseCRL(empty): %v", err)
	}
	if n := NewRevocationSet(crl).Len(); n != 0 {
		t.Errorf("empty CRL: %d entries, want 0", n)
	}
}

func TestRevocationSetSkipsRemoveFromCRL(t *testing.T) {
	ca := newTestCA(t, CAOptions{})
	der, err := ca.CreateCRL([]RevokedCert{
		{SerialNumber: big.NewInt(1), RevokedAt: t0, ReasonCode: RevocationCertificateHold},
		{SerialNumber: big.NewInt(2), RevokedAt: t0, ReasonCode: RevocationRemoveFromCRL},
	}, big.NewInt(2), t0, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	crl, err := ParseCRL(der, ca.Certificate(), t0)
	if err != nil {
		t.Fatal(err)
	}
	if n := NewRevocationSet(crl).Len(); n != 1 {
		t.Errorf("RevocationSet.Len = %d, want 1 (removeFromCRL skipped)", n)
	}
}
