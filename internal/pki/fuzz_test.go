package pki

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func FuzzParseCSR(f *testing.F) {
	der := makeCSR(f, genKey(f, "p256"), &x509.CertificateRequest{Subject: pkix.Name{CommonName: "dev-1"}})
	f.Add(der)
	f.Add(pemCSRBytes(der))
	f.Add(makeCSR(f, genKey(f, "ed25519"), &x509.CertificateRequest{Subject: pkix.Name{CommonName: "dev-2", Organization: []string{"o"}}, DNSNames: []string{"x.example"}}))
	f.Add([]byte(""))
	f.Add([]byte("-----BEGIN CERTIFICATE REQUEST-----\n-----END CERTIFICATE REQUEST-----\n"))
	f.Add([]byte{0x30, 0x80})
	f.Add([]byte{0x30, 0x03, 0x02, 0x01, 0x01})
	ca := newTestCA(f, CAOptions{})
	f.Fuzz(func(t *testing.T, data []byte) {
		csr, err := ParseCSR(data)
		if err != nil {
			if _, ok := errors.AsType[*RequestError](err); !ok {
				t.Fatalf("ParseCSR error %v (%T), want *RequestError", err, err)
			}
			if csr != nil {
				t.Fatalf("ParseCSR returned a CSR with error %v", err)
			}
			return
		}
		if len(data) > MaxCSRSize {
			t.Fatalf("ParseCSR accepted %d bytes, limit %d", len(data), MaxCSRSize)
		}
		// Whatever parses must go through the issuance policy without
		// panicking, and anything issued must carry the CSR's key and name.
		cert, err := ca.SignCSR(csr, IssueOptions{})
		if err != nil {
			if ReasonOf(err) == "" {
				t.Fatalf("SignCSR error %v, want *RequestError", err)
			}
			return
		}
		if !sameKey(cert.PublicKey, csr.PublicKey) || cert.Subject.CommonName != csr.Subject.CommonName {
			t.Fatalf("issued certificate does not match the CSR")
		}
	})
}

func FuzzParseFingerprint(f *testing.F) {
	const fp = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	f.Add(fp)
	f.Add(strings.ToUpper(fp))
	f.Add("SHA256 Fingerprint=01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF")
	f.Add("sha256:" + fp)
	f.Add("")
	f.Add(":::")
	f.Add(strings.Repeat("ab:", 32))
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseFingerprint(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidFingerprint) {
				t.Fatalf("ParseFingerprint(%q) error %v, want ErrInvalidFingerprint", s, err)
			}
			return
		}
		if len(got) != FingerprintLen || strings.ToLower(got) != got {
			t.Fatalf("ParseFingerprint(%q) = %q, want 64 lowercase hex digits", s, got)
		}
		if _, err := hex.DecodeString(got); err != nil {
			t.Fatalf("ParseFingerprint(%q) = %q, not hex: %v", s, got, err)
		}
		// Normal form is a fixed point, and the colon form maps to it.
		if again, err := ParseFingerprint(got); err != nil || again != got {
			t.Fatalf("ParseFingerprint(%q) = %q, %v; want %q", got, again, err, got)
		}
		pairs := make([]string, 0, FingerprintLen/2)
		for i := 0; i < len(got); i += 2 {
			pairs = append(pairs, strings.ToUpper(got[i:i+2]))
		}
		if colon, err := ParseFingerprint(strings.Join(pairs, ":")); err != nil || colon != got {
			t.Fatalf("colon form of %q = %q, %v; want %q", got, colon, err, got)
		}
	})
}
