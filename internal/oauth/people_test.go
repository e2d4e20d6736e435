package oauth_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/gatehouse-iot/gatehouse/internal/oauth"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// TestPersonTokenClaims: a person's token through a client that is not a
// thing says gatehouse:kind=user and carries the user's roles; refreshing
// stops working once the user is disabled.
func TestPersonTokenClaims(t *testing.T) {
	e := newEnv(t, storetestSQLite(t))
	ctx := oidcContext(t, e)
	cfg := &oauth2.Config{ClientID: "gatehouse-cli", Endpoint: e.endpoint(), Scopes: []string{"openid"}}
	da, err := cfg.DeviceAuth(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e.approve(da.VerificationURIComplete, "alice", "correct horse", true)
	tok, err := cfg.DeviceAccessToken(ctx, da)
	if err != nil {
		t.Fatal(err)
	}
	at, err := e.srv.VerifyAccessToken(ctx, tok.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if at.Kind != oauth.KindUser || at.Subject != "alice" || !slices.Equal(at.Roles, []string{"user"}) || at.Actor != "" {
		t.Errorf("person token = %+v, want kind user, sub alice, roles [user]", at)
	}
	status, intro := e.postForm(oauth.PathIntrospect, map[string][]string{"token": {tok.AccessToken}}, "resource-server", "rs-secret")
	if status != http.StatusOK || intro["active"] != true || intro["gatehouse:kind"] != "user" || intro["sub"] != "alice" {
		t.Errorf("introspection of a person's token = %d %v", status, intro)
	}
	u, err := e.registry.User(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.registry.UpdateUser(ctx, "alice", u.Version, registry.UserPatch{Disabled: ptr(true)}); err != nil {
		t.Fatal(err)
	}
	status, body := e.postForm(oauth.PathToken, map[string][]string{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {"gatehouse-cli"}}, "", "")
	if status != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Errorf("refresh for a disabled user = %d %v, want 400 invalid_grant", status, body)
	}
}

// TestThingTokenIsNotAPerson: a thing's own token has no person claims.
func TestThingTokenIsNotAPerson(t *testing.T) {
	e := newEnv(t, storetestSQLite(t))
	status, body := e.postForm(oauth.PathToken, map[string][]string{"grant_type": {"client_credentials"}}, "sensor-1", e.secrets["sensor-1"])
	if status != http.StatusOK {
		t.Fatalf("client credentials = %d %v", status, body)
	}
	at, err := e.srv.VerifyAccessToken(t.Context(), body["access_token"].(string))
	if err != nil || at.Kind != "" || at.Actor != "" || len(at.Roles) != 0 {
		t.Errorf("thing token = %+v, %v; want no person or actor claims", at, err)
	}
}

// TestGatewayChildToken: a gateway thing gets tokens for its children at
// the things endpoint, naming itself as actor; not for other things.
func TestGatewayChildToken(t *testing.T) {
	drivers(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn)
		ctx := t.Context()
		mustDo(t, func() error {
			_, err := e.registry.CreateThing(ctx, registry.NewThing{Name: "child-1", ThingType: "sensor"})
			return err
		})
		mustDo(t, func() error {
			_, err := e.registry.AddRelationship(ctx, store.Relationship{SubjectKind: store.KindThing, Subject: "sensor-1", Relation: registry.RelGateway, ObjectKind: store.KindThing, Object: "child-1"})
			return err
		})
		ask := func(path, user string, body string) (int, map[string]any) {
			req, err := http.NewRequest("POST", e.url(path), strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			req.SetBasicAuth(user, e.secrets[user])
			return e.do(req)
		}
		status, body := ask("/things/child-1?_action=get_access_token", "sensor-1", `{"scope":["publish"]}`)
		if status != http.StatusOK {
			t.Fatalf("gateway token for child = %d %v", status, body)
		}
		at, err := e.srv.VerifyAccessToken(ctx, body["access_token"].(string))
		if err != nil {
			t.Fatal(err)
		}
		if at.Subject != "child-1" || at.ThingName != "child-1" || at.Actor != "sensor-1" || at.ClientID != "sensor-1" || !slices.Equal(at.Scopes, []string{"publish"}) {
			t.Errorf("child token = %+v, want sub/thing child-1, actor and client sensor-1, scope publish", at)
		}
		tests := []struct {
			name, path, user, body string
			status                 int
			err                    string
		}{
			{"not its child", "/things/sensor-2?_action=get_access_token", "sensor-1", "", http.StatusBadRequest, "unauthorized_client"},
			{"child is not the gateway's gateway", "/things/sensor-1?_action=get_access_token", "loose-1", "", http.StatusBadRequest, "unauthorized_client"},
			{"scope the child may not have", "/things/child-1?_action=get_access_token", "sensor-1", `{"scope":["admin"]}`, http.StatusBadRequest, "invalid_scope"},
			{"no such child", "/things/ghost?_action=get_access_token", "sensor-1", "", http.StatusBadRequest, "unauthorized_client"},
		}
		for _, tt := range tests {
			status, body := ask(tt.path, tt.user, tt.body)
			if status != tt.status || body["error"] != tt.err {
				t.Errorf("%s: %d %v, want %d %s", tt.name, status, body, tt.status, tt.err)
			}
		}
		// A disabled child gets no token, even through its gateway.
		th, err := e.registry.Thing(ctx, "child-1")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.registry.UpdateThing(ctx, "child-1", th.Version, registryPatchState(store.StateDisabled)); err != nil {
			t.Fatal(err)
		}
		if status, body := ask("/things/child-1?_action=get_access_token", "sensor-1", ""); status != http.StatusBadRequest || body["error"] != "unauthorized_client" {
			t.Errorf("token for a disabled child = %d %v, want 400 unauthorized_client", status, body)
		}
	})
}
func ptr[T any](v T) *T { return &v }

// TestIssueSessionToken: the console's token for a signed-in person is
// their own (kind user, their roles, no scopes, client gatehouse-console),
// lives no longer than asked nor than the server's access token lifetime,
// and is refused for a disabled or unknown user.
func TestIssueSessionToken(t *testing.T) {
	e := newEnv(t, storetestSQLite(t))
	ctx := oidcContext(t, e)
	for _, tc := range []struct {
		ttl, want time.Duration
	}{{10 * time.Minute, 10 * time.Minute}, {48 * time.Hour, time.Hour}} {
		raw, exp, err := e.srv.IssueSessionToken(ctx, "alice", tc.ttl)
		if err != nil {
			t.Fatal(err)
		}
		at, err := e.srv.VerifyAccessToken(ctx, raw)
		if err != nil {
			t.Fatal(err)
		}
		if at.Kind != oauth.KindUser || at.Subject != "alice" || at.ClientID != oauth.ConsoleClientID || len(at.Scopes) != 0 || !slices.Equal(at.Roles, []string{"user"}) {
			t.Errorf("session token = %+v, want alice's own without scopes", at)
		}
		if life := at.ExpiresAt.Sub(at.IssuedAt); !at.ExpiresAt.Equal(exp) || life < tc.want || life > tc.want+time.Second {
			t.Errorf("ttl %s: lives %s (until %s, said %s), want %s", tc.ttl, life, at.ExpiresAt, exp, tc.want)
		}
	}
	u, err := e.registry.User(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.registry.UpdateUser(ctx, "alice", u.Version, registry.UserPatch{Disabled: ptr(true)}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"alice", "nobody"} {
		if raw, _, err := e.srv.IssueSessionToken(ctx, name, time.Minute); err == nil || raw != "" {
			t.Errorf("token for %s (disabled or unknown) = %q, %v; want an error", name, raw, err)
		}
	}
}
