package authorizer_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/authorizer"
	"github.com/gatehouse-iot/gatehouse/internal/events"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
)

type emqxResult struct {
	Result      string `json:"result"`
	IsSuperuser *bool  `json:"is_superuser"`
	ExpireAt    int64  `json:"expire_at"`
}

func decodeEMQX(t *testing.T, status int, body string) emqxResult {
	t.Helper()
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, body)
	}
	var r emqxResult
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("body %q: %v", body, err)
	}
	return r
}

func emqxPost(t *testing.T, f *fixture, path string, body any) emqxResult {
	t.Helper()
	st, b := f.postJSON(path, body)
	return decodeEMQX(t, st, b)
}

func TestEMQXAuthn(t *testing.T) {
	f := newFixture(t, nil)
	tok := f.token("s-1")
	cases := []struct {
		name                     string
		clientID, username, pass string
		want                     string
	}{
		{"thing as itself", "s-1", "s-1", tok, "allow"},
		{"no username", "s-1", "", tok, "allow"},
		{"client id not allowed by policy", "other", "s-1", tok, "deny"},
		{"username of another thing", "s-2", "s-2", tok, "deny"},
		{"garbage token", "s-1", "s-1", "not-a-token", "deny"},
		{"no password: next authenticator", "s-1", "s-1", "", "ignore"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := emqxPost(t, f, "/authorizer/emqx/authn", map[string]string{
				"clientid": c.clientID, "username": c.username, "password": c.pass, "peerhost": "10.0.0.7", "cert_common_name": ""})
			if r.Result != c.want {
				t.Fatalf("result %q, want %q", r.Result, c.want)
			}
			if c.want == "allow" {
				if r.IsSuperuser == nil || *r.IsSuperuser {
					t.Errorf("is_superuser = %v, want false", r.IsSuperuser)
				}
				if d := time.Until(time.Unix(r.ExpireAt, 0)); d < 50*time.Minute || d > 61*time.Minute {
					t.Errorf("expire_at %d is not the token's expiry (in %s)", r.ExpireAt, d)
				}
			}
		})
	}
}

func TestEMQXAuthz(t *testing.T) {
	f := newFixture(t, nil)
	tok := f.token("s-1")
	if r := emqxPost(t, f, "/authorizer/emqx/authn", map[string]string{"clientid": "s-1", "username": "s-1", "password": tok, "peerhost": "127.0.0.1"}); r.Result != "allow" {
		t.Fatalf("authn: %q", r.Result)
	}
	cases := []struct {
		name               string
		clientID, username string
		action, topic      string
		retain             any
		want               string
	}{
		{"publish own telemetry", "s-1", "s-1", "publish", "things/s-1/temp", "false", "allow"},
		{"publish other's telemetry", "s-1", "s-1", "publish", "things/s-2/temp", false, "deny"},
		{"publish firmware denied explicitly", "s-1", "s-1", "publish", "things/s-1/firmware", "false", "deny"},
		{"retain on state", "s-1", "s-1", "publish", "things/s-1/state", "true", "allow"},
		{"retain elsewhere", "s-1", "s-1", "publish", "things/s-1/temp", true, "deny"},
		{"publish wildcard is invalid", "s-1", "s-1", "publish", "things/s-1/#", "false", "deny"},
		{"subscribe own wildcard", "s-1", "s-1", "subscribe", "things/s-1/#", nil, "allow"},
		{"subscribe commands", "s-1", "s-1", "subscribe", "commands/#", nil, "allow"},
		{"subscribe literal needs receive", "s-1", "s-1", "subscribe", "things/s-1/firmware", nil, "deny"},
		{"subscribe other's", "s-1", "s-1", "subscribe", "things/s-2/#", nil, "deny"},
		// As in AWS IoT, a shared subscription needs topicfilter/$share/...
		{"shared subscription needs its own grant", "s-1", "s-1", "subscribe", "$share/g/commands/#", nil, "deny"},
		{"unknown action", "s-1", "s-1", "all", "things/s-1/temp", nil, "deny"},
		{"no session for client", "s-2", "s-2", "publish", "things/s-2/temp", nil, "deny"},
		{"session keyed by username too", "s-1", "x", "publish", "things/s-1/temp", nil, "deny"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			body := map[string]any{"clientid": c.clientID, "username": c.username, "topic": c.topic, "action": c.action, "peerhost": "127.0.0.1"}
			if c.retain != nil {
				body["retain"] = c.retain
			}
			if r := emqxPost(t, f, "/authorizer/emqx/authz", body); r.Result != c.want {
				t.Fatalf("result %q, want %q", r.Result, c.want)
			}
		})
	}
	t.Run("GET with query", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, f.http.URL+"/authorizer/emqx/authz?clientid=s-1&username=s-1&action=publish&topic=things%2Fs-1%2Fx", nil)
		req.Header.Set(authorizer.KeyHeader, testKey)
		st, b := f.do(req)
		if r := decodeEMQX(t, st, b); r.Result != "allow" {
			t.Fatalf("result %q", r.Result)
		}
	})
}

func TestEMQXSessionExpires(t *testing.T) {
	now := time.Now()
	var clock = func() time.Time { return now }
	f := newFixture(t, func(c *authorizer.Config) { c.Now = func() time.Time { return clock() } })
	tok := f.token("s-1")
	emqxPost(t, f, "/authorizer/emqx/authn", map[string]string{"clientid": "s-1", "username": "s-1", "password": tok})
	pub := map[string]string{"clientid": "s-1", "username": "s-1", "topic": "things/s-1/t", "action": "publish"}
	if r := emqxPost(t, f, "/authorizer/emqx/authz", pub); r.Result != "allow" {
		t.Fatalf("before expiry: %q", r.Result)
	}
	later := now.Add(2 * time.Hour)
	clock = func() time.Time { return later }
	if r := emqxPost(t, f, "/authorizer/emqx/authz", pub); r.Result != "deny" {
		t.Fatalf("after expiry: %q", r.Result)
	}
}

func TestEMQXResolveByThingName(t *testing.T) {
	f := newFixture(t, func(c *authorizer.Config) { c.ResolveByThingName = true })
	for _, c := range []struct {
		clientID, username, topic, want string
	}{
		{"s-2", "s-2", "things/s-2/t", "allow"},
		{"s-2", "s-2", "things/s-1/t", "deny"},
		{"x", "s-2", "things/s-2/t", "deny"},
		{"nope", "nope", "things/nope/t", "deny"},
	} {
		r := emqxPost(t, f, "/authorizer/emqx/authz", map[string]string{"clientid": c.clientID, "username": c.username, "topic": c.topic, "action": "publish"})
		if r.Result != c.want {
			t.Errorf("%+v: %q", c, r.Result)
		}
	}
}

// TestGuard: a request without a valid key (or from a source not
// allowed) is answered 200 with a refusal the broker understands (EMQX
// takes a 4xx for "ignore", and then allows by default), whatever its
// credentials.
func TestGuard(t *testing.T) {
	f := newFixture(t, nil)
	open := newFixture(t, func(c *authorizer.Config) {
		c.Keys = nil
		c.AllowedSources = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	})
	closed := newFixture(t, func(c *authorizer.Config) { c.Keys = nil })
	for _, c := range []struct {
		name   string
		f      *fixture
		path   string
		header string
		query  string
		want   string
	}{
		{"key header", f, "emqx/authn", testKey, "", `"allow"`},
		{"key query", f, "emqx/authn", "", testKey, `"allow"`},
		{"wrong key", f, "emqx/authn", "nope", "", `{"result":"deny"}`},
		{"no key", f, "emqx/authn", "", "", `{"result":"deny"}`},
		{"no key, authz", f, "emqx/authz", "", "", `{"result":"deny"}`},
		{"allowed source", open, "emqx/authn", "", "", `"allow"`},
		{"nothing configured", closed, "emqx/authn", testKey, "", `{"result":"deny"}`},
		{"rabbitmq key", f, "rabbitmq/user", "", testKey, "allow"},
		{"rabbitmq wrong key", f, "rabbitmq/user", "", "nope", "deny"},
		{"rabbitmq no key", f, "rabbitmq/user", "", "", "deny"},
	} {
		t.Run(c.name, func(t *testing.T) {
			tok := c.f.token("s-1")
			u := c.f.http.URL + "/authorizer/" + c.path
			if c.query != "" {
				u += "?" + authorizer.KeyParam + "=" + c.query
			}
			var req *http.Request
			if strings.HasPrefix(c.path, "emqx/") {
				body, _ := json.Marshal(map[string]string{"clientid": "s-1", "username": "s-1", "password": tok, "topic": "things/s-1/t", "action": "publish"})
				req, _ = http.NewRequest(http.MethodPost, u, bytes.NewReader(body))
			} else {
				req, _ = http.NewRequest(http.MethodPost, u, strings.NewReader(url.Values{"username": {"s-1"}, "password": {tok}}.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			if c.header != "" {
				req.Header.Set(authorizer.KeyHeader, c.header)
			}
			got, b := c.f.do(req)
			if got != http.StatusOK || !strings.Contains(b, c.want) {
				t.Fatalf("answer %d %s, want 200 with %s", got, b, c.want)
			}
		})
	}
}

func TestSessionCacheBound(t *testing.T) {
	f := newFixture(t, func(c *authorizer.Config) { c.MaxSessions = 1 })
	tok := f.token("s-1")
	if r := emqxPost(t, f, "/authorizer/emqx/authn", map[string]string{"clientid": "s-1", "username": "s-1", "password": tok}); r.Result != "allow" {
		t.Fatalf("first: %q", r.Result)
	}
	// The same connection again replaces its session.
	if r := emqxPost(t, f, "/authorizer/emqx/authn", map[string]string{"clientid": "s-1", "username": "s-1", "password": tok}); r.Result != "allow" {
		t.Fatalf("again: %q", r.Result)
	}
	// A second one does not fit: 503, which EMQX treats as "ignore".
	if st, _ := f.postJSON("/authorizer/emqx/authn", map[string]string{"clientid": "s-1", "username": "", "password": tok}); st != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", st)
	}
	if n, err := f.env.Store.CountAdapterSessions(t.Context(), time.Now()); n != 1 || err != nil {
		t.Fatalf("%d sessions (%v), want 1", n, err)
	}
}

func TestEMQXConcurrent(t *testing.T) {
	f := newFixture(t, nil)
	tok := f.token("s-1")
	done := make(chan string, 40)
	for i := range 40 {
		go func() {
			if i%4 == 0 {
				st, b := f.postJSON("/authorizer/emqx/authn", map[string]string{"clientid": "s-1", "username": "s-1", "password": tok})
				done <- fmt.Sprint(st, b)
				return
			}
			st, b := f.postJSON("/authorizer/emqx/authz", map[string]string{"clientid": "s-1", "username": "s-1", "topic": "things/s-1/t", "action": "publish"})
			done <- fmt.Sprint(st, b)
		}()
	}
	for range 40 {
		if r := <-done; !strings.HasPrefix(r, "200") {
			t.Fatal(r)
		}
	}
}

// TestNoSecretsInLogs checks that tokens, passwords and custom-authorizer
// usernames (which carry the token) never reach the log.
func TestNoSecretsInLogs(t *testing.T) {
	var buf syncBuffer
	f := newFixture(t, func(c *authorizer.Config) {
		c.Logger = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	tok := f.token("s-1")
	bad := tok[:len(tok)-6] + "AAAAAA"
	emqxPost(t, f, "/authorizer/emqx/authn", map[string]string{"clientid": "s-1", "username": "s-1", "password": tok})
	emqxPost(t, f, "/authorizer/emqx/authn", map[string]string{"clientid": "s-1", "username": "s-2", "password": tok})
	emqxPost(t, f, "/authorizer/emqx/authn", map[string]string{"clientid": "s-1", "username": "s-1", "password": bad})
	emqxPost(t, f, "/authorizer/emqx/authn", map[string]string{"clientid": "s-1", "username": "s-1?x-amz-customauthorizer-name=nope&x-amz-customauthorizer-signature=c2ln&token=" + tok, "password": "x"})
	f.postForm("/authorizer/rabbitmq/user", url.Values{"username": {"s-1"}, "password": {bad}})
	f.postForm("/authorizer/rabbitmq/user", url.Values{"username": {"s-1"}, "password": {tok}})
	logs := buf.String()
	if logs == "" {
		t.Fatal("nothing logged")
	}
	for _, secret := range []string{tok[20:60], bad[len(bad)-30:], testKey, "c2ln"} {
		if strings.Contains(logs, secret) {
			t.Fatalf("log contains a secret:\n%s", logs)
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestEMQXAuthzAnyReplica: the session an authentication leaves is in the
// store, so another replica (or this one restarted) answers the
// authorization calls; each call checks that the token is not revoked and
// the thing still enabled.
func TestEMQXAuthzAnyReplica(t *testing.T) {
	f := newFixture(t, nil)
	other := authorizer.New(authorizer.Config{Authn: f.env.Authn, Registry: f.reg, Store: f.env.Store, Revoked: f.oauth.Revoked, Keys: []string{testKey}})
	b := httptest.NewServer(other.Handler())
	t.Cleanup(b.Close)
	authz := func(clientID string) string {
		t.Helper()
		raw, _ := json.Marshal(map[string]string{"clientid": clientID, "username": clientID, "topic": "things/" + clientID + "/t", "action": "publish"})
		req, _ := http.NewRequest(http.MethodPost, b.URL+"/authorizer/emqx/authz", bytes.NewReader(raw))
		req.Header.Set(authorizer.KeyHeader, testKey)
		st, body := f.do(req)
		return decodeEMQX(t, st, body).Result
	}
	tok1, tok2 := f.token("s-1"), f.token("s-2")
	for _, c := range []string{"s-1", "s-2"} {
		if got := authz(c); got != "deny" {
			t.Fatalf("authz of %s before authn = %q, want deny", c, got)
		}
	}
	for c, tok := range map[string]string{"s-1": tok1, "s-2": tok2} {
		if r := emqxPost(t, f, "/authorizer/emqx/authn", map[string]string{"clientid": c, "username": c, "password": tok}); r.Result != "allow" {
			t.Fatalf("authn of %s = %q", c, r.Result)
		}
	}
	for _, c := range []string{"s-1", "s-2"} {
		if got := authz(c); got != "allow" {
			t.Fatalf("authz of %s on the other replica = %q, want allow", c, got)
		}
	}
	ctx := t.Context()
	if err := f.oauth.RevokeAccessToken(ctx, tok1); err != nil {
		t.Fatal(err)
	}
	disabled := "disabled"
	if _, err := f.reg.UpdateThing(events.WithActor(ctx, "test"), "s-2", 0, registry.ThingPatch{State: &disabled}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"s-1", "s-2"} {
		if got := authz(c); got != "deny" {
			t.Errorf("authz of %s after revoking its token or disabling it = %q, want deny", c, got)
		}
	}
}
