package thing

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Token is an OAuth 2.0 token response, as cached in token.json.
type Token struct {
	AccessToken  string    `json:"access_token"`
	TokenType    string    `json:"token_type,omitempty"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	Expiry       time.Time `json:"expiry"`
	Scope        string    `json:"scope,omitempty"`
	// Obtained is when the token was received.
	Obtained time.Time `json:"obtained"`
}

// metadata is the part of the server's discovery document the SDK uses.
type metadata struct {
	Issuer        string `json:"issuer"`
	TokenEndpoint string `json:"token_endpoint"`
	DeviceCode    string `json:"device_authorization_endpoint"`
}

// discover fetches and caches the OAuth server metadata, falling back to
// Gatehouse's default paths.
func (t *Thing) discover(ctx context.Context) *metadata {
	t.mu.Lock()
	m := t.meta
	t.mu.Unlock()
	if m != nil {
		return m
	}
	m = &metadata{}
	err := t.send(ctx, "discovery", func() (*http.Request, error) {
		return http.NewRequestWithContext(ctx, http.MethodGet, t.server+"/.well-known/oauth-authorization-server", nil)
	}, m)
	if err != nil {
		t.log.Debug("thing: discovery failed, using default endpoints", "err", err)
	}
	if m.Issuer == "" {
		m.Issuer = t.server
	}
	if m.TokenEndpoint == "" {
		m.TokenEndpoint = t.server + "/oauth2/token"
	}
	if m.DeviceCode == "" {
		m.DeviceCode = t.server + "/oauth2/device/code"
	}
	if err == nil {
		t.mu.Lock()
		t.meta = m
		t.mu.Unlock()
	}
	return m
}

// Token returns a valid access token: the cached one unless it expires
// within RefreshBefore, else a refreshed (refresh token) or new (client
// credentials) one, which is cached and stored.
func (t *Thing) Token(ctx context.Context) (string, error) {
	t.tokenMu.Lock()
	defer t.tokenMu.Unlock()
	t.mu.Lock()
	cur := t.tok
	t.mu.Unlock()
	if cur != nil && cur.AccessToken != "" && t.fresh(cur) {
		return cur.AccessToken, nil
	}
	var (
		tok *Token
		err error
	)
	if cur != nil && cur.RefreshToken != "" {
		tok, err = t.refresh(ctx, cur.RefreshToken)
		if err != nil {
			t.log.Info("thing: refresh failed, trying client credentials", "thing", t.Name(), "err", err)
		}
	}
	if tok == nil {
		tok, err = t.fetch(ctx)
		if err != nil {
			return "", err
		}
	}
	if err := t.store(tok); err != nil {
		return "", err
	}
	return tok.AccessToken, nil
}

// fresh tells whether tok is good for at least RefreshBefore more.
func (t *Thing) fresh(tok *Token) bool {
	if tok.Expiry.IsZero() {
		return true
	}
	margin := t.cfg.RefreshBefore
	if margin <= 0 {
		margin = 30 * time.Second
		if life := tok.Expiry.Sub(tok.Obtained); !tok.Obtained.IsZero() && life/10 < margin {
			margin = life / 10
		}
	}
	return t.now().Add(margin).Before(tok.Expiry)
}

// InvalidateToken drops the cached access token (keeping a refresh
// token), so the next Token call gets a new one: after the server said the
// token was revoked or expired.
func (t *Thing) InvalidateToken() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.tok != nil {
		t.tok = &Token{RefreshToken: t.tok.RefreshToken}
	}
}

// store caches tok and writes token.json.
func (t *Thing) store(tok *Token) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.tok = tok
	return t.writeJSON(fileToken, tok)
}

// fetch gets a new token with the configured method and endpoint.
func (t *Thing) fetch(ctx context.Context) (*Token, error) {
	if t.cfg.Endpoint == EndpointThings {
		return t.thingsEndpoint(ctx)
	}
	form := url.Values{"grant_type": {"client_credentials"}}
	if len(t.cfg.Scopes) > 0 {
		form.Set("scope", strings.Join(t.cfg.Scopes, " "))
	}
	return t.tokenRequest(ctx, form)
}

func (t *Thing) refresh(ctx context.Context, refreshToken string) (*Token, error) {
	tok, err := t.tokenRequest(ctx, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}})
	if err != nil {
		return nil, err
	}
	if tok.RefreshToken == "" {
		tok.RefreshToken = refreshToken
	}
	return tok, nil
}

// tokenRequest posts form, with client authentication, to the token
// endpoint.
func (t *Thing) tokenRequest(ctx context.Context, form url.Values) (*Token, error) {
	m := t.discover(ctx)
	return t.postForm(ctx, m.TokenEndpoint, form)
}

func (t *Thing) postForm(ctx context.Context, endpoint string, form url.Values) (*Token, error) {
	var out tokenResponse
	if err := t.postClientForm(ctx, "token", endpoint, form, &out); err != nil {
		return nil, err
	}
	return out.token(t.now())
}

// postClientForm posts form to an OAuth endpoint with client
// authentication and decodes the answer; op names it in logs.
func (t *Thing) postClientForm(ctx context.Context, op, endpoint string, form url.Values, out any) error {
	m := t.discover(ctx)
	method, err := t.authMethod()
	if err != nil {
		return err
	}
	form.Set("client_id", t.Name())
	var basic bool
	switch method {
	case AuthClientSecretBasic:
		form.Del("client_id")
		basic = true
	case AuthClientSecretPost:
		form.Set("client_secret", t.secretValue())
	}
	err = t.send(ctx, op, func() (*http.Request, error) {
		if method == AuthPrivateKeyJWT { // a new assertion (and jti) for every try
			a, err := t.assertion(m.Issuer)
			if err != nil {
				return nil, err
			}
			form.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
			form.Set("client_assertion", a)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Accept", "application/json")
		if basic {
			req.SetBasicAuth(url.QueryEscape(t.Name()), url.QueryEscape(t.secretValue()))
		}
		return req, nil
	}, out)
	if err != nil {
		return fmt.Errorf("thing: %s: %w", endpoint, err)
	}
	return nil
}

func (t *Thing) secretValue() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.secret
}

// authMethod resolves AuthAuto.
func (t *Thing) authMethod() (AuthMethod, error) {
	t.mu.Lock()
	hasSecret, hasKey := t.secret != "", t.key != nil
	t.mu.Unlock()
	m := t.cfg.Auth
	if m == AuthNone {
		return m, nil
	}
	if m == AuthAuto {
		switch {
		case hasSecret:
			m = AuthClientSecretBasic
		case hasKey:
			m = AuthPrivateKeyJWT
		default:
			return 0, errors.New("thing: no credentials: set a client secret or register a key")
		}
	}
	if (m == AuthClientSecretBasic || m == AuthClientSecretPost) && !hasSecret {
		return 0, errors.New("thing: no client secret stored")
	}
	return m, nil
}

// thingsEndpoint uses POST /things/{name}?_action=get_access_token with
// Basic or a signed JWT as Bearer.
func (t *Thing) thingsEndpoint(ctx context.Context) (*Token, error) {
	method, err := t.authMethod()
	if err != nil {
		return nil, err
	}
	if method == AuthNone {
		return nil, errors.New("thing: a public client (AuthNone) gets tokens through DeviceFlow only")
	}
	body, err := json.Marshal(map[string]any{"scope": t.cfg.Scopes})
	if err != nil {
		return nil, fmt.Errorf("thing: %w", err)
	}
	u := t.server + "/things/" + url.PathEscape(t.Name()) + "?_action=get_access_token"
	var out tokenResponse
	err = t.send(ctx, "token", func() (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(string(body)))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		if method == AuthPrivateKeyJWT {
			a, err := t.assertion(t.discover(ctx).Issuer)
			if err != nil {
				return nil, err
			}
			req.Header.Set("Authorization", "Bearer "+a)
		} else {
			req.SetBasicAuth(url.QueryEscape(t.Name()), url.QueryEscape(t.secretValue()))
		}
		return req, nil
	}, &out)
	if err != nil {
		return nil, fmt.Errorf("thing: things endpoint: %w", err)
	}
	return out.token(t.now())
}

// assertion is an RFC 7523 client assertion signed with the thing's key:
// iss = sub = the thing, aud = the issuer, two minutes of life and a
// random jti (the server refuses replays).
func (t *Thing) assertion(audience string) (string, error) {
	key, err := t.Key()
	if err != nil {
		return "", err
	}
	alg, err := algorithm(key)
	if err != nil {
		return "", err
	}
	kid, err := keyID(key)
	if err != nil {
		return "", err
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: key, KeyID: kid}}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", fmt.Errorf("thing: signer: %w", err)
	}
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return "", fmt.Errorf("thing: random: %w", err)
	}
	now := t.now()
	claims, err := json.Marshal(map[string]any{
		"iss": t.Name(), "sub": t.Name(), "aud": audience, "iat": now.Unix(),
		"exp": now.Add(2 * time.Minute).Unix(), "jti": hex.EncodeToString(jti),
	})
	if err != nil {
		return "", fmt.Errorf("thing: claims: %w", err)
	}
	jws, err := signer.Sign(claims)
	if err != nil {
		return "", fmt.Errorf("thing: sign assertion: %w", err)
	}
	return jws.CompactSerialize()
}

func algorithm(k crypto.Signer) (jose.SignatureAlgorithm, error) {
	switch pk := k.Public().(type) {
	case *ecdsa.PublicKey:
		switch pk.Curve.Params().BitSize {
		case 256:
			return jose.ES256, nil
		case 384:
			return jose.ES384, nil
		}
	case *rsa.PublicKey:
		return jose.RS256, nil
	case ed25519.PublicKey:
		return jose.EdDSA, nil
	}
	return "", fmt.Errorf("thing: unsupported key type %T", k.Public())
}

// keyID is the RFC 7638 thumbprint of the public key, the kid the server
// assigns a registered JWK without one.
func keyID(k crypto.Signer) (string, error) {
	th, err := (&jose.JSONWebKey{Key: k.Public()}).Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("thing: thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(th), nil
}

// PublicJWK returns the public JWK of the thing's key (generated if
// needed), with kid and alg, to register with the server
// (POST /api/v1/things/{name}/keys) for private_key_jwt.
func (t *Thing) PublicJWK() ([]byte, error) {
	key, err := t.Key()
	if err != nil {
		return nil, err
	}
	alg, err := algorithm(key)
	if err != nil {
		return nil, err
	}
	kid, err := keyID(key)
	if err != nil {
		return nil, err
	}
	b, err := jose.JSONWebKey{Key: key.Public(), KeyID: kid, Algorithm: string(alg), Use: "sig"}.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("thing: encode JWK: %w", err)
	}
	return b, nil
}

// tokenResponse is RFC 6749 section 5.1; scope may be a string or a list.
type tokenResponse struct {
	AccessToken  string          `json:"access_token"`
	TokenType    string          `json:"token_type"`
	RefreshToken string          `json:"refresh_token"`
	ExpiresIn    int64           `json:"expires_in"`
	Scope        json.RawMessage `json:"scope"`
}

func (r *tokenResponse) token(now time.Time) (*Token, error) {
	if r.AccessToken == "" {
		return nil, errors.New("thing: token answer has no access_token")
	}
	tok := &Token{AccessToken: r.AccessToken, TokenType: r.TokenType, RefreshToken: r.RefreshToken, Obtained: now}
	if r.ExpiresIn > 0 {
		tok.Expiry = now.Add(time.Duration(r.ExpiresIn) * time.Second)
	}
	var s string
	var list []string
	switch {
	case json.Unmarshal(r.Scope, &s) == nil:
		tok.Scope = s
	case json.Unmarshal(r.Scope, &list) == nil:
		tok.Scope = strings.Join(list, " ")
	}
	return tok, nil
}
