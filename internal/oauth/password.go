package oauth

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// withPasswordGrant answers grant_type=password at the token endpoint in
// front of op, which does not implement the resource owner password
// credentials grant (RFC 6749 section 4.3). It is off unless
// Config.PasswordGrant is set, and then only for confidential registered
// apps allowed the "password" grant type.
func (s *Server) withPasswordGrant(next http.Handler) http.Handler {
	if !s.passwordGrant {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != PathToken || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
			next.ServeHTTP(w, r)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxRequestBodyBytes)
		if err := r.ParseForm(); err != nil {
			writeOAuthError(w, http.StatusBadRequest, oidc.ErrInvalidRequest().WithDescription("error parsing form"))
			return
		}
		if r.PostForm.Get("grant_type") != GrantPassword {
			next.ServeHTTP(w, r) // op reads the parsed form
			return
		}
		resp, err := s.passwordToken(r)
		if err != nil {
			w.Header().Set("Cache-Control", "no-store")
			op.WriteError(w, r, err, s.log)
			return
		}
		writeJSON(w, http.StatusOK, resp)
	})
}

func (s *Server) passwordToken(r *http.Request) (*oidc.AccessTokenResponse, error) {
	ctx := r.Context()
	f := r.PostForm
	id, secret := f.Get("client_id"), f.Get("client_secret")
	if u, p, ok := r.BasicAuth(); ok {
		if secret != "" {
			return nil, oidc.ErrInvalidRequest().WithDescription("client authentication must not use more than one method")
		}
		var err1, err2 error
		id, err1 = url.QueryUnescape(u)
		secret, err2 = url.QueryUnescape(p)
		if err1 != nil || err2 != nil {
			return nil, invalidClient("invalid basic auth header")
		}
	}
	if !isApp(id) || secret == "" {
		return nil, oidc.ErrUnauthorizedClient().WithDescription("only confidential registered apps may use the password grant")
	}
	c, err := s.authenticateApp(ctx, id, secret)
	if err != nil {
		return nil, err
	}
	if !c.hasGrant(GrantPassword) {
		return nil, oidc.ErrUnauthorizedClient().WithDescription("client may not use the password grant")
	}
	scopes, err := c.resolveScopes(strings.Fields(f.Get("scope")))
	if err != nil {
		return nil, err
	}
	if ok, _ := s.guesses.allow(clientAddr(r), ""); !ok {
		return nil, op.NewStatusError(oidc.ErrSlowDown().WithDescription("too many attempts"), http.StatusTooManyRequests)
	}
	user, err := s.registry.Authenticate(ctx, f.Get("username"), f.Get("password"))
	if errors.Is(err, registry.ErrBadCredentials) {
		return nil, oidc.ErrInvalidGrant().WithDescription("wrong username or password")
	}
	if errors.Is(err, registry.ErrSignInThrottled) {
		return nil, op.NewStatusError(oidc.ErrSlowDown().WithDescription("too many failed sign-ins for this account; retry shortly"), http.StatusTooManyRequests)
	}
	if err != nil {
		return nil, s.serverError(ctx, "password grant: authenticate", err)
	}
	aud, err := s.audienceFor(f)
	if err != nil {
		return nil, err
	}
	return s.issueForPerson(ctx, c, user.Username, scopes, GrantPassword, aud)
}

// issueForPerson issues a person's access and refresh tokens to client c.
func (s *Server) issueForPerson(ctx context.Context, c *client, username string, scopes []string, grantType string, audience []string) (*oidc.AccessTokenResponse, error) {
	key, err := s.keys.current(ctx)
	if err != nil {
		return nil, s.serverError(ctx, "signing key", err)
	}
	var (
		resp   *oidc.AccessTokenResponse
		notify []func()
	)
	ctx = withAfterCommit(ctx, &notify)
	err = s.store.InTx(ctx, func(tx *store.Tx) error {
		notify = notify[:0]
		// The person authenticated with this very request.
		resp, err = s.issueDelegated(ctx, tx, key, c, username, scopes, "", grantType, tokenRequest{authTime: s.now(), audience: audience})
		return err
	})
	if errors.Is(err, errUserInactive) {
		return nil, inactiveUser()
	}
	if err != nil {
		return nil, s.serverError(ctx, "issue tokens", err)
	}
	runAll(notify)
	if !c.hasGrant(oidc.GrantTypeRefreshToken) {
		resp.RefreshToken = ""
	}
	return resp, nil
}
