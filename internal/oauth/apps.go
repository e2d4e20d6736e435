package oauth

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// AppPrefix starts the client id of every registered app: "." occurs in no
// thing name, so an app can never shadow a thing as a client.
const AppPrefix = "app."

// AppSecretPrefix starts every app client secret.
const AppSecretPrefix = "ghas_"

// Grant type names apps may be registered for.
const (
	GrantAuthorizationCode = string(oidc.GrantTypeCode)
	GrantRefreshToken      = string(oidc.GrantTypeRefreshToken)
	GrantPassword          = "password"
	GrantClientCredentials = string(oidc.GrantTypeClientCredentials)
	GrantDeviceCode        = string(oidc.GrantTypeDeviceCode)
)

// AppSpec is what CreateApp needs.
type AppSpec struct {
	// Name becomes the client id "app.<name>".
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Public apps (browser and mobile apps, the console) have no secret and
	// must use PKCE with S256; confidential apps get a secret.
	Public       bool     `json:"public"`
	RedirectURIs []string `json:"redirectUris,omitempty"`
	// Scopes default to openid and offline_access.
	Scopes []string `json:"scopes,omitempty"`
	// GrantTypes default to authorization_code and refresh_token.
	GrantTypes []string `json:"grantTypes,omitempty"`
}

var appScopeRE = regexp.MustCompile(`^[\x21\x23-\x5B\x5D-\x7E]{1,128}$`)

// checkApp validates a spec and returns the problems found.
func checkApp(in *AppSpec) error {
	var p []registry.Problem
	add := func(field, format string, args ...any) {
		p = append(p, registry.Problem{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	if !registry.ValidName(in.Name) {
		add("name", "%q is not a valid name: use 1 to 128 of a-z A-Z 0-9 : _ -", truncate(in.Name))
	}
	if len([]rune(in.Description)) > 1024 {
		add("description", "longer than 1024 characters")
	}
	if len(in.Scopes) == 0 {
		in.Scopes = []string{oidc.ScopeOpenID, oidc.ScopeOfflineAccess}
	}
	if len(in.GrantTypes) == 0 {
		in.GrantTypes = []string{GrantAuthorizationCode, GrantRefreshToken}
	}
	for _, sc := range in.Scopes {
		if !appScopeRE.MatchString(sc) {
			add("scopes", "%q is not a valid OAuth scope", truncate(sc))
		}
	}
	for _, g := range in.GrantTypes {
		switch g {
		case GrantAuthorizationCode, GrantRefreshToken, GrantDeviceCode:
		case GrantPassword, GrantClientCredentials:
			if in.Public {
				add("grantTypes", "a public app cannot use the %s grant", g)
			}
		default:
			add("grantTypes", "%q is not authorization_code, refresh_token, password, client_credentials or %s", truncate(g), GrantDeviceCode)
		}
	}
	code := slices.Contains(in.GrantTypes, GrantAuthorizationCode)
	if code && len(in.RedirectURIs) == 0 {
		add("redirectUris", "the authorization_code grant needs at least one redirect URI")
	}
	if len(in.RedirectURIs) > 20 {
		add("redirectUris", "at most 20 redirect URIs")
	}
	for _, u := range in.RedirectURIs {
		if msg := checkRedirectURI(u); msg != "" {
			add("redirectUris", "%q %s", truncate(u), msg)
		}
	}
	if len(p) > 0 {
		return &registry.InvalidError{Problems: p}
	}
	return nil
}

// checkRedirectURI accepts absolute https URLs, http URLs on a loopback
// address (RFC 8252 section 7.3) and private-use schemes of native apps
// (com.example.app:/cb, RFC 8252 section 7.1); never a fragment.
func checkRedirectURI(raw string) string {
	u, err := url.Parse(raw)
	switch {
	case err != nil || len(raw) > 1024:
		return "is not a URL"
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return "must not have a fragment"
	case u.Scheme == "https":
		if u.Host == "" {
			return "has no host"
		}
	case u.Scheme == "http":
		h := u.Hostname()
		if h != "localhost" && h != "127.0.0.1" && h != "::1" {
			return "uses http on a host that is not a loopback address"
		}
	case strings.Contains(u.Scheme, "."):
		// A private-use URI scheme in reverse domain name notation.
	default:
		return "must be https, http on a loopback address or a reverse-domain private scheme"
	}
	return ""
}

// CreateApp registers an app. For a confidential app it returns the client
// secret, shown only once; only its hash is stored.
func (s *Server) CreateApp(ctx context.Context, in AppSpec) (*store.App, string, error) {
	if err := checkApp(&in); err != nil {
		return nil, "", err
	}
	a := &store.App{ClientID: AppPrefix + in.Name, Description: in.Description, RedirectURIs: in.RedirectURIs,
		Scopes: in.Scopes, GrantTypes: in.GrantTypes, CreatedAt: s.now().UTC()}
	var secret string
	if !in.Public {
		raw, err := s.newID(32)
		if err != nil {
			return nil, "", err
		}
		secret = AppSecretPrefix + raw
		a.SecretHash = HashSecret(secret)
	}
	err := s.change(ctx, "app.created", func(tx *store.Tx) (string, any, error) {
		return "app/" + a.ClientID, map[string]any{"public": in.Public, "redirectUris": a.RedirectURIs, "scopes": a.Scopes, "grantTypes": a.GrantTypes}, tx.CreateApp(ctx, a)
	})
	if err != nil {
		return nil, "", fmt.Errorf("oauth: create app: %w", err)
	}
	return a, secret, nil
}

// Apps lists the registered apps.
func (s *Server) Apps(ctx context.Context) ([]store.App, error) { return s.store.ListApps(ctx) }

// App returns one registered app.
func (s *Server) App(ctx context.Context, clientID string) (*store.App, error) {
	return s.store.GetApp(ctx, clientID)
}

// DeleteApp removes an app. Tokens it already got stay valid until they
// expire; its refresh tokens stop working at once.
func (s *Server) DeleteApp(ctx context.Context, clientID string) error {
	return s.change(ctx, "app.deleted", func(tx *store.Tx) (string, any, error) {
		return "app/" + clientID, nil, tx.DeleteApp(ctx, clientID)
	})
}

func isApp(clientID string) bool { return strings.HasPrefix(clientID, AppPrefix) }

// appClient loads a registered app as a client; nil if there is none.
func (s *Server) appClient(ctx context.Context, clientID string, method oidc.AuthMethod) (*client, error) {
	a, err := s.store.GetApp(ctx, clientID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, s.serverError(ctx, "load app", err)
	}
	c := &client{id: a.ClientID, app: a, method: method, scopes: a.Scopes}
	for _, g := range a.GrantTypes {
		c.grants = append(c.grants, oidc.GrantType(g))
	}
	return c, nil
}

// authenticateApp checks a registered app's credentials: a confidential app
// by its secret, a public one by its client id alone.
func (s *Server) authenticateApp(ctx context.Context, clientID, secret string) (*client, error) {
	method := oidc.AuthMethodBasic
	if secret == "" {
		method = oidc.AuthMethodNone
	}
	c, err := s.appClient(ctx, clientID, method)
	if err != nil {
		return nil, err
	}
	switch {
	case c == nil:
		return nil, invalidClient("invalid client credentials")
	case secret == "" && !c.app.Public():
		return nil, invalidClient("client authentication required")
	case secret != "" && (c.app.Public() || len(secret) > maxSecretBytes || !secretMatches(c.app.SecretHash, secret)):
		return nil, invalidClient("invalid client credentials")
	}
	return c, nil
}

// appRedirectURIs, appType and appResponseTypes are what op's authorization
// endpoint asks of a client: only apps take part in it. Public apps are
// native apps to op (loopback redirects, RFC 8252); the exact match that
// Gatehouse requires is checked first, in VerifyAuthRequest.
func (c *client) appRedirectURIs() []string {
	if c.app == nil {
		return nil
	}
	return c.app.RedirectURIs
}

func (c *client) appType() op.ApplicationType {
	if c.app != nil && !c.app.Public() {
		return op.ApplicationTypeWeb
	}
	return op.ApplicationTypeNative
}

func (c *client) appResponseTypes() []oidc.ResponseType {
	if c.app == nil || !c.hasGrant(oidc.GrantTypeCode) {
		return nil
	}
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}
