package certs

import (
	"context"
	"crypto/x509"
	"fmt"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/pki"
)

// CertSummary describes one X.509 certificate for people: who it names,
// who issued it and when it is valid.
type CertSummary struct {
	Subject     string    `json:"subject"`
	Issuer      string    `json:"issuer"`
	Fingerprint string    `json:"fingerprint"`
	NotBefore   time.Time `json:"notBefore"`
	NotAfter    time.Time `json:"notAfter"`
	IsCA        bool      `json:"isCa"`
}

// Summarize describes cert.
func Summarize(cert *x509.Certificate) CertSummary {
	return CertSummary{Subject: cert.Subject.String(), Issuer: cert.Issuer.String(), Fingerprint: pki.Fingerprint(cert),
		NotBefore: cert.NotBefore, NotAfter: cert.NotAfter, IsCA: cert.IsCA}
}

// SummarizePEM describes the first certificate of a PEM block list.
func SummarizePEM(pemText string) (CertSummary, error) {
	certs, err := pki.ParseCertificatesPEM([]byte(pemText))
	if err != nil {
		return CertSummary{}, err
	}
	return Summarize(certs[0]), nil
}

// CertificateChain is a certificate record's chain, leaf first: the
// certificate, then the CA that signed it and that CA's issuers as far as
// Gatehouse knows them (its own CA's chain, or the manufacturer CA). A CA
// that no longer verifies the certificate (replaced, or removed) ends the
// chain at the leaf.
func (s *Service) CertificateChain(ctx context.Context, id string) ([]CertSummary, error) {
	rec, err := s.Certificate(ctx, id)
	if err != nil {
		return nil, err
	}
	leaves, err := pki.ParseCertificatesPEM([]byte(rec.PEM))
	if err != nil {
		return nil, fmt.Errorf("certs: certificate %s: %w", rec.Fingerprint, err)
	}
	leaf := leaves[0]
	chain := []CertSummary{Summarize(leaf)}
	var issuers []*x509.Certificate
	if rec.CA == OwnCA {
		ca, err := s.CA(ctx)
		if err != nil {
			return nil, err
		}
		issuers = ca.Chain()
	} else if m, err := s.ManufacturerCA(ctx, rec.CA); err == nil {
		issuers, _ = pki.ParseCertificatesPEM([]byte(m.CertificatePEM))
	}
	if len(issuers) == 0 || leaf.CheckSignatureFrom(issuers[0]) != nil {
		return chain, nil
	}
	for _, c := range issuers {
		chain = append(chain, Summarize(c))
	}
	return chain, nil
}
