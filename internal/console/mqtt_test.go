package console_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/oauth"
)

// TestMQTTToken: the test client's token is the signed-in person's own,
// short-lived, minted only for a live session with its CSRF token, and the
// Content-Security-Policy lets the page reach exactly the broker's
// WebSocket endpoint.
func TestMQTTToken(t *testing.T) {
	f := newFixture(t, options{mqttWS: "127.0.0.1:8083"})
	s := f.login("uma", userPass)
	host, _, _ := strings.Cut(strings.TrimPrefix(f.srv.URL, "http://"), ":")
	wantURL := "ws://" + host + ":8083"

	for _, tc := range []struct {
		name string
		r    response
		want int
	}{
		{"no session", f.do(nil, "POST", "/console/api/mqtt-token", ""), http.StatusUnauthorized},
		{"no CSRF token", f.do(s, "POST", "/console/api/mqtt-token", ""), http.StatusForbidden},
		{"another origin", f.do(s, "POST", "/console/api/mqtt-token", "", "X-CSRF-Token", s.csrf, "Origin", "https://evil.example"), http.StatusForbidden},
		{"GET", f.do(s, "GET", "/console/api/mqtt-token", ""), http.StatusNotFound},
	} {
		if tc.r.status != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.name, tc.r.status, tc.r.raw, tc.want)
		}
	}
	if evs := f.eventsOf("token.issued"); len(evs) != 0 {
		t.Fatalf("refused requests issued tokens: %+v", evs)
	}

	r := f.change(s, "POST", "/console/api/mqtt-token", "")
	if r.status != http.StatusOK {
		t.Fatalf("mint: %d %s", r.status, r.raw)
	}
	var got struct {
		URL, Username, ClientID, Token string
		ExpiresAt                      time.Time
	}
	r.json(t, &got)
	if got.URL != wantURL+"/mqtt" || got.Username != "uma" || !strings.HasPrefix(got.ClientID, "uma~console-") {
		t.Errorf("mint = %+v, want url %s/mqtt, user uma, client id uma~console-...", got, wantURL)
	}
	at, err := f.env.OAuth.VerifyAccessToken(t.Context(), got.Token)
	if err != nil {
		t.Fatalf("the minted token does not verify: %v", err)
	}
	now := f.clock.Now()
	if at.Subject != "uma" || at.Kind != oauth.KindUser || at.ClientID != oauth.ConsoleClientID || len(at.Scopes) != 0 {
		t.Errorf("token = %+v, want uma's own person token of the console client without scopes", at)
	}
	if life := at.ExpiresAt.Sub(now); life <= 0 || life > 10*time.Minute || !at.ExpiresAt.Equal(got.ExpiresAt) {
		t.Errorf("token expires at %s (answer says %s), %s from now; want within 10 minutes", at.ExpiresAt, got.ExpiresAt, life)
	}
	if evs := f.eventsOf("token.issued"); len(evs) != 1 || evs[0].Subject != "user/uma" || strings.Contains(string(evs[0].Details), got.Token) {
		t.Errorf("token.issued events = %+v, want one for user/uma without the token", evs)
	}

	csp := f.do(nil, "GET", "/console/", "").header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "connect-src 'self' "+wantURL+";") {
		t.Errorf("CSP %q does not allow exactly %s", csp, wantURL)
	}
	if strings.Count(csp, "ws://") != 1 || strings.Contains(csp, "ws://*") {
		t.Errorf("CSP %q allows more than the one endpoint", csp)
	}
	// The endpoint is on the host the browser used, however it was named.
	req, _ := http.NewRequestWithContext(t.Context(), "GET", f.srv.URL+"/console/", nil)
	u, _ := url.Parse(f.srv.URL)
	req.Host = "localhost:" + u.Port()
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "connect-src 'self' ws://localhost:8083;") {
		t.Errorf("CSP for Host localhost = %q", csp)
	}
}

// TestMQTTTokenWithoutListener: without a WebSocket listener there is no
// test client, and the policy stays the plain one.
func TestMQTTTokenWithoutListener(t *testing.T) {
	f := newFixture(t, options{})
	s := f.login("ada", adminPass)
	if r := f.change(s, "POST", "/console/api/mqtt-token", ""); r.status != http.StatusNotFound {
		t.Errorf("mint without a listener: %d %s, want 404", r.status, r.raw)
	}
}
