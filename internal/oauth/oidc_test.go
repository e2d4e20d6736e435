package oauth_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"github.com/zitadel/oidc/v3/pkg/client/rp"
	zoidc "github.com/zitadel/oidc/v3/pkg/oidc"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/gatehouse-iot/gatehouse/internal/oauth"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/store/storetest"
)

// oidcApp registers a public app allowed openid, profile, email and
// refresh, and gives alice a display name and an email address.
func oidcApp(t *testing.T, e *env) string {
	t.Helper()
	app, _, err := e.srv.CreateApp(t.Context(), oauth.AppSpec{Name: "portal", Public: true, RedirectURIs: []string{appRedirect},
		Scopes: []string{"openid", "profile", "email", "offline_access"}})
	if err != nil {
		t.Fatal(err)
	}
	name, email := "Alice Liddell", "alice@example.com"
	if _, err := e.registry.UpdateUser(t.Context(), "alice", 0, registry.UserPatch{DisplayName: &name, Email: &email}); err != nil {
		t.Fatal(err)
	}
	return app.ClientID
}

// TestOpenIDConnectGoOIDC logs a person in with go-oidc as a relying party
// does it: discovery, the authorization code flow with PKCE and a nonce,
// the ID token verified (signature, issuer, audience, expiry, nonce,
// at_hash), then UserInfo; a refresh brings a fresh ID token about the
// same person with the same auth_time; RP-initiated logout ends the app's
// grant and returns to the app with its state.
func TestOpenIDConnectGoOIDC(t *testing.T) {
	e := newEnv(t, storetest.SQLiteDSN(t))
	clientID := oidcApp(t, e)
	ctx := gooidc.ClientContext(t.Context(), e.http.Client())
	provider, err := gooidc.NewProvider(ctx, e.http.URL)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	var meta struct {
		Userinfo   string   `json:"userinfo_endpoint"`
		EndSession string   `json:"end_session_endpoint"`
		Claims     []string `json:"claims_supported"`
		Subjects   []string `json:"subject_types_supported"`
		Algs       []string `json:"id_token_signing_alg_values_supported"`
	}
	if err := provider.Claims(&meta); err != nil {
		t.Fatal(err)
	}
	if meta.Userinfo != e.url(oauth.PathUserinfo) || meta.EndSession != e.url(oauth.PathEndSession) || len(meta.Subjects) == 0 || len(meta.Algs) == 0 ||
		!strings.Contains(strings.Join(meta.Claims, " "), "auth_time") {
		t.Errorf("discovery = %+v", meta)
	}
	conf := oauth2.Config{ClientID: clientID, Endpoint: provider.Endpoint(), RedirectURL: appRedirect,
		Scopes: []string{gooidc.ScopeOpenID, "profile", "email", "offline_access"}}
	verifier, nonce := oauth2.GenerateVerifier(), "n-0S6_WzA2Mj"
	u, err := url.Parse(conf.AuthCodeURL("st-9", gooidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)))
	if err != nil {
		t.Fatal(err)
	}
	before := e.clock.Now()
	q, _ := e.authorize(u.Query(), "alice", "correct horse", "approve")
	if q.Get("code") == "" || q.Get("state") != "st-9" {
		t.Fatalf("authorization response %v", q)
	}
	e.clock.Advance(3 * time.Second)
	tok, err := conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	rawID, _ := tok.Extra("id_token").(string)
	if rawID == "" {
		t.Fatal("no id_token in the token response")
	}
	idv := provider.Verifier(&gooidc.Config{ClientID: clientID, Now: e.clock.Now})
	idt, err := idv.Verify(ctx, rawID)
	if err != nil {
		t.Fatalf("verify ID token: %v", err)
	}
	if idt.Nonce != nonce {
		t.Errorf("nonce = %q, want %q", idt.Nonce, nonce)
	}
	if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
		t.Errorf("at_hash: %v", err)
	}
	var claims struct {
		AuthTime  int64  `json:"auth_time"`
		Preferred string `json:"preferred_username"`
		Name      string `json:"name"`
		Email     string `json:"email"`
		Azp       string `json:"azp"`
	}
	if err := idt.Claims(&claims); err != nil {
		t.Fatal(err)
	}
	alice, err := e.registry.User(t.Context(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	if idt.Subject != alice.ID || claims.Preferred != "alice" || claims.Name != "Alice Liddell" || claims.Email != "alice@example.com" || claims.Azp != clientID {
		t.Errorf("ID token sub %q claims %+v, want sub %q (the user's ID), alice's profile and azp %q", idt.Subject, claims, alice.ID, clientID)
	}
	if claims.AuthTime != before.Unix() {
		t.Errorf("auth_time = %d, want the sign-in time %d", claims.AuthTime, before.Unix())
	}
	info, err := provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		t.Fatalf("userinfo: %v", err)
	}
	var infoClaims struct {
		Preferred string `json:"preferred_username"`
	}
	if err := info.Claims(&infoClaims); err != nil {
		t.Fatal(err)
	}
	if info.Subject != idt.Subject || info.Email != "alice@example.com" || info.EmailVerified || infoClaims.Preferred != "alice" {
		t.Errorf("userinfo = %+v %+v, want the ID token's subject and alice's profile", info, infoClaims)
	}

	// Refresh: a new ID token, same person, same auth_time, no nonce.
	e.clock.Advance(time.Minute)
	status, body := e.postForm(oauth.PathToken, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {clientID}}, "", "")
	refreshedID, _ := body["id_token"].(string)
	if status != 200 || refreshedID == "" {
		t.Fatalf("refresh = %d %v, want a new ID token", status, body)
	}
	again, err := idv.Verify(ctx, refreshedID)
	if err != nil {
		t.Fatalf("verify refreshed ID token: %v", err)
	}
	var againClaims struct {
		AuthTime int64 `json:"auth_time"`
	}
	_ = again.Claims(&againClaims)
	if again.Subject != idt.Subject || againClaims.AuthTime != claims.AuthTime || again.Nonce != "" || !again.IssuedAt.After(idt.IssuedAt) {
		t.Errorf("refreshed ID token sub %q auth_time %d nonce %q iat %v; want sub %q auth_time %d, no nonce, a later iat",
			again.Subject, againClaims.AuthTime, again.Nonce, again.IssuedAt, idt.Subject, claims.AuthTime)
	}
	refreshed := body["refresh_token"].(string)
	access := body["access_token"].(string)

	// RP-initiated logout: back to the app with its state; the grant is gone.
	b := e.noRedirects()
	logout := e.url(oauth.PathEndSession) + "?" + url.Values{"id_token_hint": {refreshedID}, "post_logout_redirect_uri": {appRedirect}, "state": {"bye"}}.Encode()
	resp, err := b.Get(logout)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || loc != appRedirect+"?state=bye" {
		t.Errorf("logout = %d to %q, want 302 to %s?state=bye", resp.StatusCode, loc, appRedirect)
	}
	if status, body := e.postForm(oauth.PathToken, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshed}, "client_id": {clientID}}, "", ""); status != 400 || body["error"] != "invalid_grant" {
		t.Errorf("refresh after logout = %d %v, want invalid_grant", status, body)
	}
	if _, err := provider.UserInfo(ctx, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: access, TokenType: "Bearer"})); err == nil {
		t.Error("userinfo with the access token of a signed-out grant answered")
	}
	for name, u := range map[string]string{
		"no hint":          e.url(oauth.PathEndSession),
		"forged hint":      e.url(oauth.PathEndSession) + "?id_token_hint=" + url.QueryEscape(rawID[:len(rawID)-4]+"AAAA"),
		"access token":     e.url(oauth.PathEndSession) + "?id_token_hint=" + url.QueryEscape(access),
		"foreign redirect": e.url(oauth.PathEndSession) + "?" + url.Values{"id_token_hint": {refreshedID}, "post_logout_redirect_uri": {"https://evil.example/"}}.Encode(),
	} {
		resp, err := b.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("logout with %s = %d %q, want 400", name, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
}

// TestOpenIDConnectZitadelRP logs the same person in with a second relying
// party implementation, zitadel/oidc's rp: its verifier checks the ID
// token (nonce included) and its Userinfo call.
func TestOpenIDConnectZitadelRP(t *testing.T) {
	e := newEnv(t, storetest.SQLiteDSN(t))
	clientID := oidcApp(t, e)
	ctx := t.Context()
	nonce := "zitadel-nonce-1"
	party, err := rp.NewRelyingPartyOIDC(ctx, e.http.URL, clientID, "", appRedirect, []string{"openid", "profile", "email"},
		rp.WithHTTPClient(e.http.Client()), rp.WithVerifierOpts(rp.WithNonce(func(context.Context) string { return nonce })))
	if err != nil {
		t.Fatalf("relying party: %v", err)
	}
	verifier := oauth2.GenerateVerifier()
	u, err := url.Parse(rp.AuthURL("st-z", party, rp.WithCodeChallenge(oauth2.S256ChallengeFromVerifier(verifier)),
		func() []oauth2.AuthCodeOption { return []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("nonce", nonce)} }))
	if err != nil {
		t.Fatal(err)
	}
	q, _ := e.authorize(u.Query(), "alice", "correct horse", "approve")
	if q.Get("code") == "" {
		t.Fatalf("authorization response %v", q)
	}
	tokens, err := rp.CodeExchange[*zoidc.IDTokenClaims](ctx, q.Get("code"), party, rp.WithCodeVerifier(verifier))
	if err != nil {
		t.Fatalf("code exchange: %v", err)
	}
	alice, _ := e.registry.User(ctx, "alice")
	if tokens.IDTokenClaims.Subject != alice.ID || tokens.IDTokenClaims.Nonce != nonce || tokens.IDTokenClaims.PreferredUsername != "alice" {
		t.Errorf("ID token claims sub %q nonce %q username %q", tokens.IDTokenClaims.Subject, tokens.IDTokenClaims.Nonce, tokens.IDTokenClaims.PreferredUsername)
	}
	info, err := rp.Userinfo[*zoidc.UserInfo](ctx, tokens.AccessToken, tokens.TokenType, tokens.IDTokenClaims.Subject, party)
	if err != nil {
		t.Fatalf("userinfo: %v", err)
	}
	if info.Subject != alice.ID || info.Email != "alice@example.com" {
		t.Errorf("userinfo = %+v", info)
	}
}

// TestUserinfoRefusals: no token, a bad one, and a thing's token.
func TestUserinfoRefusals(t *testing.T) {
	e := newEnv(t, storetest.SQLiteDSN(t))
	thing := clientToken(t, e, "sensor-1", "publish")
	for _, tc := range []struct {
		name, auth string
		want       int
		challenge  string
	}{
		{"no token", "", 401, `Bearer realm="gatehouse"`},
		{"bad token", "Bearer nope", 401, `Bearer realm="gatehouse", error="invalid_token"`},
		{"a thing's token", "Bearer " + thing, 403, `Bearer realm="gatehouse", error="insufficient_scope"`},
	} {
		req, _ := http.NewRequest("GET", e.url(oauth.PathUserinfo), nil)
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want || resp.Header.Get("WWW-Authenticate") != tc.challenge {
			t.Errorf("%s: %d %q, want %d %q", tc.name, resp.StatusCode, resp.Header.Get("WWW-Authenticate"), tc.want, tc.challenge)
		}
	}
}

// TestResourceIndicators: a client names the resource server it wants a
// token for (RFC 8707) with x/oauth2's client credentials; the token's aud
// is that resource, which verifies it with go-oidc as its own audience,
// while Gatehouse's own resource servers refuse it. Unregistered
// resources are invalid_target.
func TestResourceIndicators(t *testing.T) {
	const api = "https://api.example.com/telemetry"
	e := newEnv(t, storetest.SQLiteDSN(t), func(cfg *oauth.Config) { cfg.Resources = []string{api} })
	ctx := gooidc.ClientContext(t.Context(), e.http.Client())
	cc := clientcredentials.Config{ClientID: "sensor-1", ClientSecret: e.secrets["sensor-1"], TokenURL: e.url(oauth.PathToken),
		EndpointParams: url.Values{"resource": {api}}}
	tok, err := cc.Token(ctx)
	if err != nil {
		t.Fatalf("token for %s: %v", api, err)
	}
	provider, err := gooidc.NewProvider(ctx, e.http.URL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := provider.Verifier(&gooidc.Config{ClientID: api, Now: e.clock.Now}).Verify(ctx, tok.AccessToken); err != nil {
		t.Errorf("the resource server %s cannot verify its token: %v", api, err)
	}
	if _, err := e.srv.VerifyAccessToken(ctx, tok.AccessToken); err == nil {
		t.Error("Gatehouse's own resource servers accept a token for another resource")
	}
	// Without resource: the default audience, the issuer.
	cc.EndpointParams = nil
	plain, err := cc.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := provider.Verifier(&gooidc.Config{ClientID: e.http.URL, Now: e.clock.Now}).Verify(ctx, plain.AccessToken); err != nil {
		t.Errorf("default audience: %v", err)
	}
	for _, res := range [][]string{{"https://evil.example/"}, {api, "https://evil.example/"}} {
		status, body := e.postForm(oauth.PathToken, url.Values{"grant_type": {"client_credentials"}, "resource": res}, "sensor-1", e.secrets["sensor-1"])
		if status != 400 || body["error"] != "invalid_target" {
			t.Errorf("resource %v = %d %v, want 400 invalid_target", res, status, body)
		}
	}
}
