package authn

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/gatehouse-iot/gatehouse/internal/certs"
	"github.com/gatehouse-iot/gatehouse/internal/pki"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
)

// CertificateAuthenticator checks TLS client certificates; *certs.Service
// is one.
type CertificateAuthenticator interface {
	// AuthenticateCertificate verifies a presented chain (leaf first) and
	// returns the thing it belongs to, registering it just in time when
	// its manufacturer CA says so.
	AuthenticateCertificate(ctx context.Context, chain []*x509.Certificate) (*certs.Authenticated, error)
	// CheckCertificate tells whether a certificate may still log in.
	CheckCertificate(ctx context.Context, fingerprint string) error
	// CheckBoundCertificate tells whether a token bound to a certificate
	// may still be used.
	CheckBoundCertificate(ctx context.Context, fingerprint string) error
}

// ClaimPrincipalPrefix starts the principal of a certificate that belongs
// to no thing and logs in by the policies attached to it (a fleet
// provisioning claim).
const ClaimPrincipalPrefix = "certificate:"

// certificate authenticates a client certificate of a TLS connection. The
// MQTT username, if any, is ignored (as AWS IoT does with mTLS); policies
// bind the client id.
func (a *Authenticator) certificate(ctx context.Context, c Credentials) (*Identity, error) {
	if a.certs == nil {
		return nil, fmt.Errorf("%w: client certificate authentication is not enabled on this server", ErrBadCredentials)
	}
	au, err := a.certs.AuthenticateCertificate(ctx, c.PeerCertificates)
	if err != nil {
		return nil, certError(err)
	}
	principal := "thing:" + au.ThingName
	if au.ThingName == "" {
		principal = ClaimPrincipalPrefix + au.Fingerprint // a claim certificate of no thing
	}
	id := &Identity{
		Method:       MethodCertificate,
		ThingName:    au.ThingName,
		Principal:    principal,
		Subject:      registry.Subject{ThingName: au.ThingName, CertificateFingerprint: au.Fingerprint},
		Certificate:  au.Certificate,
		CredentialID: au.Fingerprint,
		ExpiresAt:    au.NotAfter,
	}
	if err := a.checkThing(ctx, id); err != nil {
		return nil, err
	}
	return id, nil
}

// certError classifies a certificate refusal: a certificate that does not
// verify or is unknown or revoked is bad credentials; a known certificate
// that is inactive or awaits activation is not authorized.
func certError(err error) error {
	var ve *pki.VerifyError
	switch {
	case errors.Is(err, certs.ErrCertificateInactive), errors.Is(err, certs.ErrCertificatePending):
		return fmt.Errorf("%w: %w", ErrNotAuthorized, err)
	case errors.As(err, &ve), errors.Is(err, certs.ErrUnknownCertificate), errors.Is(err, certs.ErrCertificateRevoked):
		return fmt.Errorf("%w: %w", ErrBadCredentials, err)
	}
	return err
}

// recheckCertificate refuses a certificate identity whose certificate was
// deactivated or revoked since it logged in, and so a token identity whose
// token is bound to such a certificate.
func (a *Authenticator) recheckCertificate(ctx context.Context, id *Identity) error {
	if a.certs == nil {
		return nil
	}
	var err error
	switch {
	case id.Method == MethodCertificate:
		err = a.certs.CheckCertificate(ctx, id.CredentialID)
	case id.BoundCertificate != "":
		err = a.certs.CheckBoundCertificate(ctx, id.BoundCertificate)
	}
	if err != nil {
		if errors.Is(err, certs.ErrCertificateInactive) || errors.Is(err, certs.ErrCertificatePending) ||
			errors.Is(err, certs.ErrCertificateRevoked) || errors.Is(err, certs.ErrUnknownCertificate) {
			return fmt.Errorf("%w: %w", ErrNotAuthorized, err)
		}
		return err
	}
	return nil
}
