package certs_test

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/certs"
	"github.com/gatehouse-iot/gatehouse/internal/pki"
)

// The benchmarks below measure CSR -> certificate (target: >= 3,000/s per
// core, i.e. <= 333 µs/op with -cpu 1) against the raw cost of
// x509.CreateCertificate with the same keys, in the same run:
//
//	go test ./internal/certs -run '^$' -bench . -cpu 1 -benchmem

// BenchmarkRawCreateCertificate is the floor: x509.CreateCertificate of a
// P-256 leaf by a P-256 intermediate, nothing else.
func BenchmarkRawCreateCertificate(b *testing.B) {
	ca, err := pki.NewCA(pki.CAOptions{Intermediate: true})
	if err != nil {
		b.Fatal(err)
	}
	m, _ := ca.Marshal()
	signer, _ := pki.ParsePKCS8PrivateKey(m.Key)
	pub := p256(b).Public()
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "dev-1"}, NotBefore: now, NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Certificate(), pub, signer); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSignCSR is what the service does per CSR before storing:
// parse the PEM CSR, check its signature and key, sign, parse the result
// and build the certificate record (fingerprint, PEM).
func BenchmarkSignCSR(b *testing.B) {
	f := newFixture(b, "sqlite:"+b.TempDir()+"/bench.db")
	csr := csrPEM(b, p256(b), "dev-1")
	ca, err := f.svc.CA(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	opts := pki.IssueOptions{ExpectedCommonName: "dev-1", ThingName: "dev-1"}
	b.ReportAllocs()
	for b.Loop() {
		req, err := pki.ParseCSR([]byte(csr))
		if err != nil {
			b.Fatal(err)
		}
		cert, err := ca.SignCSR(req, opts)
		if err != nil {
			b.Fatal(err)
		}
		_ = pki.Fingerprint(cert)
		_ = pki.EncodeCertificatesPEM(cert)
	}
}

// BenchmarkRegister is a whole registration through the service on SQLite:
// token check, thing lookup, CSR -> certificate, and the transaction that
// counts the token use, creates the thing and the certificate record and
// records two events.
func BenchmarkRegister(b *testing.B) {
	f := newFixture(b, "sqlite:"+b.TempDir()+"/bench.db")
	secret, _ := f.token(-1, 3600)
	key := p256(b)
	ctx := context.Background()
	// CSRs are made outside the timed loop: that is the device's work.
	const pool = 4096
	csrs := make([]string, pool)
	for i := range csrs {
		csrs[i] = csrPEM(b, key, fmt.Sprintf("dev-%d", i))
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		name := fmt.Sprintf("dev-%d", i)
		csr := ""
		if i < pool {
			csr = csrs[i]
		} else {
			b.StopTimer()
			csr = csrPEM(b, key, name)
			b.StartTimer()
		}
		if _, err := f.svc.Register(ctx, secret, certs.RegisterRequest{ThingName: name, Version: "1", CSR: csr}); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkCheckBoundCertificate is what verifying a certificate-bound
// access token adds (oauth.Config.CertificateStatus): one certificate
// record read by fingerprint. Compare with the TLS handshake a bound token
// always comes with.
func BenchmarkCheckBoundCertificate(b *testing.B) {
	f := newFixture(b, "sqlite:"+b.TempDir()+"/bench.db")
	secret, _ := f.token(1, 3600)
	res, err := f.svc.Register(context.Background(), secret, certs.RegisterRequest{ThingName: "dev-1", Version: "1", CSR: csrPEM(b, p256(b), "dev-1")})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := f.svc.CheckBoundCertificate(ctx, res.Certificate.Fingerprint); err != nil {
			b.Fatal(err)
		}
	}
}
