package pki

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

func pemCSRBytes(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func TestParseCSR(t *testing.T) {
	der := makeCSR(t, genKey(t, "p256"), &x509.CertificateRequest{Subject: pkix.Name{CommonName: "dev-1"}})
	pemCSR := pemCSRBytes(der)
	for _, tc := range []struct {
		name       string
		in         []byte
		wantReason Reason // "" = success
	}{
		{"PEM", pemCSR, ""},
		{"DER", der, ""},
		{"legacy PEM type", pem.EncodeToMemory(&pem.Block{Type: "NEW CERTIFICATE REQUEST", Bytes: der}), ""},
		{"PEM with surrounding text and CRLF", append(append([]byte("Certificate Request:\r\n"), bytes.ReplaceAll(pemCSR, []byte("\n"), []byte("\r\n"))...), ' ', '\n'), ""},
		{"empty", nil, ReasonMalformed},
		{"white space", []byte(" \n\t"), ReasonMalformed},
		{"garbage", []byte("hello, I am a device"), ReasonMalformed},
		{"garbage PEM", []byte("-----BEGIN CERTIFICATE REQUEST-----\n!!!!\n-----END CERTIFICATE REQUEST-----\n"), ReasonMalformed},
		{"PEM of wrong type", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), ReasonMalformed},
		{"two PEM blocks", append(bytes.Clone(pemCSR), pemCSR...), ReasonMalformed},
		{"truncated DER", der[:len(der)-10], ReasonMalformed},
		{"DER with trailing data", append(bytes.Clone(der), 0), ReasonMalformed},
		{"PEM with bad DER", pemCSRBytes([]byte{0x30, 0x03, 0x02, 0x01, 0x01}), ReasonMalformed},
		{"oversized", append(bytes.Clone(pemCSR), bytes.Repeat([]byte(" "), MaxCSRSize)...), ReasonTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			csr, err := ParseCSR(tc.in)
			if got := ReasonOf(err); got != tc.wantReason {
				t.Fatalf("ParseCSR reason = %q (err %v), want %q", got, err, tc.wantReason)
			}
			if tc.wantReason != "" {
				if re, ok := errors.AsType[*RequestError](err); !ok || re.Detail == "" {
					t.Errorf("ParseCSR error %v: want *RequestError with detail", err)
				}
				return
			}
			if got := csr.Subject.CommonName; got != "dev-1" {
				t.Errorf("CN = %q, want %q", got, "dev-1")
			}
		})
	}
}

func TestSignCSR(t *testing.T) {
	ca := newTestCA(t, CAOptions{Intermediate: true})
	cnTmpl := func(cn string) *x509.CertificateRequest {
		return &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}
	}
	p256 := genKey(t, "p256")
	badSig := makeCSR(t, p256, cnTmpl("dev-1"))
	badSig[len(badSig)-1] ^= 0xff
	// The CSR asks for fields the CA must not copy.
	greedy := makeCSR(t, p256, &x509.CertificateRequest{
		Subject:        pkix.Name{CommonName: "dev-1", Organization: []string{"Admins"}, OrganizationalUnit: []string{"root"}},
		DNSNames:       []string{"bank.example"},
		URIs:           []*url.URL{{Scheme: "urn", Opaque: "gatehouse:thing:someone-else"}},
		EmailAddresses: []string{"a@b.example"},
	})
	for _, tc := range []struct {
		name       string
		csr        []byte
		opts       IssueOptions
		wantReason Reason
	}{
		{name: "ECDSA P-256", csr: makeCSR(t, p256, cnTmpl("dev-1")), opts: IssueOptions{ExpectedCommonName: "dev-1"}},
		{name: "ECDSA P-384", csr: makeCSR(t, genKey(t, "p384"), cnTmpl("dev-1"))},
		{name: "Ed25519", csr: makeCSR(t, genKey(t, "ed25519"), cnTmpl("dev-1"))},
		{name: "RSA 2048", csr: makeCSR(t, genKey(t, "rsa2048"), cnTmpl("dev-1"))},
		{name: "RSA 2048 SHA-512", csr: makeCSR(t, genKey(t, "rsa2048"), &x509.CertificateRequest{Subject: pkix.Name{CommonName: "dev-1"}, SignatureAlgorithm: x509.SHA512WithRSA})},
		{name: "greedy CSR", csr: greedy, opts: IssueOptions{ThingName: "dev-1"}},
		{name: "server auth", csr: makeCSR(t, p256, cnTmpl("gw-1")), opts: IssueOptions{ServerAuth: true, DNSNames: []string{"gw-1.local"}}},
		{name: "bad signature", csr: badSig, wantReason: ReasonSignature},
		{name: "RSA 1024", csr: makeCSR(t, genKey(t, "rsa1024"), cnTmpl("dev-1")), wantReason: ReasonWeakKey},
		{name: "ECDSA P-521", csr: makeCSR(t, genKey(t, "p521"), cnTmpl("dev-1")), wantReason: ReasonKeyType},
		{name: "wrong CN", csr: makeCSR(t, p256, cnTmpl("dev-2")), opts: IssueOptions{ExpectedCommonName: "dev-1"}, wantReason: ReasonSubject},
		{name: "no CN", csr: makeCSR(t, p256, &x509.CertificateRequest{Subject: pkix.Name{Organization: []string{"x"}}}), wantReason: ReasonSubject},
		{name: "long CN", csr: makeCSR(t, p256, cnTmpl(strings.Repeat("a", 65))), wantReason: ReasonSubject},
		{name: "control character in CN", csr: makeCSR(t, p256, cnTmpl("dev\n1")), wantReason: ReasonSubject},
		{name: "validity too long", csr: makeCSR(t, p256, cnTmpl("dev-1")), opts: IssueOptions{Validity: DefaultMaxLeafValidity + time.Hour}, wantReason: ReasonValidity},
		{name: "negative validity", csr: makeCSR(t, p256, cnTmpl("dev-1")), opts: IssueOptions{Validity: -time.Hour}, wantReason: ReasonValidity},
		{name: "bad DNS name", csr: makeCSR(t, p256, cnTmpl("dev-1")), opts: IssueOptions{DNSNames: []string{"a b"}}, wantReason: ReasonName},
		{name: "bad thing name", csr: makeCSR(t, p256, cnTmpl("dev-1")), opts: IssueOptions{ThingName: "a\x00b"}, wantReason: ReasonName},
	} {
		t.Run(tc.name, func(t *testing.T) {
			csr := parseCSR(t, tc.csr)
			cert, err := ca.SignCSR(csr, tc.opts)
			if got := ReasonOf(err); got != tc.wantReason {
				t.Fatalf("SignCSR reason = %q (err %v), want %q", got, err, tc.wantReason)
			}
			if tc.wantReason != "" {
				return
			}
			if !sameKey(cert.PublicKey, csr.PublicKey) {
				t.Errorf("certificate key differs from CSR key")
			}
			if err := cert.CheckSignatureFrom(ca.Certificate()); err != nil {
				t.Errorf("certificate not signed by issuing CA: %v", err)
			}
			if got, want := cert.Subject.CommonName, csr.Subject.CommonName; got != want {
				t.Errorf("CN = %q, want %q", got, want)
			}
			if len(cert.Subject.Organization) != 0 || len(cert.Subject.OrganizationalUnit) != 0 || len(cert.EmailAddresses) != 0 {
				t.Errorf("subject %v / emails %v copied from CSR", cert.Subject, cert.EmailAddresses)
			}
			if got, want := cert.DNSNames, tc.opts.DNSNames; !slices.Equal(got, want) {
				t.Errorf("DNSNames = %v, want %v", got, want)
			}
			wantEKU := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
			if tc.opts.ServerAuth {
				wantEKU = append(wantEKU, x509.ExtKeyUsageServerAuth)
			}
			if !slices.Equal(cert.ExtKeyUsage, wantEKU) {
				t.Errorf("ExtKeyUsage = %v, want %v", cert.ExtKeyUsage, wantEKU)
			}
			if cert.KeyUsage != x509.KeyUsageDigitalSignature {
				t.Errorf("KeyUsage = %b, want digitalSignature", cert.KeyUsage)
			}
			if cert.IsCA || !cert.BasicConstraintsValid {
				t.Errorf("IsCA = %v, BasicConstraintsValid = %v; want false, true", cert.IsCA, cert.BasicConstraintsValid)
			}
			if got, want := cert.NotAfter, t0.Add(DefaultLeafValidity); !got.Equal(want) {
				t.Errorf("NotAfter = %v, want %v", got, want)
			}
			if got, want := cert.NotBefore, t0.Add(-backdate); !got.Equal(want) {
				t.Errorf("NotBefore = %v, want %v", got, want)
			}
			var wantURIs []string
			if tc.opts.ThingName != "" {
				wantURIs = []string{"urn:gatehouse:thing:" + tc.opts.ThingName}
			}
			var gotURIs []string
			for _, u := range cert.URIs {
				gotURIs = append(gotURIs, u.String())
			}
			if !slices.Equal(gotURIs, wantURIs) {
				t.Errorf("URIs = %v, want %v", gotURIs, wantURIs)
			}
		})
	}
}

func TestSignCSRSerials(t *testing.T) {
	ca := newTestCA(t, CAOptions{})
	csr := parseCSR(t, makeCSR(t, genKey(t, "p256"), &x509.CertificateRequest{Subject: pkix.Name{CommonName: "dev-1"}}))
	seen := make(map[string]bool)
	for range 20 {
		cert, err := ca.SignCSR(csr, IssueOptions{})
		if err != nil {
			t.Fatal(err)
		}
		s := cert.SerialNumber
		if s.Sign() <= 0 || s.BitLen() > 128 {
			t.Errorf("serial %x: sign %d, %d bits; want positive, at most 128 bits", s, s.Sign(), s.BitLen())
		}
		if seen[s.String()] {
			t.Errorf("serial %x issued twice", s)
		}
		seen[s.String()] = true
	}
}

// fixedReader returns the same byte forever: a deterministic serial source.
type fixedReader byte

func (r fixedReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}

func TestSerialFromInjectedRand(t *testing.T) {
	ca := newTestCA(t, CAOptions{Settings: Settings{Rand: fixedReader(0xab)}})
	kp, err := ca.IssueKeyPair("dev-1", IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := new(big.Int).SetBytes(bytes.Repeat([]byte{0xab}, 16))
	if kp.Certificate.SerialNumber.Cmp(want) != 0 {
		t.Errorf("serial = %x, want %x", kp.Certificate.SerialNumber, want)
	}
	if s, err := newSerial(fixedReader(0)); err == nil {
		t.Errorf("newSerial(all-zero source) = %v, nil; want error", s)
	}
}

func TestSignCSRValidityBounds(t *testing.T) {
	clk := newClock()
	ca := newTestCA(t, CAOptions{Intermediate: true, IntermediateValidity: 30 * 24 * time.Hour,
		Settings: Settings{Now: clk.Now, MaxLeafValidity: 100 * 24 * time.Hour}})
	csr := parseCSR(t, makeCSR(t, genKey(t, "p256"), &x509.CertificateRequest{Subject: pkix.Name{CommonName: "dev-1"}}))

	cert, err := ca.SignCSR(csr, IssueOptions{Validity: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cert.NotAfter, t0.Add(time.Hour); !got.Equal(want) {
		t.Errorf("NotAfter = %v, want %v", got, want)
	}
	cert, err = ca.SignCSR(csr, IssueOptions{Validity: 60 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cert.NotAfter, ca.Certificate().NotAfter; !got.Equal(want) {
		t.Errorf("NotAfter = %v, want cut to issuer's %v", got, want)
	}
	clk.Set(ca.Certificate().NotAfter.Add(time.Second))
	if _, err := ca.SignCSR(csr, IssueOptions{}); err == nil || ReasonOf(err) != "" {
		t.Errorf("SignCSR with expired issuing CA: err = %v, want a non-request error", err)
	}
}

func TestCheckPublicKey(t *testing.T) {
	big9000 := new(big.Int).Lsh(big.NewInt(1), 9000)
	x25519, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		pub  any
		want Reason
	}{
		{"RSA 9001 bits", &rsa.PublicKey{N: big9000, E: 65537}, ReasonWeakKey},
		{"RSA without modulus", &rsa.PublicKey{E: 65537}, ReasonKeyType},
		{"nil", nil, ReasonKeyType},
		{"X25519", x25519.PublicKey(), ReasonKeyType},
		{"short Ed25519", []byte{1, 2, 3}, ReasonKeyType},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ReasonOf(checkPublicKey(tc.pub)); got != tc.want {
				t.Errorf("checkPublicKey reason = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestSignCSRNil(t *testing.T) {
	ca := newTestCA(t, CAOptions{})
	if _, err := ca.SignCSR(nil, IssueOptions{}); ReasonOf(err) != ReasonMalformed {
		t.Errorf("SignCSR(nil) error = %v, want ReasonMalformed", err)
	}
}

func TestIssueKeyPair(t *testing.T) {
	ca := newTestCA(t, CAOptions{})
	for _, tc := range []struct {
		name string
		alg  KeyAlgorithm
	}{{"default", ""}, {"P-384", ECDSAP384}, {"Ed25519", Ed25519}, {"RSA", RSA2048}} {
		t.Run(tc.name, func(t *testing.T) {
			kp, err := ca.IssueKeyPair("dev-1", IssueOptions{KeyAlgorithm: tc.alg, ThingName: "dev-1",
				Subject: pkix.Name{Organization: []string{"Acme"}, CommonName: "ignored"}})
			if err != nil {
				t.Fatalf("IssueKeyPair: %v", err)
			}
			certs, err := ParseCertificatesPEM(kp.CertificatePEM)
			if err != nil || len(certs) != 1 {
				t.Fatalf("ParseCertificatesPEM(cert) = %d certs, %v; want 1, nil", len(certs), err)
			}
			cert := certs[0]
			if got, want := cert.Subject.CommonName, "dev-1"; got != want {
				t.Errorf("CN = %q, want %q", got, want)
			}
			if got, want := cert.Subject.Organization, []string{"Acme"}; !slices.Equal(got, want) {
				t.Errorf("O = %v, want %v", got, want)
			}
			if got, want := kp.Fingerprint, Fingerprint(cert); got != want {
				t.Errorf("Fingerprint = %s, want %s", got, want)
			}
			key, err := ParsePrivateKeyPEM(kp.PrivateKeyPEM)
			if err != nil {
				t.Fatalf("ParsePrivateKeyPEM: %v", err)
			}
			if !sameKey(key.Public(), cert.PublicKey) {
				t.Errorf("private key does not match certificate")
			}
			if !bytes.HasPrefix(kp.PrivateKeyPEM, []byte("-----BEGIN PRIVATE KEY-----")) {
				t.Errorf("private key PEM is not PKCS#8: %.30s", kp.PrivateKeyPEM)
			}
			block, _ := pem.Decode(kp.PublicKeyPEM)
			if block == nil || block.Type != "PUBLIC KEY" {
				t.Fatalf("public key PEM: %q", kp.PublicKeyPEM)
			}
			pub, err := x509.ParsePKIXPublicKey(block.Bytes)
			if err != nil || !sameKey(pub, cert.PublicKey) {
				t.Errorf("public key PEM = %v, %v; want the certificate's key", pub, err)
			}
		})
	}
	if _, err := ca.IssueKeyPair("dev-1", IssueOptions{ExpectedCommonName: "dev-2"}); ReasonOf(err) != ReasonSubject {
		t.Errorf("IssueKeyPair with other expected name: err = %v, want ReasonSubject", err)
	}
	if _, err := ca.IssueKeyPair("", IssueOptions{}); ReasonOf(err) != ReasonSubject {
		t.Errorf("IssueKeyPair with empty name: err = %v, want ReasonSubject", err)
	}
	if _, err := ca.IssueKeyPair("dev-1", IssueOptions{KeyAlgorithm: "dsa"}); err == nil {
		t.Errorf("IssueKeyPair with unknown algorithm succeeded")
	}
}

func TestThingURI(t *testing.T) {
	for _, name := range []string{"pump-1", "a:b_c", "with space/and?query#frag%", "ünïcode"} {
		u, err := ThingURI(name)
		if err != nil {
			t.Fatalf("ThingURI(%q): %v", name, err)
		}
		parsed, err := url.Parse(u.String())
		if err != nil {
			t.Fatalf("url.Parse(%q): %v", u, err)
		}
		if got := thingNameFromURIs([]*url.URL{parsed}); got != name {
			t.Errorf("thing name of %s = %q, want %q", u, got, name)
		}
	}
	if got := thingNameFromURIs([]*url.URL{{Scheme: "https", Host: "x"}, {Scheme: "urn", Opaque: "other:thing:x"}}); got != "" {
		t.Errorf("thingNameFromURIs(foreign URIs) = %q, want empty", got)
	}
}

func TestRequestErrorMessage(t *testing.T) {
	err := error(requestErr(ReasonWeakKey, nil, "RSA key of %d bits", 1024))
	if got, want := err.Error(), "pki: certificate request rejected (weak-key): RSA key of 1024 bits"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}
