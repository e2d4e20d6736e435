package oauth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"
)

// Gatehouse's own access tokens expire at exp with no leeway: the instant
// exp is reached they are refused everywhere - at CONNECT, at re-checks,
// by the broker's kick of live sessions - by the same clock (Config.Now).
// issuedSkew only tolerates an iat or nbf a little ahead of this replica's
// clock, for a token another replica just issued; it lengthens no token's
// life.
const issuedSkew = 30 * time.Second

// revocationReload bounds how long a replica may miss a revocation made by
// another replica.
const revocationReload = 2 * time.Second

// ErrInvalidToken is wrapped by every VerifyAccessToken failure.
var ErrInvalidToken = errors.New("oauth: invalid access token")

// AccessToken is a verified access token's content.
type AccessToken struct {
	// Subject is the thing name for tokens a thing got for itself, or the
	// username of the person who approved a device authorization.
	Subject  string
	ClientID string
	// ThingName and ThingType are set when the client is a thing.
	ThingName string
	ThingType string
	Scopes    []string
	Audience  []string
	IssuedAt  time.Time
	ExpiresAt time.Time
	JTI       string
	// CertThumbprint, when set, is the x5t#S256 of the client certificate
	// the token is bound to (RFC 8705): it is only good together with that
	// certificate.
	CertThumbprint string
	// Kind is KindUser for a person's own token, else "".
	Kind  string
	Roles []string
	// Actor is the gateway thing that obtained this token for its child
	// (the "act" claim), or "".
	Actor string
}

// HasScope reports whether the token carries scope.
func (t *AccessToken) HasScope(scope string) bool { return slices.Contains(t.Scopes, scope) }

// claims is the JWT payload of an access token (RFC 9068 plus thing claims).
type claims struct {
	Issuer    string   `json:"iss"`
	Subject   string   `json:"sub"`
	Audience  audience `json:"aud"`
	Expiry    int64    `json:"exp"`
	IssuedAt  int64    `json:"iat"`
	NotBefore int64    `json:"nbf,omitempty"`
	JTI       string   `json:"jti"`
	ClientID  string   `json:"client_id"`
	Scope     string   `json:"scope,omitempty"`
	ThingName string   `json:"thing_name,omitempty"`
	ThingType string   `json:"thing_type,omitempty"`
	// Cnf binds the token to a client certificate (RFC 8705).
	Cnf *confirmation `json:"cnf,omitempty"`
	// Kind is "user" for a person's token (see people.go).
	Kind  string   `json:"gatehouse:kind,omitempty"`
	Roles []string `json:"roles,omitempty"`
	// Act names the gateway thing that got this token for its child
	// (RFC 8693 actor claim); Actor repeats it as a plain string.
	Act   *actClaim `json:"act,omitempty"`
	Actor string    `json:"gatehouse:actor,omitempty"`
}

// confirmation is the RFC 8705 "cnf" claim.
type confirmation struct {
	X5tS256 string `json:"x5t#S256"`
}

// audience decodes "aud" as a string or an array of strings.
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = audience{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*a = many
	return nil
}

// grant is what a token is issued for.
type grant struct {
	grantType string
	clientID  string
	subject   string
	thing     string
	thingType string
	scopes    []string
	// cnf is the x5t#S256 thumbprint the token is bound to, or "".
	cnf string
	// kind, roles and actor: see claims.
	kind  string
	roles []string
	actor string
	// audience is the token's aud if the client chose it (RFC 8707);
	// nil means the server's default audience.
	audience []string
	// ttl shortens the token's life below the server's access token
	// lifetime (0: that lifetime).
	ttl time.Duration
}

// newID returns n random bytes, base64url encoded.
func (s *Server) newID(n int) (string, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(s.rand, b); err != nil {
		return "", fmt.Errorf("oauth: random: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// mint signs an access token for g with key (from s.keys.current, fetched
// before any transaction: a rotation writes to the store).
func (s *Server) mint(key *signingKey, g grant) (raw string, c claims, err error) {
	jti, err := s.newID(16)
	if err != nil {
		return "", c, err
	}
	now := s.now()
	life := s.atTTL
	if g.ttl > 0 {
		life = min(life, g.ttl)
	}
	aud := s.audience
	if g.audience != nil {
		aud = g.audience
	}
	c = claims{
		Issuer: s.issuer, Subject: g.subject, Audience: aud, IssuedAt: now.Unix(), Expiry: ceilUnix(now.Add(life)),
		JTI: jti, ClientID: g.clientID, Scope: strings.Join(g.scopes, " "), ThingName: g.thing, ThingType: g.thingType,
	}
	if g.cnf != "" {
		c.Cnf = &confirmation{X5tS256: g.cnf}
	}
	g.decorate(&c)
	b := s.tokenBufs.Get().(*tokenBuffer)
	defer s.tokenBufs.Put(b)
	raw, err = key.jwt.compact(s.rand, &c, b)
	if err != nil {
		return "", c, fmt.Errorf("oauth: sign access token: %w", err)
	}
	return raw, c, nil
}

// ceilUnix is t in Unix seconds, rounded up: exp holds whole seconds and
// has no leeway, so rounding down would end a token before the expires_in
// its client was told.
func ceilUnix(t time.Time) int64 {
	if t.Equal(t.Truncate(time.Second)) {
		return t.Unix()
	}
	return t.Unix() + 1
}

// VerifyAccessToken checks an access token issued by this server: size at
// most 8 KiB, a published key by kid with that key's algorithm, typ at+jwt,
// issuer, audience, exp (no leeway), nbf/iat, revocation by jti and,
// for a token bound to a certificate, the certificate's status.
func (s *Server) VerifyAccessToken(ctx context.Context, raw string) (*AccessToken, error) {
	c, err := s.verifyJWT(ctx, raw)
	if err != nil {
		return nil, err
	}
	if s.revoked.has(ctx, s, c.JTI) {
		return nil, fmt.Errorf("%w: revoked", ErrInvalidToken)
	}
	if err := s.checkBound(ctx, c); err != nil {
		return nil, err
	}
	return c.accessToken(), nil
}

func (c *claims) accessToken() *AccessToken {
	at := &AccessToken{
		Subject: c.Subject, ClientID: c.ClientID, ThingName: c.ThingName, ThingType: c.ThingType,
		Scopes: strings.Fields(c.Scope), Audience: slices.Clone(c.Audience),
		IssuedAt: time.Unix(c.IssuedAt, 0).UTC(), ExpiresAt: time.Unix(c.Expiry, 0).UTC(), JTI: c.JTI,
	}
	if c.Cnf != nil {
		at.CertThumbprint = c.Cnf.X5tS256
	}
	c.people(at)
	return at
}

// verifyJWT checks everything but revocation. A token that verified
// before is looked up in s.verified (see verifiedCache) instead of being
// verified again; the result is the same.
func (s *Server) verifyJWT(ctx context.Context, raw string) (*claims, error) {
	if len(raw) > maxTokenBytes {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrInvalidToken, maxTokenBytes)
	}
	sum := sha256.Sum256([]byte(raw))
	if e, ok := s.verified.get(sum); ok {
		if s.keys.has(e.kid) && checkTimes(e.c, s.now()) == nil {
			c := *e.c
			c.Audience = slices.Clone(c.Audience)
			return &c, nil
		}
		s.verified.drop(sum) // verify again, to fail the same way
	}
	c, kid, err := s.verifyJWTUncached(ctx, raw)
	if err != nil {
		return nil, err
	}
	stored := *c
	stored.Audience = slices.Clone(c.Audience)
	if c.Cnf != nil {
		cnf := *c.Cnf
		stored.Cnf = &cnf
	}
	s.verified.put(sum, verifiedEntry{c: &stored, kid: kid}, s.now())
	return c, nil
}

// verifyJWTUncached verifies raw and returns its claims and the kid of the
// key it verified with.
func (s *Server) verifyJWTUncached(ctx context.Context, raw string) (*claims, string, error) {
	h, input, payload, sig, err := parseCompact(raw)
	if err != nil {
		return nil, "", fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	if !strings.EqualFold(h.Typ, "at+jwt") && !strings.EqualFold(h.Typ, "application/at+jwt") {
		return nil, "", fmt.Errorf("%w: typ %q is not at+jwt", ErrInvalidToken, h.Typ)
	}
	if h.Kid == "" {
		return nil, "", fmt.Errorf("%w: no kid", ErrInvalidToken)
	}
	key, ok := s.keys.lookup(ctx, h.Kid)
	if !ok {
		return nil, "", fmt.Errorf("%w: unknown key %q", ErrInvalidToken, h.Kid)
	}
	// The key pins the one algorithm it signs with.
	if h.Alg != key.alg {
		return nil, "", fmt.Errorf("%w: algorithm %s does not match key %s", ErrInvalidToken, h.Alg, key.alg)
	}
	if err := verifySignature(key.public, input, sig); err != nil {
		return nil, "", fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	var c claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, "", fmt.Errorf("%w: claims: %w", ErrInvalidToken, err)
	}
	if subtle.ConstantTimeCompare([]byte(c.Issuer), []byte(s.issuer)) != 1 {
		return nil, "", fmt.Errorf("%w: issuer %q", ErrInvalidToken, c.Issuer)
	}
	if !slices.ContainsFunc(c.Audience, func(a string) bool { return slices.Contains(s.audience, a) }) {
		return nil, "", fmt.Errorf("%w: audience %q", ErrInvalidToken, []string(c.Audience))
	}
	if c.JTI == "" || c.Subject == "" || c.ClientID == "" {
		return nil, "", fmt.Errorf("%w: jti, sub and client_id are required", ErrInvalidToken)
	}
	if err := checkTimes(&c, s.now()); err != nil {
		return nil, "", err
	}
	return &c, h.Kid, nil
}

// checkTimes checks exp (refused from that second on, RFC 7519 4.1.4),
// nbf and iat against now.
func checkTimes(c *claims, now time.Time) error {
	switch {
	case c.Expiry == 0 || !now.Before(time.Unix(c.Expiry, 0)):
		return fmt.Errorf("%w: expired", ErrInvalidToken)
	case c.NotBefore != 0 && now.Add(issuedSkew).Before(time.Unix(c.NotBefore, 0)):
		return fmt.Errorf("%w: not valid yet", ErrInvalidToken)
	case c.IssuedAt != 0 && now.Add(issuedSkew).Before(time.Unix(c.IssuedAt, 0)):
		return fmt.Errorf("%w: issued in the future", ErrInvalidToken)
	}
	return nil
}

// Revoked tells whether the access token with this jti was revoked: at
// once for a revocation made by this process, within revocationReload for
// one made by another replica. For callers that keep an identity after
// verifying its token (the external-broker adapters).
func (s *Server) Revoked(ctx context.Context, jti string) bool {
	return jti != "" && s.revoked.has(ctx, s, jti)
}

// revocations caches the JWT IDs of revoked, unexpired access tokens. It is
// reloaded from the store every revocationReload, so a revocation made on
// another replica takes effect within that time; one made here at once.
type revocations struct {
	mu       sync.RWMutex
	jtis     map[string]time.Time
	loadedAt time.Time
	reload   sync.Mutex
}

func (r *revocations) has(ctx context.Context, s *Server, jti string) bool {
	now := s.now()
	r.mu.RLock()
	_, revoked := r.jtis[jti]
	stale := now.Sub(r.loadedAt) >= revocationReload
	r.mu.RUnlock()
	if revoked || !stale || !r.reload.TryLock() {
		return revoked
	}
	defer r.reload.Unlock()
	m, err := s.store.ListRevokedAccessTokens(ctx, now)
	if err != nil {
		s.log.ErrorContext(ctx, "reload revoked tokens", "err", err)
		return revoked
	}
	r.mu.Lock()
	r.jtis, r.loadedAt = m, now
	r.mu.Unlock()
	_, revoked = m[jti]
	return revoked
}

func (r *revocations) add(jti string, exp time.Time) {
	r.mu.Lock()
	r.jtis[jti] = exp
	r.mu.Unlock()
}
