package httpapi_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/httpapi"
	"github.com/gatehouse-iot/gatehouse/internal/lobby"
	"github.com/gatehouse-iot/gatehouse/internal/store"
	"github.com/gatehouse-iot/gatehouse/internal/testenv"
)

// TestErrorsReadForPeople: the problem's detail carries no Go package
// names and reads as a sentence ("thing \"x\" not found"), with the
// status decided by the error's type as before.
func TestErrorsReadForPeople(t *testing.T) {
	tests := []struct {
		err    error
		status int
		want   string
	}{
		{fmt.Errorf("%w: pki: certificate is not signed by a known manufacturer CA", lobby.ErrInvalid), 400, "certificate is not signed by a known manufacturer CA"},
		{fmt.Errorf("store: thing %q: %w", "lamp-9", store.ErrNotFound), 404, `thing "lamp-9" not found`},
		{fmt.Errorf("store: thing type %q: %w", "lamp", store.ErrExists), 409, `thing type "lamp" already exists`},
		{fmt.Errorf("store: policy %q: %w", "p", store.ErrInUse), 409, `policy "p" is still in use`},
		{fmt.Errorf("%w: device is claimed", lobby.ErrState), 409, "not allowed in this state: device is claimed"},
		{store.ErrNotFound, 404, "not found"},
		{fmt.Errorf("policy %q is built in (people need it): %w", "gatehouse-people", store.ErrInUse), 409, `policy "gatehouse-people" is built in (people need it): still in use`},
	}
	for _, tc := range tests {
		rec := httptest.NewRecorder()
		httpapi.WriteError(rec, httptest.NewRequest("GET", "/api/v1/x", nil), slog.New(slog.DiscardHandler), tc.err)
		var p httpapi.Problem
		if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
			t.Fatal(err)
		}
		if rec.Code != tc.status || p.Detail != tc.want {
			t.Errorf("%v: got %d %q, want %d %q", tc.err, rec.Code, p.Detail, tc.status, tc.want)
		}
	}
}

// TestListConnections: GET /api/v1/connections lists every live
// connection the broker reports, newest first, filtered by ?search= over
// thing, client id, username and address, with the total that matched.
func TestListConnections(t *testing.T) {
	env := testenv.Core(t)
	boot, err := env.Registry.EnsureBootstrap(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	conns := httpapi.ConnectionsFunc(func(thing string) []httpapi.Connection {
		if thing != httpapi.AllThings {
			return nil
		}
		return []httpapi.Connection{
			{Thing: "meter-1", ClientID: "meter-1", RemoteAddr: "10.0.0.1:5000", ConnectedAt: t0},
			{ClientID: "alice~phone", Username: "alice", RemoteAddr: "10.0.0.2:5000", ConnectedAt: t0.Add(time.Second)},
			{Thing: "meter-2", ClientID: "meter-2", RemoteAddr: "10.0.0.3:5000", ConnectedAt: t0.Add(2 * time.Second)},
		}
	})
	srv := httptest.NewServer(httpapi.New(httpapi.Config{Registry: env.Registry, Events: env.Events, Connections: conns}))
	t.Cleanup(srv.Close)
	f := &fixture{srv: srv, store: env.Store, admin: boot.Token}
	tests := []struct {
		query string
		want  string
		total float64
	}{
		{"", "[meter-2 alice~phone meter-1]", 3},
		{"?search=METER", "[meter-2 meter-1]", 2},
		{"?search=alice", "[alice~phone]", 1},
		{"?search=10.0.0.3", "[meter-2]", 1},
		{"?limit=1", "[meter-2]", 3},
		{"?search=nobody", "[]", 0},
	}
	for _, tc := range tests {
		r := f.do(t, f.admin, "GET", "/api/v1/connections"+tc.query, "")
		var ids []string
		items, _ := r.body["items"].([]any)
		for _, it := range items {
			ids = append(ids, it.(map[string]any)["clientId"].(string))
		}
		if got := fmt.Sprint(ids); r.status != 200 || (got != tc.want && !(tc.want == "[]" && ids == nil)) || r.body["total"] != tc.total {
			t.Errorf("GET /api/v1/connections%s = %d %v total %v, want %s total %v", tc.query, r.status, got, r.body["total"], tc.want, tc.total)
		}
	}
	if r := f.do(t, f.admin, "GET", "/api/v1/connections?limit=0", ""); r.status != 400 {
		t.Errorf("limit=0 = %d, want 400", r.status)
	}
}

// TestOverviewCounts: GET /api/v1/overview counts the things, and leaves
// out what this server does not run (no broker, lobby or sampler here).
func TestOverviewCounts(t *testing.T) {
	f := newFixture(t, "")
	for _, name := range []string{"lamp-1", "lamp-2"} {
		if r := f.do(t, f.admin, "POST", "/api/v1/things", `{"name":"`+name+`"}`); r.status != 201 {
			t.Fatalf("create %s = %d %s", name, r.status, r.raw)
		}
	}
	r := f.do(t, f.operator, "GET", "/api/v1/overview", "")
	if r.status != 200 || r.body["things"] != float64(2) || r.body["connected"] != nil || r.body["lobbyWaiting"] != nil {
		t.Errorf("overview = %d %s, want 2 things and nothing else", r.status, r.raw)
	}
}
