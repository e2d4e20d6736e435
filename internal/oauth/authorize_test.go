package oauth_test

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/gatehouse-iot/gatehouse/internal/oauth"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
)

const appRedirect = "http://127.0.0.1:8765/callback"

func challengeOf(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// noRedirects is a browser that shows redirects instead of following them.
func (e *env) noRedirects() *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return &http.Client{Transport: e.http.Client().Transport, Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// authorize runs the browser part of the flow: the authorization request
// with params, then the login page with the credentials (or a denial). It
// returns the final redirect's query, or the status of the page that
// stopped the flow.
func (e *env) authorize(params url.Values, username, password, action string) (url.Values, int) {
	t := e.t
	t.Helper()
	b := e.noRedirects()
	resp, err := b.Get(e.url(oauth.PathAuthorize) + "?" + params.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || loc == nil {
		return nil, resp.StatusCode
	}
	if loc.Path != oauth.PathLogin {
		e.checkIssuerParam(loc.Query())
		return loc.Query(), resp.StatusCode
	}
	status, body := page(t, b, "GET", loc.String(), nil)
	if status != http.StatusOK {
		t.Fatalf("GET login page = %d:\n%s", status, body)
	}
	csrf := match(t, csrfRE, body)
	id := match(t, regexp.MustCompile(`name="id" value="([^"]+)"`), body)
	resp, err = b.PostForm(e.url(oauth.PathLogin), url.Values{"csrf": {csrf}, "id": {id}, "username": {username}, "password": {password}, "action": {action}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		return nil, resp.StatusCode
	}
	back, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || !strings.HasPrefix(back.String(), appRedirect) {
		t.Fatalf("login redirected to %q, want the app's redirect URI", resp.Header.Get("Location"))
	}
	e.checkIssuerParam(back.Query())
	return back.Query(), resp.StatusCode
}

// checkIssuerParam: an authorization response, with a code or an error,
// names its issuer (RFC 9207 section 2).
func (e *env) checkIssuerParam(q url.Values) {
	e.t.Helper()
	if (q.Has("code") || q.Has("error")) && q.Get("iss") != e.http.URL {
		e.t.Errorf("authorization response %v: iss = %q, want %q", q, q.Get("iss"), e.http.URL)
	}
}

func TestAuthorizationCodePKCE(t *testing.T) {
	drivers(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn)
		ctx := t.Context()
		app, secret, err := e.srv.CreateApp(ctx, oauth.AppSpec{Name: "console", Public: true, RedirectURIs: []string{appRedirect}, Scopes: []string{"openid", "offline_access", "things"}})
		if err != nil || secret != "" || app.ClientID != "app.console" {
			t.Fatalf("CreateApp = %+v, %q, %v", app, secret, err)
		}
		verifier := strings.Repeat("v", 20) + "-verifier-0123456789abcdefghij"
		params := func(mod func(url.Values)) url.Values {
			v := url.Values{"client_id": {app.ClientID}, "redirect_uri": {appRedirect}, "response_type": {"code"}, "scope": {"openid things"},
				"state": {"st-1"}, "code_challenge": {challengeOf(verifier)}, "code_challenge_method": {"S256"}}
			if mod != nil {
				mod(v)
			}
			return v
		}
		q, status := e.authorize(params(nil), "alice", "correct horse", "approve")
		if q == nil || q.Get("code") == "" || q.Get("state") != "st-1" {
			t.Fatalf("authorize = %v (%d), want a code and the state", q, status)
		}
		exchange := func(code, redirect, verifier string) (int, map[string]any) {
			return e.postForm(oauth.PathToken, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirect},
				"client_id": {app.ClientID}, "code_verifier": {verifier}}, "", "")
		}
		status, body := exchange(q.Get("code"), appRedirect, verifier)
		if status != http.StatusOK {
			t.Fatalf("code exchange = %d %v", status, body)
		}
		at, err := e.srv.VerifyAccessToken(ctx, body["access_token"].(string))
		if err != nil || at.Subject != "alice" || at.Kind != oauth.KindUser || at.ClientID != app.ClientID || strings.Join(at.Scopes, " ") != "openid things" {
			t.Errorf("access token = %+v, %v", at, err)
		}
		if status, body := exchange(q.Get("code"), appRedirect, verifier); status != http.StatusBadRequest || body["error"] != "invalid_grant" {
			t.Errorf("second use of the code = %d %v, want invalid_grant", status, body)
		}
		// The second use revoked the grant (TestAuthorizationCodeReuseRevokes).
		rt, _ := body["refresh_token"].(string)
		if status, refreshed := e.postForm(oauth.PathToken, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {app.ClientID}}, "", ""); status != http.StatusBadRequest || refreshed["error"] != "invalid_grant" {
			t.Errorf("refresh after the code's reuse = %d %v, want invalid_grant", status, refreshed)
		}

		// Codes that must not work.
		for _, tc := range []struct {
			name               string
			redirect, verifier string
		}{
			{"wrong verifier", appRedirect, strings.Repeat("w", 50)},
			{"no verifier", appRedirect, ""},
			{"other redirect uri", "http://127.0.0.1:8765/other", verifier},
		} {
			q, _ := e.authorize(params(nil), "alice", "correct horse", "approve")
			if status, body := exchange(q.Get("code"), tc.redirect, tc.verifier); status != http.StatusBadRequest || body["error"] != "invalid_grant" {
				t.Errorf("%s: exchange = %d %v, want invalid_grant", tc.name, status, body)
			}
		}

		// Requests refused at the authorization endpoint: shown to the
		// person (no redirect) when the client or redirect URI is wrong,
		// otherwise sent back to the app with an error.
		for _, tc := range []struct {
			name      string
			mod       func(url.Values)
			status    int
			errorCode string
		}{
			{"unregistered redirect uri", func(v url.Values) { v.Set("redirect_uri", "http://127.0.0.1:8765/evil") }, http.StatusBadRequest, ""},
			{"redirect uri prefix", func(v url.Values) { v.Set("redirect_uri", appRedirect+"/x") }, http.StatusBadRequest, ""},
			{"a thing as client", func(v url.Values) { v.Set("client_id", "sensor-1") }, http.StatusBadRequest, ""},
			{"unknown app", func(v url.Values) { v.Set("client_id", "app.nope") }, http.StatusBadRequest, ""},
			{"no PKCE", func(v url.Values) { v.Del("code_challenge"); v.Del("code_challenge_method") }, http.StatusFound, "invalid_request"},
			{"plain PKCE", func(v url.Values) { v.Set("code_challenge", verifier); v.Set("code_challenge_method", "plain") }, http.StatusFound, "invalid_request"},
			{"PKCE without method", func(v url.Values) { v.Del("code_challenge_method") }, http.StatusFound, "invalid_request"},
			{"token response type", func(v url.Values) { v.Set("response_type", "token") }, http.StatusFound, "unauthorized_client"},
		} {
			q, status := e.authorize(params(tc.mod), "alice", "correct horse", "approve")
			if status != tc.status || q.Get("error") != tc.errorCode || q.Get("code") != "" {
				t.Errorf("%s: %d %v, want %d error %q", tc.name, status, q, tc.status, tc.errorCode)
			}
		}
		if q, status := e.authorize(params(nil), "alice", "wrong", "approve"); status != http.StatusUnauthorized || q != nil {
			t.Errorf("wrong password: %d %v, want 401", status, q)
		}
		if q, _ := e.authorize(params(nil), "", "", "deny"); q.Get("error") != "access_denied" || q.Get("state") != "st-1" {
			t.Errorf("deny: %v, want error access_denied with the state", q)
		}
	})
}

func TestConfidentialAppAndPasswordGrant(t *testing.T) {
	e := newEnv(t, storetestSQLite(t), func(c *oauth.Config) { c.PasswordGrant = true })
	ctx := t.Context()
	app, secret, err := e.srv.CreateApp(ctx, oauth.AppSpec{Name: "backend", RedirectURIs: []string{"https://app.example/cb"},
		GrantTypes: []string{"authorization_code", "password", "refresh_token"}, Scopes: []string{"openid"}})
	if err != nil || !strings.HasPrefix(secret, oauth.AppSecretPrefix) {
		t.Fatalf("CreateApp = %+v, %q, %v", app, secret, err)
	}
	codeOnly, codeSecret, err := e.srv.CreateApp(ctx, oauth.AppSpec{Name: "codeonly", RedirectURIs: []string{"https://app.example/cb"}})
	if err != nil {
		t.Fatal(err)
	}
	pw := func(user, pass, clientID, clientSecret string) (int, map[string]any) {
		return e.postForm(oauth.PathToken, url.Values{"grant_type": {"password"}, "username": {user}, "password": {pass}, "scope": {"openid"}}, clientID, clientSecret)
	}
	status, body := pw("alice", "correct horse", app.ClientID, secret)
	if status != http.StatusOK || body["refresh_token"] == nil {
		t.Fatalf("password grant = %d %v", status, body)
	}
	at, err := e.srv.VerifyAccessToken(ctx, body["access_token"].(string))
	if err != nil || at.Subject != "alice" || at.Kind != oauth.KindUser {
		t.Errorf("password grant token = %+v, %v", at, err)
	}
	for _, tc := range []struct {
		name, user, pass, id, secret string
		status                       int
		err                          string
	}{
		{"wrong password", "alice", "nope", app.ClientID, secret, http.StatusBadRequest, "invalid_grant"},
		{"wrong client secret", "alice", "correct horse", app.ClientID, "ghas_wrong", http.StatusUnauthorized, "invalid_client"},
		{"app without the grant", "alice", "correct horse", codeOnly.ClientID, codeSecret, http.StatusBadRequest, "unauthorized_client"},
		{"a thing", "alice", "correct horse", "sensor-1", e.secrets["sensor-1"], http.StatusBadRequest, "unauthorized_client"},
	} {
		if status, body := pw(tc.user, tc.pass, tc.id, tc.secret); status != tc.status || body["error"] != tc.err {
			t.Errorf("%s: %d %v, want %d %s", tc.name, status, body, tc.status, tc.err)
		}
	}
	// Off by default.
	off := newEnv(t, storetestSQLite(t))
	app2, secret2, err := off.srv.CreateApp(ctx, oauth.AppSpec{Name: "backend", RedirectURIs: []string{"https://app.example/cb"}, GrantTypes: []string{"password"}})
	if err != nil {
		t.Fatal(err)
	}
	status, body = off.postForm(oauth.PathToken, url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"correct horse"}}, app2.ClientID, secret2)
	if status != http.StatusBadRequest || body["error"] != "unsupported_grant_type" {
		t.Errorf("password grant when disabled = %d %v, want unsupported_grant_type", status, body)
	}
	// A confidential app's code exchange needs its secret.
	q, _ := e.authorizeWith(app.ClientID, "https://app.example/cb")
	if status, body := e.postForm(oauth.PathToken, url.Values{"grant_type": {"authorization_code"}, "code": {q}, "redirect_uri": {"https://app.example/cb"}, "client_id": {app.ClientID}}, "", ""); status != http.StatusUnauthorized {
		t.Errorf("exchange without the secret = %d %v, want 401", status, body)
	}
}

// authorizeWith gets a code for a confidential app without PKCE.
func (e *env) authorizeWith(clientID, redirect string) (string, int) {
	t := e.t
	b := e.noRedirects()
	resp, err := b.Get(e.url(oauth.PathAuthorize) + "?" + url.Values{"client_id": {clientID}, "redirect_uri": {redirect}, "response_type": {"code"}, "scope": {"openid"}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	status, body := page(t, b, "GET", resp.Header.Get("Location"), nil)
	if status != http.StatusOK {
		t.Fatalf("login page = %d", status)
	}
	resp, err = b.PostForm(e.url(oauth.PathLogin), url.Values{"csrf": {match(t, csrfRE, body)}, "id": {match(t, regexp.MustCompile(`name="id" value="([^"]+)"`), body)},
		"username": {"alice"}, "password": {"correct horse"}, "action": {"approve"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	return loc.Query().Get("code"), resp.StatusCode
}

func TestCreateAppValidation(t *testing.T) {
	e := newEnv(t, storetestSQLite(t))
	for _, tc := range []struct {
		name string
		spec oauth.AppSpec
	}{
		{"bad name", oauth.AppSpec{Name: "a b", Public: true, RedirectURIs: []string{appRedirect}}},
		{"public with password grant", oauth.AppSpec{Name: "x", Public: true, RedirectURIs: []string{appRedirect}, GrantTypes: []string{"password"}}},
		{"public with client credentials", oauth.AppSpec{Name: "x", Public: true, GrantTypes: []string{"client_credentials"}}},
		{"code without redirect", oauth.AppSpec{Name: "x", Public: true}},
		{"http on a public host", oauth.AppSpec{Name: "x", RedirectURIs: []string{"http://app.example/cb"}}},
		{"fragment", oauth.AppSpec{Name: "x", RedirectURIs: []string{"https://app.example/cb#x"}}},
		{"relative", oauth.AppSpec{Name: "x", RedirectURIs: []string{"/cb"}}},
		{"unknown grant", oauth.AppSpec{Name: "x", RedirectURIs: []string{appRedirect}, GrantTypes: []string{"implicit"}}},
		{"bad scope", oauth.AppSpec{Name: "x", RedirectURIs: []string{appRedirect}, Scopes: []string{"a b"}}},
	} {
		if _, _, err := e.srv.CreateApp(t.Context(), tc.spec); !errors.Is(err, registry.ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", tc.name, err)
		}
	}
	apps, err := e.srv.Apps(t.Context())
	if err != nil || len(apps) != 0 {
		t.Errorf("apps after invalid requests = %v, %v; want none", apps, err)
	}
	if _, _, err := e.srv.CreateApp(t.Context(), oauth.AppSpec{Name: "mobile", Public: true, RedirectURIs: []string{"com.example.lamp:/cb"}}); err != nil {
		t.Errorf("private-use scheme: %v", err)
	}
	if err := e.srv.DeleteApp(t.Context(), "app.mobile"); err != nil {
		t.Error(err)
	}
}
