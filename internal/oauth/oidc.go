package oauth

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// OpenID Connect for people (OpenID Connect Core 1.0, RP-Initiated Logout
// 1.0). When a person's grant includes the openid scope - the
// authorization code flow of a registered app, the device grant of a
// public client such as the CLI, and the password grant - the token
// response carries an ID token about the person:
//
//   - sub is the user's ID: stable, never reassigned (a username can be
//     deleted and taken again);
//   - aud and azp are the client; nonce is echoed from the authorization
//     request; auth_time is when the person signed in (refreshed ID tokens
//     keep the original); at_hash binds the access token issued with it;
//   - preferred_username and name (scope profile) and email (scope email)
//     are included, as the userinfo endpoint returns them.
//
// It is signed with the current access token key, under typ JWT, so any
// OIDC library verifies it with the JWKS. Things never get ID tokens: a
// thing is a client, not an end user.
//
// The userinfo endpoint (GET and POST, Bearer) answers a person's access
// token that carries openid. The end-session endpoint takes an ID token
// hint, revokes the grants the app holds for the person (Gatehouse keeps
// no browser session at the authorization server: every sign-in asks for
// the password) and returns to one of the app's redirect URIs.

const (
	// PathUserinfo is the OpenID Connect userinfo endpoint.
	PathUserinfo = "/oauth2/userinfo"
	// PathEndSession is the RP-initiated logout endpoint.
	PathEndSession = "/oauth2/logout"

	scopeOpenID  = "openid"
	scopeProfile = "profile"
	scopeEmail   = "email"
)

// idTokenClaims is the payload of an ID token.
type idTokenClaims struct {
	Issuer            string `json:"iss"`
	Subject           string `json:"sub"`
	Audience          string `json:"aud"`
	Expiry            int64  `json:"exp"`
	IssuedAt          int64  `json:"iat"`
	AuthTime          int64  `json:"auth_time,omitempty"`
	Nonce             string `json:"nonce,omitempty"`
	AccessTokenHash   string `json:"at_hash,omitempty"`
	AuthorizedParty   string `json:"azp,omitempty"`
	PreferredUsername string `json:"preferred_username,omitempty"`
	Name              string `json:"name,omitempty"`
	Email             string `json:"email,omitempty"`
	EmailVerified     *bool  `json:"email_verified,omitempty"`
}

// tokenRequest is what a grant brings to the tokens it issues: the nonce
// of the authorization request and when the person signed in (for the ID
// token), and the audience asked for with RFC 8707 resource indicators
// (nil: the default audience).
type tokenRequest struct {
	nonce    string
	authTime time.Time
	audience []string
}

// profileClaims are the claims about u that scopes allow, shared by the
// ID token and the userinfo endpoint.
func profileClaims(u *store.User, scopes []string) (preferred, name, email string, verified *bool) {
	if slices.Contains(scopes, scopeProfile) {
		preferred, name = u.Username, u.DisplayName
	}
	if slices.Contains(scopes, scopeEmail) && u.Email != "" {
		// Gatehouse does not verify addresses.
		f := false
		email, verified = u.Email, &f
	}
	return preferred, name, email, verified
}

// mintIDToken signs an ID token for user u, issued to clientID together
// with accessToken.
func (s *Server) mintIDToken(key *signingKey, u *store.User, clientID string, scopes []string, accessToken string, p tokenRequest) (string, error) {
	now := s.now()
	c := idTokenClaims{
		Issuer: s.issuer, Subject: u.ID, Audience: clientID, AuthorizedParty: clientID,
		IssuedAt: now.Unix(), Expiry: now.Add(s.atTTL).Unix(), Nonce: p.nonce,
		AccessTokenHash: tokenHash(key.alg, accessToken),
	}
	if !p.authTime.IsZero() {
		c.AuthTime = p.authTime.Unix()
	}
	c.PreferredUsername, c.Name, c.Email, c.EmailVerified = profileClaims(u, scopes)
	payload, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("oauth: encode ID token: %w", err)
	}
	raw, err := key.jwt.idToken(s.rand, payload)
	if err != nil {
		return "", fmt.Errorf("oauth: sign ID token: %w", err)
	}
	return raw, nil
}

// tokenHash is at_hash (Core 3.1.3.6): the left half of the hash of the
// token under the signature algorithm's hash, base64url. EdDSA uses
// SHA-512, as go-oidc and other libraries expect.
func tokenHash(alg, token string) string {
	var h hash.Hash = sha256.New()
	if alg == EdDSA {
		h = sha512.New()
	}
	h.Write([]byte(token))
	sum := h.Sum(nil)
	return base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2])
}

// serveUserinfo answers the userinfo endpoint (Core 5.3): the claims about
// the person whose access token (with openid) is presented.
func (s *Server) serveUserinfo(w http.ResponseWriter, r *http.Request) {
	setNoStore(w.Header())
	raw := ""
	if scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
		raw = strings.TrimSpace(tok)
	}
	deny := func(status int, code, desc string) {
		challenge := BearerChallenge(r)
		if code != "invalid_token" {
			challenge = fmt.Sprintf(`Bearer realm="gatehouse", error=%q`, code)
		}
		w.Header().Set("WWW-Authenticate", challenge)
		writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
	}
	if raw == "" {
		deny(http.StatusUnauthorized, "invalid_token", "a bearer access token is required")
		return
	}
	at, err := s.VerifyAccessToken(r.Context(), raw)
	if err != nil {
		deny(http.StatusUnauthorized, "invalid_token", "the access token is not valid")
		return
	}
	if at.Kind != KindUser || !at.HasScope(scopeOpenID) {
		deny(http.StatusForbidden, "insufficient_scope", "the access token is not a person's token with the openid scope")
		return
	}
	u, err := s.registry.User(r.Context(), at.Subject)
	if errors.Is(err, store.ErrNotFound) || (err == nil && u.Disabled) {
		deny(http.StatusUnauthorized, "invalid_token", "the user no longer exists or is disabled")
		return
	}
	if err != nil {
		s.log.ErrorContext(r.Context(), "userinfo", "err", err)
		writeJSON(w, http.StatusInternalServerError, oidc.ErrServerError().WithDescription("internal error"))
		return
	}
	out := map[string]any{"sub": u.ID}
	preferred, name, email, verified := profileClaims(u, at.Scopes)
	for k, v := range map[string]string{"preferred_username": preferred, "name": name, "email": email} {
		if v != "" {
			out[k] = v
		}
	}
	if verified != nil {
		out["email_verified"] = *verified
	}
	writeJSON(w, http.StatusOK, out)
}

// verifyIDTokenHint checks an ID token this server issued, expired or not
// (RP-Initiated Logout 1.0 section 2): typ JWT, a published key, the
// issuer.
func (s *Server) verifyIDTokenHint(ctx context.Context, raw string) (*idTokenClaims, error) {
	if len(raw) > maxTokenBytes {
		return nil, errors.New("too long")
	}
	h, input, payload, sig, err := parseCompact(raw)
	if err != nil {
		return nil, err
	}
	if h.Typ != "JWT" {
		return nil, fmt.Errorf("typ %q is not JWT", h.Typ)
	}
	key, ok := s.keys.lookup(ctx, h.Kid)
	if !ok || h.Alg != key.alg {
		return nil, errors.New("not signed by a published key")
	}
	if err := verifySignature(key.public, input, sig); err != nil {
		return nil, err
	}
	var c idTokenClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare([]byte(c.Issuer), []byte(s.issuer)) != 1 {
		return nil, errors.New("another issuer")
	}
	return &c, nil
}

// serveEndSession is RP-initiated logout: with a valid id_token_hint, the
// refresh tokens (and their access tokens) the app holds for the person
// are revoked; then the browser returns to post_logout_redirect_uri (one
// of the app's registered redirect URIs) with state, or sees that it is
// signed out.
func (s *Server) serveEndSession(w http.ResponseWriter, r *http.Request) {
	pageHeaders(w)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "malformed request", http.StatusBadRequest)
		return
	}
	ctx := r.Context()
	hint := r.Form.Get("id_token_hint")
	if hint == "" {
		http.Error(w, "id_token_hint is required to sign out", http.StatusBadRequest)
		return
	}
	c, err := s.verifyIDTokenHint(ctx, hint)
	if err != nil {
		http.Error(w, "id_token_hint is not an ID token issued here", http.StatusBadRequest)
		return
	}
	if id := r.Form.Get("client_id"); id != "" && id != c.Audience {
		http.Error(w, "client_id is not the ID token's audience", http.StatusBadRequest)
		return
	}
	target := ""
	if redirect := r.Form.Get("post_logout_redirect_uri"); redirect != "" {
		app, err := s.App(ctx, c.Audience)
		if err != nil || !slices.Contains(app.RedirectURIs, redirect) {
			http.Error(w, "post_logout_redirect_uri is not registered for the client", http.StatusBadRequest)
			return
		}
		u, err := url.Parse(redirect)
		if err != nil {
			http.Error(w, "post_logout_redirect_uri is not a URL", http.StatusBadRequest)
			return
		}
		if state := r.Form.Get("state"); state != "" {
			q := u.Query()
			q.Set("state", state)
			u.RawQuery = q.Encode()
		}
		target = u.String()
	}
	if err := s.signOut(ctx, c.Audience, c.Subject); err != nil {
		s.log.ErrorContext(ctx, "end session", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	if target != "" {
		http.Redirect(w, r, target, http.StatusFound)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("You are signed out of " + c.Audience + ".\n"))
}

// signOut revokes every refresh token family clientID holds for the user
// with ID userID, with the access tokens issued in them.
func (s *Server) signOut(ctx context.Context, clientID, userID string) error {
	u, err := s.store.GetUserByID(ctx, userID)
	if errors.Is(err, store.ErrNotFound) {
		return nil // nothing left to sign out of
	}
	if err != nil {
		return err
	}
	var notify []func()
	ctx = withAfterCommit(ctx, &notify)
	err = s.store.InTx(ctx, func(tx *store.Tx) error {
		notify = notify[:0]
		families, err := tx.RefreshFamilies(ctx, clientID, u.Username)
		if err != nil {
			return err
		}
		for _, f := range families {
			if err := s.revokeFamily(ctx, tx, f, "signed out"); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	runAll(notify)
	return nil
}
