package pki

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"strings"
)

// FingerprintLen is the length of a fingerprint: 64 hex digits.
const FingerprintLen = 2 * sha256.Size

// Fingerprint returns the lowercase hex SHA-256 of the certificate's DER.
// It is the certificate's id (as AWS IoT's certificateId) and the device
// lobby's key, the content of its QR code.
func Fingerprint(cert *x509.Certificate) string { return FingerprintDER(cert.Raw) }

// FingerprintDER returns the lowercase hex SHA-256 of a DER certificate.
func FingerprintDER(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// ParseFingerprint normalizes a SHA-256 fingerprint typed, pasted or scanned
// by a person to the form Fingerprint returns. It accepts 64 hex digits in
// either case, optionally as 32 colon-separated pairs, optionally after a
// "sha256:" or "SHA256 Fingerprint=" label, with surrounding white space.
// Errors wrap ErrInvalidFingerprint.
func ParseFingerprint(s string) (string, error) {
	if len(s) > 256 {
		return "", fmt.Errorf("%w: %d characters", ErrInvalidFingerprint, len(s))
	}
	s = strings.TrimSpace(s)
	lower := strings.ToLower(s)
	// Labels people paste along with a fingerprint, lowercased:
	// "sha256:AB..." and openssl's "SHA256 Fingerprint=AB:...".
	for _, p := range [...]string{"sha256 fingerprint=", "sha256:", "sha-256:"} {
		if strings.HasPrefix(lower, p) {
			s = strings.TrimSpace(s[len(p):])
			break
		}
	}
	var digits string
	switch len(s) {
	case FingerprintLen:
		digits = s
	case FingerprintLen + FingerprintLen/2 - 1: // "ab:cd:...:ef"
		var b strings.Builder
		b.Grow(FingerprintLen)
		for i := 0; i < len(s); i += 3 {
			if i+2 < len(s) && s[i+2] != ':' {
				return "", fmt.Errorf("%w: expected ':' at position %d", ErrInvalidFingerprint, i+2)
			}
			b.WriteString(s[i : i+2])
		}
		digits = b.String()
	default:
		return "", fmt.Errorf("%w: %d characters, want %d hex digits", ErrInvalidFingerprint, len(s), FingerprintLen)
	}
	raw, err := hex.DecodeString(digits)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalidFingerprint, err)
	}
	return hex.EncodeToString(raw), nil
}
