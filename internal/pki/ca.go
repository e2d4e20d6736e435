package pki

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"time"
)

// Defaults of CAOptions and Settings.
const (
	DefaultRootCommonName         = "Gatehouse Root CA"
	DefaultIntermediateCommonName = "Gatehouse Intermediate CA"
	DefaultRootValidity           = 20 * 365 * 24 * time.Hour
	DefaultIntermediateValidity   = 10 * 365 * 24 * time.Hour
	DefaultLeafValidity           = 365 * 24 * time.Hour
	DefaultMaxLeafValidity        = 10 * 365 * 24 * time.Hour
)

// backdate is subtracted from NotBefore of every certificate, so a device
// whose clock is a little behind accepts a certificate issued just now.
const backdate = time.Minute

// Settings are a CA's runtime settings. They are not part of the persisted
// Material, so they are given again to LoadCA.
type Settings struct {
	// Rand draws serial numbers and is passed to signing. Default
	// crypto/rand.Reader. It must be cryptographically secure and, if the CA
	// is used from several goroutines, safe for concurrent use.
	Rand io.Reader
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// DefaultLeafValidity is the validity of an issued certificate when the
	// request does not ask for one. Default DefaultLeafValidity, or
	// MaxLeafValidity if that is shorter.
	DefaultLeafValidity time.Duration
	// MaxLeafValidity bounds the validity a request may ask for. Default
	// DefaultMaxLeafValidity. An issued certificate never outlives its
	// issuer: NotAfter is cut to the issuer's NotAfter.
	MaxLeafValidity time.Duration
}

func (s Settings) withDefaults() (Settings, error) {
	if s.Rand == nil {
		s.Rand = rand.Reader
	}
	if s.Now == nil {
		s.Now = time.Now
	}
	if s.MaxLeafValidity == 0 {
		s.MaxLeafValidity = DefaultMaxLeafValidity
	}
	if s.DefaultLeafValidity == 0 {
		s.DefaultLeafValidity = min(DefaultLeafValidity, s.MaxLeafValidity)
	}
	if s.DefaultLeafValidity < 0 || s.MaxLeafValidity < 0 {
		return s, errors.New("pki: negative leaf validity")
	}
	if s.DefaultLeafValidity > s.MaxLeafValidity {
		return s, fmt.Errorf("pki: default leaf validity %v exceeds maximum %v", s.DefaultLeafValidity, s.MaxLeafValidity)
	}
	return s, nil
}

// CAOptions describe a new CA.
type CAOptions struct {
	// CommonName of the root. Default DefaultRootCommonName.
	CommonName string
	// Organization of the root and the intermediate, if any.
	Organization []string
	// KeyAlgorithm of the root and intermediate keys. Default ECDSAP256.
	KeyAlgorithm KeyAlgorithm
	// Validity of the root. Default DefaultRootValidity.
	Validity time.Duration
	// Intermediate makes the root sign an intermediate CA that issues all
	// certificates; the root key is then only needed to replace the
	// intermediate and can be kept offline (see Material.RootKey).
	Intermediate bool
	// IntermediateCommonName. Default DefaultIntermediateCommonName.
	IntermediateCommonName string
	// IntermediateValidity. Default DefaultIntermediateValidity, cut to the
	// root's validity.
	IntermediateValidity time.Duration
	// Settings are the runtime settings of the new CA.
	Settings Settings
}

// CA is a certificate authority: the issuing certificate and its key, and
// the chain up to the self-signed root. It is immutable and safe for
// concurrent use.
type CA struct {
	settings Settings
	chain    []*x509.Certificate // issuing first, root last
	signer   crypto.Signer       // key of chain[0]
	rootKey  crypto.Signer       // key of the root when it is not chain[0] and was kept; may be nil
}

// NewCA creates a self-signed root CA and, if opts.Intermediate, an
// intermediate CA signed by it.
func NewCA(opts CAOptions) (*CA, error) {
	settings, err := opts.Settings.withDefaults()
	if err != nil {
		return nil, err
	}
	if opts.CommonName == "" {
		opts.CommonName = DefaultRootCommonName
	}
	if opts.IntermediateCommonName == "" {
		opts.IntermediateCommonName = DefaultIntermediateCommonName
	}
	if opts.Validity == 0 {
		opts.Validity = DefaultRootValidity
	}
	if opts.IntermediateValidity == 0 {
		opts.IntermediateValidity = DefaultIntermediateValidity
	}
	if opts.Validity < 0 || opts.IntermediateValidity < 0 {
		return nil, errors.New("pki: negative CA validity")
	}
	now := settings.Now()

	rootKey, err := GenerateKey(opts.KeyAlgorithm, settings.Rand)
	if err != nil {
		return nil, err
	}
	rootTmpl, err := caTemplate(settings.Rand, pkix.Name{CommonName: opts.CommonName, Organization: opts.Organization},
		now, now.Add(opts.Validity))
	if err != nil {
		return nil, err
	}
	// MaxPathLen 1 lets the root sign one level of intermediates, now or
	// later, even if it issues leaves itself today.
	rootTmpl.MaxPathLen = 1
	root, err := createCert(settings.Rand, rootTmpl, rootTmpl, rootKey.Public(), rootKey)
	if err != nil {
		return nil, fmt.Errorf("pki: create root: %w", err)
	}
	if !opts.Intermediate {
		return &CA{settings: settings, chain: []*x509.Certificate{root}, signer: rootKey}, nil
	}

	interKey, err := GenerateKey(opts.KeyAlgorithm, settings.Rand)
	if err != nil {
		return nil, err
	}
	notAfter := now.Add(opts.IntermediateValidity)
	if notAfter.After(root.NotAfter) {
		notAfter = root.NotAfter
	}
	interTmpl, err := caTemplate(settings.Rand, pkix.Name{CommonName: opts.IntermediateCommonName, Organization: opts.Organization},
		now, notAfter)
	if err != nil {
		return nil, err
	}
	interTmpl.MaxPathLenZero = true
	inter, err := createCert(settings.Rand, interTmpl, root, interKey.Public(), rootKey)
	if err != nil {
		return nil, fmt.Errorf("pki: create intermediate: %w", err)
	}
	return &CA{settings: settings, chain: []*x509.Certificate{inter, root}, signer: interKey, rootKey: rootKey}, nil
}

func caTemplate(rand io.Reader, subject pkix.Name, now, notAfter time.Time) (*x509.Certificate, error) {
	serial, err := newSerial(rand)
	if err != nil {
		return nil, err
	}
	return &x509.Certificate{
		SerialNumber:          serial,
		Subject:               subject,
		NotBefore:             now.Add(-backdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}, nil
}

func createCert(rand io.Reader, tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) (*x509.Certificate, error) {
	der, err := x509.CreateCertificate(rand, tmpl, parent, pub, key)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// newSerial returns a positive serial number of 128 random bits (RFC 5280
// allows up to 20 octets; CA/Browser Forum asks for at least 64 random bits).
func newSerial(rand io.Reader) (*big.Int, error) {
	var b [16]byte
	if _, err := io.ReadFull(rand, b[:]); err != nil {
		return nil, fmt.Errorf("pki: serial number: %w", err)
	}
	s := new(big.Int).SetBytes(b[:])
	if s.Sign() == 0 {
		// 2^-128 from a working source: the source is broken.
		return nil, errors.New("pki: serial number: random source returned zeros")
	}
	return s, nil
}

// Certificate returns the issuing certificate: the intermediate if there is
// one, else the root.
func (c *CA) Certificate() *x509.Certificate { return c.chain[0] }

// Root returns the last certificate of the chain, normally the self-signed
// root: the trust anchor devices and verifiers install (the registration
// gateway's "rootCa").
func (c *CA) Root() *x509.Certificate { return c.chain[len(c.chain)-1] }

// Chain returns the CA's certificates from the issuing certificate to the
// root. Append it to an issued leaf to send a full chain.
func (c *CA) Chain() []*x509.Certificate {
	return append([]*x509.Certificate(nil), c.chain...)
}

// RootPEM returns the root certificate as PEM.
func (c *CA) RootPEM() []byte { return EncodeCertificatesPEM(c.Root()) }

// ChainPEM returns Chain as PEM.
func (c *CA) ChainPEM() []byte { return EncodeCertificatesPEM(c.chain...) }

// Material is the persisted form of a CA. Seal the keys (package seal)
// before storing them.
type Material struct {
	// ChainPEM holds the issuing certificate first and the root last.
	ChainPEM []byte
	// Key is the issuing certificate's private key, PKCS#8 DER. Secret.
	Key []byte
	// RootKey is the root's private key, PKCS#8 DER, when the issuing
	// certificate is an intermediate and the root key is known; else nil.
	// Secret: store it sealed, or offline and drop it here.
	RootKey []byte
}

// Marshal returns the CA's persisted form.
func (c *CA) Marshal() (Material, error) {
	key, err := x509.MarshalPKCS8PrivateKey(c.signer)
	if err != nil {
		return Material{}, fmt.Errorf("pki: marshal CA key: %w", err)
	}
	m := Material{ChainPEM: c.ChainPEM(), Key: key}
	if c.rootKey != nil {
		if m.RootKey, err = x509.MarshalPKCS8PrivateKey(c.rootKey); err != nil {
			return Material{}, fmt.Errorf("pki: marshal root key: %w", err)
		}
	}
	return m, nil
}

// LoadCA restores a CA from its Material. It checks that each certificate
// of the chain is signed by the next, that the last one, if self-signed,
// verifies itself, that the issuing certificate may sign certificates
// and CRLs, and that the keys match their certificates.
func LoadCA(m Material, settings Settings) (*CA, error) {
	settings, err := settings.withDefaults()
	if err != nil {
		return nil, err
	}
	chain, err := ParseCertificatesPEM(m.ChainPEM)
	if err != nil {
		return nil, fmt.Errorf("pki: load CA chain: %w", err)
	}
	for i, cert := range chain {
		if !cert.IsCA || !cert.BasicConstraintsValid {
			return nil, fmt.Errorf("pki: load CA: certificate %d (%s) is not a CA", i, cert.Subject)
		}
		parent := cert
		if i+1 < len(chain) {
			parent = chain[i+1]
		} else if !bytes.Equal(cert.RawIssuer, cert.RawSubject) {
			// The chain ends in a CA issued elsewhere (an enterprise PKI's
			// intermediate): trust it as given.
			break
		}
		if err := cert.CheckSignatureFrom(parent); err != nil {
			return nil, fmt.Errorf("pki: load CA: certificate %d (%s) is not signed by %s: %w", i, cert.Subject, parent.Subject, err)
		}
	}
	if ku := chain[0].KeyUsage; ku&x509.KeyUsageCertSign == 0 || ku&x509.KeyUsageCRLSign == 0 {
		return nil, errors.New("pki: load CA: issuing certificate lacks certSign or cRLSign key usage")
	}
	signer, err := ParsePKCS8PrivateKey(m.Key)
	if err != nil {
		return nil, fmt.Errorf("pki: load CA key: %w", err)
	}
	if !sameKey(signer.Public(), chain[0].PublicKey) {
		return nil, errors.New("pki: load CA: key does not match the issuing certificate")
	}
	ca := &CA{settings: settings, chain: chain, signer: signer}
	if len(m.RootKey) > 0 {
		if len(chain) == 1 {
			return nil, errors.New("pki: load CA: root key given but the issuing certificate is the root")
		}
		if ca.rootKey, err = ParsePKCS8PrivateKey(m.RootKey); err != nil {
			return nil, fmt.Errorf("pki: load CA root key: %w", err)
		}
		if !sameKey(ca.rootKey.Public(), ca.Root().PublicKey) {
			return nil, errors.New("pki: load CA: root key does not match the root certificate")
		}
	}
	return ca, nil
}
