package registry

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

	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// APITokenPrefix starts every admin API token, so leaked tokens are easy to
// recognise and scan for.
const APITokenPrefix = "ghat_"

// ErrBadToken is returned for an unknown, malformed or expired API token.
var ErrBadToken = errors.New("registry: invalid API token")

// HashAPIToken returns the stored form of a token.
func HashAPIToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

func (s *Service) randomSecret(prefix string, n int) (string, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(s.rand, b); err != nil {
		return "", fmt.Errorf("registry: random secret: %w", err)
	}
	return prefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// CreateAPIToken mints an admin API token for username (which may be empty
// for a machine token) with roles, valid for ttl (0 for no expiry). The
// secret is returned once and stored only as a hash.
func (s *Service) CreateAPIToken(ctx context.Context, name, username string, roles []string, ttl time.Duration) (secret string, tok *store.APIToken, err error) {
	var p problems
	if name == "" || len(name) > 128 {
		p.add("name", "must be 1 to 128 bytes")
	}
	checkList(&p, "roles", roles, validRole, "role (want admin, operator or user)")
	if ttl < 0 {
		p.add("ttl", "must not be negative")
	}
	if err := p.err(); err != nil {
		return "", nil, err
	}
	if secret, err = s.randomSecret(APITokenPrefix, 32); err != nil {
		return "", nil, err
	}
	id, err := s.newID()
	if err != nil {
		return "", nil, err
	}
	now := s.now().UTC()
	tok = &store.APIToken{ID: id[:16], Name: name, Hash: HashAPIToken(secret), Username: username, Roles: roles, CreatedAt: now}
	if ttl > 0 {
		tok.ExpiresAt = now.Add(ttl)
	}
	err = s.change(ctx, "apitoken.created", func(tx *store.Tx) (string, any, error) {
		if username != "" {
			if _, err := tx.GetUser(ctx, username); err != nil {
				return "", nil, err
			}
		}
		return "apitoken/" + tok.ID, map[string]any{"name": name, "username": username, "roles": roles}, tx.CreateAPIToken(ctx, tok)
	})
	if err != nil {
		return "", nil, err
	}
	return secret, tok, nil
}

// AuthenticateAPIToken returns the token record for a presented secret.
func (s *Service) AuthenticateAPIToken(ctx context.Context, secret string) (*store.APIToken, error) {
	if !strings.HasPrefix(secret, APITokenPrefix) || len(secret) > 256 {
		return nil, ErrBadToken
	}
	tok, err := s.store.APITokenByHash(ctx, HashAPIToken(secret))
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrBadToken
	}
	if err != nil {
		return nil, err
	}
	if !tok.ExpiresAt.IsZero() && !s.now().Before(tok.ExpiresAt) {
		return nil, ErrBadToken
	}
	return tok, nil
}

// APITokens lists API tokens (never their secrets).
func (s *Service) APITokens(ctx context.Context) ([]store.APIToken, error) {
	return s.store.ListAPITokens(ctx)
}

// RevokeAPIToken deletes an API token by id.
func (s *Service) RevokeAPIToken(ctx context.Context, id string) error {
	return s.change(ctx, "apitoken.revoked", func(tx *store.Tx) (string, any, error) {
		return "apitoken/" + id, nil, tx.DeleteAPIToken(ctx, id)
	})
}

// Bootstrap is what a first start creates: an admin user and an admin API
// token. Their secrets exist only in this value.
type Bootstrap struct {
	Username string
	Password string
	Token    string
}

// EnsureBootstrap creates the admin user "admin" with a random password and
// an admin API token, unless any user or API token already exists. It
// returns nil when nothing was created.
func (s *Service) EnsureBootstrap(ctx context.Context) (*Bootstrap, error) {
	users, err := s.store.ListUsers(ctx, store.Page{Limit: 1})
	if err != nil {
		return nil, err
	}
	toks, err := s.store.ListAPITokens(ctx)
	if err != nil {
		return nil, err
	}
	if len(users) > 0 || len(toks) > 0 {
		return nil, nil
	}
	pw, err := s.randomSecret("", 18)
	if err != nil {
		return nil, err
	}
	ctx = contextWithSystemActor(ctx)
	if _, err := s.CreateUser(ctx, NewUser{Username: "admin", Password: pw, DisplayName: "Administrator", Roles: []string{RoleAdmin}}); err != nil {
		if errors.Is(err, store.ErrExists) {
			// Another replica on the same database bootstrapped first.
			return nil, nil
		}
		return nil, fmt.Errorf("registry: bootstrap admin user: %w", err)
	}
	if err := s.ensurePeoplePolicy(ctx); err != nil {
		return nil, err
	}
	tok, _, err := s.CreateAPIToken(ctx, "bootstrap", "admin", []string{RoleAdmin}, 0)
	if err != nil {
		return nil, fmt.Errorf("registry: bootstrap admin token: %w", err)
	}
	return &Bootstrap{Username: "admin", Password: pw, Token: tok}, nil
}
