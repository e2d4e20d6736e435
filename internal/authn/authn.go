// Package authn turns what a device presents - an access token as MQTT
// password or HTTP bearer, an AWS IoT style custom-authorizer token with its
// signature, or (with the PKI) a client certificate - into an Identity: who
// it is, which registry thing it acts for, and what policy variables it
// brings.
//
// It exists because the embedded broker, HTTPS publish and the adapters for
// external brokers must all accept the same credentials with the same rules
// and the same errors; none of them parses credentials itself.
package authn

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/oauth"
	"github.com/gatehouse-iot/gatehouse/internal/policy"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// Errors decide the answer a protocol gives: bad credentials (MQTT 0x86,
// HTTP 401) or authenticated but not allowed (MQTT 0x87, HTTP 403).
var (
	ErrBadCredentials = errors.New("authn: bad credentials")
	ErrNotAuthorized  = errors.New("authn: not authorized")
)

// Methods of authentication, as named in thing types' authMethods.
const (
	MethodAccessToken      = "access_token"
	MethodCertificate      = "certificate"
	MethodCustomAuthorizer = "custom_authorizer"
)

// MaxTokenBytes bounds a presented token, as the OAuth server does.
const MaxTokenBytes = 8 << 10

// TokenVerifier checks Gatehouse access tokens; *oauth.Server is one.
type TokenVerifier interface {
	VerifyAccessToken(ctx context.Context, raw string) (*oauth.AccessToken, error)
}

// Credentials is what a client presented.
type Credentials struct {
	ClientID string
	// Username and Password are the MQTT CONNECT fields.
	Username string
	Password []byte
	// Bearer is an HTTP Authorization: Bearer token.
	Bearer string
	// Authorizer* are the x-amz-customauthorizer-* HTTP headers and the
	// token the authorizer's token key names.
	AuthorizerName      string
	AuthorizerSignature string
	AuthorizerToken     string
	// TokenFromHeader looks up the authorizer's token key among request
	// headers or query parameters, for HTTP, when AuthorizerToken is empty.
	TokenFromHeader func(key string) string
	// PeerCertificates is the client certificate chain of a TLS connection.
	PeerCertificates []*x509.Certificate
	SourceIP         netip.Addr
}

// Identity is who authenticated.
type Identity struct {
	Method string
	// ThingName is the registry thing the client acts for, or "".
	ThingName string
	// Principal names the identity in logs and events, e.g. thing:pump-1
	// or user:alice.
	Principal string
	Subject   registry.Subject
	Token     *policy.Token
	// Certificate is set for certificate authentication.
	Certificate *policy.Certificate
	// CredentialID is the token's jti or the certificate's fingerprint, for
	// revocation.
	CredentialID string
	// BoundCertificate is the fingerprint of the client certificate a
	// token is bound to (RFC 8705 cnf x5t#S256), or "": the token is good
	// only while that certificate is.
	BoundCertificate string
	// ExpiresAt is when the credential stops being valid, by the clock of
	// Config.Now: from this instant it is refused at CONNECT, by Recheck
	// and by the broker's expiry kick. Zero for never.
	ExpiresAt time.Time
	// Authorizer is the custom authorizer used, if any.
	Authorizer string
	// UserName is the person a user token was issued to, or "".
	UserName string
}

// Config holds an Authenticator's dependencies.
type Config struct {
	Tokens   TokenVerifier
	Registry *registry.Service
	Store    *store.Store
	Now      func() time.Time
	// Certificates checks TLS client certificates; nil refuses them.
	Certificates CertificateAuthenticator
	// HTTPClient fetches external issuers' JWKS.
	HTTPClient *http.Client
}

// Authenticator checks credentials.
type Authenticator struct {
	tokens   TokenVerifier
	reg      *registry.Service
	store    *store.Store
	now      func() time.Time
	certs    CertificateAuthenticator
	client   *http.Client
	external []*jwksCache
}

// New returns an Authenticator. Add external issuers with
// AddExternalIssuer.
func New(c Config) *Authenticator {
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	return &Authenticator{tokens: c.Tokens, reg: c.Registry, store: c.Store, now: c.Now, certs: c.Certificates, client: c.HTTPClient}
}

// AddExternalIssuer makes tokens of another OAuth server acceptable. Call
// it before serving.
func (a *Authenticator) AddExternalIssuer(iss ExternalIssuer) error {
	jc, err := newJWKSCache(iss, a.client, a.now)
	if err != nil {
		return err
	}
	a.external = append(a.external, jc)
	return nil
}

// Authenticate checks c and returns the identity. Errors wrap
// ErrBadCredentials or ErrNotAuthorized and say why, for logs; protocols
// answer only with their code.
func (a *Authenticator) Authenticate(ctx context.Context, c Credentials) (*Identity, error) {
	name, rest, custom := splitCustomUsername(c.Username)
	switch {
	case custom:
		// A base64 signature pasted without URL-encoding keeps its "+":
		// nothing in these values is ever a space.
		q, err := url.ParseQuery(strings.ReplaceAll(rest, "+", "%2B"))
		if err != nil {
			return nil, fmt.Errorf("%w: custom authorizer username: %v", ErrBadCredentials, err)
		}
		c.Username = name
		c.AuthorizerName = q.Get("x-amz-customauthorizer-name")
		c.AuthorizerSignature = q.Get("x-amz-customauthorizer-signature")
		c.TokenFromHeader = q.Get
		return a.custom(ctx, c)
	case c.AuthorizerName != "" || c.AuthorizerSignature != "":
		return a.custom(ctx, c)
	case c.Bearer != "":
		return a.token(ctx, c.Bearer, c.Username, MethodAccessToken, c.PeerCertificates)
	case len(c.Password) > 0:
		return a.token(ctx, string(c.Password), c.Username, MethodAccessToken, c.PeerCertificates)
	case len(c.PeerCertificates) > 0:
		return a.certificate(ctx, c)
	}
	return nil, fmt.Errorf("%w: no credentials", ErrBadCredentials)
}

// splitCustomUsername splits an AWS IoT custom-authorizer MQTT username
// "name?x-amz-customauthorizer-name=...&..." into the name and the query.
func splitCustomUsername(u string) (name, query string, ok bool) {
	name, query, ok = strings.Cut(u, "?")
	if !ok || !strings.Contains(strings.ToLower(query), "x-amz-customauthorizer-") {
		return u, "", false
	}
	return name, query, true
}

// token verifies a Gatehouse access token. username, when not empty, must
// name the token's thing (or its subject, for a person's token).
func (a *Authenticator) token(ctx context.Context, raw, username, method string, peer []*x509.Certificate) (*Identity, error) {
	if len(raw) > MaxTokenBytes {
		return nil, fmt.Errorf("%w: token longer than %d bytes", ErrBadCredentials, MaxTokenBytes)
	}
	at, err := a.tokens.VerifyAccessToken(ctx, raw)
	if err != nil {
		ext, xerr := a.verifyExternal(ctx, raw)
		switch {
		case xerr == nil:
			at = ext
		case errors.Is(xerr, errNotExternal):
			return nil, fmt.Errorf("%w: %w", ErrBadCredentials, err)
		default:
			return nil, fmt.Errorf("%w: %w", ErrBadCredentials, xerr)
		}
	}
	if at.CertThumbprint != "" {
		// RFC 8705: a certificate-bound token is good only over a
		// connection presenting that certificate.
		if len(peer) == 0 || oauth.Thumbprint(peer[0]) != at.CertThumbprint {
			return nil, fmt.Errorf("%w: the token is bound to a client certificate this connection did not present", ErrBadCredentials)
		}
	}
	id := &Identity{
		Method: method, ThingName: at.ThingName, CredentialID: at.JTI, ExpiresAt: at.ExpiresAt,
		Token:   &policy.Token{Subject: at.Subject, ClientID: at.ClientID, Scope: at.Scopes},
		Subject: registry.Subject{ThingName: at.ThingName, Scopes: at.Scopes},
	}
	if at.CertThumbprint != "" {
		// The token's verification checked the certificate's status;
		// live sessions follow it by this fingerprint.
		fp, err := oauth.ThumbprintFingerprint(at.CertThumbprint)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadCredentials, err)
		}
		id.BoundCertificate = fp
	}
	if at.ThingName != "" {
		id.Principal = "thing:" + at.ThingName
	} else {
		id.Principal = "user:" + at.Subject
	}
	personOrActor(at, id)
	if username != "" && username != at.ThingName && (at.ThingName != "" || username != at.Subject) {
		return nil, fmt.Errorf("%w: username %q is not the token's thing or subject", ErrBadCredentials, truncate(username))
	}
	if err := a.checkThing(ctx, id); err != nil {
		return nil, err
	}
	if err := a.checkUser(ctx, id); err != nil {
		return nil, err
	}
	return id, nil
}

// Recheck tells whether an identity that authenticated earlier still may:
// its credential has not expired, its certificate (or the one its token is bound to) is still ACTIVE, its
// thing exists, is enabled and its type still allows the method. Live
// connections are rechecked when the registry changes.
func (a *Authenticator) Recheck(ctx context.Context, id *Identity) error {
	if !id.ExpiresAt.IsZero() && !a.now().Before(id.ExpiresAt) {
		return fmt.Errorf("%w: credential expired at %s", ErrNotAuthorized, id.ExpiresAt.UTC().Format(time.RFC3339))
	}
	if err := a.recheckCertificate(ctx, id); err != nil {
		return err
	}
	if err := a.checkUser(ctx, id); err != nil {
		return err
	}
	return a.checkThing(ctx, id)
}

// checkThing refuses identities whose thing is disabled, deleted, or of a
// type that does not allow the method.
func (a *Authenticator) checkThing(ctx context.Context, id *Identity) error {
	if id.ThingName == "" {
		return nil
	}
	th, tt, err := a.reg.ThingAndType(ctx, id.ThingName)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: thing %q no longer exists", ErrNotAuthorized, id.ThingName)
	}
	if err != nil {
		return err
	}
	if th.State != store.StateEnabled {
		return fmt.Errorf("%w: thing %q is disabled", ErrNotAuthorized, th.Name)
	}
	if tt != nil && len(tt.AuthMethods) > 0 && !slices.Contains(tt.AuthMethods, id.Method) {
		return fmt.Errorf("%w: thing type %q does not allow %s", ErrNotAuthorized, tt.Name, id.Method)
	}
	return nil
}

// custom implements AWS IoT custom authorizers: the signature, made with a
// key registered on the authorizer, must verify over the token; the token
// itself must then be a valid access token.
func (a *Authenticator) custom(ctx context.Context, c Credentials) (*Identity, error) {
	var (
		au  *store.Authorizer
		err error
	)
	if c.AuthorizerName == "" {
		au, err = a.store.DefaultAuthorizer(ctx)
	} else {
		au, err = a.store.GetAuthorizer(ctx, c.AuthorizerName)
	}
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: no authorizer %q", ErrBadCredentials, truncate(c.AuthorizerName))
	}
	if err != nil {
		return nil, err
	}
	if au.Status != store.AuthorizerActive {
		return nil, fmt.Errorf("%w: authorizer %q is inactive", ErrBadCredentials, au.Name)
	}
	tok := c.AuthorizerToken
	if tok == "" && c.TokenFromHeader != nil {
		tok = c.TokenFromHeader(au.TokenKeyName)
	}
	if tok == "" {
		return nil, fmt.Errorf("%w: authorizer %q: no %q token", ErrBadCredentials, au.Name, au.TokenKeyName)
	}
	if len(tok) > MaxTokenBytes {
		return nil, fmt.Errorf("%w: token longer than %d bytes", ErrBadCredentials, MaxTokenBytes)
	}
	if !au.SigningDisabled {
		if err := verifySignature(au, tok, c.AuthorizerSignature); err != nil {
			return nil, fmt.Errorf("%w: authorizer %q: %w", ErrBadCredentials, au.Name, err)
		}
	}
	id, err := a.token(ctx, tok, c.Username, MethodCustomAuthorizer, c.PeerCertificates)
	if err != nil {
		return nil, err
	}
	id.Authorizer = au.Name
	return id, nil
}

// verifySignature checks a base64 signature (RSA PKCS#1 v1.5 or ECDSA, over
// SHA-256 of the token) against every key of the authorizer.
func verifySignature(au *store.Authorizer, token, sig string) error {
	if sig == "" {
		return errors.New("no signature")
	}
	raw, err := base64.StdEncoding.DecodeString(sig)
	if err != nil {
		if raw, err = base64.RawStdEncoding.DecodeString(sig); err != nil {
			return errors.New("signature is not base64")
		}
	}
	sum := sha256.Sum256([]byte(token))
	for _, pemText := range au.PublicKeys {
		pub, err := registry.ParseSigningKey(pemText)
		if err != nil {
			continue
		}
		switch k := pub.(type) {
		case *rsa.PublicKey:
			if rsa.VerifyPKCS1v15(k, crypto.SHA256, sum[:], raw) == nil {
				return nil
			}
		case *ecdsa.PublicKey:
			if ecdsa.VerifyASN1(k, sum[:], raw) {
				return nil
			}
		}
	}
	return errors.New("signature does not verify with any token-signing key")
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
