package app_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/gatehouse-iot/gatehouse/internal/app"
	"github.com/gatehouse-iot/gatehouse/internal/config"
	"github.com/gatehouse-iot/gatehouse/internal/console"
	"github.com/gatehouse-iot/gatehouse/internal/events"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/testenv"
)

const connectPolicy = `{"Version":"2012-10-17","Statement":[
 {"Effect":"Allow","Action":"iot:Connect","Resource":"client/${iot:Connection.Thing.ThingName}"}]}`

// startApp runs the whole server on ephemeral ports with SQLite in
// t.TempDir().
func startApp(t *testing.T) *app.App {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.HTTP.Addr, cfg.HTTP.TLSAddr = "127.0.0.1:0", ""
	cfg.MQTT.Addr, cfg.MQTT.WSAddr, cfg.MQTT.TLSAddr, cfg.MQTT.WSSAddr = "127.0.0.1:0", "", "", ""
	cfg.Finish()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a, err := app.New(t.Context(), cfg, app.Options{Out: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return a
}

type browser struct {
	t    *testing.T
	base string
	jar  []*http.Cookie
	csrf string
}

func (b *browser) do(method, path, body string) (int, http.Header, []byte) {
	b.t.Helper()
	req, err := http.NewRequestWithContext(b.t.Context(), method, b.base+path, strings.NewReader(body))
	if err != nil {
		b.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for _, c := range b.jar {
		req.AddCookie(c)
	}
	if b.csrf != "" {
		req.Header.Set("X-CSRF-Token", b.csrf)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if cs := resp.Cookies(); len(cs) > 0 {
		b.jar = cs
	}
	return resp.StatusCode, resp.Header, raw
}

func TestConsoleConnectionsOfALiveThing(t *testing.T) {
	a := startApp(t)
	ctx := events.WithActor(t.Context(), "test")
	if _, err := a.Registry.CreateUser(ctx, registry.NewUser{Username: "ada", Password: "admin-password-1", Roles: []string{registry.RoleAdmin}}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Registry.CreatePolicy(ctx, registry.NewPolicy{Name: "connect", Document: []byte(connectPolicy)}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Registry.CreateThingType(ctx, registry.ThingTypeSpec{Name: "sensor", Scopes: []string{"mqtt"}, DefaultPolicies: []string{"connect"}}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"s-1", "s-2"} {
		if _, err := a.Registry.CreateThing(ctx, registry.NewThing{Name: name, ThingType: "sensor"}); err != nil {
			t.Fatal(err)
		}
	}
	secret, err := a.OAuth.SetThingSecret(ctx, "s-1")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + a.HTTPAddr()
	cc := clientcredentials.Config{ClientID: "s-1", ClientSecret: secret, TokenURL: base + "/oauth2/token", Scopes: []string{"mqtt"}}
	tok, err := cc.Token(t.Context())
	if err != nil {
		t.Fatal(err)
	}

	b := &browser{t: t, base: base}
	status, hdr, raw := b.do("POST", "/console/api/login", `{"username":"ada","password":"admin-password-1"}`)
	if status != http.StatusOK || hdr.Get("Content-Security-Policy") != console.ContentSecurityPolicy {
		t.Fatalf("login: %d %s (CSP %q)", status, raw, hdr.Get("Content-Security-Policy"))
	}
	var sess struct {
		CSRFToken string `json:"csrfToken"`
	}
	if err := json.Unmarshal(raw, &sess); err != nil {
		t.Fatal(err)
	}
	b.csrf = sess.CSRFToken

	type conn struct {
		ClientID        string    `json:"clientId"`
		Username        string    `json:"username"`
		RemoteAddr      string    `json:"remoteAddr"`
		Listener        string    `json:"listener"`
		ProtocolVersion int       `json:"protocolVersion"`
		ConnectedAt     time.Time `json:"connectedAt"`
	}
	connections := func(thing string) []conn {
		t.Helper()
		status, _, raw := b.do("GET", "/api/v1/things/"+thing+"/connections", "")
		if status != http.StatusOK {
			t.Fatalf("GET connections of %s: %d %s", thing, status, raw)
		}
		var body struct {
			Items []conn `json:"items"`
		}
		if err := json.Unmarshal(raw, &body); err != nil || body.Items == nil {
			t.Fatalf("connections body %s: %v", raw, err)
		}
		return body.Items
	}
	if got := connections("s-1"); len(got) != 0 {
		t.Fatalf("before connecting: %+v", got)
	}

	before := time.Now()
	nc, err := net.Dial("tcp", a.Broker.Addr("mqtt"))
	if err != nil {
		t.Fatal(err)
	}
	client := paho.NewClient(paho.ClientConfig{Conn: nc})
	cctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	ca, err := client.Connect(cctx, &paho.Connect{ClientID: "s-1", Username: "s-1", UsernameFlag: true, Password: []byte(tok.AccessToken), PasswordFlag: true, KeepAlive: 30, CleanStart: true})
	if err != nil || ca.ReasonCode != 0 {
		t.Fatalf("connect: %v %+v", err, ca)
	}

	got := connections("s-1")
	if len(got) != 1 {
		t.Fatalf("connections of s-1 = %+v, want one", got)
	}
	c := got[0]
	if c.ClientID != "s-1" || c.Username != "s-1" || c.Listener != "mqtt" || c.ProtocolVersion != 5 ||
		c.RemoteAddr != nc.LocalAddr().String() || c.ConnectedAt.Before(before.Add(-time.Second)) {
		t.Errorf("connection = %+v, want client s-1 from %s on mqtt, MQTT 5, connected after %s", c, nc.LocalAddr(), before)
	}
	if got := connections("s-2"); len(got) != 0 {
		t.Errorf("connections of s-2 (offline) = %+v", got)
	}
	if status, _, _ := b.do("GET", "/api/v1/things/nope/connections", ""); status != http.StatusNotFound {
		t.Errorf("connections of a missing thing: %d, want 404", status)
	}

	if err := client.Disconnect(&paho.Disconnect{}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "the connection unlisted after the client disconnected", func() bool { return len(connections("s-1")) == 0 })

	// The metrics series are served from the app's own registry.
	status, _, raw = b.do("GET", "/api/v1/metrics/series", "")
	var series struct {
		Step   int                     `json:"step"`
		Series map[string][][2]float64 `json:"series"`
	}
	if err := json.Unmarshal(raw, &series); status != http.StatusOK || err != nil || series.Step != 10 {
		t.Fatalf("GET metrics/series: %d %s", status, raw)
	}
	for _, name := range []string{"connections", "messagesReceived", "messagesSent", "tokensIssued", "denials"} {
		if _, ok := series.Series[name]; !ok {
			t.Errorf("series %s missing from %s", name, raw)
		}
	}

	if status, _, _ := b.do("POST", "/console/api/logout", ""); status != http.StatusNoContent {
		t.Errorf("logout: %d", status)
	}
}

// login signs a user in through the console and returns the browser.
func login(t *testing.T, base, user, pass string) *browser {
	t.Helper()
	b := &browser{t: t, base: base}
	status, _, raw := b.do("POST", "/console/api/login", `{"username":"`+user+`","password":"`+pass+`"}`)
	if status != http.StatusOK {
		t.Fatalf("login %s: %d %s", user, status, raw)
	}
	var sess struct {
		CSRFToken string `json:"csrfToken"`
	}
	if err := json.Unmarshal(raw, &sess); err != nil {
		t.Fatal(err)
	}
	b.csrf = sess.CSRFToken
	return b
}

func TestConsoleLobbyClaimsByRole(t *testing.T) {
	a := startApp(t)
	ctx := events.WithActor(t.Context(), "test")
	for _, u := range []registry.NewUser{
		{Username: "ada", Password: "admin-password-1", Roles: []string{registry.RoleAdmin}},
		{Username: "otto", Password: "operator-password-1", Roles: []string{registry.RoleOperator}},
		{Username: "uma", Password: "user-password-1", Roles: []string{registry.RoleUser}},
	} {
		if _, err := a.Registry.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	base := "http://" + a.HTTPAddr()
	fp := strings.Repeat("ab", 32) // a fingerprint no device has
	tests := []struct {
		user, pass string
		path       string
		want       int
	}{
		// Past the role check the lobby refuses the unknown target.
		{"ada", "admin-password-1", "/api/v1/lobby/claims", http.StatusNotFound},
		{"otto", "operator-password-1", "/api/v1/lobby/claims", http.StatusNotFound},
		{"otto", "operator-password-1", "/api/v1/lobby/preclaims", http.StatusNotFound},
		{"uma", "user-password-1", "/api/v1/lobby/claims", http.StatusForbidden},
		{"otto", "operator-password-1", "/api/v1/lobby/targets", http.StatusForbidden},
	}
	for _, tc := range tests {
		t.Run(tc.user+tc.path, func(t *testing.T) {
			b := login(t, base, tc.user, tc.pass)
			status, _, raw := b.do("POST", tc.path, `{"device":"`+fp+`","target":"nowhere"}`)
			if status != tc.want {
				t.Errorf("POST %s as %s: %d %s, want %d", tc.path, tc.user, status, raw, tc.want)
			}
		})
	}
}
