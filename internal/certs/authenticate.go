package certs

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/events"
	"github.com/gatehouse-iot/gatehouse/internal/pki"
	"github.com/gatehouse-iot/gatehouse/internal/policy"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// verifierCache is a pki.Verifier for the CA in force and the active
// manufacturer CAs, with their settings.
type verifierCache struct {
	v       *pki.Verifier
	ca      *loadedCA
	mfg     map[string]store.ManufacturerCA
	builtAt time.Time
}

func (s *Service) invalidateVerifier() {
	s.mu.Lock()
	s.verifier = nil
	s.mu.Unlock()
}

// currentVerifier returns the verifier, rebuilding it when the CA or the
// manufacturer CAs changed here, or every caRecheck for other replicas'
// changes.
func (s *Service) currentVerifier(ctx context.Context) (*verifierCache, error) {
	cur, err := s.currentCA(ctx)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	vc := s.verifier
	s.mu.Unlock()
	if vc != nil && vc.ca.chainPEM == cur.chainPEM && s.now().Sub(vc.builtAt) < caRecheck {
		return vc, nil
	}
	mfgs, err := s.store.ListManufacturerCAs(ctx)
	if err != nil {
		return nil, err
	}
	own := cur.ca.Trusted()
	opts := pki.VerifierOptions{Own: &own}
	vc = &verifierCache{ca: cur, mfg: map[string]store.ManufacturerCA{}, builtAt: s.now()}
	for _, m := range mfgs {
		if m.Status != store.CAActive {
			continue
		}
		certs, err := pki.ParseCertificatesPEM([]byte(m.CertificatePEM))
		if err != nil {
			s.log.ErrorContext(ctx, "certs: stored manufacturer CA does not parse; skipped", "ca", m.Name, "err", err)
			continue
		}
		opts.Manufacturers = append(opts.Manufacturers, pki.TrustedCA{Name: m.Name, Roots: certs, AllowMissingEKU: m.AllowMissingEKU})
		vc.mfg[m.Name] = m
	}
	if vc.v, err = pki.NewVerifier(opts); err != nil {
		return nil, fmt.Errorf("certs: build verifier: %w", err)
	}
	s.mu.Lock()
	s.verifier = vc
	s.mu.Unlock()
	return vc, nil
}

// Authenticated is a device that logged in with a certificate.
type Authenticated struct {
	ThingName   string
	Fingerprint string
	// CA is OwnCA or the manufacturer CA's name.
	CA       string
	NotAfter time.Time
	// Certificate holds the ${iot:Certificate.*} policy variables.
	Certificate *policy.Certificate
	// Registered is true when this login registered the certificate just
	// in time.
	Registered bool
}

// AuthenticateCertificate checks a client certificate chain (leaf first)
// presented in a TLS handshake: it must chain to Gatehouse's CA or an
// active manufacturer CA, be valid now, and be registered ACTIVE. An
// unknown certificate of a manufacturer CA with auto-registration is
// registered just in time - thing and certificate, in one transaction with
// their events - and logs in at once if the CA's JIT status is ACTIVE.
// A certificate of no thing logs in only with a policy attached to it (a
// fleet provisioning claim); ThingName is then "".
//
// Errors: *pki.VerifyError (untrusted, expired, not a client certificate),
// ErrUnknownCertificate, ErrCertificateInactive, ErrCertificatePending,
// ErrCertificateRevoked.
func (s *Service) AuthenticateCertificate(ctx context.Context, chain []*x509.Certificate) (*Authenticated, error) {
	vcache, err := s.currentVerifier(ctx)
	if err != nil {
		return nil, err
	}
	vc, err := vcache.v.Verify(chain, s.now())
	if err != nil {
		return nil, err
	}
	rec, err := s.store.GetCertificate(ctx, vc.Fingerprint)
	registered := false
	if errors.Is(err, store.ErrNotFound) {
		if !vc.Manufacturer {
			return nil, fmt.Errorf("%w: %s issued by Gatehouse's CA has no record", ErrUnknownCertificate, vc.Fingerprint)
		}
		m := vcache.mfg[vc.CA]
		if !m.AutoRegister {
			return nil, fmt.Errorf("%w: %s of manufacturer CA %q, which does not register devices automatically", ErrUnknownCertificate, vc.Fingerprint, vc.CA)
		}
		if rec, err = s.registerJIT(ctx, vc, m); err != nil {
			return nil, err
		}
		registered = true
	} else if err != nil {
		return nil, err
	}
	if err := statusErr(rec); err != nil {
		return nil, err
	}
	if rec.ThingName == "" {
		// A certificate of no thing logs in only as a claim (AWS IoT's
		// fleet provisioning): with policies attached to it, which are
		// then all it may do.
		names, err := s.store.PoliciesAttachedTo(ctx, map[string][]string{store.TargetCertificate: {rec.Fingerprint}})
		if err != nil {
			return nil, err
		}
		if len(names) == 0 {
			return nil, fmt.Errorf("%w: certificate %s belongs to no thing and has no policy attached", ErrCertificateInactive, rec.Fingerprint)
		}
	}
	return &Authenticated{ThingName: rec.ThingName, Fingerprint: rec.Fingerprint, CA: vc.CA, NotAfter: vc.Leaf.NotAfter,
		Certificate: policyCertificate(vc), Registered: registered}, nil
}

func statusErr(rec *store.Certificate) error {
	switch rec.Status {
	case store.CertActive:
		return nil
	case store.CertInactive:
		return fmt.Errorf("%w: %s", ErrCertificateInactive, rec.Fingerprint)
	case store.CertPendingActivation:
		return fmt.Errorf("%w: %s (activate it to let the device in)", ErrCertificatePending, rec.Fingerprint)
	case store.CertRevoked:
		return fmt.Errorf("%w: %s", ErrCertificateRevoked, rec.Fingerprint)
	}
	return fmt.Errorf("%w: %s has unknown status %q", ErrCertificateInactive, rec.Fingerprint, rec.Status)
}

// CheckCertificate tells whether a certificate that logged in earlier may
// still: it is registered and ACTIVE.
func (s *Service) CheckCertificate(ctx context.Context, fingerprint string) error {
	rec, err := s.store.GetCertificate(ctx, fingerprint)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: %s", ErrUnknownCertificate, fingerprint)
	}
	if err != nil {
		return err
	}
	return statusErr(rec)
}

// CheckBoundCertificate tells whether an access token bound to the
// certificate with this fingerprint (RFC 8705 cnf x5t#S256) may still be
// used: a registered certificate must be ACTIVE - revoking or deactivating
// it retires the tokens bound to it; a certificate Gatehouse does not know
// (a client that authenticated with a secret presented its own) has no
// status to check and leaves the token to its thumbprint.
func (s *Service) CheckBoundCertificate(ctx context.Context, fingerprint string) error {
	if err := s.CheckCertificate(ctx, fingerprint); err != nil && !errors.Is(err, ErrUnknownCertificate) {
		return err
	}
	return nil
}

// registerJIT registers a manufacturer certificate on its first login:
// the thing (named by the CA's template) and the certificate record, with
// events certificate.registered and thing.registered.
func (s *Service) registerJIT(ctx context.Context, vc pki.VerifiedCert, m store.ManufacturerCA) (*store.Certificate, error) {
	name, err := expandTemplate(m.ThingNameTemplate, vc)
	if err != nil {
		return nil, fmt.Errorf("%w: manufacturer CA %q cannot register %s: %v", ErrUnknownCertificate, m.Name, vc.Fingerprint, err)
	}
	now := s.now()
	leaf := vc.Leaf
	issuerFP := ""
	if len(vc.Chain) > 1 {
		issuerFP = pki.Fingerprint(vc.Chain[1])
	}
	rec := &store.Certificate{Fingerprint: vc.Fingerprint, ThingName: name, CA: m.Name, IssuerFingerprint: issuerFP,
		SerialNumber: vc.SerialNumber, Subject: leaf.Subject.String(), PEM: string(pki.EncodeCertificatesPEM(leaf)), Status: m.JITStatus,
		NotBefore: leaf.NotBefore.UTC(), NotAfter: leaf.NotAfter.UTC(), CreatedAt: now, UpdatedAt: now}
	ctx = events.WithActor(ctx, "manufacturer-ca:"+m.Name)
	err = s.change(ctx, func(tx *store.Tx) ([]event, error) {
		if _, err := tx.GetThing(ctx, name); err == nil {
			return nil, fmt.Errorf("%w: thing %q already exists; a manufacturer certificate does not take over an existing thing (register it by hand)",
				ErrUnknownCertificate, name)
		} else if !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		th, err := s.reg.CreateThingInTx(ctx, tx, registry.NewThing{Name: name, ThingType: m.ThingType, Attributes: map[string]string{}})
		if err != nil {
			return nil, fmt.Errorf("%w: just-in-time registration of %q: %w", ErrUnknownCertificate, name, err)
		}
		if err := tx.CreateCertificate(ctx, rec); err != nil {
			return nil, err
		}
		return []event{
			{"thing.registered", "thing/" + th.Name, map[string]any{"thingType": th.ThingType, "manufacturerCa": m.Name, "certificateId": rec.Fingerprint}},
			{"certificate.registered", "certificate/" + rec.Fingerprint, certDetails(rec, map[string]any{"via": "jit", "subject": rec.Subject})},
		}, nil
	})
	if errors.Is(err, store.ErrExists) {
		// The same device connected twice at once: the other login
		// registered it.
		return s.store.GetCertificate(ctx, vc.Fingerprint)
	}
	if err != nil {
		return nil, err
	}
	return rec, nil
}

// policyCertificate maps a verified certificate to the policy engine's
// ${iot:Certificate.*} variables.
func policyCertificate(vc pki.VerifiedCert) *policy.Certificate {
	name := func(a pki.Attributes) policy.Name {
		return policy.Name{CommonName: a["CommonName"], Country: a["Country"], Organization: a["Organization"],
			OrganizationalUnit: a["OrganizationalUnit"], State: a["State"], SerialNumber: a["SerialNumber"],
			DistinguishedNameQualifier: a["DistinguishedNameQualifier"], Title: a["Title"], Surname: a["Surname"],
			GivenName: a["GivenName"], Initials: a["Initials"], Pseudonym: a["Pseudonym"], GenerationQualifier: a["GenerationQualifier"]}
	}
	c := &policy.Certificate{SerialNumber: vc.SerialNumber, Subject: name(vc.Subject), Issuer: name(vc.Issuer)}
	leaf := vc.Leaf
	c.SubjectAltName.DNSName = leaf.DNSNames
	c.SubjectAltName.RFC822Name = leaf.EmailAddresses
	for _, ip := range leaf.IPAddresses {
		c.SubjectAltName.IPAddress = append(c.SubjectAltName.IPAddress, ip.String())
	}
	for _, u := range leaf.URIs {
		c.SubjectAltName.UniformResourceIdentifier = append(c.SubjectAltName.UniformResourceIdentifier, u.String())
	}
	return c
}
