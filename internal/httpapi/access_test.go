package httpapi_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// userToken creates a user and an API token with role user bound to them.
func (f *fixture) userToken(t *testing.T, username string) string {
	t.Helper()
	if r := f.do(t, f.admin, "POST", "/api/v1/users", fmt.Sprintf(`{"username":%q,"password":"long-enough-%s"}`, username, username)); r.status != http.StatusCreated {
		t.Fatalf("create user %s: %d %s", username, r.status, r.raw)
	}
	r := f.do(t, f.admin, "POST", "/api/v1/api-tokens", fmt.Sprintf(`{"name":"%s-token","username":%q,"roles":["user"]}`, username, username))
	if r.status != http.StatusCreated {
		t.Fatalf("create token for %s: %d %s", username, r.status, r.raw)
	}
	return r.body["token"].(string)
}

func TestAccessRequests(t *testing.T) {
	forEachDriver(t, func(t *testing.T, f *fixture) {
		alice, bob, carol := f.userToken(t, "alice"), f.userToken(t, "bob"), f.userToken(t, "carol")
		for _, body := range []string{`{"name":"pump-1"}`, `{"name":"pump-2"}`} {
			if r := f.do(t, f.admin, "POST", "/api/v1/things", body); r.status != http.StatusCreated {
				t.Fatalf("create thing: %d %s", r.status, r.raw)
			}
		}
		if r := f.do(t, f.admin, "POST", "/api/v1/relationships", `{"subjectKind":"user","subject":"alice","relation":"owner","objectKind":"thing","object":"pump-1"}`); r.status != http.StatusCreated {
			t.Fatalf("owner: %d %s", r.status, r.raw)
		}

		r := f.do(t, bob, "POST", "/api/v1/access-requests", `{"thing":"pump-1","relation":"viewer","reason":"quarterly inspection"}`)
		if r.status != http.StatusCreated || r.body["state"] != "pending" || r.body["requester"] != "bob" {
			t.Fatalf("create: %d %s", r.status, r.raw)
		}
		id := r.body["id"].(string)
		r = f.do(t, bob, "POST", "/api/v1/access-requests", `{"thing":"pump-1","relation":"operator","reason":"repair"}`)
		if r.status != http.StatusCreated {
			t.Fatalf("create second: %d %s", r.status, r.raw)
		}
		second := r.body["id"].(string)
		r = f.do(t, carol, "POST", "/api/v1/access-requests", `{"thing":"pump-1","relation":"viewer","reason":"curious"}`)
		if r.status != http.StatusCreated {
			t.Fatalf("create third: %d %s", r.status, r.raw)
		}
		third := r.body["id"].(string)

		tests := []struct {
			name         string
			token        string
			method, path string
			body         string
			want         int
			detail       string
		}{
			{"no token", "", "GET", "/api/v1/access-requests", "", 401, "API token"},
			{"missing reason", bob, "POST", "/api/v1/access-requests", `{"thing":"pump-1","relation":"viewer"}`, 400, "invalid"},
			{"bad relation", bob, "POST", "/api/v1/access-requests", `{"thing":"pump-1","relation":"gateway","reason":"x"}`, 400, "invalid"},
			{"unknown thing", bob, "POST", "/api/v1/access-requests", `{"thing":"nope","relation":"viewer","reason":"x"}`, 400, "invalid"},
			{"duplicate pending", bob, "POST", "/api/v1/access-requests", `{"thing":"pump-1","relation":"viewer","reason":"again"}`, 409, "pending"},
			{"for someone else", bob, "POST", "/api/v1/access-requests", `{"thing":"pump-1","relation":"viewer","reason":"x","requester":"carol"}`, 403, "administrators"},
			{"machine token without user", f.operator, "POST", "/api/v1/access-requests", `{"thing":"pump-1","relation":"viewer","reason":"x"}`, 400, "invalid"},
			{"unknown field", bob, "POST", "/api/v1/access-requests", `{"thing":"pump-1","relation":"viewer","reason":"x","colour":1}`, 400, "unknown field"},
			{"stranger reads", carol, "GET", "/api/v1/access-requests/" + id, "", 404, "not found"},
			{"stranger approves", carol, "POST", "/api/v1/access-requests/" + id + "/approve", "", 404, "not found"},
			{"requester approves own", bob, "POST", "/api/v1/access-requests/" + id + "/approve", "", 403, "owner"},
			{"owner cancels", alice, "POST", "/api/v1/access-requests/" + id + "/cancel", "", 403, "only bob"},
			{"expiry in the past", alice, "POST", "/api/v1/access-requests/" + id + "/approve", `{"expiresAt":"2001-01-01T00:00:00Z"}`, 400, "invalid"},
			{"bad ttl", alice, "POST", "/api/v1/access-requests/" + id + "/approve", `{"ttl":"soon"}`, 400, "invalid"},
			{"deny with expiry", alice, "POST", "/api/v1/access-requests/" + id + "/deny", `{"ttl":"1h"}`, 400, "invalid"},
			{"bad state filter", alice, "GET", "/api/v1/access-requests?state=maybe", "", 400, "invalid"},
			{"stale If-Match", alice, "POST", "/api/v1/access-requests/" + id + "/approve", "", 412, "stale"},
			{"missing", alice, "GET", "/api/v1/access-requests/nope", "", 404, "not found"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				var hdr []string
				if tc.name == "stale If-Match" {
					hdr = []string{"If-Match", `"7"`}
				}
				r := f.do(t, tc.token, tc.method, tc.path, tc.body, hdr...)
				if r.status != tc.want || !strings.Contains(r.raw, tc.detail) {
					t.Errorf("%s %s = %d %s, want %d with %q", tc.method, tc.path, r.status, r.raw, tc.want, tc.detail)
				}
			})
		}

		// Who sees what.
		ids := func(token, query string) []string {
			t.Helper()
			r := f.do(t, token, "GET", "/api/v1/access-requests"+query, "")
			if r.status != http.StatusOK {
				t.Fatalf("list: %d %s", r.status, r.raw)
			}
			var out []string
			for _, it := range r.body["items"].([]any) {
				out = append(out, it.(map[string]any)["id"].(string))
			}
			return out
		}
		for _, tc := range []struct {
			who, token, query string
			want              []string
		}{
			{"owner", alice, "", []string{id, second, third}},
			{"requester", bob, "", []string{id, second}},
			{"other requester", carol, "", []string{third}},
			{"operator", f.operator, "?requester=carol", []string{third}},
		} {
			if got := ids(tc.token, tc.query); !slices.Equal(got, tc.want) {
				t.Errorf("%s sees %v, want %v", tc.who, got, tc.want)
			}
		}

		// The owner approves for an hour: bob becomes a viewer until then.
		r = f.do(t, alice, "POST", "/api/v1/access-requests/"+id+"/approve", `{"ttl":"1h","note":"ok for the inspection"}`, "If-Match", `"1"`)
		if r.status != http.StatusOK || r.body["state"] != "approved" || r.body["decidedBy"] != "user:alice" || r.body["grantExpiresAt"] == nil {
			t.Fatalf("approve: %d %s", r.status, r.raw)
		}
		r = f.do(t, f.operator, "GET", "/api/v1/relationships?subject=bob&object=pump-1", "")
		items := r.body["items"].([]any)
		if len(items) != 1 || items[0].(map[string]any)["relation"] != "viewer" || items[0].(map[string]any)["expiresAt"] == nil {
			t.Errorf("bob's relationships = %s, want one viewer edge with expiresAt", r.raw)
		}
		if r := f.do(t, alice, "POST", "/api/v1/access-requests/"+id+"/deny", ""); r.status != http.StatusConflict {
			t.Errorf("deny after approve = %d %s, want 409", r.status, r.raw)
		}
		// The requester cancels the second; an operator denies the third.
		if r := f.do(t, bob, "POST", "/api/v1/access-requests/"+second+"/cancel", ""); r.status != http.StatusOK || r.body["state"] != "cancelled" {
			t.Errorf("cancel: %d %s", r.status, r.raw)
		}
		if r := f.do(t, f.operator, "POST", "/api/v1/access-requests/"+third+"/deny", `{"note":"no"}`); r.status != http.StatusOK || r.body["state"] != "denied" {
			t.Errorf("deny: %d %s", r.status, r.raw)
		}
		if r := f.do(t, bob, "GET", "/api/v1/access-requests/"+id, ""); r.status != http.StatusOK || r.header.Get("ETag") != `"2"` {
			t.Errorf("get own: %d %s etag %s", r.status, r.raw, r.header.Get("ETag"))
		}
		if got := ids(alice, "?state=pending"); len(got) != 0 {
			t.Errorf("pending after decisions = %v, want none", got)
		}

		r = f.do(t, f.operator, "GET", "/api/v1/events?limit=1000", "")
		var types []string
		for _, it := range r.body["items"].([]any) {
			ev := it.(map[string]any)
			if typ := ev["type"].(string); strings.HasPrefix(typ, "access_request.") {
				types = append(types, typ+" "+ev["actor"].(string))
			}
		}
		want := []string{"access_request.created user:bob", "access_request.created user:bob", "access_request.created user:carol",
			"access_request.approved user:alice", "access_request.cancelled user:bob", "access_request.denied token:" + tokenID(t, f, "ro")}
		if !slices.Equal(types, want) {
			t.Errorf("events = %q, want %q", types, want)
		}
	})
}

// tokenID returns the id of the API token named name.
func tokenID(t *testing.T, f *fixture, name string) string {
	t.Helper()
	r := f.do(t, f.admin, "GET", "/api/v1/api-tokens", "")
	for _, it := range r.body["items"].([]any) {
		if tok := it.(map[string]any); tok["name"] == name {
			return tok["id"].(string)
		}
	}
	t.Fatalf("no token %q", name)
	return ""
}
