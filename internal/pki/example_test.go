package pki_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/pki"
)

func Example() {
	// Gatehouse's CA: a root and an issuing intermediate.
	ca, err := pki.NewCA(pki.CAOptions{Intermediate: true})
	if err != nil {
		fmt.Println(err)
		return
	}

	// A device sends a CSR for its own key...
	deviceKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader,
		&x509.CertificateRequest{Subject: pkix.Name{CommonName: "pump-1"}}, deviceKey)
	csr, err := pki.ParseCSR(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
	if err != nil {
		fmt.Println(err)
		return
	}
	// ...and gets a certificate for the thing it authenticated as.
	cert, err := ca.SignCSR(csr, pki.IssueOptions{ExpectedCommonName: "pump-1", ThingName: "pump-1"})
	if err != nil {
		fmt.Println(err)
		return
	}

	// Later it connects with that certificate.
	own := ca.Trusted()
	v, err := pki.NewVerifier(pki.VerifierOptions{Own: &own})
	if err != nil {
		fmt.Println(err)
		return
	}
	got, err := v.Verify([]*x509.Certificate{cert}, time.Now())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(got.CA, got.ThingName, got.Subject.Get("CommonName"), got.Fingerprint == pki.Fingerprint(cert))
	// Output: gatehouse pump-1 pump-1 true
}

func ExampleCA_SignCSR_rejected() {
	ca, _ := pki.NewCA(pki.CAOptions{})
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader,
		&x509.CertificateRequest{Subject: pkix.Name{CommonName: "pump-2"}}, key)
	csr, _ := pki.ParseCSR(der)

	_, err := ca.SignCSR(csr, pki.IssueOptions{ExpectedCommonName: "pump-1"})
	fmt.Println(pki.ReasonOf(err))
	fmt.Println(err)
	// Output:
	// subject
	// pki: certificate request rejected (subject): common name "pump-2", want "pump-1"
}

func ExampleCA_IssueKeyPair() {
	ca, _ := pki.NewCA(pki.CAOptions{})
	kp, err := ca.IssueKeyPair("pump-1", pki.IssueOptions{ThingName: "pump-1"})
	if err != nil {
		fmt.Println(err)
		return
	}
	// The registration gateway's response body.
	body := map[string]any{
		"certificateData": map[string]any{
			"pem": string(kp.CertificatePEM),
			"key_pair": map[string]string{
				"public_key":  string(kp.PublicKeyPEM),
				"private_key": string(kp.PrivateKeyPEM),
			},
		},
		"rootCa":        string(ca.RootPEM()),
		"certificateId": kp.Fingerprint,
	}
	fmt.Println(len(body["certificateId"].(string)))
	// Output: 64
}

func ExampleParseFingerprint() {
	fp, err := pki.ParseFingerprint("SHA256 Fingerprint=" +
		"9F:86:D0:81:88:4C:7D:65:9A:2F:EA:A0:C5:5A:D0:15:A3:BF:4F:1B:2B:0B:82:2C:D1:5D:6C:15:B0:F0:0A:08")
	fmt.Println(fp, err)
	// Output: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 <nil>
}

func ExampleCA_CreateCRL() {
	now := time.Now()
	ca, _ := pki.NewCA(pki.CAOptions{})
	stolen, _ := ca.IssueKeyPair("pump-1", pki.IssueOptions{})

	der, err := ca.CreateCRL([]pki.RevokedCert{{
		SerialNumber: stolen.Certificate.SerialNumber,
		RevokedAt:    now,
		ReasonCode:   pki.RevocationKeyCompromise,
	}}, big.NewInt(1), now, now.Add(24*time.Hour))
	if err != nil {
		fmt.Println(err)
		return
	}
	crl, err := pki.ParseCRL(pki.EncodeCRLPEM(der), ca.Certificate(), now)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(pki.NewRevocationSet(crl).Contains(stolen.Certificate))
	// Output: true
}
