package authn_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/authn"
	"github.com/gatehouse-iot/gatehouse/internal/certs"
	"github.com/gatehouse-iot/gatehouse/internal/events"
	"github.com/gatehouse-iot/gatehouse/internal/pki"
	"github.com/gatehouse-iot/gatehouse/internal/policy"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/testenv"
)

// fakeCerts answers as the certificate service would.
type fakeCerts struct {
	err    error // of AuthenticateCertificate
	status error // of CheckCertificate
}

func (f *fakeCerts) AuthenticateCertificate(context.Context, []*x509.Certificate) (*certs.Authenticated, error) {
	if f.err != nil {
		return nil, f.err
	}
	return &certs.Authenticated{ThingName: "dev-1", Fingerprint: "fp", CA: certs.OwnCA, NotAfter: time.Unix(2e9, 0),
		Certificate: &policy.Certificate{SerialNumber: "0a"}}, nil
}

func (f *fakeCerts) CheckCertificate(context.Context, string) error { return f.status }

func (f *fakeCerts) CheckBoundCertificate(context.Context, string) error { return f.status }

func TestCertificateAuthentication(t *testing.T) {
	env := testenv.Core(t)
	ctx, s, reg := env.Ctx, env.Store, env.Registry
	admin := events.WithActor(ctx, "test")
	if _, err := reg.CreateThingType(admin, registry.ThingTypeSpec{Name: "tokens-only", AuthMethods: []string{authn.MethodAccessToken}}); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.CreateThing(admin, registry.NewThing{Name: "dev-1"}); err != nil {
		t.Fatal(err)
	}
	chain := []*x509.Certificate{{}}
	tests := []struct {
		name  string
		certs authn.CertificateAuthenticator
		want  error
	}{
		{"accepted", &fakeCerts{}, nil},
		{"not enabled", nil, authn.ErrBadCredentials},
		{"untrusted", &fakeCerts{err: &pki.VerifyError{Reason: pki.ReasonUnknownIssuer}}, authn.ErrBadCredentials},
		{"revoked", &fakeCerts{err: fmt.Errorf("%w: x", certs.ErrCertificateRevoked)}, authn.ErrBadCredentials},
		{"unknown", &fakeCerts{err: certs.ErrUnknownCertificate}, authn.ErrBadCredentials},
		{"inactive", &fakeCerts{err: certs.ErrCertificateInactive}, authn.ErrNotAuthorized},
		{"pending", &fakeCerts{err: certs.ErrCertificatePending}, authn.ErrNotAuthorized},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := authn.New(authn.Config{Registry: reg, Store: s, Certificates: tc.certs})
			id, err := a.Authenticate(ctx, authn.Credentials{ClientID: "dev-1", Username: "ignored", PeerCertificates: chain})
			if tc.want != nil {
				if !errors.Is(err, tc.want) {
					t.Errorf("err = %v, want %v", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if id.Method != authn.MethodCertificate || id.ThingName != "dev-1" || id.CredentialID != "fp" || id.Subject.CertificateFingerprint != "fp" ||
				id.Principal != "thing:dev-1" || id.Certificate.SerialNumber != "0a" || !id.ExpiresAt.Equal(time.Unix(2e9, 0)) {
				t.Errorf("identity = %+v", id)
			}
		})
	}
	// Recheck follows the certificate's status, then the thing's rules.
	fc := &fakeCerts{}
	a := authn.New(authn.Config{Registry: reg, Store: s, Certificates: fc})
	id, err := a.Authenticate(ctx, authn.Credentials{PeerCertificates: chain})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Recheck(ctx, id); err != nil {
		t.Errorf("Recheck active: %v", err)
	}
	fc.status = certs.ErrCertificateRevoked
	if err := a.Recheck(ctx, id); !errors.Is(err, authn.ErrNotAuthorized) {
		t.Errorf("Recheck revoked: %v", err)
	}
	fc.status = nil
	tt := "tokens-only"
	if _, err := reg.UpdateThing(admin, "dev-1", 0, registry.ThingPatch{ThingType: &tt}); err != nil {
		t.Fatal(err)
	}
	if err := a.Recheck(ctx, id); !errors.Is(err, authn.ErrNotAuthorized) {
		t.Errorf("Recheck with a type that does not allow certificates: %v", err)
	}
}
