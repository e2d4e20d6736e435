package certs

import (
	"context"
	"crypto/x509"
	"fmt"

	"github.com/gatehouse-iot/gatehouse/internal/policy"
)

// ManufacturerDevice is a certificate that chains to an active manufacturer
// CA, whether or not it is registered: what the device lobby admits.
type ManufacturerDevice struct {
	Fingerprint string
	CA          string
	CommonName  string
	Leaf        *x509.Certificate
	// Certificate holds the ${iot:Certificate.*} policy variables.
	Certificate *policy.Certificate
}

// VerifyManufacturerDevice checks a presented chain (leaf first) against
// the active manufacturer CAs only, at now, without looking at or writing
// certificate records. Errors: *pki.VerifyError, or ErrUnknownCertificate
// for a certificate of Gatehouse's own CA.
func (s *Service) VerifyManufacturerDevice(ctx context.Context, chain []*x509.Certificate) (*ManufacturerDevice, error) {
	vcache, err := s.currentVerifier(ctx)
	if err != nil {
		return nil, err
	}
	vc, err := vcache.v.Verify(chain, s.now())
	if err != nil {
		return nil, err
	}
	if !vc.Manufacturer {
		return nil, fmt.Errorf("%w: %s is not a manufacturer certificate", ErrUnknownCertificate, vc.Fingerprint)
	}
	return &ManufacturerDevice{Fingerprint: vc.Fingerprint, CA: vc.CA, CommonName: vc.Leaf.Subject.CommonName, Leaf: vc.Leaf,
		Certificate: policyCertificate(vc)}, nil
}
