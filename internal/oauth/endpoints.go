package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// Discovery implements op.Server: OpenID Provider metadata.
func (s *Server) Discovery(ctx context.Context, _ *op.Request[struct{}]) (*op.Response, error) {
	return op.NewResponse(s.metadata(ctx)), nil
}

// Ready and Health are not routed (the application has its own); they
// answer ok for completeness.
func (s *Server) Ready(context.Context, *op.Request[struct{}]) (*op.Response, error) {
	return op.NewResponse(op.Status{Status: "ok"}), nil
}

// Health: see Ready.
func (s *Server) Health(context.Context, *op.Request[struct{}]) (*op.Response, error) {
	return op.NewResponse(op.Status{Status: "ok"}), nil
}

// discovery is the metadata document: OpenID Connect discovery and RFC
// 8414 with the RFC 8705 and RFC 9207 fields zitadel/oidc's type lacks.
type discovery struct {
	*oidc.DiscoveryConfiguration
	// MTLSEndpointAliases name the endpoints on the mutual-TLS listener
	// (RFC 8705 section 5).
	MTLSEndpointAliases map[string]string `json:"mtls_endpoint_aliases,omitempty"`
	// TLSClientCertificateBoundAccessTokens: tokens asked for over mutual
	// TLS are bound to the certificate (RFC 8705 section 3.3).
	TLSClientCertificateBoundAccessTokens bool `json:"tls_client_certificate_bound_access_tokens,omitempty"`
	// AuthorizationResponseIssParameterSupported: authorization
	// responses carry iss (RFC 9207 section 3).
	AuthorizationResponseIssParameterSupported bool `json:"authorization_response_iss_parameter_supported"`
}

func (s *Server) metadata(ctx context.Context) *discovery {
	authMethods := []oidc.AuthMethod{oidc.AuthMethodBasic, oidc.AuthMethodPost, oidc.AuthMethodPrivateKeyJWT, oidc.AuthMethodNone}
	confidential := []oidc.AuthMethod{oidc.AuthMethodBasic, oidc.AuthMethodPost, oidc.AuthMethodPrivateKeyJWT}
	mtls := s.clientCerts != nil && s.mtlsBaseURL != ""
	if mtls {
		authMethods = append(authMethods, AuthMethodTLSClientAuth)
		confidential = append(confidential, AuthMethodTLSClientAuth)
	}
	var assertionAlgs []string
	for _, a := range assertionAlgorithms() {
		assertionAlgs = append(assertionAlgs, string(a))
	}
	d := &oidc.DiscoveryConfiguration{
		Issuer:                      s.issuer,
		TokenEndpoint:               s.issuer + PathToken,
		IntrospectionEndpoint:       s.issuer + PathIntrospect,
		RevocationEndpoint:          s.issuer + PathRevoke,
		DeviceAuthorizationEndpoint: s.issuer + PathDeviceCode,
		JwksURI:                     s.issuer + PathKeys,
		ScopesSupported:             s.knownScopes(ctx),
		ResponseTypesSupported:      []string{},
		GrantTypesSupported:         s.grantTypes,
		SubjectTypesSupported:       []string{"public"},
		// Access tokens are signed with this; clients such as go-oidc read
		// it to choose verification algorithms.
		IDTokenSigningAlgValuesSupported:                   []string{s.alg},
		TokenEndpointAuthMethodsSupported:                  authMethods,
		TokenEndpointAuthSigningAlgValuesSupported:         assertionAlgs,
		RevocationEndpointAuthMethodsSupported:             authMethods,
		RevocationEndpointAuthSigningAlgValuesSupported:    assertionAlgs,
		IntrospectionEndpointAuthMethodsSupported:          confidential,
		IntrospectionEndpointAuthSigningAlgValuesSupported: assertionAlgs,
		ClaimsSupported: []string{"iss", "sub", "aud", "exp", "iat", "jti", "client_id", "scope", "thing_name", "thing_type", "cnf"},
	}
	s.peopleMetadata(d)
	doc := &discovery{DiscoveryConfiguration: d, AuthorizationResponseIssParameterSupported: true}
	if mtls {
		doc.TLSClientCertificateBoundAccessTokens = true
		doc.MTLSEndpointAliases = map[string]string{
			"token_endpoint":                s.mtlsBaseURL + PathToken,
			"introspection_endpoint":        s.mtlsBaseURL + PathIntrospect,
			"revocation_endpoint":           s.mtlsBaseURL + PathRevoke,
			"device_authorization_endpoint": s.mtlsBaseURL + PathDeviceCode,
		}
	}
	return doc
}

// knownScopes lists the scopes a client can ask for: the static clients'
// and default scopes, and every thing type's (read at each request: they
// change at run time).
func (s *Server) knownScopes(ctx context.Context) []string {
	var out []string
	add := func(list []string) {
		for _, sc := range list {
			if !contains(out, sc) {
				out = append(out, sc)
			}
		}
	}
	add(s.defaultScopes)
	for _, c := range s.clients {
		add(c.Scopes)
	}
	page := store.Page{Limit: 1000}
	for {
		types, err := s.registry.ThingTypes(ctx, page)
		if err != nil {
			s.log.WarnContext(ctx, "metadata: thing type scopes", "err", err)
			break
		}
		for _, tt := range types {
			add(tt.Scopes)
		}
		if len(types) < page.Limit {
			break
		}
		page.After = types[len(types)-1].Name
	}
	return out
}

// grantTypesSupported lists the grants the token endpoint offers.
func (s *Server) grantTypesSupported() []oidc.GrantType {
	g := []oidc.GrantType{oidc.GrantTypeClientCredentials, oidc.GrantTypeDeviceCode, oidc.GrantTypeRefreshToken, oidc.GrantTypeCode}
	if s.passwordGrant {
		g = append(g, GrantPassword)
	}
	return g
}

// serveMetadata answers RFC 8414 authorization server metadata: the same
// document as OIDC discovery.
func (s *Server) serveMetadata(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.metadata(r.Context()))
}

// Keys implements op.Server: the JWKS with the current and previous
// signing keys. In HS256 mode it is empty: a shared secret is never
// published.
func (s *Server) Keys(ctx context.Context, _ *op.Request[struct{}]) (*op.Response, error) {
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}}
	if s.alg != HS256 {
		keys, err := s.keys.published(ctx)
		if err != nil {
			return nil, s.serverError(ctx, "load signing keys", err)
		}
		for _, k := range keys {
			set.Keys = append(set.Keys, k.jwk)
		}
	}
	resp := op.NewResponse(set)
	resp.Header.Set("Cache-Control", "public, max-age=300")
	return resp, nil
}

// Introspect implements op.Server (RFC 7662). The caller must authenticate
// as a confidential client; it learns about tokens issued to itself, or
// about any token if it is a static client with Introspect set. Anything
// else - unknown, expired, revoked, foreign - is {"active": false}.
func (s *Server) Introspect(ctx context.Context, r *op.Request[op.IntrospectionRequest]) (*op.Response, error) {
	caller, err := s.authenticate(ctx, r.Data.ClientCredentials, PathIntrospect)
	if err != nil {
		return nil, err
	}
	if caller.method == oidc.AuthMethodNone {
		return nil, invalidClient("client must authenticate")
	}
	mayRead := func(clientID string) bool {
		return clientID == caller.id || (caller.static != nil && caller.static.Introspect)
	}
	inactive := op.NewResponse(&oidc.IntrospectionResponse{Active: false})
	token := r.Data.Token
	if strings.HasPrefix(token, RefreshTokenPrefix) {
		if len(token) > maxSecretBytes {
			return inactive, nil
		}
		rt, err := s.store.GetRefreshToken(ctx, HashSecret(token))
		if errors.Is(err, store.ErrNotFound) {
			return inactive, nil
		}
		if err != nil {
			return nil, s.serverError(ctx, "introspect refresh token", err)
		}
		if !rt.UsedAt.IsZero() || !rt.RevokedAt.IsZero() || s.now().After(rt.ExpiresAt) || !mayRead(rt.ClientID) {
			return inactive, nil
		}
		return op.NewResponse(&oidc.IntrospectionResponse{
			Active: true, Scope: rt.Scopes, ClientID: rt.ClientID, TokenType: "refresh_token", Subject: rt.Subject,
			IssuedAt: oidc.FromTime(rt.CreatedAt), Expiration: oidc.FromTime(rt.ExpiresAt), Issuer: s.issuer,
		}), nil
	}
	at, err := s.VerifyAccessToken(ctx, token)
	if err != nil || !mayRead(at.ClientID) {
		return inactive, nil
	}
	resp := &oidc.IntrospectionResponse{
		Active: true, Scope: at.Scopes, ClientID: at.ClientID, TokenType: oidc.BearerToken, Subject: at.Subject,
		IssuedAt: oidc.FromTime(at.IssuedAt), Expiration: oidc.FromTime(at.ExpiresAt), Audience: at.Audience, Issuer: s.issuer, JWTID: at.JTI,
	}
	if at.ThingName != "" {
		resp.Claims = map[string]any{"thing_name": at.ThingName, "thing_type": at.ThingType}
	}
	peopleIntrospection(resp, at)
	return op.NewResponse(resp), nil
}

// Revocation implements op.Server (RFC 7009). A client may revoke its own
// tokens: a refresh token revokes its whole grant (every refresh token of
// the family and the access tokens issued with them), an access token is
// revoked by jti until it expires. Unknown or foreign tokens are ignored:
// the answer is 200 either way.
func (s *Server) Revocation(ctx context.Context, r *op.ClientRequest[oidc.RevocationRequest]) (*op.Response, error) {
	c := r.Client.(*client)
	ok := op.NewResponse(struct{}{})
	token := r.Data.Token
	if strings.HasPrefix(token, RefreshTokenPrefix) {
		if len(token) > maxSecretBytes {
			return ok, nil
		}
		var notify []func()
		ctx := withAfterCommit(ctx, &notify)
		err := s.store.InTx(ctx, func(tx *store.Tx) error {
			notify = notify[:0]
			rt, err := tx.GetRefreshToken(ctx, HashSecret(token))
			if errors.Is(err, store.ErrNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			if rt.ClientID != c.id || !rt.RevokedAt.IsZero() {
				return nil
			}
			return s.revokeFamily(ctx, tx, rt.FamilyID, "revoked by client")
		})
		if err != nil {
			return nil, s.serverError(ctx, "revoke refresh token", err)
		}
		runAll(notify)
		return ok, nil
	}
	cl, err := s.verifyJWT(ctx, token)
	if err != nil || cl.ClientID != c.id {
		return ok, nil
	}
	if err := s.revokeAccessToken(ctx, cl, "revoked by client"); err != nil {
		return nil, s.serverError(ctx, "revoke access token", err)
	}
	return ok, nil
}

func (s *Server) revokeAccessToken(ctx context.Context, cl *claims, reason string) error {
	exp := time.Unix(cl.Expiry, 0)
	err := s.change(ctx, "token.revoked", func(tx *store.Tx) (string, any, error) {
		subject := "client/" + cl.ClientID
		if cl.ThingName != "" {
			subject = "thing/" + cl.ThingName
		}
		return subject, map[string]any{"jti": cl.JTI, "reason": reason}, tx.RevokeAccessToken(ctx, cl.JTI, exp, s.now().UTC())
	})
	if err != nil {
		return err
	}
	s.revoked.add(cl.JTI, exp)
	return nil
}

// RevokeAccessToken revokes a valid access token issued by this server
// (for administrators; clients use the revocation endpoint).
func (s *Server) RevokeAccessToken(ctx context.Context, raw string) error {
	cl, err := s.verifyJWT(ctx, raw)
	if err != nil {
		return err
	}
	return s.revokeAccessToken(ctx, cl, "revoked by administrator")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	setNoStore(w.Header())
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// writeOAuthError writes an RFC 6749 error response.
func writeOAuthError(w http.ResponseWriter, status int, e *oidc.Error) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", basicRealm)
	}
	writeJSON(w, status, e)
}
