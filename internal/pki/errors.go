package pki

import (
	"errors"
	"fmt"
)

// Reason is a machine-readable cause of a rejected request or certificate.
// Callers map reasons to protocol errors (HTTP status, MQTT reason code) and
// to events; the values are stable.
type Reason string

// Reasons of a *RequestError: a CSR or an issuance request was refused.
const (
	ReasonMalformed Reason = "malformed"     // not a parseable CSR
	ReasonTooLarge  Reason = "too-large"     // CSR larger than MaxCSRSize
	ReasonSignature Reason = "bad-signature" // CSR self-signature does not verify or uses a broken algorithm
	ReasonKeyType   Reason = "key-type"      // public key algorithm or curve not accepted
	ReasonWeakKey   Reason = "weak-key"      // RSA key outside 2048..8192 bits
	ReasonSubject   Reason = "subject"       // common name missing, malformed or not the expected one
	ReasonName      Reason = "name"          // thing name or DNS name not acceptable
	ReasonValidity  Reason = "validity"      // requested validity out of bounds
)

// Reasons of a *VerifyError: a presented certificate was refused.
const (
	ReasonExpired               Reason = "expired"                // the leaf or a CA in its chain has expired
	ReasonNotYetValid           Reason = "not-yet-valid"          // the leaf or a CA in its chain is not valid yet
	ReasonUnknownIssuer         Reason = "unknown-issuer"         // no chain to a trusted CA
	ReasonRevoked               Reason = "revoked"                // the leaf is revoked
	ReasonKeyUsage              Reason = "key-usage"              // not a client-authentication certificate
	ReasonRevocationUnavailable Reason = "revocation-unavailable" // revocation could not be checked; fails closed
	ReasonInvalid               Reason = "invalid"                // any other chain failure (constraints, signature)
)

// RequestError reports a certificate request refused by policy. Detail is
// safe to return to the requesting device.
type RequestError struct {
	Reason Reason
	Detail string
	Err    error // underlying cause, if any
}

func (e *RequestError) Error() string {
	return fmt.Sprintf("pki: certificate request rejected (%s): %s", e.Reason, e.Detail)
}

func (e *RequestError) Unwrap() error { return e.Err }

func requestErr(reason Reason, err error, format string, args ...any) *RequestError {
	return &RequestError{Reason: reason, Detail: fmt.Sprintf(format, args...), Err: err}
}

// VerifyError reports a presented certificate that is not accepted.
// Fingerprint identifies the leaf (empty if there was no leaf).
type VerifyError struct {
	Reason      Reason
	Fingerprint string
	Detail      string
	Err         error // underlying cause, if any
}

func (e *VerifyError) Error() string {
	if e.Fingerprint == "" {
		return fmt.Sprintf("pki: certificate rejected (%s): %s", e.Reason, e.Detail)
	}
	return fmt.Sprintf("pki: certificate %s rejected (%s): %s", e.Fingerprint, e.Reason, e.Detail)
}

func (e *VerifyError) Unwrap() error { return e.Err }

// ReasonOf returns the Reason of a *RequestError or *VerifyError in err's
// chain, or "" if there is none.
func ReasonOf(err error) Reason {
	if re, ok := errors.AsType[*RequestError](err); ok {
		return re.Reason
	}
	if ve, ok := errors.AsType[*VerifyError](err); ok {
		return ve.Reason
	}
	return ""
}

// ErrInvalidFingerprint reports text that is not a SHA-256 fingerprint.
var ErrInvalidFingerprint = errors.New("pki: invalid fingerprint")

// ErrStaleCRL reports a CRL whose nextUpdate has passed or whose thisUpdate
// is in the future.
var ErrStaleCRL = errors.New("pki: CRL not current")
