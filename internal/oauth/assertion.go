package oauth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// maxAssertionLifetime bounds exp of a client assertion, so the replay
// cache stays small.
const maxAssertionLifetime = time.Hour

// assertionLeeway is the clock skew tolerated in client assertions: they
// are signed by the clients' clocks, not Gatehouse's.
const assertionLeeway = 30 * time.Second

// assertionAlgorithms may sign client assertions. "none" and HS* are not
// among them: a thing's registered key is always asymmetric.
func assertionAlgorithms() []jose.SignatureAlgorithm {
	return []jose.SignatureAlgorithm{jose.ES256, jose.ES384, jose.EdDSA, jose.RS256, jose.PS256}
}

// assertionClaims are the RFC 7523 client assertion claims.
type assertionClaims struct {
	Issuer    string   `json:"iss"`
	Subject   string   `json:"sub"`
	Audience  audience `json:"aud"`
	Expiry    int64    `json:"exp"`
	NotBefore int64    `json:"nbf"`
	IssuedAt  int64    `json:"iat"`
	JTI       string   `json:"jti"`
}

// authenticateAssertion checks a private_key_jwt client assertion (RFC 7523
// section 3) signed by one of the thing's registered keys, and records its
// jti so it cannot be replayed. path is the endpoint the assertion was sent
// to; its URL is an accepted audience besides the issuer and the token
// endpoint.
func (s *Server) authenticateAssertion(ctx context.Context, clientID, assertion, path string) (*client, error) {
	if len(assertion) > maxTokenBytes {
		return nil, invalidClient("client assertion longer than %d bytes", maxTokenBytes)
	}
	jws, err := jose.ParseSignedCompact(assertion, assertionAlgorithms())
	if err != nil {
		return nil, invalidClient("malformed client assertion or unsupported algorithm")
	}
	if len(jws.Signatures) != 1 {
		return nil, invalidClient("client assertion must have one signature")
	}
	var unverified assertionClaims
	if err := json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &unverified); err != nil {
		return nil, invalidClient("malformed client assertion claims")
	}
	id := unverified.Issuer
	if id == "" || unverified.Subject != id || (clientID != "" && clientID != id) {
		return nil, invalidClient("client assertion iss and sub must both be the client_id")
	}
	c, err := s.thingClient(ctx, id, AuthMethodPrivateKeyJWT, oidc.AuthMethodPrivateKeyJWT)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, invalidClient("invalid client credentials")
	}
	keys, err := s.store.ListThingKeys(ctx, id)
	if err != nil {
		return nil, s.serverError(ctx, "load thing keys", err)
	}
	h := jws.Signatures[0].Header
	var key *store.ThingKey
	switch {
	case h.KeyID != "":
		if i := slices.IndexFunc(keys, func(k store.ThingKey) bool { return k.KID == h.KeyID }); i >= 0 {
			key = &keys[i]
		}
	case len(keys) == 1:
		key = &keys[0]
	}
	if key == nil {
		return nil, invalidClient("no registered key matches the client assertion")
	}
	if h.Algorithm != key.Algorithm {
		return nil, invalidClient("client assertion algorithm %s does not match the key's %s", truncate(h.Algorithm), key.Algorithm)
	}
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(key.JWK); err != nil {
		return nil, s.serverError(ctx, "decode thing key", err)
	}
	payload, err := jws.Verify(jwk.Key)
	if err != nil {
		return nil, invalidClient("client assertion signature does not verify")
	}
	var cl assertionClaims
	if err := json.Unmarshal(payload, &cl); err != nil || cl.Issuer != id || cl.Subject != id {
		return nil, invalidClient("malformed client assertion claims")
	}
	auds := []string{s.issuer, s.issuer + PathToken, s.issuer + path}
	if !slices.ContainsFunc(cl.Audience, func(a string) bool { return slices.Contains(auds, a) }) {
		return nil, invalidClient("client assertion audience must be the issuer or the endpoint URL")
	}
	now := s.now()
	exp := time.Unix(cl.Expiry, 0)
	switch {
	case cl.Expiry == 0:
		return nil, invalidClient("client assertion has no exp")
	case now.After(exp.Add(assertionLeeway)):
		return nil, invalidClient("client assertion expired")
	case exp.Sub(now) > maxAssertionLifetime:
		return nil, invalidClient("client assertion lives longer than %s", maxAssertionLifetime)
	case cl.NotBefore != 0 && now.Add(assertionLeeway).Before(time.Unix(cl.NotBefore, 0)):
		return nil, invalidClient("client assertion not valid yet")
	case cl.IssuedAt != 0 && now.Add(assertionLeeway).Before(time.Unix(cl.IssuedAt, 0)):
		return nil, invalidClient("client assertion issued in the future")
	case cl.JTI == "" || len(cl.JTI) > 256:
		return nil, invalidClient("client assertion needs a jti of at most 256 bytes")
	}
	err = s.store.UseAssertionID(ctx, id, cl.JTI, exp.Add(assertionLeeway), now)
	if errors.Is(err, store.ErrExists) {
		return nil, invalidClient("client assertion was already used")
	}
	if err != nil {
		return nil, s.serverError(ctx, "record assertion id", err)
	}
	return c, nil
}

// keyAlgorithm picks the one algorithm a public key may sign with, honouring
// the JWK's "alg" when it fits the key.
func keyAlgorithm(pub any, requested string) (string, error) {
	var allowed []string
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			allowed = []string{string(jose.ES256)}
		case elliptic.P384():
			allowed = []string{string(jose.ES384)}
		default:
			return "", errors.New("only P-256 and P-384 EC keys are supported")
		}
	case ed25519.PublicKey:
		allowed = []string{string(jose.EdDSA)}
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return "", errors.New("RSA keys must have at least 2048 bits")
		}
		allowed = []string{string(jose.RS256), string(jose.PS256)}
	default:
		return "", fmt.Errorf("%T keys are not supported: use EC P-256/P-384, Ed25519 or RSA", pub)
	}
	if requested == "" {
		return allowed[0], nil
	}
	if !slices.Contains(allowed, requested) {
		return "", fmt.Errorf("alg %q does not fit this key (want one of %v)", truncate(requested), allowed)
	}
	return requested, nil
}

func invalidKey(format string, args ...any) error {
	return &registry.InvalidError{Problems: []registry.Problem{{Field: "jwk", Message: fmt.Sprintf(format, args...)}}}
}

// AddThingKey registers a public key (a JWK) a thing signs private_key_jwt
// assertions with and returns its kid: the JWK's own, or its RFC 7638
// thumbprint. Private keys, symmetric keys and weak keys are refused with a
// *registry.InvalidError.
func (s *Server) AddThingKey(ctx context.Context, thing string, jwkJSON []byte) (string, error) {
	if len(jwkJSON) > maxTokenBytes {
		return "", invalidKey("longer than %d bytes", maxTokenBytes)
	}
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(jwkJSON); err != nil {
		return "", invalidKey("not a JSON Web Key: %v", err)
	}
	if !jwk.Valid() {
		return "", invalidKey("not a valid key")
	}
	if !jwk.IsPublic() {
		return "", invalidKey("a private or symmetric key was given: register the public key only")
	}
	alg, err := keyAlgorithm(jwk.Key, jwk.Algorithm)
	if err != nil {
		return "", invalidKey("%v", err)
	}
	kid := jwk.KeyID
	if kid == "" {
		thumb, err := jwk.Thumbprint(crypto.SHA256)
		if err != nil {
			return "", invalidKey("thumbprint: %v", err)
		}
		kid = base64.RawURLEncoding.EncodeToString(thumb)
	}
	if len(kid) > 128 {
		return "", invalidKey("kid longer than 128 bytes")
	}
	stored, err := json.Marshal(jose.JSONWebKey{Key: jwk.Key, KeyID: kid, Algorithm: alg, Use: "sig"})
	if err != nil {
		return "", fmt.Errorf("oauth: encode key: %w", err)
	}
	err = s.change(ctx, "thing.key_added", func(tx *store.Tx) (string, any, error) {
		k := &store.ThingKey{Thing: thing, KID: kid, Algorithm: alg, JWK: stored, CreatedAt: s.now().UTC()}
		return "thing/" + thing, map[string]string{"kid": kid, "alg": alg}, tx.AddThingKey(ctx, k)
	})
	if err != nil {
		return "", fmt.Errorf("oauth: add key to thing %q: %w", thing, err)
	}
	return kid, nil
}

// RemoveThingKey deletes a thing's key by kid.
func (s *Server) RemoveThingKey(ctx context.Context, thing, kid string) error {
	err := s.change(ctx, "thing.key_removed", func(tx *store.Tx) (string, any, error) {
		return "thing/" + thing, map[string]string{"kid": kid}, tx.RemoveThingKey(ctx, thing, kid)
	})
	if err != nil {
		return fmt.Errorf("oauth: remove key %q of thing %q: %w", kid, thing, err)
	}
	return nil
}

// ThingKey is a registered key as ListThingKeys shows it.
type ThingKey struct {
	KID       string          `json:"kid"`
	Algorithm string          `json:"alg"`
	JWK       json.RawMessage `json:"jwk"`
	CreatedAt time.Time       `json:"createdAt"`
}

// ListThingKeys returns a thing's registered public keys. A thing that does
// not exist gives store.ErrNotFound.
func (s *Server) ListThingKeys(ctx context.Context, thing string) ([]ThingKey, error) {
	if _, err := s.store.GetThing(ctx, thing); err != nil {
		return nil, err
	}
	keys, err := s.store.ListThingKeys(ctx, thing)
	if err != nil {
		return nil, err
	}
	out := make([]ThingKey, len(keys))
	for i, k := range keys {
		out[i] = ThingKey{KID: k.KID, Algorithm: k.Algorithm, JWK: json.RawMessage(k.JWK), CreatedAt: k.CreatedAt}
	}
	return out, nil
}
