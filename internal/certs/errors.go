package certs

import (
	"errors"
	"fmt"

	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// Errors callers map to protocol answers. They are wrapped with details that
// are safe to show to the caller (never secrets).
var (
	// ErrBadToken: a registration token that is malformed or unknown (401).
	ErrBadToken = errors.New("certs: invalid registration token")
	// ErrTokenRejected: a known registration token that may not be used:
	// expired, revoked, used up, or its thing type is gone (403).
	ErrTokenRejected = errors.New("certs: registration token not accepted")
	// ErrThingExists: registration of a thing name that is taken. It also
	// wraps store.ErrExists.
	ErrThingExists = errors.New("certs: thing already exists")
	// ErrUnknownCertificate: a certificate that chains to a trusted CA but
	// is not registered (and its CA does not register it just in time).
	ErrUnknownCertificate = errors.New("certs: certificate is not registered")
	// ErrCertificateInactive, ErrCertificatePending and
	// ErrCertificateRevoked: a registered certificate that may not log in.
	ErrCertificateInactive = errors.New("certs: certificate is inactive")
	ErrCertificatePending  = errors.New("certs: certificate is pending activation")
	ErrCertificateRevoked  = errors.New("certs: certificate is revoked")
	// ErrInvalidTransition: a status change the certificate's current
	// status does not allow, e.g. activating a revoked certificate (409).
	ErrInvalidTransition = errors.New("certs: certificate status does not allow this")
	// ErrNoCA: the service was used before EnsureCA.
	ErrNoCA = errors.New("certs: certificate authority not initialised (EnsureCA)")
)

// invalid returns a registry.InvalidError (answered 400 with the field).
func invalid(field, format string, args ...any) error {
	return &registry.InvalidError{Problems: []registry.Problem{{Field: field, Message: fmt.Sprintf(format, args...)}}}
}

// ThingExistsError is ErrThingExists (and store.ErrExists) for one name;
// its text says so once.
type ThingExistsError struct{ Name string }

func (e *ThingExistsError) Error() string { return fmt.Sprintf("thing %q already exists", e.Name) }

// Is makes errors.Is match ErrThingExists and store.ErrExists.
func (e *ThingExistsError) Is(target error) bool {
	return target == ErrThingExists || target == store.ErrExists
}

// TokenRejectedError is ErrTokenRejected for one token; Detail says why
// (revoked, expired, used up, its thing type gone), safe to show the
// device.
type TokenRejectedError struct {
	TokenID string
	Detail  string
}

func (e *TokenRejectedError) Error() string { return ErrTokenRejected.Error() + ": " + e.Detail }

// Is makes errors.Is match ErrTokenRejected.
func (e *TokenRejectedError) Is(target error) bool { return target == ErrTokenRejected }

func tokenRejected(id, format string, args ...any) error {
	return &TokenRejectedError{TokenID: id, Detail: fmt.Sprintf(format, args...)}
}
