package certs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/events"
	"github.com/gatehouse-iot/gatehouse/internal/pki"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// UnattachedCommonName is the common name of a certificate issued for a key
// Gatehouse generates with no thing yet, as AWS IoT's
// CreateKeysAndCertificate names its certificates.
const UnattachedCommonName = "AWS IoT Certificate"

// IssueUnattached issues a certificate that belongs to no thing yet, as AWS
// IoT's CreateCertificateFromCsr (csrPEM set: its key and common name) and
// CreateKeysAndCertificate (csrPEM empty: a key of alg, default the
// service's KeyAlgorithm, returned once). The certificate is ACTIVE when
// active, else INACTIVE; it logs in only once AttachThing binds it (or, as
// a claim, with a policy attached to it: see AuthenticateCertificate).
func (s *Service) IssueUnattached(ctx context.Context, csrPEM string, alg pki.KeyAlgorithm, active bool) (*Issued, error) {
	return s.IssueCertificate(ctx, Unattached{CSR: csrPEM, KeyAlgorithm: alg, Active: active, Via: "aws-iot"})
}

// Unattached describes a certificate IssueCertificate makes for no thing.
type Unattached struct {
	// CSR is a PEM request (its key and common name); "" generates a key
	// of KeyAlgorithm (default the service's), returned once.
	CSR          string
	KeyAlgorithm pki.KeyAlgorithm
	// Active makes it ACTIVE, else INACTIVE.
	Active bool
	// Validity of the certificate; 0: the service's LeafValidity.
	Validity time.Duration
	// Via names the caller in the certificate.issued event.
	Via string
	// InTx, if set, runs in the issuing transaction once the certificate is
	// stored (e.g. to attach policies to it), returning its own events;
	// its error rolls the issuance back.
	InTx func(tx *store.Tx, c *store.Certificate) ([]events.Pending, error)
}

// IssueCertificate issues a certificate that belongs to no thing, as
// described by u: the one path of AWS IoT's CreateKeysAndCertificate and
// CreateCertificateFromCsr, whether over the control plane or over MQTT
// (fleet provisioning), and of claim certificates.
func (s *Service) IssueCertificate(ctx context.Context, u Unattached) (*Issued, error) {
	cur, err := s.currentCA(ctx)
	if err != nil {
		return nil, err
	}
	if len(u.CSR) > pki.MaxCSRSize {
		return nil, invalid("certificateSigningRequest", "larger than %d bytes", pki.MaxCSRSize)
	}
	alg := u.KeyAlgorithm
	if alg == "" {
		alg = s.cfg.KeyAlgorithm
	}
	out, err := s.issue(cur, "", u.CSR, alg, u.Validity)
	if err != nil {
		return nil, err
	}
	if !u.Active {
		out.Certificate.Status = store.CertInactive
	}
	err = s.change(ctx, func(tx *store.Tx) ([]event, error) {
		if err := tx.CreateCertificate(ctx, out.Certificate); err != nil {
			return nil, err
		}
		evs := []event{{"certificate.issued", "certificate/" + out.Certificate.Fingerprint, certDetails(out.Certificate, map[string]any{
			"via": u.Via, "csr": u.CSR != ""})}}
		if u.InTx != nil {
			more, err := u.InTx(tx, out.Certificate)
			if err != nil {
				return nil, err
			}
			for _, e := range more {
				evs = append(evs, event{e.Type, e.Subject, e.Details})
			}
		}
		return evs, nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// AttachThing binds a certificate to a thing, as AWS IoT's
// AttachThingPrincipal. A Gatehouse certificate belongs to one thing:
// attaching it to the thing it has is a no-op, to another one is refused.
func (s *Service) AttachThing(ctx context.Context, id, thing string) (*store.Certificate, error) {
	fp, err := pki.ParseFingerprint(id)
	if err != nil {
		return nil, fmt.Errorf("certificate %q: %w", truncate(id), store.ErrNotFound)
	}
	var out *store.Certificate
	err = s.change(ctx, func(tx *store.Tx) ([]event, error) {
		c, err := tx.GetCertificate(ctx, fp)
		if err != nil {
			return nil, err
		}
		if _, err := tx.GetThing(ctx, thing); errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("thing %q: %w", truncate(thing), store.ErrNotFound)
		} else if err != nil {
			return nil, err
		}
		out = c
		switch c.ThingName {
		case thing:
			return nil, nil
		case "":
		default:
			return nil, &registry.InvalidError{Problems: []registry.Problem{{Field: "principal",
				Message: fmt.Sprintf("certificate %s belongs to thing %q; a certificate belongs to one thing", fp, c.ThingName)}}}
		}
		c.ThingName, c.UpdatedAt = thing, s.now()
		if err := tx.UpdateCertificate(ctx, c); err != nil {
			return nil, err
		}
		return []event{{"certificate.attached", "certificate/" + fp, certDetails(c, nil)}}, nil
	})
	return out, err
}
