package pki

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"testing"
)

// BenchmarkSignCSR measures CSR -> certificate with an ECDSA P-256 CA and a
// P-256 device key: CSR signature check, policy, signing (Go re-verifies the
// signature it makes) and parsing the result. Target: >= 3,000/s per core,
// i.e. <= 333 µs/op with -cpu 1.
func BenchmarkSignCSR(b *testing.B) {
	ca := newTestCA(b, CAOptions{Intermediate: true})
	csr := parseCSR(b, makeCSR(b, genKey(b, "p256"), &x509.CertificateRequest{Subject: pkix.Name{CommonName: "dev-1"}}))
	opts := IssueOptions{ExpectedCommonName: "dev-1", ThingName: "dev-1"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ca.SignCSR(csr, opts); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseAndSignCSR adds parsing the PEM CSR, as a request handler
// does.
func BenchmarkParseAndSignCSR(b *testing.B) {
	ca := newTestCA(b, CAOptions{Intermediate: true})
	pemCSR := pemCSRBytes(makeCSR(b, genKey(b, "p256"), &x509.CertificateRequest{Subject: pkix.Name{CommonName: "dev-1"}}))
	opts := IssueOptions{ExpectedCommonName: "dev-1", ThingName: "dev-1"}
	b.ReportAllocs()
	for b.Loop() {
		csr, err := ParseCSR(pemCSR)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := ca.SignCSR(csr, opts); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIssueKeyPair measures server-side key generation + issuance +
// PEM encoding (the registration gateway without a CSR).
func BenchmarkIssueKeyPair(b *testing.B) {
	ca := newTestCA(b, CAOptions{Intermediate: true})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ca.IssueKeyPair("dev-1", IssueOptions{ThingName: "dev-1"}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerify measures verifying a leaf presented without its
// intermediate against own + manufacturer CAs.
func BenchmarkVerify(b *testing.B) {
	ca := newTestCA(b, CAOptions{Intermediate: true})
	mfg := newTestCA(b, CAOptions{CommonName: "Mfg Root"})
	own := ca.Trusted()
	v, err := NewVerifier(VerifierOptions{Own: &own, Manufacturers: []TrustedCA{{Name: "mfg", Roots: []*x509.Certificate{mfg.Root()}}}})
	if err != nil {
		b.Fatal(err)
	}
	kp, err := ca.IssueKeyPair("dev-1", IssueOptions{ThingName: "dev-1"})
	if err != nil {
		b.Fatal(err)
	}
	chain := []*x509.Certificate{kp.Certificate}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(chain, t0); err != nil {
			b.Fatal(err)
		}
	}
}
