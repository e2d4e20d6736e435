package authn

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-iot/gatehouse/internal/jwks"
	"github.com/gatehouse-iot/gatehouse/internal/oauth"
)

// ExternalIssuer is another OAuth 2.0 server whose JWT access tokens the
// broker accepts, verified locally with its JWKS (as HiveMQ's security
// extension does with ForgeRock AM's tokens).
type ExternalIssuer struct {
	// Issuer must equal the token's "iss".
	Issuer string `yaml:"issuer"`
	// JWKSURL is fetched and cached (package jwks): refetched every 10
	// minutes, and for an unknown kid at most every 30 s.
	JWKSURL string `yaml:"jwksURL"`
	// Audience must be among the token's "aud"; required, so that a token
	// the issuer minted for another resource server (or an ID token for
	// some client) is not accepted here.
	Audience string `yaml:"audience"`
	// ThingClaim names the claim holding the registry thing's name
	// ("sub" when empty). A token whose thing is not registered
	// authenticates a principal without thing variables.
	ThingClaim string `yaml:"thingClaim"`
	// Algorithms allowed (default RS256, ES256, EdDSA); "none" and HMAC
	// are never accepted.
	Algorithms []string `yaml:"algorithms"`
	// AllowUntypedTokens accepts tokens whose header typ is "JWT" or
	// absent, not only "at+jwt" (RFC 9068 section 4). It is a weakening,
	// for issuers that do not type their access tokens: any JWT the issuer
	// signs with the right issuer and audience then passes for an access
	// token (RFC 8725 section 3.11). Tokens shaped like ID tokens (nonce,
	// at_hash, c_hash) are refused either way.
	AllowUntypedTokens bool `yaml:"allowUntypedTokens"`
	// Leeway tolerates the issuer's clock being behind: its tokens are
	// accepted until exp + Leeway (default 0, at most MaxExternalLeeway).
	// Gatehouse's own tokens have none.
	Leeway time.Duration `yaml:"leeway"`
}

// MaxExternalLeeway bounds ExternalIssuer.Leeway.
const MaxExternalLeeway = 5 * time.Minute

// notBeforeSkew tolerates an nbf a little ahead of this clock; it lengthens
// no token's life.
const notBeforeSkew = 30 * time.Second

// jwksCache is one external issuer: its settings, allowed algorithms and
// key set (package jwks: refetched after a TTL, on unknown kids at most
// every 30 s, backing off while the issuer is down).
type jwksCache struct {
	iss  ExternalIssuer
	algs []jose.SignatureAlgorithm
	keys *jwks.Set
}

func newJWKSCache(iss ExternalIssuer, client *http.Client, now func() time.Time) (*jwksCache, error) {
	c := &jwksCache{iss: iss, keys: jwks.New(iss.JWKSURL, jwks.Options{Client: client, Now: now})}
	names := iss.Algorithms
	if len(names) == 0 {
		names = []string{"RS256", "ES256", "EdDSA"}
	}
	for _, n := range names {
		alg := jose.SignatureAlgorithm(n)
		switch alg {
		case jose.RS256, jose.RS384, jose.RS512, jose.ES256, jose.ES384, jose.ES512, jose.EdDSA, jose.PS256, jose.PS384, jose.PS512:
			c.algs = append(c.algs, alg)
		default:
			return nil, fmt.Errorf("authn: external issuer %s: algorithm %q is not an allowed asymmetric JWS algorithm", iss.Issuer, n)
		}
	}
	if iss.Issuer == "" || !strings.HasPrefix(iss.JWKSURL, "http") {
		return nil, fmt.Errorf("authn: external issuer needs issuer and an http(s) jwksURL")
	}
	if iss.Audience == "" {
		return nil, fmt.Errorf("authn: external issuer %s needs an audience", iss.Issuer)
	}
	if iss.Leeway < 0 || iss.Leeway > MaxExternalLeeway {
		return nil, fmt.Errorf("authn: external issuer %s: leeway %s: want 0 to %s", iss.Issuer, iss.Leeway, MaxExternalLeeway)
	}
	return c, nil
}

// checkType requires the header typ of an access token, "at+jwt" (RFC 9068
// section 4), unless the issuer allows untyped tokens ("JWT" or no typ).
func (c *jwksCache) checkType(h jose.Header) error {
	typ, _ := h.ExtraHeaders[jose.HeaderType].(string)
	switch t := strings.ToLower(typ); {
	case t == "at+jwt" || t == "application/at+jwt":
		return nil
	case c.iss.AllowUntypedTokens && (t == "" || t == "jwt"):
		return nil
	}
	return fmt.Errorf("external token: typ %q is not at+jwt (set allowUntypedTokens for issuer %s to accept untyped tokens)", typ, c.iss.Issuer)
}

// externalClaims are the claims read from an external token.
type externalClaims map[string]any

func (c externalClaims) str(name string) string {
	s, _ := c[name].(string)
	return s
}

func (c externalClaims) audience() []string {
	switch v := c["aud"].(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, a := range v {
			if s, ok := a.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

func (c externalClaims) scopes() []string {
	if s := c.str("scope"); s != "" {
		return strings.Fields(s)
	}
	if v, ok := c["scp"].([]any); ok {
		var out []string
		for _, a := range v {
			if s, ok := a.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

func (c externalClaims) unix(name string) (time.Time, bool) {
	f, ok := c[name].(float64)
	if !ok {
		return time.Time{}, false
	}
	return time.Unix(int64(f), 0), true
}

// errNotExternal means a token names no configured external issuer.
var errNotExternal = errors.New("not from an external issuer")

// verifyExternal verifies a JWT from a configured external issuer and
// returns it as an AccessToken.
func (a *Authenticator) verifyExternal(ctx context.Context, raw string) (*oauth.AccessToken, error) {
	if len(a.external) == 0 {
		return nil, errNotExternal
	}
	// Find the issuer from the unverified payload, then verify with only
	// that issuer's keys and algorithms.
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return nil, errNotExternal
	}
	var unverified struct {
		Iss string `json:"iss"`
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil || json.Unmarshal(payload, &unverified) != nil {
		return nil, errNotExternal
	}
	idx := slices.IndexFunc(a.external, func(c *jwksCache) bool { return c.iss.Issuer == unverified.Iss })
	if idx < 0 {
		return nil, errNotExternal
	}
	c := a.external[idx]
	jws, err := jose.ParseSignedCompact(raw, c.algs)
	if err != nil {
		return nil, fmt.Errorf("external token: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("external token: want one signature")
	}
	key, err := c.keys.Key(ctx, jws.Signatures[0].Header.KeyID)
	if err != nil {
		return nil, fmt.Errorf("external token from %s: %w", c.iss.Issuer, err)
	}
	body, err := jws.Verify(key)
	if err != nil {
		return nil, fmt.Errorf("external token: %w", err)
	}
	if err := c.checkType(jws.Signatures[0].Protected); err != nil {
		return nil, err
	}
	var claims externalClaims
	if err := json.Unmarshal(body, &claims); err != nil {
		return nil, fmt.Errorf("external token claims: %w", err)
	}
	for _, idClaim := range []string{"nonce", "at_hash", "c_hash"} {
		if _, ok := claims[idClaim]; ok {
			return nil, fmt.Errorf("external token: has %q, an ID token's claim: ID tokens are not access tokens", idClaim)
		}
	}
	now := a.now()
	exp, ok := claims.unix("exp")
	if !ok {
		return nil, errors.New("external token: without exp")
	}
	// The instant the token is refused from, here and for live sessions.
	exp = exp.Add(c.iss.Leeway)
	if !now.Before(exp) {
		return nil, errors.New("external token: expired")
	}
	if nbf, ok := claims.unix("nbf"); ok && now.Add(notBeforeSkew).Before(nbf) {
		return nil, errors.New("external token: not yet valid")
	}
	if !slices.Contains(claims.audience(), c.iss.Audience) {
		return nil, fmt.Errorf("external token: audience %v does not include %q", claims.audience(), c.iss.Audience)
	}
	thingClaim := c.iss.ThingClaim
	if thingClaim == "" {
		thingClaim = "sub"
	}
	at := &oauth.AccessToken{Subject: claims.str("sub"), ClientID: claims.str("client_id"), Scopes: claims.scopes(),
		Audience: claims.audience(), ExpiresAt: exp, JTI: claims.str("jti")}
	if iat, ok := claims.unix("iat"); ok {
		at.IssuedAt = iat
	}
	if name := claims.str(thingClaim); name != "" {
		if th, tt, err := a.reg.ThingAndType(ctx, name); err == nil {
			at.ThingName = th.Name
			if tt != nil {
				at.ThingType = tt.Name
			}
		}
	}
	return at, nil
}
