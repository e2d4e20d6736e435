package httpapi_test

import (
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/gatehouse-iot/gatehouse/internal/httpapi"
	"github.com/gatehouse-iot/gatehouse/internal/testenv"
)

// TestEveryListHonoursLimit: every list under /api/v1 refuses a limit
// outside 1 to 1000 and, given ?limit=1, answers one item and a next
// cursor that leads through all of them exactly once.
func TestEveryListHonoursLimit(t *testing.T) {
	env := testenv.New(t)
	boot, err := env.Registry.EnsureBootstrap(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(httpapi.New(httpapi.Config{Registry: env.Registry, Events: env.Events, OAuth: env.OAuth}))
	t.Cleanup(srv.Close)
	f := &fixture{srv: srv, store: env.Store, admin: boot.Token}
	for _, c := range []struct{ path, body string }{
		{"/api/v1/things", `{"name":"lamp-1"}`},
		{"/api/v1/things", `{"name":"lamp-2"}`},
		{"/api/v1/users", `{"username":"alice","password":"alice-password"}`},
		{"/api/v1/users", `{"username":"bob","password":"bob-password"}`},
		{"/api/v1/relationships", `{"subjectKind":"user","subject":"alice","relation":"owner","objectKind":"thing","object":"lamp-1"}`},
		{"/api/v1/relationships", `{"subjectKind":"user","subject":"bob","relation":"viewer","objectKind":"thing","object":"lamp-1"}`},
		{"/api/v1/relationships", `{"subjectKind":"user","subject":"alice","relation":"owner","objectKind":"thing","object":"lamp-2"}`},
		{"/api/v1/apps", `{"name":"one","public":true,"redirectUris":["https://one.example/cb"]}`},
		{"/api/v1/apps", `{"name":"two","public":true,"redirectUris":["https://two.example/cb"]}`},
		{"/api/v1/groups", `{"name":"crew"}`},
		{"/api/v1/groups/crew/members", `{"kind":"user","member":"alice"}`},
		{"/api/v1/groups/crew/members", `{"kind":"user","member":"bob"}`},
		{"/api/v1/api-tokens", `{"name":"second","roles":["operator"]}`},
	} {
		if r := f.do(t, f.admin, "POST", c.path, c.body); r.status != 201 {
			t.Fatalf("POST %s %s = %d %s", c.path, c.body, r.status, r.raw)
		}
	}
	tests := []struct {
		path string
		want int // items in all
	}{
		{"/api/v1/things", 2},
		{"/api/v1/users", 3},
		{"/api/v1/relationships", 3},
		{"/api/v1/apps", 2},
		{"/api/v1/groups/crew/members", 2},
		{"/api/v1/api-tokens", 2},
		{"/api/v1/policies", 1},
		{"/api/v1/policy-attachments", -1},
		{"/api/v1/authorizers", 0},
	}
	for _, tc := range tests {
		t.Run(strings.TrimPrefix(tc.path, "/api/v1/"), func(t *testing.T) {
			for _, bad := range []string{"0", "1001", "-1", "x"} {
				if r := f.do(t, f.admin, "GET", tc.path+"?limit="+bad, ""); r.status != 400 {
					t.Errorf("limit=%s: %d %s, want 400", bad, r.status, r.raw)
				}
			}
			all := f.do(t, f.admin, "GET", tc.path, "")
			items, _ := all.body["items"].([]any)
			if tc.want >= 0 && len(items) != tc.want {
				t.Fatalf("GET %s: %d items, want %d: %s", tc.path, len(items), tc.want, all.raw)
			}
			var paged []string
			path := tc.path + "?limit=1"
			for range len(items) + 2 {
				r := f.do(t, f.admin, "GET", path, "")
				page, _ := r.body["items"].([]any)
				if r.status != 200 || len(page) > 1 {
					t.Fatalf("GET %s: %d, %d items, want at most 1: %s", path, r.status, len(page), r.raw)
				}
				for _, it := range page {
					paged = append(paged, toJSON(t, it))
				}
				next, _ := r.body["next"].(string)
				if next == "" {
					break
				}
				path = tc.path + "?limit=1&after=" + url.QueryEscape(next)
			}
			if len(paged) != len(items) {
				t.Errorf("paging by 1 gave %d items, the whole list %d", len(paged), len(items))
			}
			seen := map[string]bool{}
			for _, p := range paged {
				if seen[p] {
					t.Errorf("paging by 1 repeated %s", p)
				}
				seen[p] = true
			}
		})
	}
}

func toJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
