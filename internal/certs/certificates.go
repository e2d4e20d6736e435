package certs

import (
	"context"
	"errors"
	"fmt"
	"math/big"

	"github.com/gatehouse-iot/gatehouse/internal/pki"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// Certificate returns a certificate record by id (its SHA-256 fingerprint
// in any form pki.ParseFingerprint accepts).
func (s *Service) Certificate(ctx context.Context, id string) (*store.Certificate, error) {
	fp, err := pki.ParseFingerprint(id)
	if err != nil {
		return nil, fmt.Errorf("certificate %q: %w", truncate(id), store.ErrNotFound)
	}
	return s.store.GetCertificate(ctx, fp)
}

// Certificates lists certificate records.
func (s *Service) Certificates(ctx context.Context, f store.CertificateFilter) ([]store.Certificate, error) {
	switch f.Status {
	case "", store.CertActive, store.CertInactive, store.CertRevoked, store.CertPendingActivation:
	default:
		return nil, invalid("status", "%q is not ACTIVE, INACTIVE, REVOKED or PENDING_ACTIVATION", truncate(f.Status))
	}
	return s.store.ListCertificates(ctx, f)
}

// setStatus moves a certificate to status, recording typ. from lists the
// statuses it may leave; the target status itself is a no-op.
func (s *Service) setStatus(ctx context.Context, id, status, typ string, from []string, mutate func(c *store.Certificate)) (*store.Certificate, error) {
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
		out = c
		if c.Status == status {
			return nil, nil
		}
		allowed := false
		for _, f := range from {
			allowed = allowed || c.Status == f
		}
		if !allowed {
			return nil, fmt.Errorf("%w: certificate %s is %s and cannot become %s", ErrInvalidTransition, fp, c.Status, status)
		}
		prev := c.Status
		c.Status, c.UpdatedAt = status, s.now()
		if mutate != nil {
			mutate(c)
		}
		if err := tx.UpdateCertificate(ctx, c); err != nil {
			return nil, err
		}
		if status == store.CertRevoked && c.CA == OwnCA {
			if err := tx.MarkCRLStale(ctx, OwnCA); err != nil && !errors.Is(err, store.ErrNotFound) {
				return nil, err
			}
		}
		return []event{{typ, "certificate/" + fp, certDetails(c, map[string]any{"previousStatus": prev})}}, nil
	})
	return out, err
}

// ActivateCertificate makes an INACTIVE or PENDING_ACTIVATION certificate
// ACTIVE. A revoked certificate stays revoked.
func (s *Service) ActivateCertificate(ctx context.Context, id string) (*store.Certificate, error) {
	return s.setStatus(ctx, id, store.CertActive, "certificate.activated", []string{store.CertInactive, store.CertPendingActivation}, nil)
}

// DeactivateCertificate makes a certificate INACTIVE: it may not log in
// until activated again. Live connections using it are closed.
func (s *Service) DeactivateCertificate(ctx context.Context, id string) (*store.Certificate, error) {
	return s.setStatus(ctx, id, store.CertInactive, "certificate.deactivated", []string{store.CertActive, store.CertPendingActivation}, nil)
}

// RevokeCertificate revokes a certificate for good, with an RFC 5280
// reason code (0 unspecified, 1 keyCompromise, 4 superseded, 5
// cessationOfOperation, ...). Live connections using it are closed and the
// CA's next CRL lists it.
func (s *Service) RevokeCertificate(ctx context.Context, id string, reason int) (*store.Certificate, error) {
	if reason < 0 || reason == 7 || reason == pki.RevocationRemoveFromCRL || reason > pki.RevocationAACompromise {
		return nil, invalid("reason", "%d is not an RFC 5280 revocation reason", reason)
	}
	return s.setStatus(ctx, id, store.CertRevoked, "certificate.revoked",
		[]string{store.CertActive, store.CertInactive, store.CertPendingActivation},
		func(c *store.Certificate) { c.RevokedAt, c.RevocationReason = s.now(), reason })
}

// RotateRequest asks for a new certificate for the thing of an existing one.
type RotateRequest struct {
	// CSR is the new key's request (common name: the thing name); without
	// it the server generates the key and returns it once.
	CSR string `json:"csr,omitempty"`
	// DeactivateOld makes the old certificate INACTIVE in the same
	// transaction (else the device switches and an operator deactivates).
	DeactivateOld bool `json:"deactivateOld,omitempty"`
}

// RotateCertificate issues a new certificate for the thing that
// certificate id belongs to. The old one must not be revoked.
func (s *Service) RotateCertificate(ctx context.Context, id string, req RotateRequest) (*Issued, error) {
	old, err := s.Certificate(ctx, id)
	if err != nil {
		return nil, err
	}
	if old.Status == store.CertRevoked {
		return nil, fmt.Errorf("%w: certificate %s is revoked; register the device again", ErrInvalidTransition, old.Fingerprint)
	}
	if old.ThingName == "" {
		return nil, fmt.Errorf("%w: certificate %s belongs to no thing", ErrInvalidTransition, old.Fingerprint)
	}
	if len(req.CSR) > pki.MaxCSRSize {
		return nil, invalid("csr", "larger than %d bytes", pki.MaxCSRSize)
	}
	cur, err := s.currentCA(ctx)
	if err != nil {
		return nil, err
	}
	alg := s.cfg.KeyAlgorithm
	if th, err := s.store.GetThing(ctx, old.ThingName); err == nil {
		if alg, err = s.keyAlgorithm(ctx, th.ThingType); err != nil {
			return nil, err
		}
	}
	issued, err := s.issue(cur, old.ThingName, req.CSR, alg, 0)
	if err != nil {
		return nil, err
	}
	err = s.change(ctx, func(tx *store.Tx) ([]event, error) {
		o, err := tx.GetCertificate(ctx, old.Fingerprint)
		if err != nil {
			return nil, err
		}
		if o.Status == store.CertRevoked {
			return nil, fmt.Errorf("%w: certificate %s is revoked", ErrInvalidTransition, o.Fingerprint)
		}
		if _, err := tx.GetThing(ctx, o.ThingName); err != nil {
			return nil, fmt.Errorf("thing of certificate %s: %w", o.Fingerprint, err)
		}
		if err := tx.CreateCertificate(ctx, issued.Certificate); err != nil {
			return nil, err
		}
		evs := []event{{"certificate.issued", "certificate/" + issued.Certificate.Fingerprint,
			certDetails(issued.Certificate, map[string]any{"via": "rotate", "rotatedFrom": o.Fingerprint, "csr": req.CSR != ""})}}
		if req.DeactivateOld && o.Status != store.CertInactive {
			prev := o.Status
			o.Status, o.UpdatedAt = store.CertInactive, s.now()
			if err := tx.UpdateCertificate(ctx, o); err != nil {
				return nil, err
			}
			evs = append(evs, event{"certificate.deactivated", "certificate/" + o.Fingerprint,
				certDetails(o, map[string]any{"previousStatus": prev, "rotatedTo": issued.Certificate.Fingerprint})})
		}
		return evs, nil
	})
	if err != nil {
		return nil, err
	}
	return issued, nil
}

// CRL returns the current DER CRL of Gatehouse's CA. It is regenerated,
// with the next CRL number, after a revocation and when half of its
// validity has passed; otherwise the cached one is served.
func (s *Service) CRL(ctx context.Context) ([]byte, error) {
	cur, err := s.currentCA(ctx)
	if err != nil {
		return nil, err
	}
	fresh := func(rec *store.CARecord) bool {
		now := s.now()
		return !rec.CRLStale && rec.CRL != nil && rec.IssuerFingerprint == cur.issuerFP &&
			now.Before(rec.CRLThisUpdate.Add(s.cfg.CRLValidity/2)) && now.Before(rec.CRLNextUpdate)
	}
	rec, err := s.store.GetCA(ctx, OwnCA)
	if err != nil {
		return nil, err
	}
	if fresh(rec) {
		return rec.CRL, nil
	}
	var der []byte
	err = s.change(ctx, func(tx *store.Tx) ([]event, error) {
		rec, err := tx.GetCA(ctx, OwnCA)
		if err != nil {
			return nil, err
		}
		if fresh(rec) { // another request or replica just made one
			der = rec.CRL
			return nil, nil
		}
		now := s.now()
		revoked, err := tx.RevokedCertificates(ctx, OwnCA, cur.issuerFP, now)
		if err != nil {
			return nil, err
		}
		entries := make([]pki.RevokedCert, 0, len(revoked))
		for _, c := range revoked {
			serial, ok := new(big.Int).SetString(c.SerialNumber, 16)
			if !ok {
				return nil, fmt.Errorf("certs: certificate %s: bad stored serial %q", c.Fingerprint, c.SerialNumber)
			}
			entries = append(entries, pki.RevokedCert{SerialNumber: serial, RevokedAt: c.RevokedAt, ReasonCode: c.RevocationReason})
		}
		number := rec.CRLNumber + 1
		der, err = cur.ca.CreateCRL(entries, big.NewInt(number), now, now.Add(s.cfg.CRLValidity))
		if err != nil {
			return nil, err
		}
		rec.CRL, rec.CRLNumber, rec.CRLThisUpdate, rec.CRLNextUpdate, rec.CRLStale, rec.UpdatedAt = der, number, now, now.Add(s.cfg.CRLValidity), false, now
		if err := tx.UpdateCA(ctx, rec); err != nil {
			return nil, err
		}
		return []event{{"ca.crl_published", "ca/" + OwnCA, map[string]any{"crlNumber": number, "entries": len(entries), "nextUpdate": rec.CRLNextUpdate}}}, nil
	})
	if err != nil {
		return nil, err
	}
	return der, nil
}
