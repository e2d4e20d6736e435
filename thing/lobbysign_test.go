package thing

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"math/big"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// testCA issues certificates for TestVerifyLobbyMessage.
type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
}

func newTestCA(t *testing.T, now time.Time) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Gatehouse CA"}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert, key}
}

func (ca *testCA) issue(t *testing.T, now time.Time, usage x509.ExtKeyUsage, dns ...string) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(now.UnixNano()), Subject: pkix.Name{CommonName: "x"}, NotBefore: now.Add(-time.Minute),
		NotAfter: now.Add(time.Hour), DNSNames: dns, ExtKeyUsage: []x509.ExtKeyUsage{usage}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return cert, key
}

func signLobby(t *testing.T, cert *x509.Certificate, key crypto.Signer, typ, payload string) []byte {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType(jose.ContentType(typ))
	if cert != nil {
		opts = opts.WithHeader("x5c", []string{base64.StdEncoding.EncodeToString(cert.Raw)})
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign([]byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	s, _ := jws.CompactSerialize()
	return []byte(s)
}

// TestVerifyLobbyMessage: the device accepts only what a certificate it
// would accept as the lobby's TLS server certificate signed, for itself.
func TestVerifyLobbyMessage(t *testing.T) {
	now := time.Now()
	ca := newTestCA(t, now)
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	server, serverKey := ca.issue(t, now, x509.ExtKeyUsageServerAuth, "lobby.example")
	client, clientKey := ca.issue(t, now, x509.ExtKeyUsageClientAuth, "lobby.example")
	other, otherKey := newTestCA(t, now).issue(t, now, x509.ExtKeyUsageServerAuth, "lobby.example")
	const fp = "aa"
	good := `{"kind":"mqtt","endpoint":"mqtts://target.example:8883","sub":"aa","iat":1}`
	hosts := []string{"127.0.0.1", "lobby.example"}
	tests := []struct {
		name string
		msg  []byte
		ok   bool
	}{
		{"signed by the lobby's server certificate", signLobby(t, server, serverKey, LobbyMessageType, good), true},
		{"unsigned JSON", []byte(`{"kind":"mqtt","endpoint":"mqtts://evil.example:8883"}`), false},
		{"no x5c", signLobby(t, nil, serverKey, LobbyMessageType, good), false},
		{"a client certificate of the same CA", signLobby(t, client, clientKey, LobbyMessageType, good), false},
		{"a server certificate of another CA", signLobby(t, other, otherKey, LobbyMessageType, good), false},
		{"x5c of the server, key of another", signLobby(t, server, clientKey, LobbyMessageType, good), false},
		{"for another device", signLobby(t, server, serverKey, LobbyMessageType, `{"endpoint":"mqtts://x:1","sub":"bb"}`), false},
		{"another typ", signLobby(t, server, serverKey, "JWT", good), false},
	}
	for _, tc := range tests {
		a, err := VerifyLobbyMessage(tc.msg, fp, hosts, roots, now)
		if got := err == nil; got != tc.ok {
			t.Errorf("%s: err = %v, want ok %v", tc.name, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrLobbySignature) {
			t.Errorf("%s: err = %v, want ErrLobbySignature", tc.name, err)
		}
		if tc.ok && err == nil && a.Endpoint != "mqtts://target.example:8883" {
			t.Errorf("%s: assignment = %+v", tc.name, a)
		}
	}
	if _, err := VerifyLobbyMessage(signLobby(t, server, serverKey, LobbyMessageType, good), fp, []string{"elsewhere.example"}, roots, now); err == nil {
		t.Error("a certificate for another host was accepted")
	}
}
