package pki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/x509"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestNewCA(t *testing.T) {
	for _, tc := range []struct {
		name      string
		opts      CAOptions
		wantChain int
		wantKey   string
	}{
		{name: "default root", opts: CAOptions{}, wantChain: 1, wantKey: "P-256"},
		{name: "root and intermediate", opts: CAOptions{Intermediate: true, Organization: []string{"Acme"}}, wantChain: 2, wantKey: "P-256"},
		{name: "P-384", opts: CAOptions{KeyAlgorithm: ECDSAP384}, wantChain: 1, wantKey: "P-384"},
		{name: "Ed25519", opts: CAOptions{KeyAlgorithm: Ed25519, Intermediate: true}, wantChain: 2, wantKey: "Ed25519"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ca := newTestCA(t, tc.opts)
			chain := ca.Chain()
			if len(chain) != tc.wantChain {
				t.Fatalf("len(Chain()) = %d, want %d", len(chain), tc.wantChain)
			}
			root := ca.Root()
			if got, want := root.Subject.CommonName, DefaultRootCommonName; got != want {
				t.Errorf("root CN = %q, want %q", got, want)
			}
			if err := root.CheckSignatureFrom(root); err != nil {
				t.Errorf("root is not self-signed: %v", err)
			}
			if got, want := root.NotAfter, t0.Add(DefaultRootValidity); !got.Equal(want) {
				t.Errorf("root NotAfter = %v, want %v", got, want)
			}
			if root.MaxPathLen != 1 {
				t.Errorf("root MaxPathLen = %d, want 1", root.MaxPathLen)
			}
			for i, c := range chain {
				if !c.IsCA || c.KeyUsage&x509.KeyUsageCertSign == 0 || c.KeyUsage&x509.KeyUsageCRLSign == 0 {
					t.Errorf("chain[%d]: IsCA=%v KeyUsage=%b, want CA with certSign|cRLSign", i, c.IsCA, c.KeyUsage)
				}
				if len(c.SubjectKeyId) == 0 {
					t.Errorf("chain[%d] has no SubjectKeyId", i)
				}
				if c.SerialNumber.BitLen() < 100 {
					t.Errorf("chain[%d] serial has %d bits, want ~128", i, c.SerialNumber.BitLen())
				}
			}
			if tc.wantChain == 2 {
				inter := ca.Certificate()
				if err := inter.CheckSignatureFrom(root); err != nil {
					t.Errorf("intermediate not signed by root: %v", err)
				}
				if inter.MaxPathLen != 0 || !inter.MaxPathLenZero {
					t.Errorf("intermediate MaxPathLen = %d (zero %v), want 0", inter.MaxPathLen, inter.MaxPathLenZero)
				}
				if got, want := inter.Subject.Organization, []string{"Acme"}; tc.opts.Organization != nil && (len(got) != 1 || got[0] != want[0]) {
					t.Errorf("intermediate O = %v, want %v", got, want)
				}
			}
			var gotKey string
			switch k := ca.Certificate().PublicKey.(type) {
			case *ecdsa.PublicKey:
				gotKey = k.Curve.Params().Name
			case ed25519.PublicKey:
				gotKey = "Ed25519"
			}
			if gotKey != tc.wantKey {
				t.Errorf("CA key = %s, want %s", gotKey, tc.wantKey)
			}
		})
	}
}

func TestNewCARejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts CAOptions
	}{
		{"unknown key algorithm", CAOptions{KeyAlgorithm: "dsa"}},
		{"negative validity", CAOptions{Validity: -time.Hour}},
		{"default above max leaf validity", CAOptions{Settings: Settings{DefaultLeafValidity: 48 * time.Hour, MaxLeafValidity: 24 * time.Hour}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if ca, err := NewCA(tc.opts); err == nil {
				t.Errorf("NewCA = %v, nil; want error", ca.Root().Subject)
			}
		})
	}
}

func TestIntermediateValidityCutToRoot(t *testing.T) {
	ca := newTestCA(t, CAOptions{Intermediate: true, Validity: 24 * time.Hour, IntermediateValidity: 48 * time.Hour})
	if got, want := ca.Certificate().NotAfter, ca.Root().NotAfter; !got.Equal(want) {
		t.Errorf("intermediate NotAfter = %v, want root's %v", got, want)
	}
}

func TestMarshalLoadCA(t *testing.T) {
	for _, intermediate := range []bool{false, true} {
		ca := newTestCA(t, CAOptions{Intermediate: intermediate})
		m, err := ca.Marshal()
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		if got, want := len(m.RootKey) > 0, intermediate; got != want {
			t.Errorf("intermediate=%v: RootKey present = %v, want %v", intermediate, got, want)
		}
		loaded, err := LoadCA(m, Settings{Now: func() time.Time { return t0 }})
		if err != nil {
			t.Fatalf("intermediate=%v: LoadCA: %v", intermediate, err)
		}
		if !bytes.Equal(loaded.ChainPEM(), ca.ChainPEM()) {
			t.Errorf("intermediate=%v: loaded chain differs", intermediate)
		}
		kp, err := loaded.IssueKeyPair("dev-1", IssueOptions{})
		if err != nil {
			t.Fatalf("IssueKeyPair with loaded CA: %v", err)
		}
		pool := x509.NewCertPool()
		pool.AddCert(ca.Root())
		inter := x509.NewCertPool()
		for _, c := range ca.Chain()[:len(ca.Chain())-1] {
			inter.AddCert(c)
		}
		if _, err := kp.Certificate.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, CurrentTime: t0,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Errorf("intermediate=%v: certificate from loaded CA does not verify against original root: %v", intermediate, err)
		}
		// Without the root key.
		m.RootKey = nil
		if _, err := LoadCA(m, Settings{}); err != nil {
			t.Errorf("intermediate=%v: LoadCA without root key: %v", intermediate, err)
		}
	}
}

func TestLoadCARejects(t *testing.T) {
	ca := newTestCA(t, CAOptions{Intermediate: true})
	other := newTestCA(t, CAOptions{Intermediate: true})
	m, err := ca.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	om, err := other.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.IssueKeyPair("dev-1", IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rootOnly := newTestCA(t, CAOptions{})
	rm, err := rootOnly.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		m       Material
		wantErr string
	}{
		{"garbage chain", Material{ChainPEM: []byte("nope"), Key: m.Key}, "no PEM certificate"},
		{"wrong key", Material{ChainPEM: m.ChainPEM, Key: om.Key}, "key does not match"},
		{"wrong root key", Material{ChainPEM: m.ChainPEM, Key: m.Key, RootKey: om.RootKey}, "root key does not match"},
		{"garbage key", Material{ChainPEM: m.ChainPEM, Key: []byte{1, 2, 3}}, "parse private key"},
		{"leaf in chain", Material{ChainPEM: append(bytes.Clone(leaf.CertificatePEM), m.ChainPEM...), Key: m.Key}, "not a CA"},
		{"broken chain", Material{ChainPEM: append(EncodeCertificatesPEM(ca.Certificate()), EncodeCertificatesPEM(other.Root())...), Key: m.Key}, "not signed by"},
		{"root key for root-only CA", Material{ChainPEM: rm.ChainPEM, Key: rm.Key, RootKey: rm.Key}, "issuing certificate is the root"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadCA(tc.m, Settings{})
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("LoadCA error = %v, want containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestLoadCAExternallyIssuedIntermediate(t *testing.T) {
	// An enterprise PKI's intermediate, without its root, can be our CA.
	enterprise := newTestCA(t, CAOptions{Intermediate: true})
	m, err := enterprise.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	m.ChainPEM = EncodeCertificatesPEM(enterprise.Certificate())
	m.RootKey = nil
	ca, err := LoadCA(m, Settings{Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatalf("LoadCA: %v", err)
	}
	if ca.Root() != ca.Certificate() {
		t.Errorf("Root() is not the single chain certificate")
	}
}

func TestGenerateKey(t *testing.T) {
	for _, tc := range []struct {
		alg  KeyAlgorithm
		want string
	}{
		{"", "P-256"}, {ECDSAP256, "P-256"}, {ECDSAP384, "P-384"}, {Ed25519, "Ed25519"}, {RSA2048, "RSA-2048"},
	} {
		key, err := GenerateKey(tc.alg, nil)
		if err != nil {
			t.Fatalf("GenerateKey(%q): %v", tc.alg, err)
		}
		var got string
		switch k := key.Public().(type) {
		case *ecdsa.PublicKey:
			got = k.Curve.Params().Name
		case ed25519.PublicKey:
			got = "Ed25519"
		default:
			if rk, ok := key.Public().(interface{ Size() int }); ok {
				got = "RSA-" + strconv.Itoa(rk.Size()*8)
			}
		}
		if got != tc.want {
			t.Errorf("GenerateKey(%q) = %s key, want %s", tc.alg, got, tc.want)
		}
	}
	if _, err := GenerateKey("rsa-1024", nil); err == nil {
		t.Errorf("GenerateKey(rsa-1024) succeeded, want error")
	}
}
