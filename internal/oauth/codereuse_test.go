package oauth_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"testing"

	"github.com/gatehouse-iot/gatehouse/internal/oauth"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// TestAuthorizationCodeReuseRevokes: an authorization code presented a
// second time fails with invalid_grant and revokes every token issued from
// it (RFC 6749 section 4.1.2): the first access token, the one a refresh
// gave, and the refresh token, at introspection and at VerifyAccessToken
// (what the broker asks). Other grants of the same app and person stay.
func TestAuthorizationCodeReuseRevokes(t *testing.T) {
	drivers(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn)
		ctx := t.Context()
		app, _, err := e.srv.CreateApp(ctx, oauth.AppSpec{Name: "console", Public: true, RedirectURIs: []string{appRedirect}, Scopes: []string{"openid", "things"}})
		if err != nil {
			t.Fatal(err)
		}
		noRefresh, _, err := e.srv.CreateApp(ctx, oauth.AppSpec{Name: "norefresh", Public: true, RedirectURIs: []string{appRedirect}, Scopes: []string{"openid"},
			GrantTypes: []string{oauth.GrantAuthorizationCode}})
		if err != nil {
			t.Fatal(err)
		}
		verifier := "reuse-verifier-0123456789abcdefghijklmnopqrstuvwxyz"
		code := func(clientID string) string {
			t.Helper()
			q, status := e.authorize(url.Values{"client_id": {clientID}, "redirect_uri": {appRedirect}, "response_type": {"code"}, "scope": {"openid"},
				"code_challenge": {challengeOf(verifier)}, "code_challenge_method": {"S256"}}, "alice", "correct horse", "approve")
			if q.Get("code") == "" {
				t.Fatalf("authorize = %v (%d), want a code", q, status)
			}
			return q.Get("code")
		}
		exchange := func(clientID, code string) (int, map[string]any) {
			return e.postForm(oauth.PathToken, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {appRedirect},
				"client_id": {clientID}, "code_verifier": {verifier}}, "", "")
		}
		refresh := func(rt string) (int, map[string]any) {
			return e.postForm(oauth.PathToken, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {app.ClientID}}, "", "")
		}
		active := func(token string) bool {
			t.Helper()
			status, body := e.postForm(oauth.PathIntrospect, url.Values{"token": {token}}, "resource-server", "rs-secret")
			if status != http.StatusOK {
				t.Fatalf("introspect = %d %v", status, body)
			}
			return body["active"] == true
		}
		reused := func() []store.Event {
			t.Helper()
			evs, err := e.store.ListEvents(ctx, store.EventFilter{Type: "authorization.code_reused"})
			if err != nil {
				t.Fatal(err)
			}
			return evs
		}

		// An unknown code is refused and changes nothing.
		if status, body := exchange(app.ClientID, "no-such-code"); status != http.StatusBadRequest || body["error"] != "invalid_grant" {
			t.Fatalf("unknown code = %d %v, want invalid_grant", status, body)
		}

		stolen := code(app.ClientID)
		status, first := exchange(app.ClientID, stolen)
		if status != http.StatusOK {
			t.Fatalf("exchange = %d %v", status, first)
		}
		at1 := first["access_token"].(string)
		status, second := refresh(first["refresh_token"].(string))
		if status != http.StatusOK {
			t.Fatalf("refresh = %d %v", status, second)
		}
		at2, rt2 := second["access_token"].(string), second["refresh_token"].(string)
		status, other := exchange(app.ClientID, code(app.ClientID))
		if status != http.StatusOK {
			t.Fatalf("exchange of another code = %d %v", status, other)
		}
		status, bare := exchange(noRefresh.ClientID, code(noRefresh.ClientID))
		if status != http.StatusOK || bare["refresh_token"] != nil {
			t.Fatalf("exchange without refresh = %d %v, want an access token only", status, bare)
		}
		var want []string
		for i, tok := range []string{at1, at2, other["access_token"].(string), bare["access_token"].(string)} {
			if !active(tok) {
				t.Fatalf("token %d inactive before any reuse", i)
			}
			at, err := e.srv.VerifyAccessToken(ctx, tok)
			if err != nil {
				t.Fatal(err)
			}
			if i < 2 {
				want = append(want, at.JTI)
			}
		}
		if got := reused(); len(got) != 0 {
			t.Fatalf("authorization.code_reused events before a reuse: %+v", got)
		}

		if status, body := exchange(app.ClientID, stolen); status != http.StatusBadRequest || body["error"] != "invalid_grant" {
			t.Fatalf("second use of the code = %d %v, want invalid_grant", status, body)
		}
		for name, tok := range map[string]string{"first access token": at1, "refreshed access token": at2} {
			if active(tok) {
				t.Errorf("%s still active at introspection after the code's reuse", name)
			}
			if at, err := e.srv.VerifyAccessToken(ctx, tok); err == nil {
				t.Errorf("%s still verifies after the code's reuse: %+v", name, at)
			}
		}
		if status, body := refresh(rt2); status != http.StatusBadRequest || body["error"] != "invalid_grant" {
			t.Errorf("refresh token after the code's reuse = %d %v, want invalid_grant", status, body)
		}
		if !active(other["access_token"].(string)) {
			t.Error("the token of another code was revoked too")
		}
		if status, body := refresh(other["refresh_token"].(string)); status != http.StatusOK {
			t.Errorf("refresh of another code's grant = %d %v", status, body)
		}
		evs := reused()
		if len(evs) != 1 {
			t.Fatalf("authorization.code_reused events = %+v, want 1", evs)
		}
		var d struct {
			JTIs        []string `json:"access_jtis"`
			Subject     string   `json:"subject"`
			PresentedBy string   `json:"presented_by"`
		}
		if err := json.Unmarshal(evs[0].Details, &d); err != nil {
			t.Fatal(err)
		}
		slices.Sort(d.JTIs)
		slices.Sort(want)
		if !slices.Equal(d.JTIs, want) || d.Subject != "alice" || d.PresentedBy != app.ClientID || evs[0].Subject != "client/"+app.ClientID {
			t.Errorf("event %s %s, want jtis %v of alice presented by %s", evs[0].Subject, evs[0].Details, want, app.ClientID)
		}

		// A third presentation: still invalid_grant, nothing more to revoke.
		if status, body := exchange(app.ClientID, stolen); status != http.StatusBadRequest || body["error"] != "invalid_grant" {
			t.Errorf("third use of the code = %d %v, want invalid_grant", status, body)
		}
		if got := reused(); len(got) != 1 {
			t.Errorf("authorization.code_reused events after a third use = %d, want 1", len(got))
		}

		// An app without refresh tokens: the access token alone is revoked,
		// even when another client presents the code.
		bareCode := code(noRefresh.ClientID)
		status, bare = exchange(noRefresh.ClientID, bareCode)
		if status != http.StatusOK {
			t.Fatalf("exchange = %d %v", status, bare)
		}
		if status, body := exchange(app.ClientID, bareCode); status != http.StatusBadRequest || body["error"] != "invalid_grant" {
			t.Fatalf("reuse by another client = %d %v, want invalid_grant", status, body)
		}
		if active(bare["access_token"].(string)) {
			t.Error("access token still active after its code was presented again by another client")
		}
	})
}
