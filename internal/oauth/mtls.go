package oauth

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"

	"github.com/zitadel/oidc/v3/pkg/oidc"
)

// AuthMethodTLSClientAuth is RFC 8705 PKI mutual-TLS client authentication:
// the client presents, at the TLS layer, a certificate issued to it.
const AuthMethodTLSClientAuth oidc.AuthMethod = "tls_client_auth"

// ClientCertificates maps a verified TLS client certificate chain to the
// thing it was issued to (the certificate service does this, including
// status and revocation checks).
type ClientCertificates func(ctx context.Context, chain []*x509.Certificate) (thing string, err error)

type peerCertsKey struct{}

// withPeerCertificates keeps the TLS client certificates of a request in
// its context, for client authentication and token binding.
func withPeerCertificates(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			r = r.WithContext(context.WithValue(r.Context(), peerCertsKey{}, r.TLS.PeerCertificates))
		}
		next.ServeHTTP(w, r)
	})
}

func peerCertificates(ctx context.Context) []*x509.Certificate {
	certs, _ := ctx.Value(peerCertsKey{}).([]*x509.Certificate)
	return certs
}

// Thumbprint is the RFC 8705 "x5t#S256" of a certificate: base64url SHA-256
// of its DER.
func Thumbprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// ThumbprintFingerprint turns an x5t#S256 thumbprint into the
// certificate's fingerprint, its id in the certificate service: the same
// SHA-256, as lowercase hex.
func ThumbprintFingerprint(x5t string) (string, error) {
	sum, err := base64.RawURLEncoding.Strict().DecodeString(x5t)
	if err != nil || len(sum) != sha256.Size {
		return "", fmt.Errorf("%w: x5t#S256 %q is not a base64url SHA-256", ErrInvalidToken, x5t)
	}
	return hex.EncodeToString(sum), nil
}

// checkBound refuses a token bound to a certificate whose status says it
// may no longer be used (see Config.CertificateStatus).
func (s *Server) checkBound(ctx context.Context, c *claims) error {
	if c.Cnf == nil || s.certStatus == nil {
		return nil
	}
	fp, err := ThumbprintFingerprint(c.Cnf.X5tS256)
	if err != nil {
		return err
	}
	if err := s.certStatus(ctx, fp); err != nil {
		return fmt.Errorf("%w: bound certificate: %w", ErrInvalidToken, err)
	}
	return nil
}

// boundThumbprint is what a token issued in ctx is bound to: the client
// certificate of the mutual-TLS request, or "" over plain TLS or HTTP.
func boundThumbprint(ctx context.Context) string {
	if certs := peerCertificates(ctx); len(certs) > 0 {
		return Thumbprint(certs[0])
	}
	return ""
}

// authenticateTLS authenticates a client by its TLS certificate: the
// certificate must belong to the thing named by client_id.
func (s *Server) authenticateTLS(ctx context.Context, clientID string) (*client, error) {
	certs := peerCertificates(ctx)
	if len(certs) == 0 || s.clientCerts == nil || clientID == "" {
		return nil, invalidClient("client authentication required")
	}
	thing, err := s.clientCerts(ctx, certs)
	if err != nil {
		return nil, invalidClient("client certificate not accepted")
	}
	if thing != clientID {
		return nil, invalidClient("the client certificate was not issued to this client")
	}
	c, err := s.thingClient(ctx, thing, "certificate", AuthMethodTLSClientAuth)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, invalidClient("invalid client credentials")
	}
	return c, nil
}
