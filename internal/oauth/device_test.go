package oauth_test

import (
	"errors"
	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/gatehouse-iot/gatehouse/internal/oauth"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

var userCodeRE = regexp.MustCompile(`^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$`)

// deviceConfig is an x/oauth2 config for a confidential thing client using
// client_secret_post (at both device endpoints).
func (e *env) deviceConfig(thing string, scopes ...string) (*oauth2.Config, []oauth2.AuthCodeOption) {
	cfg := &oauth2.Config{ClientID: thing, ClientSecret: e.secrets[thing], Endpoint: e.endpoint(), Scopes: scopes}
	cfg.Endpoint.AuthStyle = oauth2.AuthStyleInParams
	return cfg, []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("client_secret", e.secrets[thing])}
}

func TestDeviceFlow(t *testing.T) {
	drivers(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn)
		ctx := oidcContext(t, e)
		cfg, auth := e.deviceConfig("sensor-1", "publish")
		da, err := cfg.DeviceAuth(ctx, auth...)
		if err != nil {
			t.Fatalf("DeviceAuth: %v", err)
		}
		if !userCodeRE.MatchString(da.UserCode) || da.VerificationURI != e.url("/device") ||
			da.VerificationURIComplete != e.url("/device?user_code="+url.QueryEscape(da.UserCode)) || da.Interval != 1 || time.Until(da.Expiry) < 9*time.Minute {
			t.Errorf("DeviceAuth = %+v", da)
		}
		e.approve(da.VerificationURIComplete, "alice", "correct horse", true)
		tok, err := cfg.DeviceAccessToken(ctx, da, auth...)
		if err != nil {
			t.Fatalf("DeviceAccessToken: %v", err)
		}
		at, err := e.srv.VerifyAccessToken(ctx, tok.AccessToken)
		if err != nil {
			t.Fatal(err)
		}
		if at.Subject != "alice" || at.ClientID != "sensor-1" || at.ThingName != "sensor-1" || at.ThingType != "sensor" || strings.Join(at.Scopes, " ") != "publish" {
			t.Errorf("token = %+v, want alice via sensor-1 with publish", at)
		}
		if !strings.HasPrefix(tok.RefreshToken, "ghr_") {
			t.Errorf("refresh token = %q, want ghr_...", tok.RefreshToken)
		}
		// The approval recorded alice as owner (the thing type's relation).
		rels, err := e.store.ListRelationships(ctx, store.RelationshipFilter{Subject: "alice", Object: "sensor-1"})
		if err != nil || len(rels) != 1 || rels[0].Relation != "owner" {
			t.Errorf("relationships = %v, %v; want alice owner sensor-1", rels, err)
		}
		if evs, _ := e.store.ListEvents(ctx, store.EventFilter{Type: "device.approved"}); len(evs) != 1 || evs[0].Actor != "user:alice" {
			t.Errorf("device.approved events = %+v", evs)
		}
		// The device code is spent.
		status, body := e.postForm(oauth.PathToken, url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {da.DeviceCode},
			"client_id": {"sensor-1"}, "client_secret": {e.secrets["sensor-1"]}}, "", "")
		if status != 400 || body["error"] != "invalid_grant" {
			t.Errorf("second exchange = %d %v, want invalid_grant", status, body)
		}
	})
}

func TestDeviceFlowPublicCLIClient(t *testing.T) {
	e := newEnv(t, storetestSQLite(t))
	ctx := oidcContext(t, e)
	cfg := &oauth2.Config{ClientID: "gatehouse-cli", Endpoint: e.endpoint(), Scopes: []string{"openid"}}
	da, err := cfg.DeviceAuth(ctx)
	if err != nil {
		t.Fatalf("DeviceAuth: %v", err)
	}
	e.approve(da.VerificationURIComplete, "alice", "correct horse", true)
	tok, err := cfg.DeviceAccessToken(ctx, da)
	if err != nil {
		t.Fatalf("DeviceAccessToken: %v", err)
	}
	at, err := e.srv.VerifyAccessToken(ctx, tok.AccessToken)
	if err != nil || at.Subject != "alice" || at.ClientID != "gatehouse-cli" || at.ThingName != "" {
		t.Errorf("token = %+v, %v", at, err)
	}
	// openid was granted: an ID token about alice, as go-oidc verifies it,
	// saying she signed in when she approved (OpenID Connect Core 2).
	provider, err := gooidc.NewProvider(ctx, e.http.URL)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := provider.Verifier(&gooidc.Config{ClientID: "gatehouse-cli", Now: e.clock.Now}).Verify(ctx, raw)
	if err != nil {
		t.Fatalf("ID token from the device grant: %v", err)
	}
	alice, _ := e.registry.User(ctx, "alice")
	var c struct {
		AuthTime int64 `json:"auth_time"`
	}
	_ = idt.Claims(&c)
	if idt.Subject != alice.ID || c.AuthTime != e.clock.Now().Unix() || idt.VerifyAccessToken(tok.AccessToken) != nil {
		t.Errorf("ID token sub %q auth_time %d; want %q, %d, and a matching at_hash", idt.Subject, c.AuthTime, alice.ID, e.clock.Now().Unix())
	}
}

func TestDeviceAuthorizationErrors(t *testing.T) {
	e := newEnv(t, storetestSQLite(t))
	tests := []struct {
		name       string
		form       url.Values
		user, pass string
		wantStatus int
		wantError  string
	}{
		{"confidential client without authentication", url.Values{"client_id": {"sensor-1"}}, "", "", 401, "invalid_client"},
		{"wrong secret", url.Values{"client_id": {"sensor-1"}, "client_secret": {"nope"}}, "", "", 401, "invalid_client"},
		{"unknown scope", url.Values{"scope": {"admin"}}, "sensor-1", e.secrets["sensor-1"], 400, "invalid_scope"},
		{"static client without device grant", url.Values{}, "resource-server", "rs-secret", 400, "unauthorized_client"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body := e.postForm(oauth.PathDeviceCode, tc.form, tc.user, tc.pass)
			if status != tc.wantStatus || body["error"] != tc.wantError || body["device_code"] != nil {
				t.Errorf("status %d body %v, want %d %s", status, body, tc.wantStatus, tc.wantError)
			}
		})
	}
}

func TestDevicePolling(t *testing.T) {
	e := newEnv(t, storetestSQLite(t))
	start := func(t *testing.T) (code, complete string) {
		status, body := e.postForm(oauth.PathDeviceCode, url.Values{"scope": {"publish"}}, "sensor-2", e.secrets["sensor-2"])
		if status != 200 {
			t.Fatalf("device code: %d %v", status, body)
		}
		return body["device_code"].(string), body["verification_uri_complete"].(string)
	}
	poll := func(code string) (int, map[string]any) {
		return e.postForm(oauth.PathToken, url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {code}}, "sensor-2", e.secrets["sensor-2"])
	}
	expect := func(t *testing.T, code, want string) {
		t.Helper()
		status, body := poll(code)
		if status != 400 || body["error"] != want {
			t.Fatalf("poll = %d %v, want %s", status, body, want)
		}
	}
	t.Run("pending then slow_down", func(t *testing.T) {
		code, _ := start(t)
		expect(t, code, "authorization_pending")
		expect(t, code, "slow_down") // at once again: too fast
		e.clock.Advance(time.Second)
		expect(t, code, "slow_down") // the interval grew to 6s
		e.clock.Advance(11 * time.Second)
		expect(t, code, "authorization_pending")
	})
	t.Run("denied", func(t *testing.T) {
		code, complete := start(t)
		e.approve(complete, "alice", "correct horse", false)
		expect(t, code, "access_denied")
	})
	t.Run("expired", func(t *testing.T) {
		code, _ := start(t)
		e.clock.Advance(11 * time.Minute)
		expect(t, code, "expired_token")
	})
	t.Run("unknown device code", func(t *testing.T) {
		expect(t, "no-such-code", "invalid_grant")
	})
	t.Run("device code of another client", func(t *testing.T) {
		code, _ := start(t)
		status, body := e.postForm(oauth.PathToken, url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {code}}, "sensor-1", e.secrets["sensor-1"])
		if status != 400 || body["error"] != "invalid_grant" {
			t.Errorf("poll by other client = %d %v, want invalid_grant", status, body)
		}
	})
}

func TestDevicePage(t *testing.T) {
	e := newEnv(t, storetestSQLite(t))
	status, body := e.postForm(oauth.PathDeviceCode, url.Values{}, "sensor-2", e.secrets["sensor-2"])
	if status != 200 {
		t.Fatal(body)
	}
	userCode := body["user_code"].(string)
	b := e.browser()
	_, html := page(t, b, "GET", e.url("/device"), nil)
	csrf := match(t, csrfRE, html)
	login := func(code, user, pass, token string) (int, string) {
		return page(t, b, "POST", e.url("/device"), url.Values{"csrf": {token}, "step": {"login"}, "user_code": {code}, "username": {user}, "password": {pass}})
	}
	tests := []struct {
		name       string
		code, user string
		pass, csrf string
		wantStatus int
		wantText   string
	}{
		{"missing csrf", userCode, "alice", "correct horse", "", 403, "session expired"},
		{"wrong csrf", userCode, "alice", "correct horse", "forged", 403, "session expired"},
		{"wrong password", userCode, "alice", "wrong", csrf, 401, "Wrong username or password"},
		{"unknown code", "BBBB-BBBB", "alice", "correct horse", csrf, 400, "not valid or has expired"},
		{"lower case code with spaces works", strings.ToLower(strings.ReplaceAll(userCode, "-", " ")), "alice", "correct horse", csrf, 200, "sensor-2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, html := login(tc.code, tc.user, tc.pass, tc.csrf)
			if status != tc.wantStatus || !strings.Contains(html, tc.wantText) {
				t.Errorf("status %d, want %d with %q in:\n%s", status, tc.wantStatus, tc.wantText, html)
			}
		})
	}
	// A decision needs the consent value of a login.
	status, html = page(t, b, "POST", e.url("/device"), url.Values{"csrf": {csrf}, "step": {"decide"}, "user_code": {userCode}, "consent": {"guess"}, "action": {"approve"}})
	if status != 400 {
		t.Errorf("decision with a guessed consent value = %d:\n%s", status, html)
	}
	// Guessing codes is rate limited.
	var last int
	for range 20 {
		last, _ = login("CCCC-CCCC", "alice", "x", csrf)
	}
	if last != http.StatusTooManyRequests {
		t.Errorf("after 20 guesses status = %d, want 429", last)
	}
}

func TestRefreshRotationAndReuse(t *testing.T) {
	drivers(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn)
		ctx := oidcContext(t, e)
		cfg, auth := e.deviceConfig("sensor-1", "publish", "subscribe")
		da, err := cfg.DeviceAuth(ctx, auth...)
		if err != nil {
			t.Fatal(err)
		}
		e.approve(da.VerificationURIComplete, "alice", "correct horse", true)
		first, err := cfg.DeviceAccessToken(ctx, da, auth...)
		if err != nil {
			t.Fatal(err)
		}
		refresh := func(rt string, scope ...string) (int, map[string]any) {
			f := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
			if len(scope) > 0 {
				f.Set("scope", strings.Join(scope, " "))
			}
			return e.postForm(oauth.PathToken, f, "sensor-1", e.secrets["sensor-1"])
		}
		status, second := refresh(first.RefreshToken, "publish")
		if status != 200 || second["refresh_token"] == first.RefreshToken || second["scope"] != "publish" {
			t.Fatalf("refresh = %d %v", status, second)
		}
		at2, err := e.srv.VerifyAccessToken(ctx, second["access_token"].(string))
		if err != nil || at2.Subject != "alice" {
			t.Fatalf("refreshed token = %+v, %v", at2, err)
		}
		if status, body := refresh(second["refresh_token"].(string), "admin"); status != 400 || body["error"] != "invalid_scope" {
			t.Errorf("widening scope = %d %v, want invalid_scope", status, body)
		}
		// The first refresh token again: reuse. The whole family dies.
		if status, body := refresh(first.RefreshToken); status != 400 || body["error"] != "invalid_grant" {
			t.Errorf("reuse = %d %v, want invalid_grant", status, body)
		}
		if status, body := refresh(second["refresh_token"].(string)); status != 400 || body["error"] != "invalid_grant" {
			t.Errorf("newest token after reuse = %d %v, want invalid_grant", status, body)
		}
		for name, raw := range map[string]string{"first": first.AccessToken, "second": second["access_token"].(string)} {
			if _, err := e.srv.VerifyAccessToken(ctx, raw); !errors.Is(err, oauth.ErrInvalidToken) {
				t.Errorf("%s access token after reuse: err = %v, want revoked", name, err)
			}
		}
		if status, body := refresh("ghr_unknown"); status != 400 || body["error"] != "invalid_grant" {
			t.Errorf("unknown refresh token = %d %v", status, body)
		}
	})
}

// TestDevicePageDescribesScopes: the consent step says what each scope
// lets the thing do, in its thing type's words (escaped), and shows a
// scope the type does not describe as it is.
func TestDevicePageDescribesScopes(t *testing.T) {
	e := newEnv(t, storetestSQLite(t))
	status, body := e.postForm(oauth.PathDeviceCode, url.Values{"scope": {"publish subscribe"}}, "sensor-2", e.secrets["sensor-2"])
	if status != 200 {
		t.Fatal(body)
	}
	b := e.browser()
	_, html := page(t, b, "GET", e.url("/device"), nil)
	csrf := match(t, csrfRE, html)
	status, html = page(t, b, "POST", e.url("/device"), url.Values{"csrf": {csrf}, "step": {"login"}, "user_code": {body["user_code"].(string)},
		"username": {"alice"}, "password": {"correct horse"}})
	for _, want := range []string{"Send its readings &amp; alarms <small>(<code>publish</code>)</small>", "<li><code>subscribe</code></li>"} {
		if status != 200 || !strings.Contains(html, want) {
			t.Errorf("consent page = %d, want %q in:\n%s", status, want, html)
		}
	}
}
