package pki

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// RFC 5280 CRLReason codes for RevokedCert.ReasonCode.
const (
	RevocationUnspecified          = 0
	RevocationKeyCompromise        = 1
	RevocationCACompromise         = 2
	RevocationAffiliationChanged   = 3
	RevocationSuperseded           = 4
	RevocationCessationOfOperation = 5
	RevocationCertificateHold      = 6
	RevocationRemoveFromCRL        = 8
	RevocationPrivilegeWithdrawn   = 9
	RevocationAACompromise         = 10
)

// RevokedCert is one entry of a CRL.
type RevokedCert struct {
	SerialNumber *big.Int
	RevokedAt    time.Time
	ReasonCode   int // RFC 5280 CRLReason; 0 (unspecified) omits the extension
}

// CreateCRL returns a DER CRL, signed by the issuing certificate, listing
// revoked. number is the CRL number and must grow with every CRL this CA
// publishes; thisUpdate is now and nextUpdate the promised time of the next
// CRL.
func (c *CA) CreateCRL(revoked []RevokedCert, number *big.Int, now, nextUpdate time.Time) ([]byte, error) {
	if number == nil || number.Sign() < 0 {
		return nil, errors.New("pki: CRL number must be non-negative")
	}
	if !nextUpdate.After(now) {
		return nil, fmt.Errorf("pki: CRL nextUpdate %s not after thisUpdate %s", nextUpdate, now)
	}
	entries := make([]x509.RevocationListEntry, len(revoked))
	for i, r := range revoked {
		if r.SerialNumber == nil || r.SerialNumber.Sign() <= 0 {
			return nil, fmt.Errorf("pki: CRL entry %d: serial number must be positive", i)
		}
		if r.RevokedAt.IsZero() {
			return nil, fmt.Errorf("pki: CRL entry %d: no revocation time", i)
		}
		if r.ReasonCode < 0 || r.ReasonCode == 7 || r.ReasonCode > RevocationAACompromise {
			return nil, fmt.Errorf("pki: CRL entry %d: reason code %d not defined by RFC 5280", i, r.ReasonCode)
		}
		entries[i] = x509.RevocationListEntry{
			SerialNumber:   r.SerialNumber,
			RevocationTime: r.RevokedAt,
			ReasonCode:     r.ReasonCode,
		}
	}
	der, err := x509.CreateRevocationList(c.settings.Rand, &x509.RevocationList{
		RevokedCertificateEntries: entries,
		Number:                    number,
		ThisUpdate:                now,
		NextUpdate:                nextUpdate,
	}, c.chain[0], c.signer)
	if err != nil {
		return nil, fmt.Errorf("pki: create CRL: %w", err)
	}
	return der, nil
}

// ParseCRL parses a CRL in PEM ("X509 CRL") or DER form, checks that issuer
// signed it, and that it is current at now: thisUpdate not in the future
// (with a minute of slack), nextUpdate, if present, not passed. A CRL that
// is not current is an error wrapping ErrStaleCRL.
func ParseCRL(pemOrDER []byte, issuer *x509.Certificate, now time.Time) (*x509.RevocationList, error) {
	if issuer == nil {
		return nil, errors.New("pki: parse CRL: no issuer certificate")
	}
	der := pemOrDER
	if bytes.Contains(pemOrDER, []byte("-----BEGIN")) {
		block, _ := pem.Decode(pemOrDER)
		if block == nil || block.Type != pemCRL {
			return nil, fmt.Errorf("pki: no %q PEM block", pemCRL)
		}
		der = block.Bytes
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, fmt.Errorf("pki: parse CRL: %w", err)
	}
	if err := crl.CheckSignatureFrom(issuer); err != nil {
		return nil, fmt.Errorf("pki: CRL not signed by %q: %w", issuer.Subject.CommonName, err)
	}
	if crl.ThisUpdate.After(now.Add(backdate)) {
		return nil, fmt.Errorf("%w: thisUpdate %s is in the future", ErrStaleCRL, crl.ThisUpdate.UTC().Format(time.RFC3339))
	}
	if !crl.NextUpdate.IsZero() && now.After(crl.NextUpdate) {
		return nil, fmt.Errorf("%w: nextUpdate %s has passed", ErrStaleCRL, crl.NextUpdate.UTC().Format(time.RFC3339))
	}
	return crl, nil
}

// RevocationSet answers whether a certificate is listed in one of a set of
// CRLs, by issuer name and serial number. It is immutable and safe for
// concurrent use: build a new one when CRLs change and swap it in.
type RevocationSet struct {
	revoked map[revocationKey]struct{}
}

type revocationKey struct {
	issuer string // DER of the issuer name
	serial string // big-endian bytes of the serial number
}

// NewRevocationSet indexes the entries of crls, which the caller has
// checked (ParseCRL). Entries with reason removeFromCRL are skipped.
func NewRevocationSet(crls ...*x509.RevocationList) *RevocationSet {
	s := &RevocationSet{revoked: make(map[revocationKey]struct{})}
	for _, crl := range crls {
		for _, e := range crl.RevokedCertificateEntries {
			if e.SerialNumber == nil || e.ReasonCode == RevocationRemoveFromCRL {
				continue
			}
			s.revoked[revocationKey{string(crl.RawIssuer), string(e.SerialNumber.Bytes())}] = struct{}{}
		}
	}
	return s
}

// Len returns the number of revoked certificates in the set.
func (s *RevocationSet) Len() int { return len(s.revoked) }

// Contains reports whether cert is listed by a CRL of its issuer.
func (s *RevocationSet) Contains(cert *x509.Certificate) bool {
	if cert == nil || cert.SerialNumber == nil {
		return false
	}
	_, ok := s.revoked[revocationKey{string(cert.RawIssuer), string(cert.SerialNumber.Bytes())}]
	return ok
}

// IsRevoked is a RevocationFunc for VerifierOptions.IsRevoked.
func (s *RevocationSet) IsRevoked(v VerifiedCert) (bool, error) {
	return s.Contains(v.Leaf), nil
}
