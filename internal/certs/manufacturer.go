package certs

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/pki"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// DefaultThingNameTemplate names a just-in-time registered thing after its
// certificate's common name.
const DefaultThingNameTemplate = "${CommonName}"

// templateVar reports whether a thing name template may use the variable:
// subject attributes of the device certificate, and its fingerprint.
func templateVar(name string) bool {
	switch name {
	case "CommonName", "SerialNumber", "Organization", "OrganizationalUnit", "Country",
		"State", "Locality", "DistinguishedNameQualifier", "Fingerprint":
		return true
	}
	return false
}

var templateVarRE = regexp.MustCompile(`\$\{([^}]*)\}`)

// checkTemplate validates a thing name template.
func checkTemplate(t string) error {
	if len(t) > 256 {
		return errors.New("longer than 256 bytes")
	}
	for _, m := range templateVarRE.FindAllStringSubmatch(t, -1) {
		if !templateVar(m[1]) {
			return fmt.Errorf("unknown variable ${%s} (use CommonName, SerialNumber, Organization, OrganizationalUnit, Country, State, Locality, DistinguishedNameQualifier or Fingerprint)", truncate(m[1]))
		}
	}
	if rest := templateVarRE.ReplaceAllString(t, "x"); strings.Contains(rest, "${") {
		return errors.New("unterminated ${")
	}
	return nil
}

// expandTemplate makes a thing name from a verified certificate.
func expandTemplate(t string, vc pki.VerifiedCert) (string, error) {
	var missing string
	name := templateVarRE.ReplaceAllStringFunc(t, func(m string) string {
		v := m[2 : len(m)-1]
		if v == "Fingerprint" {
			return vc.Fingerprint
		}
		val := vc.Subject.Get(v)
		if val == "" && missing == "" {
			missing = v
		}
		return val
	})
	if missing != "" {
		return "", fmt.Errorf("the certificate subject has no %s for the thing name template %q", missing, t)
	}
	if !registry.ValidName(name) {
		return "", fmt.Errorf("thing name %q made by template %q is not a valid thing name", truncate(name), t)
	}
	return name, nil
}

// NewManufacturerCA registers a manufacturer's CA.
type NewManufacturerCA struct {
	Name string `json:"name"`
	// CertificatePEM is the CA certificate (a root, or an intermediate
	// trusted directly).
	CertificatePEM string `json:"certificatePem"`
	// VerificationCertificatePEM proves possession of the CA key: a
	// certificate signed by the CA whose common name is the registration
	// code (see RegistrationCode), as AWS IoT's RegisterCACertificate.
	VerificationCertificatePEM string `json:"verificationCertificatePem,omitempty"`
	// AutoRegister registers unknown certificates just in time.
	AutoRegister bool `json:"autoRegister,omitempty"`
	// JITStatus is the status of just-in-time registered certificates:
	// PENDING_ACTIVATION (default: an operator activates) or ACTIVE.
	JITStatus string `json:"jitStatus,omitempty"`
	// ThingType of just-in-time registered things; optional.
	ThingType string `json:"thingType,omitempty"`
	// ThingNameTemplate, default "${CommonName}".
	ThingNameTemplate string `json:"thingNameTemplate,omitempty"`
	// AllowMissingEKU accepts device certificates without an extended key
	// usage (common for IEEE 802.1AR IDevIDs).
	AllowMissingEKU bool `json:"allowMissingEku,omitempty"`
}

// ManufacturerCAPatch changes a manufacturer CA's settings; nil fields are
// left alone.
type ManufacturerCAPatch struct {
	Status            *string `json:"status,omitempty"`
	AutoRegister      *bool   `json:"autoRegister,omitempty"`
	JITStatus         *string `json:"jitStatus,omitempty"`
	ThingType         *string `json:"thingType,omitempty"`
	ThingNameTemplate *string `json:"thingNameTemplate,omitempty"`
	AllowMissingEKU   *bool   `json:"allowMissingEku,omitempty"`
}

func (s *Service) checkManufacturerSettings(ctx context.Context, tx *store.Tx, m *store.ManufacturerCA) error {
	var probs []registry.Problem
	add := func(field, format string, args ...any) {
		probs = append(probs, registry.Problem{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	if m.Status != store.CAActive && m.Status != store.CAInactive {
		add("status", "%q is not ACTIVE or INACTIVE", truncate(m.Status))
	}
	if m.JITStatus != store.CertActive && m.JITStatus != store.CertPendingActivation {
		add("jitStatus", "%q is not ACTIVE or PENDING_ACTIVATION", truncate(m.JITStatus))
	}
	if err := checkTemplate(m.ThingNameTemplate); err != nil {
		add("thingNameTemplate", "%v", err)
	}
	if m.ThingType != "" {
		if _, err := tx.GetThingType(ctx, m.ThingType); errors.Is(err, store.ErrNotFound) {
			add("thingType", "thing type %q does not exist", truncate(m.ThingType))
		} else if err != nil {
			return err
		}
	}
	if len(probs) > 0 {
		return &registry.InvalidError{Problems: probs}
	}
	return nil
}

// AddManufacturerCA registers a manufacturer CA. With a verification
// certificate the CA is marked verified; without one it is refused when
// Config.RequireProofOfPossession is set.
func (s *Service) AddManufacturerCA(ctx context.Context, in NewManufacturerCA) (*store.ManufacturerCA, error) {
	if !registry.ValidName(in.Name) || in.Name == OwnCA {
		return nil, invalid("name", "%q is not a valid name or is reserved", truncate(in.Name))
	}
	certs, err := pki.ParseCertificatesPEM([]byte(in.CertificatePEM))
	if err != nil {
		return nil, invalid("certificatePem", "%v", err)
	}
	if len(certs) != 1 {
		return nil, invalid("certificatePem", "%d certificates: give exactly the one CA certificate", len(certs))
	}
	ca := certs[0]
	now := s.now()
	switch {
	case !ca.IsCA || !ca.BasicConstraintsValid:
		return nil, invalid("certificatePem", "%q is not a CA certificate (basic constraints)", ca.Subject.String())
	case ca.KeyUsage != 0 && ca.KeyUsage&x509.KeyUsageCertSign == 0:
		return nil, invalid("certificatePem", "%q may not sign certificates (key usage)", ca.Subject.String())
	case now.After(ca.NotAfter) || now.Before(ca.NotBefore):
		return nil, invalid("certificatePem", "%q is not valid now (valid %s to %s)", ca.Subject.String(),
			ca.NotBefore.Format(time.RFC3339), ca.NotAfter.Format(time.RFC3339))
	}
	fp := pki.Fingerprint(ca)
	cur, err := s.currentCA(ctx)
	if err != nil {
		return nil, err
	}
	for _, own := range cur.ca.Chain() {
		if pki.Fingerprint(own) == fp {
			return nil, invalid("certificatePem", "this is Gatehouse's own CA")
		}
	}
	verified := false
	if in.VerificationCertificatePEM != "" {
		if err := verifyPossession(ca, in.VerificationCertificatePEM, cur.regCode, now); err != nil {
			return nil, invalid("verificationCertificatePem", "%v", err)
		}
		verified = true
	} else if s.cfg.RequireProofOfPossession {
		return nil, invalid("verificationCertificatePem", "required: a certificate signed by the CA with common name %q", cur.regCode)
	}
	m := &store.ManufacturerCA{Name: in.Name, Fingerprint: fp, CertificatePEM: string(pki.EncodeCertificatesPEM(ca)), Status: store.CAActive,
		Verified: verified, AutoRegister: in.AutoRegister, JITStatus: in.JITStatus, ThingType: in.ThingType, ThingNameTemplate: in.ThingNameTemplate,
		AllowMissingEKU: in.AllowMissingEKU, CreatedAt: now, UpdatedAt: now}
	if m.JITStatus == "" {
		m.JITStatus = store.CertPendingActivation
	}
	if m.ThingNameTemplate == "" {
		m.ThingNameTemplate = DefaultThingNameTemplate
	}
	err = s.change(ctx, func(tx *store.Tx) ([]event, error) {
		if err := s.checkManufacturerSettings(ctx, tx, m); err != nil {
			return nil, err
		}
		if err := tx.CreateManufacturerCA(ctx, m); err != nil {
			return nil, err
		}
		return []event{{"manufacturer_ca.registered", "manufacturer-ca/" + m.Name, map[string]any{"fingerprint": fp, "subject": ca.Subject.String(),
			"verified": verified, "autoRegister": m.AutoRegister, "jitStatus": m.JITStatus, "thingType": m.ThingType}}}, nil
	})
	if err != nil {
		return nil, err
	}
	s.invalidateVerifier()
	return m, nil
}

// verifyPossession checks a verification certificate: signed by ca, with
// the registration code as common name, valid now.
func verifyPossession(ca *x509.Certificate, verificationPEM, code string, now time.Time) error {
	vs, err := pki.ParseCertificatesPEM([]byte(verificationPEM))
	if err != nil {
		return err
	}
	v := vs[0]
	if v.Subject.CommonName != code {
		return fmt.Errorf("common name %q is not the registration code", truncate(v.Subject.CommonName))
	}
	if err := v.CheckSignatureFrom(ca); err != nil {
		return fmt.Errorf("not signed by the CA: %w", err)
	}
	if now.After(v.NotAfter) || now.Before(v.NotBefore) {
		return errors.New("not valid now")
	}
	return nil
}

// ManufacturerCAs lists manufacturer CAs.
func (s *Service) ManufacturerCAs(ctx context.Context) ([]store.ManufacturerCA, error) {
	return s.store.ListManufacturerCAs(ctx)
}

// ManufacturerCA returns one manufacturer CA.
func (s *Service) ManufacturerCA(ctx context.Context, name string) (*store.ManufacturerCA, error) {
	return s.store.GetManufacturerCA(ctx, name)
}

// UpdateManufacturerCA changes a manufacturer CA's settings if ifVersion is
// 0 or current.
func (s *Service) UpdateManufacturerCA(ctx context.Context, name string, ifVersion int64, p ManufacturerCAPatch) (*store.ManufacturerCA, error) {
	var out *store.ManufacturerCA
	err := s.change(ctx, func(tx *store.Tx) ([]event, error) {
		m, err := tx.GetManufacturerCA(ctx, name)
		if err != nil {
			return nil, err
		}
		if ifVersion != 0 && ifVersion != m.Version {
			return nil, fmt.Errorf("version %d is not current (%d): %w", ifVersion, m.Version, store.ErrStale)
		}
		set := func(dst *string, src *string) {
			if src != nil {
				*dst = *src
			}
		}
		set(&m.Status, p.Status)
		set(&m.JITStatus, p.JITStatus)
		set(&m.ThingType, p.ThingType)
		set(&m.ThingNameTemplate, p.ThingNameTemplate)
		if p.AutoRegister != nil {
			m.AutoRegister = *p.AutoRegister
		}
		if p.AllowMissingEKU != nil {
			m.AllowMissingEKU = *p.AllowMissingEKU
		}
		if m.ThingNameTemplate == "" {
			m.ThingNameTemplate = DefaultThingNameTemplate
		}
		if err := s.checkManufacturerSettings(ctx, tx, m); err != nil {
			return nil, err
		}
		m.UpdatedAt = s.now()
		if err := tx.UpdateManufacturerCA(ctx, m); err != nil {
			return nil, err
		}
		out = m
		return []event{{"manufacturer_ca.updated", "manufacturer-ca/" + name, p}}, nil
	})
	if err != nil {
		return nil, err
	}
	s.invalidateVerifier()
	return out, nil
}

// RemoveManufacturerCA deletes a manufacturer CA: its devices can no longer
// log in. Their certificate records stay.
func (s *Service) RemoveManufacturerCA(ctx context.Context, name string) error {
	err := s.change(ctx, func(tx *store.Tx) ([]event, error) {
		if err := tx.DeleteManufacturerCA(ctx, name); err != nil {
			return nil, err
		}
		return []event{{"manufacturer_ca.deleted", "manufacturer-ca/" + name, nil}}, nil
	})
	if err == nil {
		s.invalidateVerifier()
	}
	return err
}
