package oauth

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/gatehouse-iot/gatehouse/internal/events"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/seal"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// Signing algorithms.
const (
	ES256 = "ES256"
	EdDSA = "EdDSA"
	RS256 = "RS256"
	// HS256 is the legacy shared-secret mode (older IdP setups): resource servers
	// verify tokens with the same secret, so nothing is published in JWKS.
	HS256 = "HS256"
)

// Paths served by Handler.
const (
	PathDiscoveryOIDC   = "/.well-known/openid-configuration"
	PathDiscoveryOAuth  = "/.well-known/oauth-authorization-server"
	PathKeys            = "/oauth2/keys"
	PathToken           = "/oauth2/token"
	PathDeviceCode      = "/oauth2/device/code"
	PathIntrospect      = "/oauth2/introspect"
	PathRevoke          = "/oauth2/revoke"
	PathDevice          = "/device"
	PathThingsPrefix    = "/things/"
	maxTokenBytes       = 8 << 10
	maxRequestBodyBytes = 64 << 10
)

// Scope and auth method names.
const (
	AuthMethodClientSecret  = "client_secret"
	AuthMethodPrivateKeyJWT = "private_key_jwt"
)

// StaticClient is an OAuth client that is not a thing: a person's tool such
// as the gatehouse CLI (public, device flow) or a resource server allowed to
// introspect every token.
type StaticClient struct {
	ID string `json:"id"`
	// SecretHash is the hex SHA-256 of the client secret (see HashSecret).
	// Empty makes the client public: it cannot keep a secret, sends only
	// its client_id and may not use the client credentials grant.
	SecretHash string `json:"secretHash,omitempty"`
	// Scopes the client may request.
	Scopes []string `json:"scopes"`
	// GrantTypes allowed: "client_credentials",
	// "urn:ietf:params:oauth:grant-type:device_code", "refresh_token".
	// Empty means device_code and refresh_token.
	GrantTypes []string `json:"grantTypes,omitempty"`
	// Introspect lets the client introspect tokens issued to anyone.
	// Other clients only learn about their own tokens.
	Introspect bool `json:"introspect,omitempty"`
}

// DefaultCLIClient is the public client `gatehouse device-login` uses when
// no static clients are configured.
const DefaultCLIClient = "gatehouse-cli"

// Config holds a Server's settings and dependencies.
type Config struct {
	Store    *store.Store
	Registry *registry.Service
	Events   *events.Log
	// Issuer is the external base URL, e.g. https://gatehouse.example.com.
	Issuer string
	// Sealer encrypts signing keys at rest.
	Sealer *seal.Sealer
	// Algorithm signs access tokens: ES256 (default), EdDSA, RS256, or
	// HS256 with HS256Secret (legacy shared-secret mode).
	Algorithm   string
	HS256Secret []byte
	// Audience is the "aud" of access tokens; default [Issuer].
	Audience []string
	// Resources are the resource indicators clients may ask tokens for
	// (RFC 8707): a token requested with resource=R has aud [R] and is not
	// accepted by Gatehouse's own resource servers (broker, HTTPS publish),
	// which want Audience.
	Resources []string
	// AccessTokenTTL defaults to 1h, RefreshTokenTTL to 30 days,
	// DeviceCodeTTL to 10 minutes, KeyRotation to 30 days.
	AccessTokenTTL, RefreshTokenTTL, DeviceCodeTTL, KeyRotation time.Duration
	// DevicePollInterval is the minimum polling interval told to devices
	// (default 5s).
	DevicePollInterval time.Duration
	// DefaultScopes are what a thing without a thing type may get.
	DefaultScopes []string
	// Clients are the static (non-thing) clients. Nil means one public
	// client, DefaultCLIClient, with scopes openid, profile and
	// offline_access.
	Clients []StaticClient
	// ClientCertificates enables RFC 8705 tls_client_auth: it maps a TLS
	// client certificate to its thing. Tokens requested over mutual TLS
	// are bound to the certificate (cnf x5t#S256) whatever the client
	// authentication.
	ClientCertificates ClientCertificates
	// MTLSBaseURL is the base URL of the mutual-TLS listener, e.g.
	// https://gatehouse.example.com:8443, or "" where there is none. With
	// it the metadata advertises tls_client_auth, certificate-bound tokens
	// and the endpoints' mtls_endpoint_aliases (RFC 8705 section 5).
	MTLSBaseURL string
	// CertificateStatus tells whether the certificate a token is bound to,
	// by its fingerprint (lowercase hex SHA-256), may still be used; it is
	// asked at every verification of a bound token, so revoking or
	// deactivating the certificate retires its tokens at once. Nil
	// accepts bound tokens on their thumbprint alone.
	CertificateStatus func(ctx context.Context, fingerprint string) error
	Now               func() time.Time
	Rand              io.Reader
	Logger            *slog.Logger

	// PasswordGrant enables the resource owner password grant for
	// confidential registered apps (password.go).
	PasswordGrant bool
	// Limits are the token endpoint and device page abuse limits.
	Limits Limits
}

// Server is the authorization server. Create it with New.
type Server struct {
	op.UnimplementedServer

	store                                           *store.Store
	clientCerts                                     ClientCertificates
	resources                                       []string
	mtlsBaseURL                                     string
	certStatus                                      func(ctx context.Context, fingerprint string) error
	registry                                        *registry.Service
	events                                          *events.Log
	issuer                                          string
	issuerURL                                       *url.URL
	audience                                        []string
	sealer                                          *seal.Sealer
	alg                                             string
	hsSecret                                        []byte
	atTTL, rtTTL, deviceTTL, rotation, pollInterval time.Duration
	defaultScopes                                   []string
	clients                                         map[string]*StaticClient
	now                                             func() time.Time
	rand                                            io.Reader
	log                                             *slog.Logger

	keys       *keyring
	cache      *clientCache
	revoked    *revocations
	verified   *verifiedCache
	issued     *events.Batcher // token.issued of client credentials, batched while Run is active; never drops
	guesses    *limiter
	tokenBufs  sync.Pool
	metrics    atomic.Pointer[tokenMetrics]
	noFastPath bool         // tests: serve every token request through op
	fastServed atomic.Int64 // requests the fast path answered
	limits     Limits
	running    atomic.Bool
	handler    http.Handler
	routeList  []Route
	deviceTmpl *template.Template
	// loginTmpl and passwordGrant: authorization code and password grants
	// for registered apps (authorize.go, login.go, password.go).
	loginTmpl     *template.Template
	passwordGrant bool
	// grantTypes are the grant types the token endpoint offers, as its
	// metadata lists them.
	grantTypes []oidc.GrantType
}

// New validates cfg and returns a Server. Signing keys are created on first
// use.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil || cfg.Registry == nil || cfg.Events == nil {
		return nil, errors.New("oauth: Store, Registry and Events are required")
	}
	iss, err := url.Parse(strings.TrimRight(cfg.Issuer, "/"))
	if err != nil || (iss.Scheme != "https" && iss.Scheme != "http") || iss.Host == "" || iss.RawQuery != "" || iss.Fragment != "" {
		return nil, fmt.Errorf("oauth: issuer %q must be an http(s) URL without query", cfg.Issuer)
	}
	if cfg.Algorithm == "" {
		cfg.Algorithm = ES256
	}
	switch cfg.Algorithm {
	case ES256, EdDSA, RS256:
		if len(cfg.HS256Secret) > 0 {
			return nil, fmt.Errorf("oauth: HS256 secret given but algorithm is %s", cfg.Algorithm)
		}
		if cfg.Sealer == nil {
			return nil, errors.New("oauth: a Sealer is required to keep signing keys")
		}
	case HS256:
		if len(cfg.HS256Secret) < 32 {
			return nil, errors.New("oauth: HS256 needs a shared secret of at least 32 bytes")
		}
	default:
		return nil, fmt.Errorf("oauth: unsupported signing algorithm %q (want ES256, EdDSA, RS256 or HS256)", cfg.Algorithm)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&cfg.AccessTokenTTL, time.Hour)
	def(&cfg.RefreshTokenTTL, 30*24*time.Hour)
	def(&cfg.DeviceCodeTTL, 10*time.Minute)
	def(&cfg.KeyRotation, 30*24*time.Hour)
	def(&cfg.DevicePollInterval, 5*time.Second)
	for _, d := range []time.Duration{cfg.AccessTokenTTL, cfg.RefreshTokenTTL, cfg.DeviceCodeTTL, cfg.KeyRotation, cfg.DevicePollInterval} {
		if d < 0 {
			return nil, errors.New("oauth: durations must not be negative")
		}
	}
	// A token must stay verifiable for its whole life: it is signed by the
	// current key, which stays published as the previous key for one more
	// rotation period.
	if cfg.KeyRotation < cfg.AccessTokenTTL {
		return nil, fmt.Errorf("oauth: key rotation period %s is shorter than the access token lifetime %s", cfg.KeyRotation, cfg.AccessTokenTTL)
	}
	if cfg.DevicePollInterval%time.Second != 0 {
		return nil, errors.New("oauth: device poll interval must be whole seconds")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clients == nil {
		cfg.Clients = []StaticClient{{ID: DefaultCLIClient, Scopes: []string{"openid", "profile", "offline_access"}}}
	}
	s := &Server{
		store: cfg.Store, registry: cfg.Registry, events: cfg.Events,
		issuer: iss.String(), issuerURL: iss, sealer: cfg.Sealer, alg: cfg.Algorithm, hsSecret: slices.Clone(cfg.HS256Secret),
		atTTL: cfg.AccessTokenTTL, rtTTL: cfg.RefreshTokenTTL, deviceTTL: cfg.DeviceCodeTTL, rotation: cfg.KeyRotation,
		pollInterval: cfg.DevicePollInterval, defaultScopes: slices.Clone(cfg.DefaultScopes),
		clients: map[string]*StaticClient{}, now: cfg.Now, rand: cfg.Rand, log: cfg.Logger, clientCerts: cfg.ClientCertificates,
		certStatus: cfg.CertificateStatus, mtlsBaseURL: strings.TrimSuffix(cfg.MTLSBaseURL, "/"),
	}
	s.audience = slices.Clone(cfg.Audience)
	s.resources = slices.Clone(cfg.Resources)
	if len(s.audience) == 0 {
		s.audience = []string{s.issuer}
	}
	for i := range cfg.Clients {
		c := cfg.Clients[i]
		if c.ID == "" || strings.ContainsAny(c.ID, " \t\r\n") {
			return nil, fmt.Errorf("oauth: static client %d: invalid id %q", i, c.ID)
		}
		if _, dup := s.clients[c.ID]; dup {
			return nil, fmt.Errorf("oauth: static client %q listed twice", c.ID)
		}
		if c.SecretHash != "" && !validHash(c.SecretHash) {
			return nil, fmt.Errorf("oauth: static client %q: secretHash must be 64 hex digits (SHA-256)", c.ID)
		}
		if len(c.GrantTypes) == 0 {
			c.GrantTypes = []string{string(oidc.GrantTypeDeviceCode), string(oidc.GrantTypeRefreshToken)}
		}
		for _, g := range c.GrantTypes {
			switch oidc.GrantType(g) {
			case oidc.GrantTypeDeviceCode, oidc.GrantTypeRefreshToken:
			case oidc.GrantTypeClientCredentials:
				if c.SecretHash == "" {
					return nil, fmt.Errorf("oauth: public client %q cannot use the client credentials grant", c.ID)
				}
			default:
				return nil, fmt.Errorf("oauth: static client %q: unsupported grant type %q", c.ID, g)
			}
		}
		s.clients[c.ID] = &c
	}
	s.tokenBufs.New = func() any { return new(tokenBuffer) }
	s.keys = newKeyring(s)
	s.cache = newClientCache()
	s.revoked = &revocations{jtis: map[string]time.Time{}}
	s.verified = newVerifiedCache()
	s.issued = s.events.NewBatcher(4096, s.log)
	s.limits = cfg.Limits
	s.guesses = newGuessLimiter(cfg.Limits, s.now)
	if s.deviceTmpl, err = parsePage("device"); err != nil {
		return nil, fmt.Errorf("oauth: device page template: %w", err)
	}
	if s.loginTmpl, err = parsePage("login"); err != nil {
		return nil, fmt.Errorf("oauth: login page template: %w", err)
	}
	s.passwordGrant = cfg.PasswordGrant
	s.grantTypes = s.grantTypesSupported()
	s.routeList = s.routes()
	mux := http.NewServeMux()
	for _, r := range s.routeList {
		mux.Handle(r.Pattern, r.Handler)
	}
	s.handler = mux
	return s, nil
}

// Handler serves every route of the authorization server from the root.
func (s *Server) Handler() http.Handler { return s.handler }

// Issuer is the issuer URL tokens carry.
func (s *Server) Issuer() string { return s.issuer }

// Route is one pattern of the authorization server's HTTP surface (in
// net/http.ServeMux syntax) and its handler.
type Route struct {
	Pattern string
	Handler http.Handler
}

// Routes lists every pattern the authorization server answers, each
// handler wrapped in its middleware (token limits, client certificates,
// the password grant, the body limit). The application registers them in
// its one route table (internal/app/routes.go).
func (s *Server) Routes() []Route { return s.routeList }

func (s *Server) routes() []Route {
	endpoints := op.Endpoints{
		Token:               op.NewEndpoint(PathToken),
		Introspection:       op.NewEndpoint(PathIntrospect),
		Revocation:          op.NewEndpoint(PathRevoke),
		JwksURI:             op.NewEndpoint(PathKeys),
		DeviceAuthorization: op.NewEndpoint(PathDeviceCode),
		Authorization:       op.NewEndpoint(PathAuthorize),
	}
	// No CORS: browsers have no business calling these endpoints.
	o := op.RegisterServer(s, endpoints, op.WithServerCORSOptions(nil))
	introspect := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// op answers an unauthenticated introspection with invalid_client
		// but status 400; RFC 6749 section 5.2 wants 401.
		if _, _, basic := r.BasicAuth(); !basic && r.ParseForm() == nil && r.PostForm.Get("client_secret") == "" && r.PostForm.Get("client_assertion") == "" {
			writeOAuthError(w, http.StatusUnauthorized, oidc.ErrInvalidClient().WithDescription("client must authenticate"))
			return
		}
		o.ServeHTTP(w, r)
	})
	rs := []Route{
		{PathDiscoveryOIDC, o},
		{"GET " + PathDiscoveryOAuth, http.HandlerFunc(s.serveMetadata)},
		{PathKeys, o},
		{PathToken, strictEndpoint(s.tokenEndpoint(o), false)},
		{PathDeviceCode, strictEndpoint(o, true)},
		{PathIntrospect, strictEndpoint(introspect, true)},
		{PathRevoke, strictEndpoint(o, true)},
		{PathAuthorize, s.withIssuer(o)},
		{"GET " + PathLogin, s.withIssuer(http.HandlerFunc(s.serveLogin))},
		{"POST " + PathLogin, s.withIssuer(http.HandlerFunc(s.serveLogin))},
		{"GET " + PathUserinfo, http.HandlerFunc(s.serveUserinfo)},
		{"POST " + PathUserinfo, http.HandlerFunc(s.serveUserinfo)},
		{"GET " + PathEndSession, http.HandlerFunc(s.serveEndSession)},
		{"POST " + PathEndSession, http.HandlerFunc(s.serveEndSession)},
		{"GET " + PathDevice, http.HandlerFunc(s.serveDevicePage)},
		{"POST " + PathDevice, http.HandlerFunc(s.serveDevicePage)},
		{"POST " + PathThingsPrefix + "{name}", http.HandlerFunc(s.serveThingToken)},
	}
	// ForgeRock AM's paths re-dispatch to the native ones.
	native := http.NewServeMux()
	for _, r := range rs {
		native.Handle(r.Pattern, r.Handler)
	}
	rs = append(rs, s.amRoutes(native)...)
	for i := range rs {
		rs[i].Handler = s.limitTokens(withPeerCertificates(s.withPasswordGrant(limitBody(rs[i].Handler))))
	}
	return rs
}

// limitBody bounds every request body of the authorization server.
func limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, maxRequestBodyBytes)
		}
		next.ServeHTTP(w, r)
	})
}

// Run does the background work until ctx ends: it writes token.issued
// events in batches, rotates signing keys on schedule and purges expired
// records. Without Run, events are written one by one as tokens are issued
// and keys are rotated when a token is signed after the period ran out.
func (s *Server) Run(ctx context.Context) error {
	changes, stop := s.events.Subscribe(4096)
	defer stop()
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("oauth: Run called twice")
	}
	defer func() {
		s.running.Store(false)
		s.cache.clear()
	}()
	// Token events: once ctx ended, the batcher writes what is queued
	// before Run returns.
	batchDone := make(chan struct{})
	go func() {
		defer close(batchDone)
		_ = s.issued.Run(ctx)
	}()
	defer func() { <-batchDone }()
	// Keys another replica rotated: signing with the new key and refusing
	// the retired one follow within a second, not at the next reload.
	keysDone := make(chan struct{})
	go func() {
		defer close(keysDone)
		s.events.FollowType(ctx, store.EventFilter{Type: "key."}, func(store.Event) { s.keys.refresh(ctx) })
	}()
	defer func() { <-keysDone }()
	housekeeping := time.NewTicker(time.Minute)
	defer housekeeping.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-changes:
			s.cache.invalidate(ev)
		case <-housekeeping.C:
			if _, err := s.keys.current(ctx); err != nil {
				s.log.ErrorContext(ctx, "scheduled key rotation", "err", err)
			}
			if n, err := s.store.PurgeExpiredOAuth(ctx, s.now()); err != nil {
				s.log.ErrorContext(ctx, "purge expired oauth records", "err", err)
			} else if n > 0 {
				s.log.InfoContext(ctx, "purged expired oauth records", "rows", n)
			}
		}
	}
}

// serverError turns an internal failure into an RFC 6749 server_error
// without leaking its text to the client, and logs it. A lost database
// connection (store.ErrUnavailable) is temporarily_unavailable, 503: the
// client may retry at once.
func (s *Server) serverError(ctx context.Context, what string, err error) error {
	if store.IsUnavailable(err) {
		s.log.WarnContext(ctx, what, "err", err)
		return op.NewStatusError(&oidc.Error{ErrorType: "temporarily_unavailable", Description: "the database is unavailable; retry shortly"}, http.StatusServiceUnavailable)
	}
	s.log.ErrorContext(ctx, what, "err", err)
	return op.NewStatusError(oidc.ErrServerError().WithDescription("internal error"), http.StatusInternalServerError)
}

// invalidClient is the RFC 6749 invalid_client answer (401).
func invalidClient(format string, args ...any) error {
	return op.NewStatusError(oidc.ErrInvalidClient().WithDescription(format, args...), http.StatusUnauthorized)
}
