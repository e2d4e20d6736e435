package pki

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
)

func TestParseCertificatesPEM(t *testing.T) {
	ca := newTestCA(t, CAOptions{Intermediate: true})
	chainPEM := ca.ChainPEM()
	withText := "# bundle\nsubject=...\n" + string(chainPEM) + "trailing comment\n"
	for _, tc := range []struct {
		name    string
		in      string
		want    int
		wantErr string
	}{
		{"chain", string(chainPEM), 2, ""},
		{"with text around", withText, 2, ""},
		{"empty", "", 0, "no PEM certificate"},
		{"garbage", "garbage", 0, "no PEM certificate"},
		{"key block", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}})), 0, "type"},
		{"bad DER", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1, 2}})), 0, "PEM block 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			certs, err := ParseCertificatesPEM([]byte(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("ParseCertificatesPEM error = %v, want containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || len(certs) != tc.want {
				t.Fatalf("ParseCertificatesPEM = %d certs, %v; want %d, nil", len(certs), err, tc.want)
			}
			if certs[0].Subject.CommonName != DefaultIntermediateCommonName {
				t.Errorf("first certificate = %q, want the intermediate", certs[0].Subject.CommonName)
			}
		})
	}
}

func TestParsePrivateKeyPEM(t *testing.T) {
	ec := genKey(t, "p256").(*ecdsa.PrivateKey)
	sec1, err := x509.MarshalECPrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	rk := genKey(t, "rsa2048").(*rsa.PrivateKey)
	pkcs8, err := EncodePrivateKeyPEM(ec)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		in   []byte
		want any
	}{
		{"PKCS#8", pkcs8, ec.Public()},
		{"SEC 1", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}), ec.Public()},
		{"PKCS#1", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rk)}), rk.Public()},
		{"certificate", newTestCA(t, CAOptions{}).RootPEM(), nil},
		{"garbage", []byte("nope"), nil},
		{"bad DER", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}}), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key, err := ParsePrivateKeyPEM(tc.in)
			if tc.want == nil {
				if err == nil {
					t.Errorf("ParsePrivateKeyPEM = %T, nil; want error", key)
				}
				return
			}
			if err != nil || !sameKey(key.Public(), tc.want) {
				t.Errorf("ParsePrivateKeyPEM = %T, %v; want the key", key, err)
			}
		})
	}
}
