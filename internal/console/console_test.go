package console_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/console"
	"github.com/gatehouse-iot/gatehouse/internal/events"
	"github.com/gatehouse-iot/gatehouse/internal/httpapi"
	"github.com/gatehouse-iot/gatehouse/internal/ratelimit"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/store"
	"github.com/gatehouse-iot/gatehouse/internal/store/storetest"
	"github.com/gatehouse-iot/gatehouse/internal/testenv"
)

// Passwords of the fixture's users.
const (
	adminPass    = "admin-password-1"
	operatorPass = "operator-password-1"
	userPass     = "user-password-1"
)

type fixture struct {
	t     testing.TB
	srv   *httptest.Server
	clock *testenv.Clock
	store *store.Store
	reg   *registry.Service
	api   *httpapi.API
	// token is an admin API token.
	token string
	// streams counts event stream requests being served.
	streams *atomic.Int64
	dsn     string
	env     *testenv.Env
}

type options struct {
	tls       bool
	console   func(*console.Config)
	heartbeat time.Duration
	// dsn is the database (default: SQLite in t.TempDir()).
	dsn string
	// replicaOf, when set, serves another replica on its database and
	// clock instead of creating the users.
	replicaOf *fixture
	// mqttWS, when set, runs the OAuth server too and gives the console
	// that MQTT WebSocket listener address for its test client's tokens.
	mqttWS string
}

// newFixture serves the real API and console over HTTP, on the real
// registry and a SQLite database in t.TempDir(), with users ada (admin),
// otto (operator) and uma (user).
func newFixture(t testing.TB, o options) *fixture {
	t.Helper()
	if o.dsn == "" {
		o.dsn = storetest.SQLiteDSN(t)
	}
	clk := testenv.NewClock(time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC))
	if o.replicaOf != nil {
		o.dsn, clk = o.replicaOf.dsn, o.replicaOf.clock
	}
	build := testenv.Core
	if o.mqttWS != "" {
		build = testenv.New
	}
	env := build(t, testenv.DSN(o.dsn), testenv.Now(clk.Now))
	s, reg, log := env.Store, env.Registry, env.Events
	var err error
	var token string
	if o.replicaOf != nil {
		token = o.replicaOf.token
	} else {
		ctx := events.WithActor(t.Context(), "test")
		for _, u := range []registry.NewUser{
			{Username: "ada", Password: adminPass, Roles: []string{registry.RoleAdmin}},
			{Username: "otto", Password: operatorPass, Roles: []string{registry.RoleOperator}},
			{Username: "uma", Password: userPass, Roles: []string{registry.RoleUser}},
		} {
			if _, err := reg.CreateUser(ctx, u); err != nil {
				t.Fatal(err)
			}
		}
		if token, _, err = reg.CreateAPIToken(ctx, "test", "", []string{registry.RoleAdmin}, 0); err != nil {
			t.Fatal(err)
		}
	}
	cc := console.Config{Registry: reg, Store: s, Events: log, Now: clk.Now, Rand: rand.Reader}
	if o.mqttWS != "" {
		cc.Tokens, cc.MQTTWS = env.OAuth, o.mqttWS
	}
	if o.console != nil {
		o.console(&cc)
	}
	con := console.New(cc)
	if o.heartbeat == 0 {
		o.heartbeat = time.Hour
	}
	api := httpapi.New(httpapi.Config{Registry: reg, Events: log, Sessions: con, MaxBodyBytes: 1 << 16, StreamHeartbeat: o.heartbeat})
	streams := &atomic.Int64{}
	mux := http.NewServeMux()
	mux.HandleFunc("/api/v1/", func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/events/stream") {
			streams.Add(1)
			defer streams.Add(-1)
		}
		api.ServeHTTP(w, r)
	})
	mux.Handle("/console/", con)
	var srv *httptest.Server
	if o.tls {
		srv = httptest.NewTLSServer(mux)
	} else {
		srv = httptest.NewServer(mux)
	}
	t.Cleanup(srv.Close)
	return &fixture{t: t, srv: srv, clock: clk, store: s, reg: reg, api: api, token: token, streams: streams, dsn: o.dsn, env: env}
}

type response struct {
	status int
	header http.Header
	raw    string
}

func (r response) json(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(r.raw), v); err != nil {
		t.Fatalf("decode %q: %v", r.raw, err)
	}
}

// cookie returns the session cookie the response set, or nil.
func (r response) cookie() *http.Cookie {
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == console.CookieName {
			return c
		}
	}
	return nil
}

// session is a signed-in browser: its cookie and CSRF token.
type session struct {
	cookie string
	csrf   string
}

// do sends a request; hdr holds header name/value pairs.
func (f *fixture) do(s *session, method, path, body string, hdr ...string) response {
	f.t.Helper()
	req, err := http.NewRequestWithContext(f.t.Context(), method, f.srv.URL+path, strings.NewReader(body))
	if err != nil {
		f.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if s != nil {
		req.AddCookie(&http.Cookie{Name: console.CookieName, Value: s.cookie})
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
}

// change sends a cookie-authenticated change with the session's CSRF token.
func (f *fixture) change(s *session, method, path, body string) response {
	f.t.Helper()
	return f.do(s, method, path, body, "X-CSRF-Token", s.csrf)
}

func (f *fixture) bearer(method, path, body string) response {
	f.t.Helper()
	return f.do(nil, method, path, body, "Authorization", "Bearer "+f.token)
}

func loginBody(user, pass string) string {
	b, _ := json.Marshal(map[string]string{"username": user, "password": pass})
	return string(b)
}

func (f *fixture) login(user, pass string) *session {
	f.t.Helper()
	r := f.do(nil, "POST", "/console/api/login", loginBody(user, pass))
	if r.status != http.StatusOK {
		f.t.Fatalf("login %s: %d %s", user, r.status, r.raw)
	}
	var body struct {
		CSRFToken string `json:"csrfToken"`
	}
	r.json(f.t, &body)
	return &session{cookie: r.cookie().Value, csrf: body.CSRFToken}
}

// eventsOf lists the events of a type.
func (f *fixture) eventsOf(typ string) []store.Event {
	f.t.Helper()
	evs, err := f.store.ListEvents(f.t.Context(), store.EventFilter{Type: typ, Limit: 1000})
	if err != nil {
		f.t.Fatal(err)
	}
	return evs
}

func TestLogin(t *testing.T) {
	f := newFixture(t, options{console: func(c *console.Config) {
		c.LoginPerIP = ratelimit.New("consoleLoginPerIP", ratelimit.Rate{Burst: 100, Per: 100 * time.Minute}, ratelimit.Options{Now: c.Now})
	}})
	tests := []struct {
		name        string
		body        string
		contentType string
		wantStatus  int
		wantCookie  bool
	}{
		{"admin", loginBody("ada", adminPass), "application/json", http.StatusOK, true},
		{"user", loginBody("uma", userPass), "application/json", http.StatusOK, true},
		{"wrong password", loginBody("ada", "not-the-password"), "application/json", http.StatusUnauthorized, false},
		{"unknown user", loginBody("nobody", adminPass), "application/json", http.StatusUnauthorized, false},
		{"empty body", "", "application/json", http.StatusBadRequest, false},
		{"unknown field", `{"username":"ada","password":"x","remember":true}`, "application/json", http.StatusBadRequest, false},
		{"form post", "username=ada&password=" + adminPass, "application/x-www-form-urlencoded", http.StatusUnsupportedMediaType, false},
		{"overlong password", loginBody("ada", strings.Repeat("p", registry.MaxPasswordLength+1)), "application/json", http.StatusUnauthorized, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := f.do(nil, "POST", "/console/api/login", tc.body, "Content-Type", tc.contentType)
			if r.status != tc.wantStatus {
				t.Fatalf("status = %d (%s), want %d", r.status, r.raw, tc.wantStatus)
			}
			c := r.cookie()
			if got := c != nil; got != tc.wantCookie {
				t.Fatalf("session cookie set = %v, want %v", got, tc.wantCookie)
			}
			if !tc.wantCookie {
				if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
					t.Errorf("Content-Type = %q, want application/problem+json", ct)
				}
				return
			}
			if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Secure {
				t.Errorf("cookie = %+v, want HttpOnly, SameSite=Strict, Path=/ and not Secure over plain HTTP", c)
			}
			if c.MaxAge != int((12 * time.Hour).Seconds()) {
				t.Errorf("cookie Max-Age = %d, want 12h", c.MaxAge)
			}
			var body struct {
				Username  string   `json:"username"`
				Roles     []string `json:"roles"`
				CSRFToken string   `json:"csrfToken"`
			}
			r.json(t, &body)
			if body.CSRFToken == "" || len(body.Roles) == 0 {
				t.Errorf("login body = %s, want roles and a CSRF token", r.raw)
			}
			// The cookie signs in: the session endpoint answers the same.
			s := &session{cookie: c.Value}
			got := f.do(s, "GET", "/console/api/session", "")
			if got.status != http.StatusOK || got.raw != r.raw {
				t.Errorf("GET session = %d %s, want 200 %s", got.status, got.raw, r.raw)
			}
		})
	}

	// Only the hash of the cookie value is stored.
	c := f.do(nil, "POST", "/console/api/login", loginBody("ada", adminPass)).cookie()
	if _, err := f.store.ConsoleSessionByHash(t.Context(), c.Value); err == nil {
		t.Error("the session is stored under the raw cookie value")
	}

	logins, failures := f.eventsOf("console.login"), f.eventsOf("console.login_failed")
	if len(logins) != 3 || len(failures) != 3 {
		t.Fatalf("events: %d console.login, %d console.login_failed; want 3 and 3", len(logins), len(failures))
	}
	if logins[0].Actor != "user:ada" || logins[0].Subject != "user/ada" {
		t.Errorf("login event = %+v", logins[0])
	}
	if failures[0].Subject != "user/ada" || failures[1].Subject != "user/nobody" || failures[2].Subject != "user/ada" || failures[0].Actor != "anonymous" {
		t.Errorf("failure events = %+v", failures)
	}
	for _, ev := range append(f.eventsOf("console."), f.eventsOf("")...) {
		if strings.Contains(string(ev.Details), "password") || strings.Contains(string(ev.Details), adminPass) {
			t.Errorf("event %s records the password: %s", ev.Type, ev.Details)
		}
	}
}

func TestSecureCookie(t *testing.T) {
	tests := []struct {
		name string
		o    options
		want bool
	}{
		{"plain HTTP", options{}, false},
		{"TLS", options{tls: true}, true},
		{"behind a TLS proxy", options{console: func(c *console.Config) { c.SecureCookies = true }}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.o)
			r := f.do(nil, "POST", "/console/api/login", loginBody("ada", adminPass))
			c := r.cookie()
			if r.status != http.StatusOK || c == nil {
				t.Fatalf("login: %d %s", r.status, r.raw)
			}
			if c.Secure != tc.want || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
				t.Errorf("cookie = %+v, want Secure=%v, HttpOnly, SameSite=Strict", c, tc.want)
			}
			s := &session{cookie: c.Value, csrf: ""}
			var body struct {
				CSRFToken string `json:"csrfToken"`
			}
			r.json(t, &body)
			s.csrf = body.CSRFToken
			if c := f.change(s, "POST", "/console/api/logout", "").cookie(); c == nil || c.Secure != tc.want {
				t.Errorf("logout cookie = %+v, want Secure=%v", c, tc.want)
			}
		})
	}
}

func TestLoginRateLimit(t *testing.T) {
	f := newFixture(t, options{console: func(c *console.Config) {
		c.LoginPerIP = ratelimit.New("consoleLoginPerIP", ratelimit.Rate{Burst: 3, Per: 3 * time.Minute}, ratelimit.Options{Now: c.Now})
	}})
	for i := range 3 {
		if r := f.do(nil, "POST", "/console/api/login", loginBody("ada", "wrong-password")); r.status != http.StatusUnauthorized {
			t.Fatalf("attempt %d: status %d, want 401", i+1, r.status)
		}
	}
	// Over the limit even the right password is refused, and not checked.
	r := f.do(nil, "POST", "/console/api/login", loginBody("ada", adminPass))
	if r.status != http.StatusTooManyRequests || r.cookie() != nil {
		t.Fatalf("fourth attempt: %d %s, want 429 without a session", r.status, r.raw)
	}
	if s, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || s < 1 || s > 61 {
		t.Errorf("Retry-After = %q, want 1 to 61 seconds", r.header.Get("Retry-After"))
	}
	if n := len(f.eventsOf("console.login_failed")); n != 3 {
		t.Errorf("%d console.login_failed events, want 3 (rate-limited attempts are not checked)", n)
	}
	f.clock.Advance(time.Minute)
	if r := f.do(nil, "POST", "/console/api/login", loginBody("ada", adminPass)); r.status != http.StatusOK {
		t.Errorf("after a minute: status %d, want 200", r.status)
	}
	if r := f.do(nil, "POST", "/console/api/login", loginBody("ada", adminPass)); r.status != http.StatusTooManyRequests {
		t.Errorf("second attempt after a minute: status %d, want 429", r.status)
	}
}

func TestSecurityHeaders(t *testing.T) {
	f := newFixture(t, options{})
	for _, path := range []string{"/console/", "/console/api/session", "/console/api/nothing", "/console/assets/no-such.js", "/console/assets/.keep"} {
		t.Run(path, func(t *testing.T) {
			r := f.do(nil, "GET", path, "")
			for name, want := range map[string]string{
				"Content-Security-Policy": console.ContentSecurityPolicy,
				"X-Content-Type-Options":  "nosniff",
				"Referrer-Policy":         "no-referrer",
			} {
				if got := r.header.Get(name); got != want {
					t.Errorf("%s = %q, want %q", name, got, want)
				}
			}
		})
	}
	if got := f.do(nil, "GET", "/console/assets/.keep", "").status; got != http.StatusNotFound {
		t.Errorf("GET a dot file: %d, want 404", got)
	}
	if !strings.Contains(console.ContentSecurityPolicy, "script-src 'self';") || strings.Contains(console.ContentSecurityPolicy, "unsafe-inline") {
		t.Errorf("CSP %q allows inline scripts", console.ContentSecurityPolicy)
	}
}

func TestCSRF(t *testing.T) {
	f := newFixture(t, options{})
	s := f.login("ada", adminPass)
	tests := []struct {
		name   string
		header []string
		want   int
	}{
		{"missing token", nil, http.StatusForbidden},
		{"wrong token", []string{"X-CSRF-Token", "not-the-token"}, http.StatusForbidden},
		{"another session's token", []string{"X-CSRF-Token", f.login("ada", adminPass).csrf}, http.StatusForbidden},
		{"empty token", []string{"X-CSRF-Token", ""}, http.StatusForbidden},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(f.eventsOf(""))
			r := f.do(s, "POST", "/api/v1/things", `{"name":"pump-1"}`, tc.header...)
			if r.status != tc.want {
				t.Fatalf("POST thing: %d %s, want %d", r.status, r.raw, tc.want)
			}
			if got := f.do(s, "GET", "/api/v1/things/pump-1", "").status; got != http.StatusNotFound {
				t.Errorf("GET thing after refused POST: %d, want 404 (nothing created)", got)
			}
			if after := len(f.eventsOf("")); after != before {
				t.Errorf("events grew from %d to %d", before, after)
			}
			if r := f.do(s, "POST", "/console/api/logout", "", tc.header...); r.status != http.StatusForbidden {
				t.Errorf("logout: %d, want 403", r.status)
			}
			if got := f.do(s, "GET", "/console/api/session", "").status; got != http.StatusOK {
				t.Errorf("session after refused logout: %d, want 200", got)
			}
		})
	}
	r := f.change(s, "POST", "/api/v1/things", `{"name":"pump-1"}`)
	if r.status != http.StatusCreated {
		t.Fatalf("POST thing with the CSRF token: %d %s", r.status, r.raw)
	}
	evs := f.eventsOf("thing.created")
	if len(evs) != 1 || evs[0].Actor != "user:ada" {
		t.Errorf("thing.created events = %+v, want one by user:ada", evs)
	}
	// A bearer token needs no CSRF token: browsers never send it by themselves.
	if r := f.bearer("DELETE", "/api/v1/things/pump-1", ""); r.status != http.StatusNoContent {
		t.Errorf("DELETE with a bearer token: %d %s", r.status, r.raw)
	}
	// No cookie and no token.
	if r := f.do(nil, "GET", "/api/v1/things", ""); r.status != http.StatusUnauthorized {
		t.Errorf("GET things without credentials: %d", r.status)
	}
	// A login posted from another site is refused.
	if r := f.do(nil, "POST", "/console/api/login", loginBody("ada", adminPass), "Origin", "https://evil.example"); r.status != http.StatusForbidden || r.cookie() != nil {
		t.Errorf("cross-origin login: %d, want 403 without a cookie", r.status)
	}
}

func TestSessionExpiry(t *testing.T) {
	f := newFixture(t, options{console: func(c *console.Config) { c.SessionTTL, c.IdleTimeout = 3*time.Hour, time.Hour }})
	alive := func(s *session) bool {
		t.Helper()
		switch r := f.do(s, "GET", "/api/v1/things", ""); r.status {
		case http.StatusOK:
			return true
		case http.StatusUnauthorized:
			return false
		default:
			t.Fatalf("GET things: %d %s", r.status, r.raw)
			return false
		}
	}
	t.Run("idle", func(t *testing.T) {
		s := f.login("ada", adminPass)
		steps := []struct {
			advance time.Duration
			want    bool
		}{{50 * time.Minute, true}, {59 * time.Minute, true}, {61 * time.Minute, false}, {0, false}}
		for i, st := range steps {
			f.clock.Advance(st.advance)
			if got := alive(s); got != st.want {
				t.Fatalf("step %d (+%s): session alive = %v, want %v", i, st.advance, got, st.want)
			}
		}
	})
	t.Run("lifetime", func(t *testing.T) {
		s := f.login("ada", adminPass)
		for i := range 5 { // active every 40 minutes, never idle
			f.clock.Advance(40 * time.Minute)
			if got, want := alive(s), i < 4; got != want {
				t.Fatalf("after %s: session alive = %v, want %v", time.Duration(i+1)*40*time.Minute, got, want)
			}
		}
	})
	t.Run("purge", func(t *testing.T) {
		f.login("ada", adminPass)
		f.login("otto", operatorPass)
		f.clock.Advance(2 * time.Hour)
		// Logging in purges what expired.
		s := f.login("uma", userPass)
		n, err := f.store.PurgeConsoleSessions(t.Context(), f.clock.Now(), f.clock.Now().Add(-time.Hour))
		if err != nil || n != 0 {
			t.Errorf("purge after a login purged: %d, %v; want nothing left to purge", n, err)
		}
		if !alive(s) {
			t.Error("the new session does not work")
		}
	})
	t.Run("disabled user", func(t *testing.T) {
		s := f.login("otto", operatorPass)
		disabled := true
		if _, err := f.reg.UpdateUser(t.Context(), "otto", 0, registry.UserPatch{Disabled: &disabled}); err != nil {
			t.Fatal(err)
		}
		if alive(s) {
			t.Error("a disabled user's session still works")
		}
	})
}

func TestLogout(t *testing.T) {
	f := newFixture(t, options{})
	s := f.login("ada", adminPass)
	if r := f.do(s, "POST", "/console/api/logout", ""); r.status != http.StatusForbidden {
		t.Fatalf("logout without CSRF token: %d, want 403", r.status)
	}
	r := f.change(s, "POST", "/console/api/logout", "")
	if r.status != http.StatusNoContent {
		t.Fatalf("logout: %d %s", r.status, r.raw)
	}
	if c := r.cookie(); c == nil || c.MaxAge >= 0 || c.Value != "" {
		t.Errorf("logout cookie = %+v, want it cleared", c)
	}
	for _, path := range []string{"/console/api/session", "/api/v1/things"} {
		if got := f.do(s, "GET", path, "").status; got != http.StatusUnauthorized {
			t.Errorf("GET %s after logout: %d, want 401", path, got)
		}
	}
	if got := f.change(s, "POST", "/console/api/logout", "").status; got != http.StatusUnauthorized {
		t.Errorf("second logout: %d, want 401", got)
	}
	if evs := f.eventsOf("console.logout"); len(evs) != 1 || evs[0].Actor != "user:ada" {
		t.Errorf("console.logout events = %+v", evs)
	}
}

func TestUserScoping(t *testing.T) {
	f := newFixture(t, options{})
	for _, name := range []string{"pump-a", "pump-b", "valve-c"} {
		if r := f.bearer("POST", "/api/v1/things", `{"name":"`+name+`"}`); r.status != http.StatusCreated {
			t.Fatal(r.raw)
		}
	}
	for _, rel := range []string{
		`{"subjectKind":"user","subject":"uma","relation":"owner","objectKind":"thing","object":"pump-a"}`,
		`{"subjectKind":"user","subject":"uma","relation":"viewer","objectKind":"thing","object":"valve-c"}`,
		`{"subjectKind":"user","subject":"otto","relation":"operator","objectKind":"thing","object":"pump-a"}`,
		`{"subjectKind":"user","subject":"otto","relation":"owner","objectKind":"thing","object":"pump-b"}`,
	} {
		if r := f.bearer("POST", "/api/v1/relationships", rel); r.status != http.StatusCreated {
			t.Fatal(r.raw)
		}
	}
	uma, otto := f.login("uma", userPass), f.login("otto", operatorPass)
	names := func(s *session, path string) []string {
		t.Helper()
		r := f.do(s, "GET", path, "")
		if r.status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, r.status, r.raw)
		}
		var body struct {
			Items []struct {
				Name   string `json:"name"`
				Object string `json:"object"`
			} `json:"items"`
			Next string `json:"next"`
		}
		r.json(t, &body)
		var out []string
		for _, it := range body.Items {
			out = append(out, it.Name+it.Object)
		}
		return out
	}
	listTests := []struct {
		name string
		s    *session
		path string
		want []string
	}{
		{"user lists own things", uma, "/api/v1/things", []string{"pump-a", "valve-c"}},
		{"user filters by prefix", uma, "/api/v1/things?prefix=pump", []string{"pump-a"}},
		{"user pages", uma, "/api/v1/things?limit=1&after=pump-a", []string{"valve-c"}},
		{"operator lists all", otto, "/api/v1/things", []string{"pump-a", "pump-b", "valve-c"}},
		{"user sees relationships of own things", uma, "/api/v1/relationships", []string{"pump-a", "pump-a", "valve-c"}},
		{"user asks for another's thing's relationships", uma, "/api/v1/relationships?object=pump-b", nil},
		{"operator sees all relationships", otto, "/api/v1/relationships", []string{"pump-a", "pump-b", "pump-a", "valve-c"}},
	}
	for _, tc := range listTests {
		t.Run(tc.name, func(t *testing.T) {
			if got := names(tc.s, tc.path); !slices.Equal(got, tc.want) {
				t.Errorf("GET %s = %v, want %v", tc.path, got, tc.want)
			}
		})
	}
	statusTests := []struct {
		name         string
		s            *session
		method, path string
		want         int
	}{
		{"own thing", uma, "GET", "/api/v1/things/valve-c", http.StatusOK},
		{"another's thing is hidden", uma, "GET", "/api/v1/things/pump-b", http.StatusNotFound},
		{"missing thing", uma, "GET", "/api/v1/things/nope", http.StatusNotFound},
		{"users", uma, "GET", "/api/v1/users", http.StatusForbidden},
		{"events", uma, "GET", "/api/v1/events", http.StatusForbidden},
		{"event stream", uma, "GET", "/api/v1/events/stream", http.StatusForbidden},
		{"create thing", uma, "POST", "/api/v1/things", http.StatusForbidden},
		{"delete own thing", uma, "DELETE", "/api/v1/things/pump-a", http.StatusForbidden},
		{"operator reads any thing", otto, "GET", "/api/v1/things/valve-c", http.StatusOK},
		{"operator may not create", otto, "POST", "/api/v1/things", http.StatusForbidden},
	}
	for _, tc := range statusTests {
		t.Run(tc.name, func(t *testing.T) {
			body := ""
			if tc.method == "POST" {
				body = `{"name":"new-thing"}`
			}
			if r := f.change(tc.s, tc.method, tc.path, body); r.status != tc.want {
				t.Errorf("%s %s: %d %s, want %d", tc.method, tc.path, r.status, r.raw, tc.want)
			}
		})
	}
	// The hidden thing answers exactly as a missing one.
	hidden, missing := f.do(uma, "GET", "/api/v1/things/pump-b", ""), f.do(uma, "GET", "/api/v1/things/zzz-b", "")
	if strings.ReplaceAll(hidden.raw, "pump-b", "X") != strings.ReplaceAll(missing.raw, "zzz-b", "X") {
		t.Errorf("hidden thing: %s; missing thing: %s", hidden.raw, missing.raw)
	}
}

// sse reads Server-Sent Events.
type sse struct {
	resp *http.Response
	sc   *bufio.Scanner
}

type sseEvent struct {
	id    string
	event string
	data  string
}

func (f *fixture) stream(ctx context.Context, s *session, path string, hdr ...string) *sse {
	f.t.Helper()
	req, err := http.NewRequestWithContext(ctx, "GET", f.srv.URL+path, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	req.AddCookie(&http.Cookie{Name: console.CookieName, Value: s.cookie})
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		f.t.Fatalf("GET %s: %d %s", path, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return &sse{resp: resp, sc: bufio.NewScanner(resp.Body)}
}

// next returns the next event, skipping comments and retry lines; ok is
// false when the stream ends.
func (s *sse) next() (ev sseEvent, ok bool) {
	for s.sc.Scan() {
		line := s.sc.Text()
		switch {
		case line == "":
			if ev.data != "" {
				return ev, true
			}
		case strings.HasPrefix(line, "id: "):
			ev.id = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "event: "):
			ev.event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			ev.data = strings.TrimPrefix(line, "data: ")
		}
	}
	return ev, false
}

func TestEventStream(t *testing.T) {
	f := newFixture(t, options{})
	s := f.login("ada", adminPass)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()

	// Subscribed before the change, without Last-Event-ID: only what is new.
	st := f.stream(ctx, s, "/api/v1/events/stream?type=thing.&subject=thing/pump")
	before := f.eventsOf("")
	if r := f.change(s, "POST", "/api/v1/things", `{"name":"other"}`); r.status != http.StatusCreated {
		t.Fatal(r.raw)
	}
	if r := f.change(s, "POST", "/api/v1/things", `{"name":"pump-1"}`); r.status != http.StatusCreated {
		t.Fatal(r.raw)
	}
	ev, ok := st.next()
	if !ok {
		t.Fatal("stream ended")
	}
	var got store.Event
	if err := json.Unmarshal([]byte(ev.data), &got); err != nil {
		t.Fatal(err)
	}
	if ev.event != "gatehouse" || got.Type != "thing.created" || got.Subject != "thing/pump-1" || got.Actor != "user:ada" || ev.id != strconv.FormatInt(got.ID, 10) {
		t.Errorf("first streamed event = %+v / %+v; want thing.created of thing/pump-1 (the filter skips thing/other)", ev, got)
	}

	// Reconnecting with Last-Event-ID replays what came after it.
	last := before[len(before)-1].ID
	replay := f.stream(ctx, s, "/api/v1/events/stream?type=thing.", "Last-Event-ID", strconv.FormatInt(last, 10))
	var subjects []string
	for range 2 {
		ev, ok := replay.next()
		if !ok {
			t.Fatal("replay ended")
		}
		var e store.Event
		if err := json.Unmarshal([]byte(ev.data), &e); err != nil {
			t.Fatal(err)
		}
		if e.ID <= last {
			t.Errorf("replayed event %d, not after Last-Event-ID %d", e.ID, last)
		}
		subjects = append(subjects, e.Subject)
	}
	if want := []string{"thing/other", "thing/pump-1"}; !slices.Equal(subjects, want) {
		t.Errorf("replayed %v, want %v", subjects, want)
	}

	// Shutting down ends open streams.
	f.api.CloseStreams()
	for _, st := range []*sse{st, replay} {
		if ev, ok := st.next(); ok {
			t.Errorf("after CloseStreams the stream sent %+v", ev)
		}
	}

	if r := f.do(s, "GET", "/api/v1/events/stream", "", "Last-Event-ID", "x"); r.status != http.StatusBadRequest {
		t.Errorf("bad Last-Event-ID: %d, want 400", r.status)
	}
}

func TestEventStreamHeartbeat(t *testing.T) {
	f := newFixture(t, options{heartbeat: 5 * time.Millisecond})
	st := f.stream(t.Context(), f.login("ada", adminPass), "/api/v1/events/stream")
	var lines []string
	for st.sc.Scan() {
		lines = append(lines, st.sc.Text())
		if st.sc.Text() == ": heartbeat" {
			return
		}
	}
	t.Fatalf("stream sent %q, no heartbeat", lines)
}

func TestEventStreamEndsWhenTheClientGoes(t *testing.T) {
	// No heartbeat would notice a broken connection in this test's life.
	f := newFixture(t, options{heartbeat: time.Hour})
	ctx, cancel := context.WithCancel(t.Context())
	st := f.stream(ctx, f.login("ada", adminPass), "/api/v1/events/stream")
	if !st.sc.Scan() || st.sc.Text() != "retry: 3000" {
		t.Fatalf("stream starts with %q", st.sc.Text())
	}
	if got := f.streams.Load(); got != 1 {
		t.Fatalf("%d streams served, want 1", got)
	}
	cancel()
	defer f.closeStreamsIfRunning()
	testenv.Eventually(t, 10*time.Second, "the stream handler ending after the client went away", func() bool { return f.streams.Load() == 0 })
}

// closeStreamsIfRunning ends the event streams still served, so that the
// server can close when a test fails waiting for them to end.
func (f *fixture) closeStreamsIfRunning() {
	if f.streams.Load() != 0 {
		f.api.CloseStreams()
	}
}

func TestEventStreamEndsAtLogout(t *testing.T) {
	f := newFixture(t, options{heartbeat: 5 * time.Millisecond})
	s := f.login("ada", adminPass)
	st := f.stream(t.Context(), s, "/api/v1/events/stream?type=nothing.")
	if r := f.change(s, "POST", "/console/api/logout", ""); r.status != http.StatusNoContent {
		t.Fatalf("logout: %d %s", r.status, r.raw)
	}
	defer f.closeStreamsIfRunning()
	testenv.Eventually(t, 10*time.Second, "the stream ending at logout", func() bool { return f.streams.Load() == 0 })
	if ev, ok := st.next(); ok {
		t.Errorf("the stream sent %+v after logout", ev)
	}
}

// TestSessionsAcrossReplicas: replicas on one database share sessions, so
// a load balancer need not pin browsers; a logout on one ends the session
// on all.
func TestSessionsAcrossReplicas(t *testing.T) {
	for _, d := range storetest.Drivers() {
		t.Run(d.Name, func(t *testing.T) {
			one := newFixture(t, options{dsn: d.DSN(t)})
			two := newFixture(t, options{replicaOf: one})
			s := one.login("ada", adminPass)
			if r := two.change(s, "POST", "/api/v1/things", `{"name":"pump-1"}`); r.status != http.StatusCreated {
				t.Fatalf("change on the other replica: %d %s", r.status, r.raw)
			}
			if r := two.do(s, "POST", "/api/v1/things", `{"name":"pump-2"}`); r.status != http.StatusForbidden {
				t.Errorf("change without CSRF token on the other replica: %d, want 403", r.status)
			}
			if r := two.change(s, "POST", "/console/api/logout", ""); r.status != http.StatusNoContent {
				t.Fatalf("logout on the other replica: %d %s", r.status, r.raw)
			}
			if got := one.do(s, "GET", "/console/api/session", "").status; got != http.StatusUnauthorized {
				t.Errorf("session on the first replica after logout on the other: %d, want 401", got)
			}
		})
	}
}

// TestAccessRequestsWithSessions: the access-request routes, which the
// registry authorizes itself, take console sessions like every other route:
// a user requests access from the browser (CSRF token required), the
// thing's owner approves from theirs.
func TestAccessRequestsWithSessions(t *testing.T) {
	f := newFixture(t, options{})
	if r := f.bearer("POST", "/api/v1/things", `{"name":"pump-a"}`); r.status != http.StatusCreated {
		t.Fatal(r.raw)
	}
	if r := f.bearer("POST", "/api/v1/relationships", `{"subjectKind":"user","subject":"otto","relation":"owner","objectKind":"thing","object":"pump-a"}`); r.status != http.StatusCreated {
		t.Fatal(r.raw)
	}
	uma, otto := f.login("uma", userPass), f.login("otto", operatorPass)
	body := `{"thing":"pump-a","relation":"viewer","reason":"on call"}`
	if r := f.do(uma, "POST", "/api/v1/access-requests", body); r.status != http.StatusForbidden {
		t.Errorf("request without the CSRF token: %d %s, want 403", r.status, r.raw)
	}
	r := f.change(uma, "POST", "/api/v1/access-requests", body)
	if r.status != http.StatusCreated {
		t.Fatalf("request: %d %s", r.status, r.raw)
	}
	var ar struct {
		ID        string `json:"id"`
		Requester string `json:"requester"`
	}
	r.json(t, &ar)
	if ar.Requester != "uma" {
		t.Errorf("requester = %q, want uma", ar.Requester)
	}
	if r := f.change(otto, "POST", "/api/v1/access-requests/"+ar.ID+"/approve", `{}`); r.status != http.StatusOK {
		t.Fatalf("approve: %d %s", r.status, r.raw)
	}
	rels := f.bearer("GET", "/api/v1/relationships?subject=uma&object=pump-a", "")
	if !strings.Contains(rels.raw, `"relation":"viewer"`) {
		t.Errorf("after approval the relationships are %s, want uma viewer of pump-a", rels.raw)
	}
}
