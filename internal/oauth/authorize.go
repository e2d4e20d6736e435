package oauth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// The authorization code grant (RFC 6749 section 4.1) with PKCE (RFC 7636)
// for registered apps: op's authorization endpoint decodes the request and
// checks the redirect URI, response type and scopes against the app;
// Authorize stores the request and sends the browser to the login page
// (login.go), which issues a one-time code; CodeExchange turns the code
// into a person's tokens.

// Paths of the authorization code flow.
const (
	PathAuthorize = "/oauth2/authorize"
	PathLogin     = "/login"
)

const (
	// authRequestTTL bounds the time from the authorization request to the
	// login; authCodeTTL the time from the login to the code exchange.
	authRequestTTL = 10 * time.Minute
	authCodeTTL    = time.Minute
)

// VerifyAuthRequest implements op.Server: only registered apps use the
// authorization endpoint, and the redirect URI must be one of the app's,
// exactly. A failure here is shown to the person, never redirected.
func (s *Server) VerifyAuthRequest(ctx context.Context, r *op.Request[oidc.AuthRequest]) (*op.ClientRequest[oidc.AuthRequest], error) {
	if !isApp(r.Data.ClientID) {
		return nil, oidc.ErrInvalidRequestRedirectURI().WithDescription("unknown client: only registered apps use this endpoint")
	}
	c, err := s.appClient(ctx, r.Data.ClientID, oidc.AuthMethodNone)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, oidc.ErrInvalidRequestRedirectURI().WithDescription("unknown client")
	}
	if !slices.Contains(c.app.RedirectURIs, r.Data.RedirectURI) {
		return nil, oidc.ErrInvalidRequestRedirectURI().WithDescription("redirect_uri is not registered for this client")
	}
	return &op.ClientRequest[oidc.AuthRequest]{Request: r, Client: c}, nil
}

// Authorize implements op.Server: it checks PKCE (required for public apps,
// S256 only), grant and scopes, stores the request and redirects to the
// login page. Errors here reach the app's redirect URI.
func (s *Server) Authorize(ctx context.Context, r *op.ClientRequest[oidc.AuthRequest]) (*op.Redirect, error) {
	c := r.Client.(*client)
	req := r.Data
	switch {
	case req.RequestParam != "":
		return nil, oidc.ErrRequestNotSupported()
	case !c.hasGrant(oidc.GrantTypeCode):
		return nil, oidc.ErrUnauthorizedClient().WithDescription("client may not use the authorization code grant")
	case req.CodeChallenge == "" && c.app.Public():
		return nil, oidc.ErrInvalidRequest().WithDescription("a public client must use PKCE (code_challenge with S256)")
	case req.CodeChallenge != "" && req.CodeChallengeMethod != oidc.CodeChallengeMethodS256:
		return nil, oidc.ErrInvalidRequest().WithDescription("code_challenge_method must be S256")
	case req.CodeChallenge != "" && (len(req.CodeChallenge) != 43 || !validVerifier(req.CodeChallenge)):
		return nil, oidc.ErrInvalidRequest().WithDescription("code_challenge is not a base64url SHA-256")
	}
	var scopes []string
	for _, sc := range req.Scopes {
		if c.IsScopeAllowed(sc) && !slices.Contains(scopes, sc) {
			scopes = append(scopes, sc)
		}
	}
	if len(scopes) == 0 {
		return nil, oidc.ErrInvalidScope().WithDescription("none of the requested scopes is allowed for this client")
	}
	id, err := s.newID(32)
	if err != nil {
		return nil, s.serverError(ctx, "authorization request id", err)
	}
	now := s.now().UTC()
	ar := &store.AuthRequest{IDHash: HashSecret(id), ClientID: c.id, RedirectURI: req.RedirectURI, Scopes: scopes, State: req.State, Nonce: req.Nonce,
		CodeChallenge: req.CodeChallenge, CodeChallengeMethod: string(req.CodeChallengeMethod), CreatedAt: now, ExpiresAt: now.Add(authRequestTTL)}
	if err := s.store.CreateAuthRequest(ctx, ar); err != nil {
		return nil, s.serverError(ctx, "store authorization request", err)
	}
	return op.NewRedirect(s.issuer + PathLogin + "?" + url.Values{"id": {id}}.Encode()), nil
}

// validVerifier reports whether v has only the characters RFC 7636 allows.
func validVerifier(v string) bool {
	for i := 0; i < len(v); i++ {
		b := v[i]
		if !('A' <= b && b <= 'Z' || 'a' <= b && b <= 'z' || '0' <= b && b <= '9' || b == '-' || b == '.' || b == '_' || b == '~') {
			return false
		}
	}
	return true
}

// pkceMatches checks a code_verifier against an S256 code_challenge.
func pkceMatches(challenge, verifier string) bool {
	if len(verifier) < 43 || len(verifier) > 128 || !validVerifier(verifier) {
		return false
	}
	sum := sha256.Sum256([]byte(verifier))
	got := base64.RawURLEncoding.EncodeToString(sum[:])
	return subtle.ConstantTimeCompare([]byte(got), []byte(challenge)) == 1
}

// CodeExchange implements op.Server: a code works once, for the app it was
// issued to, with the same redirect URI and the PKCE verifier; the person
// gets an access token (gatehouse:kind user) and, if the app may refresh,
// a rotating refresh token.
func (s *Server) CodeExchange(ctx context.Context, r *op.ClientRequest[oidc.AccessTokenRequest]) (*op.Response, error) {
	c := r.Client.(*client)
	if c.app == nil || !c.hasGrant(oidc.GrantTypeCode) {
		return nil, oidc.ErrUnauthorizedClient().WithDescription("client may not use the authorization code grant")
	}
	if len(r.Data.Code) > maxSecretBytes {
		return nil, oidc.ErrInvalidGrant().WithDescription("invalid authorization code")
	}
	key, err := s.keys.current(ctx)
	if err != nil {
		return nil, s.serverError(ctx, "signing key", err)
	}
	var (
		resp   *oidc.AccessTokenResponse
		result error
		notify []func()
	)
	aud, err := s.audienceFor(r.PostForm)
	if err != nil {
		return nil, err
	}
	codeHash := HashSecret(r.Data.Code)
	ctx = withAfterCommit(ctx, &notify)
	err = s.store.InTx(ctx, func(tx *store.Tx) error {
		notify, resp, result = notify[:0], nil, nil
		ar, err := tx.GetAuthRequestByCode(ctx, codeHash)
		if errors.Is(err, store.ErrNotFound) {
			result = oidc.ErrInvalidGrant().WithDescription("invalid authorization code")
			return s.revokeCodeGrant(ctx, tx, c, codeHash)
		}
		if err != nil {
			return err
		}
		// Whatever happens next, the code is spent.
		if err := tx.DeleteAuthRequest(ctx, ar.IDHash); err != nil {
			return err
		}
		switch {
		case ar.ClientID != c.id:
			result = oidc.ErrInvalidGrant().WithDescription("authorization code was issued to another client")
		case ar.RedirectURI != r.Data.RedirectURI:
			result = oidc.ErrInvalidGrant().WithDescription("redirect_uri differs from the authorization request")
		case s.now().After(ar.ExpiresAt):
			result = oidc.ErrInvalidGrant().WithDescription("authorization code expired")
		case ar.CodeChallenge == "" && r.Data.CodeVerifier != "":
			result = oidc.ErrInvalidGrant().WithDescription("code_verifier sent but no code_challenge was")
		case ar.CodeChallenge != "" && !pkceMatches(ar.CodeChallenge, r.Data.CodeVerifier):
			result = oidc.ErrInvalidGrant().WithDescription("code_verifier does not match the code_challenge")
		}
		if result != nil {
			return nil
		}
		// The login page saved the code at sign-in, expiring authCodeTTL later.
		signIn := tokenRequest{nonce: ar.Nonce, authTime: ar.ExpiresAt.Add(-authCodeTTL), audience: aud}
		resp, err = s.issueDelegated(ctx, tx, key, c, ar.Subject, ar.Scopes, codeFamily(codeHash), string(oidc.GrantTypeCode), signIn)
		return err
	})
	if errors.Is(err, errUserInactive) {
		return nil, inactiveUser()
	}
	if err != nil {
		return nil, s.serverError(ctx, "code exchange", err)
	}
	runAll(notify)
	if result != nil {
		return nil, result
	}
	if !c.hasGrant(oidc.GrantTypeRefreshToken) {
		resp.RefreshToken = ""
	}
	return op.NewResponse(resp), nil
}

// codeFamily names the refresh token family a code exchange starts after
// the code: the family (with the access token ID of each of its refresh
// tokens) is what the server remembers of a spent code, for as long as
// tokens issued from it live (refresh tokens are always stored, even for an
// app that may not refresh). The name is a hash of the code's hash, so it
// tells nothing about the code.
func codeFamily(codeHash string) string {
	return "code." + HashSecret("gatehouse authorization code family\x00" + codeHash)[:32]
}

// revokeCodeGrant answers an authorization code presented after it was
// spent (RFC 6749 section 4.1.2: the server SHOULD revoke the tokens issued
// from it). If the exchange issued tokens, the refresh family it started is
// revoked with every access token issued in it (the first and any refreshed
// one), token.revoked and authorization.code_reused are recorded. A code
// that was never exchanged, or whose grant is already revoked or expired,
// changes nothing.
func (s *Server) revokeCodeGrant(ctx context.Context, tx *store.Tx, c *client, codeHash string) error {
	family := codeFamily(codeHash)
	tokens, jtis, err := s.revokeFamilyTokens(ctx, tx, family)
	if err != nil || len(tokens) == 0 {
		return err
	}
	if err := s.recordFamilyRevoked(ctx, tx, family, "authorization code reused", tokens, jtis); err != nil {
		return err
	}
	ev, err := s.events.Record(ctx, tx, "authorization.code_reused", "client/"+tokens[0].ClientID,
		map[string]any{"refresh_family": family, "access_jtis": jtis, "subject": tokens[0].Subject, "presented_by": c.id})
	if err != nil {
		return err
	}
	afterCommit(ctx, func() { s.events.Notify(ev) })
	return nil
}

// codeRedirect is where the login page sends the browser: the app's
// redirect URI with the code and state (RFC 6749 section 4.1.2).
func codeRedirect(ar *store.AuthRequest, code string) (string, error) {
	u, err := url.Parse(ar.RedirectURI)
	if err != nil {
		return "", err
	}
	q := u.Query()
	q.Set("code", code)
	if ar.State != "" {
		q.Set("state", ar.State)
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// peopleMetadata adds the authorization code flow to the discovery
// document.
func (s *Server) peopleMetadata(d *oidc.DiscoveryConfiguration) {
	d.AuthorizationEndpoint = s.issuer + PathAuthorize
	d.ResponseTypesSupported = []string{string(oidc.ResponseTypeCode)}
	d.CodeChallengeMethodsSupported = []oidc.CodeChallengeMethod{oidc.CodeChallengeMethodS256}
	d.ClaimsSupported = append(d.ClaimsSupported, "gatehouse:kind", "roles", "act", "gatehouse:actor",
		"azp", "nonce", "auth_time", "at_hash", "preferred_username", "name", "email", "email_verified")
	d.UserinfoEndpoint = s.issuer + PathUserinfo
	d.EndSessionEndpoint = s.issuer + PathEndSession
}

// withIssuer adds iss to every redirect that returns the browser to a
// client from the authorization endpoint or the sign-in page, with a code
// or with an error (RFC 9207 section 2): a client talking to several
// authorization servers can tell which one answered.
func (s *Server) withIssuer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(issuerRedirect{ResponseWriter: w, issuer: s.issuer}, r)
	})
}

// issuerRedirect is withIssuer's ResponseWriter.
type issuerRedirect struct {
	http.ResponseWriter
	issuer string
}

func (i issuerRedirect) WriteHeader(status int) {
	if status >= 300 && status < 400 {
		if u, err := url.Parse(i.Header().Get("Location")); err == nil && u.Scheme != "" {
			if q := u.Query(); (q.Has("code") || q.Has("error")) && !q.Has("iss") {
				q.Set("iss", i.issuer)
				u.RawQuery = q.Encode()
				i.Header().Set("Location", u.String())
			}
		}
	}
	i.ResponseWriter.WriteHeader(status)
}

func (i issuerRedirect) Unwrap() http.ResponseWriter { return i.ResponseWriter }
