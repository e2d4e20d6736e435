package oauth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// client is an authenticated (or, if public, identified) OAuth client. It
// implements op.Client for op's request plumbing; only the methods op's
// token endpoint consults carry meaning.
type client struct {
	id string
	// thing is set when the client is a thing.
	thing *store.ThingClient
	// static is set for a configured client.
	static *StaticClient
	// app is set for a registered app (apps.go).
	app *store.App
	// method is how the client authenticated in this request.
	method oidc.AuthMethod
	scopes []string
	grants []oidc.GrantType
}

func thingGrants() []oidc.GrantType {
	return []oidc.GrantType{oidc.GrantTypeClientCredentials, oidc.GrantTypeDeviceCode, oidc.GrantTypeRefreshToken}
}

func (c *client) GetID() string                        { return c.id }
func (c *client) RedirectURIs() []string               { return c.appRedirectURIs() }
func (c *client) PostLogoutRedirectURIs() []string     { return nil }
func (c *client) ApplicationType() op.ApplicationType  { return c.appType() }
func (c *client) AuthMethod() oidc.AuthMethod          { return c.method }
func (c *client) ResponseTypes() []oidc.ResponseType   { return c.appResponseTypes() }
func (c *client) GrantTypes() []oidc.GrantType         { return c.grants }
func (c *client) LoginURL(string) string               { return "" }
func (c *client) AccessTokenType() op.AccessTokenType  { return op.AccessTokenTypeJWT }
func (c *client) IDTokenLifetime() time.Duration       { return 0 }
func (c *client) DevMode() bool                        { return false }
func (c *client) IsScopeAllowed(scope string) bool     { return slices.Contains(c.scopes, scope) }
func (c *client) IDTokenUserinfoClaimsAssertion() bool { return false }
func (c *client) ClockSkew() time.Duration             { return 0 }
func (c *client) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c *client) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

// thingName and thingType are the thing claims of tokens for this client.
func (c *client) thingName() string {
	if c.thing == nil {
		return ""
	}
	return c.thing.Name
}

func (c *client) thingType() string {
	if c.thing == nil {
		return ""
	}
	return c.thing.ThingType
}

func (c *client) hasGrant(g oidc.GrantType) bool { return slices.Contains(c.grants, g) }

// resolveScopes checks requested scopes against the client's; none
// requested means all the client may have.
func (c *client) resolveScopes(requested []string) ([]string, error) {
	if len(requested) == 0 {
		return slices.Clone(c.scopes), nil
	}
	var out []string
	for _, sc := range requested {
		if !slices.Contains(c.scopes, sc) {
			return nil, oidc.ErrInvalidScope().WithDescription("scope %q is not allowed for client %q", truncate(sc), c.id)
		}
		if !slices.Contains(out, sc) {
			out = append(out, sc)
		}
	}
	return out, nil
}

// HashSecret returns the stored form of a client secret: hex SHA-256.
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

func validHash(h string) bool {
	b, err := hex.DecodeString(h)
	return err == nil && len(b) == sha256.Size
}

// secretMatches compares a presented secret with a stored hash in
// constant time.
func secretMatches(hash, secret string) bool {
	want, err := hex.DecodeString(hash)
	if err != nil || len(want) != sha256.Size {
		return false
	}
	got := sha256.Sum256([]byte(secret))
	return subtle.ConstantTimeCompare(got[:], want) == 1
}

// SecretPrefix starts every thing client secret, so leaked secrets are easy
// to recognise and scan for.
const SecretPrefix = "ghcs_"

// maxSecretBytes caps what is hashed for a presented secret.
const maxSecretBytes = 512

// VerifyClient implements op.Server: it authenticates the client of a token,
// device authorization or revocation request. A confidential client (every
// thing, and static clients with a secret) must authenticate, at every
// endpoint, by client secret (Basic or POST) or by a private_key_jwt
// assertion; a public client sends only its client_id.
func (s *Server) VerifyClient(ctx context.Context, r *op.Request[op.ClientCredentials]) (op.Client, error) {
	return s.authenticate(ctx, r.Data, r.URL.Path)
}

func (s *Server) authenticate(ctx context.Context, cc *op.ClientCredentials, path string) (*client, error) {
	if isApp(cc.ClientID) && cc.ClientAssertion == "" {
		return s.authenticateApp(ctx, cc.ClientID, cc.ClientSecret)
	}
	switch {
	case cc.ClientAssertion != "":
		if cc.ClientAssertionType != oidc.ClientAssertionTypeJWTAssertion {
			return nil, oidc.ErrInvalidRequest().WithDescription("unsupported client_assertion_type")
		}
		return s.authenticateAssertion(ctx, cc.ClientID, cc.ClientAssertion, path)
	case cc.ClientSecret != "":
		return s.authenticateSecret(ctx, cc.ClientID, cc.ClientSecret)
	case len(peerCertificates(ctx)) > 0 && s.clientCerts != nil:
		if _, public := s.clients[cc.ClientID]; !public {
			return s.authenticateTLS(ctx, cc.ClientID)
		}
	}
	if sc, ok := s.clients[cc.ClientID]; ok && sc.SecretHash == "" {
		return s.staticClient(sc, oidc.AuthMethodNone), nil
	}
	return nil, invalidClient("client authentication required")
}

func (s *Server) staticClient(sc *StaticClient, method oidc.AuthMethod) *client {
	c := &client{id: sc.ID, static: sc, method: method, scopes: sc.Scopes}
	for _, g := range sc.GrantTypes {
		c.grants = append(c.grants, oidc.GrantType(g))
	}
	return c
}

// thingClient loads a thing as a client and checks that it is enabled and
// that its type allows method.
func (s *Server) thingClient(ctx context.Context, name, method string, how oidc.AuthMethod) (*client, error) {
	tc, err := s.loadThingClient(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, s.serverError(ctx, "load thing client", err)
	}
	if tc.State != store.StateEnabled {
		return nil, invalidClient("client is disabled")
	}
	if len(tc.AuthMethods) > 0 && !slices.Contains(tc.AuthMethods, method) {
		return nil, invalidClient("authentication method %s is not allowed for this client", method)
	}
	scopes := tc.Scopes
	if tc.ThingType == "" {
		scopes = s.defaultScopes
	}
	return &client{id: tc.Name, thing: tc, method: how, scopes: scopes, grants: thingGrants()}, nil
}

// loadThingClient reads a thing client through the cache while Run is
// active (see clientCacheTTL).
func (s *Server) loadThingClient(ctx context.Context, name string) (*store.ThingClient, error) {
	cached := s.running.Load()
	now := s.now()
	if cached {
		if tc, ok := s.cache.get(name, now); ok {
			return tc, nil
		}
	}
	tc, err := s.store.GetThingClient(ctx, name)
	if err != nil {
		return nil, err
	}
	if cached {
		s.cache.put(tc, now)
	}
	return tc, nil
}

func (s *Server) authenticateSecret(ctx context.Context, id, secret string) (*client, error) {
	if len(secret) > maxSecretBytes || id == "" {
		return nil, invalidClient("invalid client credentials")
	}
	if sc, ok := s.clients[id]; ok {
		if sc.SecretHash == "" || !secretMatches(sc.SecretHash, secret) {
			return nil, invalidClient("invalid client credentials")
		}
		return s.staticClient(sc, oidc.AuthMethodBasic), nil
	}
	c, err := s.thingClient(ctx, id, AuthMethodClientSecret, oidc.AuthMethodBasic)
	if err != nil {
		return nil, err
	}
	if c == nil || c.thing.SecretHash == "" || !secretMatches(c.thing.SecretHash, secret) {
		return nil, invalidClient("invalid client credentials")
	}
	return c, nil
}

// SetThingSecret generates a new client secret for a thing, stores its hash
// (replacing any previous secret) and returns it. It is shown only once.
func (s *Server) SetThingSecret(ctx context.Context, thing string) (string, error) {
	raw, err := s.newID(32)
	if err != nil {
		return "", err
	}
	secret := SecretPrefix + raw
	err = s.change(ctx, "thing.secret_set", func(tx *store.Tx) (string, any, error) {
		if err := tx.SetThingSecret(ctx, thing, HashSecret(secret), s.now().UTC()); err != nil {
			return "", nil, err
		}
		return "thing/" + thing, nil, nil
	})
	if err != nil {
		return "", fmt.Errorf("oauth: set secret of thing %q: %w", thing, err)
	}
	return secret, nil
}

// RemoveThingSecret deletes a thing's client secret.
func (s *Server) RemoveThingSecret(ctx context.Context, thing string) error {
	err := s.change(ctx, "thing.secret_removed", func(tx *store.Tx) (string, any, error) {
		return "thing/" + thing, nil, tx.DeleteThingSecret(ctx, thing)
	})
	if err != nil {
		return fmt.Errorf("oauth: remove secret of thing %q: %w", thing, err)
	}
	return nil
}

// truncate shortens client-supplied text quoted in error descriptions.
func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
