package certs

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// RegistrationTokenPrefix starts every registration token, so leaked
// tokens are easy to recognise and scan for.
const RegistrationTokenPrefix = "ghrt_"

// maxTokenBytes bounds a presented registration token.
const maxTokenBytes = 256

// HashRegistrationToken returns the stored form of a token.
func HashRegistrationToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// NewRegistrationToken describes a registration token to create.
type NewRegistrationToken struct {
	// ThingType of the things registered with the token. Required.
	ThingType   string `json:"thingType"`
	Description string `json:"description,omitempty"`
	// MaxUses: 0 or 1 is single-use, n > 1 allows n registrations, -1
	// allows any number (then ExpiresInSeconds is required).
	MaxUses int64 `json:"maxUses,omitempty"`
	// ExpiresInSeconds, when positive, limits the token's lifetime.
	ExpiresInSeconds int64 `json:"expiresInSeconds,omitempty"`
}

// CreateRegistrationToken creates a token and returns its secret, shown
// this once and stored only as a hash.
func (s *Service) CreateRegistrationToken(ctx context.Context, in NewRegistrationToken) (secret string, tok *store.RegistrationToken, err error) {
	var probs []registry.Problem
	add := func(field, format string, args ...any) {
		probs = append(probs, registry.Problem{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	if !registry.ValidName(in.ThingType) {
		add("thingType", "%q is not a valid thing type name", truncate(in.ThingType))
	}
	if len(in.Description) > registry.MaxDescription {
		add("description", "longer than %d bytes", registry.MaxDescription)
	}
	maxUses := in.MaxUses
	switch {
	case maxUses == 0:
		maxUses = 1
	case maxUses == -1:
		maxUses = 0 // stored: unlimited
		if in.ExpiresInSeconds <= 0 {
			add("expiresInSeconds", "a token with unlimited uses needs an expiry")
		}
	case maxUses < -1:
		add("maxUses", "%d: want 1 or more, or -1 for unlimited", in.MaxUses)
	}
	if in.ExpiresInSeconds < 0 {
		add("expiresInSeconds", "must not be negative")
	}
	if len(probs) > 0 {
		return "", nil, &registry.InvalidError{Problems: probs}
	}
	b := make([]byte, 32)
	if _, err := io.ReadFull(s.rand, b); err != nil {
		return "", nil, fmt.Errorf("certs: random: %w", err)
	}
	secret = RegistrationTokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	id := make([]byte, 8)
	if _, err := io.ReadFull(s.rand, id); err != nil {
		return "", nil, fmt.Errorf("certs: random: %w", err)
	}
	now := s.now()
	tok = &store.RegistrationToken{ID: hex.EncodeToString(id), Hash: HashRegistrationToken(secret), Description: in.Description,
		ThingType: in.ThingType, MaxUses: maxUses, CreatedAt: now}
	if in.ExpiresInSeconds > 0 {
		tok.ExpiresAt = now.Add(time.Duration(in.ExpiresInSeconds) * time.Second)
	}
	err = s.change(ctx, func(tx *store.Tx) ([]event, error) {
		if _, err := tx.GetThingType(ctx, in.ThingType); errors.Is(err, store.ErrNotFound) {
			return nil, invalid("thingType", "thing type %q does not exist", truncate(in.ThingType))
		} else if err != nil {
			return nil, err
		}
		if err := tx.CreateRegistrationToken(ctx, tok); err != nil {
			return nil, err
		}
		return []event{{"registration_token.created", "registration-token/" + tok.ID,
			map[string]any{"thingType": tok.ThingType, "maxUses": tok.MaxUses, "expiresAt": tok.ExpiresAt}}}, nil
	})
	if err != nil {
		return "", nil, err
	}
	return secret, tok, nil
}

// RegistrationTokens lists tokens (without secrets).
func (s *Service) RegistrationTokens(ctx context.Context, p store.Page) ([]store.RegistrationToken, error) {
	return s.store.ListRegistrationTokens(ctx, p)
}

// RegistrationToken returns one token by id.
func (s *Service) RegistrationToken(ctx context.Context, id string) (*store.RegistrationToken, error) {
	return s.store.GetRegistrationToken(ctx, id)
}

// RevokeRegistrationToken stops a token from registering more things.
func (s *Service) RevokeRegistrationToken(ctx context.Context, id string) error {
	return s.change(ctx, func(tx *store.Tx) ([]event, error) {
		if err := tx.RevokeRegistrationToken(ctx, id, s.now()); err != nil {
			return nil, err
		}
		return []event{{"registration_token.revoked", "registration-token/" + id, nil}}, nil
	})
}

// checkToken finds a presented token and says why it may not be used.
func (s *Service) checkToken(ctx context.Context, secret string) (*store.RegistrationToken, error) {
	if secret == "" || len(secret) > maxTokenBytes || !strings.HasPrefix(secret, RegistrationTokenPrefix) {
		return nil, fmt.Errorf("%w: malformed", ErrBadToken)
	}
	tok, err := s.store.RegistrationTokenByHash(ctx, HashRegistrationToken(secret))
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: unknown token", ErrBadToken)
	}
	if err != nil {
		return nil, err
	}
	if err := usable(tok, s.now()); err != nil {
		return nil, err
	}
	return tok, nil
}

// usable reports why a token may not register a thing at now, or nil.
func usable(tok *store.RegistrationToken, now time.Time) error {
	switch {
	case !tok.RevokedAt.IsZero():
		return tokenRejected(tok.ID, "token %s was revoked", tok.ID)
	case !tok.ExpiresAt.IsZero() && !now.Before(tok.ExpiresAt):
		return tokenRejected(tok.ID, "token %s expired at %s", tok.ID, tok.ExpiresAt.Format(time.RFC3339))
	case tok.MaxUses > 0 && tok.Uses >= tok.MaxUses:
		if tok.MaxUses == 1 {
			return tokenRejected(tok.ID, "single-use token %s was already used", tok.ID)
		}
		return tokenRejected(tok.ID, "token %s was used %d times, its limit", tok.ID, tok.Uses)
	}
	return nil
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
