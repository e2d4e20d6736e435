package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"fmt"
	"io"
)

// KeyAlgorithm names a key type Gatehouse generates, for CA keys and for
// device keys made by IssueKeyPair. The zero value means ECDSAP256.
type KeyAlgorithm string

// Key algorithms. The values are what configuration files use.
const (
	ECDSAP256 KeyAlgorithm = "ecdsa-p256"
	ECDSAP384 KeyAlgorithm = "ecdsa-p384"
	Ed25519   KeyAlgorithm = "ed25519"
	RSA2048   KeyAlgorithm = "rsa-2048"
	RSA3072   KeyAlgorithm = "rsa-3072"
	RSA4096   KeyAlgorithm = "rsa-4096"
)

// KeyAlgorithms lists every KeyAlgorithm, in the order to show them.
func KeyAlgorithms() []KeyAlgorithm {
	return []KeyAlgorithm{ECDSAP256, ECDSAP384, Ed25519, RSA2048, RSA3072, RSA4096}
}

// Bounds of accepted RSA keys. Below 2048 bits is weak; above 8192 bits a
// single CSR costs a lot of CPU to check and nothing needs it.
const (
	minRSABits = 2048
	maxRSABits = 8192
)

// GenerateKey generates a private key of the algorithm alg ("" means
// ECDSAP256). Since Go 1.26 the standard library ignores rand and always uses
// the system's secure source; rand is passed on for GODEBUG=cryptocustomrand=1.
func GenerateKey(alg KeyAlgorithm, rand io.Reader) (crypto.Signer, error) {
	var (
		key crypto.Signer
		err error
	)
	switch alg {
	case "", ECDSAP256:
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand)
	case ECDSAP384:
		key, err = ecdsa.GenerateKey(elliptic.P384(), rand)
	case Ed25519:
		_, key, err = ed25519.GenerateKey(rand)
	case RSA2048:
		key, err = rsa.GenerateKey(rand, 2048)
	case RSA3072:
		key, err = rsa.GenerateKey(rand, 3072)
	case RSA4096:
		key, err = rsa.GenerateKey(rand, 4096)
	default:
		return nil, fmt.Errorf("pki: unknown key algorithm %q", alg)
	}
	if err != nil {
		return nil, fmt.Errorf("pki: generate %s key: %w", alg, err)
	}
	return key, nil
}

// checkPublicKey applies the key policy to a requested certificate's public
// key: ECDSA P-256 or P-384, Ed25519, or RSA of minRSABits..maxRSABits.
func checkPublicKey(pub any) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve == nil {
			return requestErr(ReasonKeyType, nil, "ECDSA key without a curve")
		}
		switch k.Curve {
		case elliptic.P256(), elliptic.P384():
			return nil
		}
		return requestErr(ReasonKeyType, nil, "ECDSA curve %s not accepted (use P-256 or P-384)", k.Curve.Params().Name)
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return requestErr(ReasonKeyType, nil, "Ed25519 key of %d bytes", len(k))
		}
		return nil
	case *rsa.PublicKey:
		if k.N == nil {
			return requestErr(ReasonKeyType, nil, "RSA key without a modulus")
		}
		if bits := k.N.BitLen(); bits < minRSABits || bits > maxRSABits {
			return requestErr(ReasonWeakKey, nil, "RSA key of %d bits not accepted (use %d to %d)", bits, minRSABits, maxRSABits)
		}
		return nil
	case nil:
		return requestErr(ReasonKeyType, nil, "public key algorithm not supported")
	default:
		return requestErr(ReasonKeyType, nil, "%T keys not accepted (use ECDSA P-256/P-384, Ed25519 or RSA)", pub)
	}
}

// sameKey reports whether two public keys are equal.
func sameKey(a, b crypto.PublicKey) bool {
	eq, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(b)
}
