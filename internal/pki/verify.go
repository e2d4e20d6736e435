package pki

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"time"
)

// OwnCAName is the name VerifiedCert.CA reports for Gatehouse's own CA.
const OwnCAName = "gatehouse"

// maxPresentedChain bounds the certificates a peer may present.
const maxPresentedChain = 8

// TrustedCA is a CA whose client certificates a Verifier accepts: Gatehouse's
// own (CA.Trusted) or a device manufacturer's.
type TrustedCA struct {
	// Name identifies the CA in VerifiedCert.CA, e.g. the manufacturer.
	Name string
	// Roots are the trust anchors: self-signed roots, or intermediates
	// that are trusted directly without their root.
	Roots []*x509.Certificate
	// Intermediates help build chains for devices that present only their
	// leaf. They are not trusted by themselves.
	Intermediates []*x509.Certificate
	// AllowMissingEKU accepts leaves without an extended key usage
	// extension. Many factory (IEEE 802.1AR IDevID) certificates have none.
	// Leaves that have the extension still need clientAuth (or any).
	AllowMissingEKU bool
}

// Trusted returns the CA as a TrustedCA named OwnCAName for
// VerifierOptions.Own.
func (c *CA) Trusted() TrustedCA {
	return TrustedCA{
		Name:          OwnCAName,
		Roots:         []*x509.Certificate{c.Root()},
		Intermediates: append([]*x509.Certificate(nil), c.chain[:len(c.chain)-1]...),
	}
}

// RevocationFunc reports whether a certificate that otherwise verified is
// revoked. An error makes verification fail closed with
// ReasonRevocationUnavailable. RevocationSet.IsRevoked is one; a lookup of
// the certificate store by v.Fingerprint is another.
type RevocationFunc func(v VerifiedCert) (revoked bool, err error)

// VerifierOptions configure NewVerifier.
type VerifierOptions struct {
	// Own is Gatehouse's CA (see CA.Trusted); its Name is forced to
	// OwnCAName. Optional.
	Own *TrustedCA
	// Manufacturers are trusted device manufacturer CAs, each with a
	// unique name other than OwnCAName.
	Manufacturers []TrustedCA
	// IsRevoked is consulted for every leaf that verifies. Nil: no
	// revocation check.
	IsRevoked RevocationFunc
}

// Verifier checks client certificate chains against a fixed set of trusted
// CAs. It is immutable and safe for concurrent use; build a new one when the
// set changes.
type Verifier struct {
	roots         *x509.CertPool
	intermediates *x509.CertPool
	known         []*x509.Certificate   // every configured certificate, for error diagnosis
	byAnchor      map[string]*TrustedCA // root fingerprint -> CA
	isRevoked     RevocationFunc
}

// NewVerifier returns a Verifier trusting opts.Own and opts.Manufacturers.
func NewVerifier(opts VerifierOptions) (*Verifier, error) {
	v := &Verifier{
		roots:         x509.NewCertPool(),
		intermediates: x509.NewCertPool(),
		byAnchor:      make(map[string]*TrustedCA),
		isRevoked:     opts.IsRevoked,
	}
	cas := make([]TrustedCA, 0, 1+len(opts.Manufacturers))
	if opts.Own != nil {
		own := *opts.Own
		own.Name = OwnCAName
		cas = append(cas, own)
	}
	names := make(map[string]bool)
	for _, m := range opts.Manufacturers {
		if m.Name == "" || m.Name == OwnCAName {
			return nil, fmt.Errorf("pki: manufacturer CA name %q is empty or reserved", m.Name)
		}
		if names[m.Name] {
			return nil, fmt.Errorf("pki: duplicate manufacturer CA name %q", m.Name)
		}
		names[m.Name] = true
		cas = append(cas, m)
	}
	for i := range cas {
		ca := &cas[i]
		if len(ca.Roots) == 0 {
			return nil, fmt.Errorf("pki: trusted CA %q has no root", ca.Name)
		}
		for _, r := range ca.Roots {
			if r == nil || !r.IsCA || !r.BasicConstraintsValid {
				return nil, fmt.Errorf("pki: trusted CA %q: root is not a CA certificate", ca.Name)
			}
			fp := Fingerprint(r)
			if prev, dup := v.byAnchor[fp]; dup {
				return nil, fmt.Errorf("pki: trusted CA %q: root %s already belongs to %q", ca.Name, fp, prev.Name)
			}
			v.byAnchor[fp] = ca
			v.roots.AddCert(r)
			v.known = append(v.known, r)
		}
		for _, c := range ca.Intermediates {
			if c == nil || !c.IsCA || !c.BasicConstraintsValid {
				return nil, fmt.Errorf("pki: trusted CA %q: intermediate is not a CA certificate", ca.Name)
			}
			v.intermediates.AddCert(c)
			v.known = append(v.known, c)
		}
	}
	if len(v.byAnchor) == 0 {
		return nil, errors.New("pki: verifier trusts no CA")
	}
	return v, nil
}

// VerifiedCert is what a verified client certificate tells about its holder.
type VerifiedCert struct {
	Leaf *x509.Certificate
	// Chain runs from the leaf to the trust anchor.
	Chain []*x509.Certificate
	// Fingerprint of the leaf (see Fingerprint).
	Fingerprint string
	// SerialNumber of the leaf, lowercase hex.
	SerialNumber string
	// CA is the name of the trusted CA that anchors the chain: OwnCAName
	// or a manufacturer's name.
	CA string
	// Manufacturer is true when CA is a manufacturer's CA.
	Manufacturer bool
	// Subject and Issuer are the leaf's distinguished names, for the policy
	// variables ${iot:Certificate.Subject.*} and ${iot:Certificate.Issuer.*}.
	// For our own certificates the CA set every field but CommonName; for
	// manufacturer certificates the manufacturer did, so weigh them by CA.
	Subject Attributes
	Issuer  Attributes
	// ThingName is taken from a urn:gatehouse:thing:<name> URI SAN of a
	// certificate issued by Gatehouse's own CA; for manufacturer
	// certificates it is always empty, since a manufacturer's SANs do not
	// name our things.
	ThingName string
}

// Verify checks that chain[0], a client certificate presented with the
// optional intermediates chain[1:], chains up to a trusted CA at time now,
// allows client authentication, and is not revoked. Refusals are
// *VerifyError.
func (v *Verifier) Verify(chain []*x509.Certificate, now time.Time) (VerifiedCert, error) {
	if len(chain) == 0 || chain[0] == nil {
		return VerifiedCert{}, &VerifyError{Reason: ReasonInvalid, Detail: "no certificate"}
	}
	leaf := chain[0]
	fp := Fingerprint(leaf)
	fail := func(reason Reason, err error, format string, args ...any) (VerifiedCert, error) {
		return VerifiedCert{}, &VerifyError{Reason: reason, Fingerprint: fp, Detail: fmt.Sprintf(format, args...), Err: err}
	}
	if len(chain) > maxPresentedChain {
		return fail(ReasonInvalid, nil, "%d certificates presented, at most %d accepted", len(chain), maxPresentedChain)
	}
	if leaf.IsCA {
		return fail(ReasonKeyUsage, nil, "a CA certificate is not a client certificate")
	}
	if now.After(leaf.NotAfter) {
		return fail(ReasonExpired, nil, "expired at %s", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if now.Before(leaf.NotBefore) {
		return fail(ReasonNotYetValid, nil, "not valid before %s", leaf.NotBefore.UTC().Format(time.RFC3339))
	}

	intermediates := v.intermediates
	if len(chain) > 1 {
		intermediates = v.intermediates.Clone()
		for _, c := range chain[1:] {
			if c != nil {
				intermediates.AddCert(c)
			}
		}
	}
	chains, err := leaf.Verify(x509.VerifyOptions{
		Roots:         v.roots,
		Intermediates: intermediates,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return v.classify(leaf, chain[1:], now, err, fail)
	}

	// Prefer a chain to our own CA if a certificate chains to several.
	verified := chains[0]
	for _, c := range chains {
		if ca := v.byAnchor[Fingerprint(c[len(c)-1])]; ca != nil && ca.Name == OwnCAName {
			verified = c
			break
		}
	}
	ca := v.byAnchor[Fingerprint(verified[len(verified)-1])]
	if ca == nil { // cannot happen: every root in the pool is in byAnchor
		return fail(ReasonUnknownIssuer, nil, "chain ends at an unregistered root")
	}
	if len(leaf.ExtKeyUsage) == 0 && len(leaf.UnknownExtKeyUsage) == 0 && !ca.AllowMissingEKU {
		return fail(ReasonKeyUsage, nil, "no extended key usage; clientAuth required by CA %q", ca.Name)
	}

	vc := VerifiedCert{
		Leaf:         leaf,
		Chain:        verified,
		Fingerprint:  fp,
		SerialNumber: leaf.SerialNumber.Text(16),
		CA:           ca.Name,
		Manufacturer: ca.Name != OwnCAName,
		Subject:      NameAttributes(leaf.Subject),
		Issuer:       NameAttributes(leaf.Issuer),
	}
	if !vc.Manufacturer {
		vc.ThingName = thingNameFromURIs(leaf.URIs)
	}
	if v.isRevoked != nil {
		revoked, err := v.isRevoked(vc)
		if err != nil {
			return fail(ReasonRevocationUnavailable, err, "revocation check failed: %v", err)
		}
		if revoked {
			return fail(ReasonRevoked, nil, "revoked (serial %s, CA %q)", vc.SerialNumber, ca.Name)
		}
	}
	return vc, nil
}

// classify turns an x509 verification error into a *VerifyError.
func (v *Verifier) classify(leaf *x509.Certificate, presented []*x509.Certificate, now time.Time, err error,
	fail func(Reason, error, string, ...any) (VerifiedCert, error)) (VerifiedCert, error) {
	if invalid, ok := errors.AsType[x509.CertificateInvalidError](err); ok {
		switch invalid.Reason {
		case x509.Expired:
			if invalid.Cert != nil && now.Before(invalid.Cert.NotBefore) {
				return fail(ReasonNotYetValid, err, "CA %q not valid yet", invalid.Cert.Subject.CommonName)
			}
			return fail(ReasonExpired, err, "%v", err)
		case x509.IncompatibleUsage:
			return fail(ReasonKeyUsage, err, "not valid for client authentication")
		}
		return fail(ReasonInvalid, err, "%v", err)
	}
	if _, ok := errors.AsType[x509.UnknownAuthorityError](err); ok {
		// Go reports a chain that fails only because a CA in it is out of
		// its validity as an unknown authority; find that CA.
		if ca := v.invalidIssuer(leaf, presented, now); ca != nil {
			if now.Before(ca.NotBefore) {
				return fail(ReasonNotYetValid, err, "issuing CA %q not valid before %s",
					ca.Subject.CommonName, ca.NotBefore.UTC().Format(time.RFC3339))
			}
			return fail(ReasonExpired, err, "issuing CA %q expired at %s",
				ca.Subject.CommonName, ca.NotAfter.UTC().Format(time.RFC3339))
		}
		return fail(ReasonUnknownIssuer, err, "issuer %q is not a trusted CA", leaf.Issuer.String())
	}
	return fail(ReasonInvalid, err, "%v", err)
}

// invalidIssuer walks up from leaf through presented and configured CA
// certificates by signature and returns the first one outside its validity
// at now, or nil.
func (v *Verifier) invalidIssuer(leaf *x509.Certificate, presented []*x509.Certificate, now time.Time) *x509.Certificate {
	candidates := append(append([]*x509.Certificate(nil), presented...), v.known...)
	cur := leaf
	for range maxPresentedChain {
		var parent *x509.Certificate
		for _, c := range candidates {
			if c != nil && c != cur && string(c.RawSubject) == string(cur.RawIssuer) && cur.CheckSignatureFrom(c) == nil {
				parent = c
				break
			}
		}
		if parent == nil {
			return nil
		}
		if now.Before(parent.NotBefore) || now.After(parent.NotAfter) {
			return parent
		}
		if string(parent.RawSubject) == string(parent.RawIssuer) {
			return nil
		}
		cur = parent
	}
	return nil
}

// Attributes are the attributes of a distinguished name by the names AWS IoT
// policy variables use (CommonName, Country, Organization,
// OrganizationalUnit, DistinguishedNameQualifier, State, Locality,
// SerialNumber, Title, Surname, GivenName, Initials, Pseudonym,
// GenerationQualifier; also StreetAddress, PostalCode, EmailAddress), each
// with its values in certificate order.
type Attributes map[string][]string

// Get returns the first value of attribute name, or "".
func (a Attributes) Get(name string) string {
	if vs := a[name]; len(vs) > 0 {
		return vs[0]
	}
	return ""
}

// NameAttributes returns the attributes of a distinguished name. Attributes
// with other types or non-string values are left out.
func NameAttributes(n pkix.Name) Attributes {
	atvs := n.Names
	if len(atvs) == 0 { // a pkix.Name built in code rather than parsed
		for _, rdn := range n.ToRDNSequence() {
			atvs = append(atvs, rdn...)
		}
	}
	attrs := make(Attributes, len(atvs))
	for _, atv := range atvs {
		name := attributeName(atv.Type)
		s, ok := atv.Value.(string)
		if name == "" || !ok {
			continue
		}
		attrs[name] = append(attrs[name], s)
	}
	return attrs
}

func attributeName(oid asn1.ObjectIdentifier) string {
	if oid.Equal(asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}) {
		return "EmailAddress"
	}
	if len(oid) != 4 || oid[0] != 2 || oid[1] != 5 || oid[2] != 4 {
		return ""
	}
	switch oid[3] {
	case 3:
		return "CommonName"
	case 4:
		return "Surname"
	case 5:
		return "SerialNumber"
	case 6:
		return "Country"
	case 7:
		return "Locality"
	case 8:
		return "State"
	case 9:
		return "StreetAddress"
	case 10:
		return "Organization"
	case 11:
		return "OrganizationalUnit"
	case 12:
		return "Title"
	case 17:
		return "PostalCode"
	case 42:
		return "GivenName"
	case 43:
		return "Initials"
	case 44:
		return "GenerationQualifier"
	case 46:
		return "DistinguishedNameQualifier"
	case 65:
		return "Pseudonym"
	}
	return ""
}
