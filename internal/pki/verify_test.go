package pki

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestVerify(t *testing.T) {
	own := newTestCA(t, CAOptions{Intermediate: true})
	ownFlat := newTestCA(t, CAOptions{CommonName: "Flat Root"})
	mfg := newTestCA(t, CAOptions{CommonName: "Acme Devices Root", IntermediateCommonName: "Acme Factory 7", Intermediate: true})
	lenient := newTestCA(t, CAOptions{CommonName: "Lenient Root"})
	stranger := newTestCA(t, CAOptions{CommonName: "Stranger Root", Intermediate: true})

	ownLeaf, err := own.IssueKeyPair("pump-1", IssueOptions{ThingName: "pump-1",
		Subject: pkix.Name{Organization: []string{"Tenant A"}, OrganizationalUnit: []string{"Pumps", "North"}}})
	if err != nil {
		t.Fatal(err)
	}
	flatLeaf, err := ownFlat.IssueKeyPair("pump-2", IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mfgLeaf, err := mfg.IssueKeyPair("SN-0042", IssueOptions{Subject: pkix.Name{
		Organization: []string{"Acme"}, Country: []string{"DE"}, Province: []string{"Bavaria"},
		SerialNumber: "0042", ExtraNames: []pkix.AttributeTypeAndValue{{Type: asn1.ObjectIdentifier{2, 5, 4, 12}, Value: "sensor"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	mfgWithURN, err := mfg.IssueKeyPair("SN-0043", IssueOptions{ThingName: "pump-1"})
	if err != nil {
		t.Fatal(err)
	}
	strangerLeaf, err := stranger.IssueKeyPair("pump-1", IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	noEKU := func(ca *CA) *x509.Certificate {
		return rawLeaf(t, ca, &x509.Certificate{Subject: pkix.Name{CommonName: "idevid"}, NotBefore: t0.Add(-time.Hour),
			NotAfter: t0.Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature, BasicConstraintsValid: true})
	}
	serverOnly := rawLeaf(t, own, &x509.Certificate{NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	// A leaf that outlives its (already expired) intermediate.
	shortInter := newTestCA(t, CAOptions{CommonName: "Short Root", Intermediate: true, IntermediateValidity: time.Hour})
	outliving := rawLeaf(t, shortInter, &x509.Certificate{NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(48 * time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})

	// A root that expires before its leaf.
	shortRoot := newTestCA(t, CAOptions{CommonName: "Short-lived Root", Validity: time.Hour})
	outlivingRoot := rawLeaf(t, shortRoot, &x509.Certificate{NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(48 * time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	// A sub-CA under our intermediate, which has MaxPathLen 0.
	subCA, subKey := rawCert(t, own.chain[0], own.signer, &x509.Certificate{Subject: pkix.Name{CommonName: "Rogue Sub CA"},
		NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign})
	underSub, _ := rawCert(t, subCA, subKey, &x509.Certificate{NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})

	ownTrusted := own.Trusted()
	// The flat CA is a second "own" root only in the test that uses it.
	mfgTrusted := TrustedCA{Name: "acme", Roots: []*x509.Certificate{mfg.Root()}}
	lenientTrusted := TrustedCA{Name: "lenient", Roots: []*x509.Certificate{lenient.Root()}, AllowMissingEKU: true}
	shortTrusted := TrustedCA{Name: "short", Roots: []*x509.Certificate{shortInter.Root()}}
	shortRootTrusted := TrustedCA{Name: "short-root", Roots: []*x509.Certificate{shortRoot.Root()}}
	revokedFP := ""
	v, err := NewVerifier(VerifierOptions{
		Own:           &ownTrusted,
		Manufacturers: []TrustedCA{mfgTrusted, lenientTrusted, shortTrusted, shortRootTrusted},
		IsRevoked: func(vc VerifiedCert) (bool, error) {
			if vc.Subject.Get("CommonName") == "revocation-db-down" {
				return false, errors.New("db down")
			}
			return vc.Fingerprint == revokedFP, nil
		},
	})
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	revoked, err := own.IssueKeyPair("stolen", IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	revokedFP = revoked.Fingerprint
	dbDown, err := own.IssueKeyPair("revocation-db-down", IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name        string
		verifier    *Verifier
		chain       []*x509.Certificate
		now         time.Time
		wantReason  Reason
		wantCA      string
		wantSubject map[string][]string
		wantThing   string
	}{
		{name: "own leaf, intermediate configured", chain: []*x509.Certificate{ownLeaf.Certificate}, wantCA: OwnCAName,
			wantSubject: map[string][]string{"CommonName": {"pump-1"}, "Organization": {"Tenant A"}, "OrganizationalUnit": {"North", "Pumps"}}, // DER sorts a SET
			wantThing:   "pump-1"},
		{name: "own leaf with intermediate presented", chain: []*x509.Certificate{ownLeaf.Certificate, own.Certificate()}, wantCA: OwnCAName, wantThing: "pump-1"},
		{name: "manufacturer chain", chain: []*x509.Certificate{mfgLeaf.Certificate, mfg.Certificate()}, wantCA: "acme",
			wantSubject: map[string][]string{"CommonName": {"SN-0042"}, "Organization": {"Acme"}, "Country": {"DE"},
				"State": {"Bavaria"}, "SerialNumber": {"0042"}, "Title": {"sensor"}}},
		{name: "manufacturer leaf naming one of our things", chain: []*x509.Certificate{mfgWithURN.Certificate, mfg.Certificate()}, wantCA: "acme", wantThing: ""},
		{name: "manufacturer leaf without its intermediate", chain: []*x509.Certificate{mfgLeaf.Certificate}, wantReason: ReasonUnknownIssuer},
		{name: "unknown issuer", chain: []*x509.Certificate{strangerLeaf.Certificate, stranger.Certificate()}, wantReason: ReasonUnknownIssuer},
		{name: "stranger's leaf with our intermediate", chain: []*x509.Certificate{strangerLeaf.Certificate, own.Certificate()}, wantReason: ReasonUnknownIssuer},
		{name: "expired", chain: []*x509.Certificate{ownLeaf.Certificate}, now: ownLeaf.Certificate.NotAfter.Add(time.Second), wantReason: ReasonExpired},
		{name: "not yet valid", chain: []*x509.Certificate{ownLeaf.Certificate}, now: t0.Add(-time.Hour), wantReason: ReasonNotYetValid},
		{name: "intermediate expired", chain: []*x509.Certificate{outliving, shortInter.Certificate()}, now: t0.Add(2 * time.Hour), wantReason: ReasonExpired},
		{name: "intermediate not yet valid", chain: []*x509.Certificate{outliving, shortInter.Certificate()}, now: t0.Add(-2 * time.Minute), wantReason: ReasonNotYetValid},
		{name: "root expired", chain: []*x509.Certificate{outlivingRoot}, now: t0.Add(2 * time.Hour), wantReason: ReasonExpired},
		{name: "path length exceeded", chain: []*x509.Certificate{underSub, subCA}, wantReason: ReasonInvalid},
		{name: "intermediate valid", chain: []*x509.Certificate{outliving, shortInter.Certificate()}, wantCA: "short"},
		{name: "no EKU, strict CA", chain: []*x509.Certificate{noEKU(own)}, wantReason: ReasonKeyUsage},
		{name: "no EKU, lenient CA", chain: []*x509.Certificate{noEKU(lenient)}, wantCA: "lenient"},
		{name: "serverAuth only", chain: []*x509.Certificate{serverOnly}, wantReason: ReasonKeyUsage},
		{name: "CA certificate as leaf", chain: []*x509.Certificate{own.Certificate()}, wantReason: ReasonKeyUsage},
		{name: "revoked", chain: []*x509.Certificate{revoked.Certificate}, wantReason: ReasonRevoked},
		{name: "revocation unavailable", chain: []*x509.Certificate{dbDown.Certificate}, wantReason: ReasonRevocationUnavailable},
		{name: "empty chain", chain: nil, wantReason: ReasonInvalid},
		{name: "too long chain", chain: slices.Repeat([]*x509.Certificate{ownLeaf.Certificate}, maxPresentedChain+1), wantReason: ReasonInvalid},
		{name: "flat CA not trusted here", chain: []*x509.Certificate{flatLeaf.Certificate}, wantReason: ReasonUnknownIssuer},
	} {
		t.Run(tc.name, func(t *testing.T) {
			verifier := v
			if tc.verifier != nil {
				verifier = tc.verifier
			}
			now := tc.now
			if now.IsZero() {
				now = t0
			}
			got, err := verifier.Verify(tc.chain, now)
			if gotReason := ReasonOf(err); gotReason != tc.wantReason {
				t.Fatalf("Verify reason = %q (err %v), want %q", gotReason, err, tc.wantReason)
			}
			if tc.wantReason != "" {
				ve, ok := errors.AsType[*VerifyError](err)
				if !ok {
					t.Fatalf("Verify error %T, want *VerifyError", err)
				}
				if len(tc.chain) > 0 && ve.Fingerprint != Fingerprint(tc.chain[0]) {
					t.Errorf("VerifyError.Fingerprint = %q, want the leaf's", ve.Fingerprint)
				}
				return
			}
			leaf := tc.chain[0]
			if got.CA != tc.wantCA {
				t.Errorf("CA = %q, want %q", got.CA, tc.wantCA)
			}
			if got.Manufacturer != (tc.wantCA != OwnCAName) {
				t.Errorf("Manufacturer = %v for CA %q", got.Manufacturer, tc.wantCA)
			}
			if got.Fingerprint != Fingerprint(leaf) {
				t.Errorf("Fingerprint = %s, want %s", got.Fingerprint, Fingerprint(leaf))
			}
			if got.SerialNumber != leaf.SerialNumber.Text(16) {
				t.Errorf("SerialNumber = %s, want %s", got.SerialNumber, leaf.SerialNumber.Text(16))
			}
			if n := len(got.Chain); n < 2 || got.Chain[0] != leaf || !got.Chain[n-1].IsCA {
				t.Errorf("Chain has %d certificates, want leaf ... anchor", n)
			}
			for k, want := range tc.wantSubject {
				if !slices.Equal(got.Subject[k], want) {
					t.Errorf("Subject[%s] = %v, want %v", k, got.Subject[k], want)
				}
			}
			if got.Issuer.Get("CommonName") != leaf.Issuer.CommonName {
				t.Errorf("Issuer CommonName = %q, want %q", got.Issuer.Get("CommonName"), leaf.Issuer.CommonName)
			}
			if got.ThingName != tc.wantThing {
				t.Errorf("ThingName = %q, want %q", got.ThingName, tc.wantThing)
			}
		})
	}
}

func TestVerifyErrorMessage(t *testing.T) {
	for _, tc := range []struct {
		err  *VerifyError
		want string
	}{
		{&VerifyError{Reason: ReasonRevoked, Fingerprint: "ab", Detail: "revoked"}, "pki: certificate ab rejected (revoked): revoked"},
		{&VerifyError{Reason: ReasonInvalid, Detail: "no certificate"}, "pki: certificate rejected (invalid): no certificate"},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
	cause := errors.New("db down")
	if err := error(&VerifyError{Reason: ReasonRevocationUnavailable, Err: cause}); !errors.Is(err, cause) {
		t.Errorf("VerifyError does not unwrap to its cause")
	}
}

func TestVerifyFlatOwnCA(t *testing.T) {
	ca := newTestCA(t, CAOptions{})
	trusted := ca.Trusted()
	trusted.Name = "ignored"
	v, err := NewVerifier(VerifierOptions{Own: &trusted})
	if err != nil {
		t.Fatal(err)
	}
	kp, err := ca.IssueKeyPair("dev-1", IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := v.Verify([]*x509.Certificate{kp.Certificate}, t0)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if got.CA != OwnCAName || got.Manufacturer {
		t.Errorf("CA = %q, Manufacturer = %v; want %q, false", got.CA, got.Manufacturer, OwnCAName)
	}
}

func TestNewVerifierRejects(t *testing.T) {
	ca := newTestCA(t, CAOptions{Intermediate: true})
	kp, err := ca.IssueKeyPair("dev-1", IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	root := []*x509.Certificate{ca.Root()}
	own := ca.Trusted()
	for _, tc := range []struct {
		name string
		opts VerifierOptions
		want string
	}{
		{"nothing trusted", VerifierOptions{}, "trusts no CA"},
		{"reserved name", VerifierOptions{Manufacturers: []TrustedCA{{Name: OwnCAName, Roots: root}}}, "reserved"},
		{"empty name", VerifierOptions{Manufacturers: []TrustedCA{{Roots: root}}}, "reserved"},
		{"duplicate name", VerifierOptions{Manufacturers: []TrustedCA{{Name: "a", Roots: root}, {Name: "a", Roots: root}}}, "duplicate"},
		{"same root twice", VerifierOptions{Own: &own, Manufacturers: []TrustedCA{{Name: "a", Roots: root}}}, "already belongs"},
		{"no roots", VerifierOptions{Manufacturers: []TrustedCA{{Name: "a"}}}, "no root"},
		{"leaf as root", VerifierOptions{Manufacturers: []TrustedCA{{Name: "a", Roots: []*x509.Certificate{kp.Certificate}}}}, "not a CA"},
		{"leaf as intermediate", VerifierOptions{Manufacturers: []TrustedCA{{Name: "a", Roots: root, Intermediates: []*x509.Certificate{kp.Certificate}}}}, "not a CA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewVerifier(tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("NewVerifier error = %v, want containing %q", err, tc.want)
			}
		})
	}
}

func TestNameAttributes(t *testing.T) {
	built := pkix.Name{CommonName: "x", Country: []string{"US"}, Locality: []string{"Seattle"}, StreetAddress: []string{"1 Main"},
		PostalCode: []string{"98101"}, ExtraNames: []pkix.AttributeTypeAndValue{
			{Type: asn1.ObjectIdentifier{2, 5, 4, 46}, Value: "dnq"},
			{Type: asn1.ObjectIdentifier{1, 2, 3}, Value: "unknown"},
			{Type: asn1.ObjectIdentifier{2, 5, 4, 4}, Value: 42},
		}}
	got := NameAttributes(built)
	want := Attributes{"CommonName": {"x"}, "Country": {"US"}, "Locality": {"Seattle"}, "StreetAddress": {"1 Main"},
		"PostalCode": {"98101"}, "DistinguishedNameQualifier": {"dnq"}}
	if len(got) != len(want) {
		t.Errorf("NameAttributes = %v, want %v", got, want)
	}
	for k, v := range want {
		if !slices.Equal(got[k], v) {
			t.Errorf("NameAttributes[%s] = %v, want %v", k, got[k], v)
		}
	}
	if got.Get("Missing") != "" {
		t.Errorf("Get(Missing) = %q, want empty", got.Get("Missing"))
	}
}
