package httpapi_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/httpapi"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/store"
	"github.com/gatehouse-iot/gatehouse/internal/store/storetest"
	"github.com/gatehouse-iot/gatehouse/internal/testenv"
)

type fixture struct {
	srv      *httptest.Server
	store    *store.Store
	admin    string
	operator string
}

func newFixture(t *testing.T, dsn string) *fixture {
	t.Helper()
	env := testenv.Core(t, testenv.DSN(dsn))
	s, reg, log := env.Store, env.Registry, env.Events
	boot, err := reg.EnsureBootstrap(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	op, _, err := reg.CreateAPIToken(t.Context(), "ro", "", []string{registry.RoleOperator}, 0)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(httpapi.New(httpapi.Config{Registry: reg, Events: log, MaxBodyBytes: 4096}))
	t.Cleanup(srv.Close)
	return &fixture{srv: srv, store: s, admin: boot.Token, operator: op}
}

type response struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (f *fixture) do(t *testing.T, token, method, path, body string, header ...string) response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, f.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := response{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

func forEachDriver(t *testing.T, fn func(t *testing.T, f *fixture)) {
	for _, d := range storetest.Drivers() {
		t.Run(d.Name, func(t *testing.T) { fn(t, newFixture(t, d.DSN(t))) })
	}
}

func TestBadInputChangesNothing(t *testing.T) {
	forEachDriver(t, func(t *testing.T, f *fixture) {
		if r := f.do(t, f.admin, "POST", "/api/v1/things", `{"name":"existing"}`); r.status != http.StatusCreated {
			t.Fatalf("seed thing: %d %s", r.status, r.raw)
		}
		tests := []struct {
			name   string
			method string
			path   string
			body   string
			header []string
			want   int
			detail string
		}{
			{"malformed JSON", "POST", "/api/v1/things", `{"name":`, nil, 400, "malformed JSON"},
			{"not an object", "POST", "/api/v1/things", `["x"]`, nil, 400, "JSON"},
			{"trailing data", "POST", "/api/v1/things", `{"name":"a"} {"name":"b"}`, nil, 400, "data after"},
			{"unknown field", "POST", "/api/v1/things", `{"name":"a","colour":"red"}`, nil, 400, `unknown field "colour"`},
			{"wrong type", "POST", "/api/v1/things", `{"name":7}`, nil, 400, `"name"`},
			{"empty body", "POST", "/api/v1/things", ``, nil, 400, "empty"},
			{"null patch", "PATCH", "/api/v1/things/existing", `null`, nil, 400, "null"},
			{"null patch with spaces", "PATCH", "/api/v1/things/existing", " null\n", nil, 400, "null"},
			{"null create", "POST", "/api/v1/things", `null`, nil, 400, "null"},
			{"oversized", "POST", "/api/v1/things", `{"name":"a","attributes":{"k":"` + strings.Repeat("x", 5000) + `"}}`, nil, 413, "larger than"},
			{"illegal name", "POST", "/api/v1/things", `{"name":"has space"}`, nil, 400, "invalid"},
			{"username .", "POST", "/api/v1/users", `{"username":".","password":"long-enough-1"}`, nil, 400, "invalid"},
			{"username ..", "POST", "/api/v1/users", `{"username":"..","password":"long-enough-1"}`, nil, 400, "invalid"},
			{"imported username ..", "POST", "/api/v1/registry/import?format=csv", "kind,name\nuser,..\n", []string{"Content-Type", "text/csv"}, 400, "invalid"},
			{"thing ..", "POST", "/api/v1/things", `{"name":".."}`, nil, 400, "invalid"},
			{"thing type .", "POST", "/api/v1/thing-types", `{"name":"."}`, nil, 400, "invalid"},
			{"group ..", "POST", "/api/v1/groups", `{"name":".."}`, nil, 400, "invalid"},
			{"policy ..", "POST", "/api/v1/policies", `{"name":"..","document":{"Version":"2012-10-17","Statement":[]}}`, nil, 400, "invalid"},
			{"thing with a slash", "POST", "/api/v1/things", `{"name":"a/b"}`, nil, 400, "invalid"},
			{"duplicate", "POST", "/api/v1/things", `{"name":"existing"}`, nil, 409, "exists"},
			{"form content type", "POST", "/api/v1/things", `{"name":"a"}`, []string{"Content-Type", "application/x-www-form-urlencoded"}, 415, "application/json"},
			{"stale If-Match", "PATCH", "/api/v1/things/existing", `{"state":"disabled"}`, []string{"If-Match", `"9"`}, 412, "stale"},
			{"garbage If-Match", "PATCH", "/api/v1/things/existing", `{"state":"disabled"}`, []string{"If-Match", `"abc"`}, 400, "If-Match"},
			{"bad state", "PATCH", "/api/v1/things/existing", `{"state":"on"}`, nil, 400, "invalid"},
			{"missing", "GET", "/api/v1/things/nope", ``, nil, 404, "not found"},
			{"bad limit", "GET", "/api/v1/things?limit=0", ``, nil, 400, "limit"},
			{"unknown route", "GET", "/api/v1/widgets", ``, nil, 404, "no API route"},
			{"bad thing type schema", "POST", "/api/v1/thing-types", `{"name":"t","attributeSchema":[{"name":"a","pattern":"("}]}`, nil, 400, "invalid"},
			{"bad relationship", "POST", "/api/v1/relationships", `{"subjectKind":"user","subject":"admin","relation":"owner","objectKind":"thing","object":"ghost"}`, nil, 400, "invalid"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				before, _ := f.store.ListEvents(t.Context(), store.EventFilter{Limit: 1000})
				r := f.do(t, f.admin, tc.method, tc.path, tc.body, tc.header...)
				if r.status != tc.want {
					t.Fatalf("%s %s = %d %s, want %d", tc.method, tc.path, r.status, r.raw, tc.want)
				}
				if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
					t.Errorf("Content-Type = %q, want application/problem+json", ct)
				}
				if d, _ := r.body["detail"].(string); !strings.Contains(d, tc.detail) {
					t.Errorf("detail = %q, want it to mention %q", d, tc.detail)
				}
				after, _ := f.store.ListEvents(t.Context(), store.EventFilter{Limit: 1000})
				if len(after) != len(before) {
					t.Errorf("a rejected request recorded %d events", len(after)-len(before))
				}
			})
		}
		th, err := f.store.GetThing(t.Context(), "existing")
		if err != nil || th.Version != 1 || th.State != store.StateEnabled {
			t.Errorf("after rejected requests the thing is %+v, %v; want it untouched", th, err)
		}
		if n, _ := f.store.CountThings(t.Context()); n != 1 {
			t.Errorf("things = %d, want 1", n)
		}
	})
}

func TestAuth(t *testing.T) {
	forEachDriver(t, func(t *testing.T, f *fixture) {
		tests := []struct {
			name, token, method, path, body string
			want                            int
		}{
			{"no token", "", "GET", "/api/v1/things", "", 401},
			{"wrong token", "ghat_wrong", "GET", "/api/v1/things", "", 401},
			{"operator reads", f.operator, "GET", "/api/v1/things", "", 200},
			{"operator cannot write", f.operator, "POST", "/api/v1/things", `{"name":"x"}`, 403},
			{"operator cannot mint tokens", f.operator, "GET", "/api/v1/api-tokens", "", 403},
			{"admin writes", f.admin, "POST", "/api/v1/things", `{"name":"x"}`, 201},
		}
		for _, tc := range tests {
			r := f.do(t, tc.token, tc.method, tc.path, tc.body)
			if r.status != tc.want {
				t.Errorf("%s: %s %s = %d %s, want %d", tc.name, tc.method, tc.path, r.status, r.raw, tc.want)
			}
			if tc.want == 401 {
				// RFC 6750 section 3: invalid_token when a token was presented.
				want := `Bearer realm="gatehouse"`
				if tc.token != "" {
					want = `Bearer realm="gatehouse", error="invalid_token"`
				}
				if got := r.header.Get("WWW-Authenticate"); got != want {
					t.Errorf("%s: WWW-Authenticate = %q, want %q", tc.name, got, want)
				}
			}
		}
	})
}

func TestThingLifecycleWithETags(t *testing.T) {
	forEachDriver(t, func(t *testing.T, f *fixture) {
		r := f.do(t, f.admin, "POST", "/api/v1/thing-types", `{"name":"sensor","scopes":["publish"],"approverRelation":"owner"}`)
		if r.status != 201 {
			t.Fatalf("create type: %d %s", r.status, r.raw)
		}
		r = f.do(t, f.admin, "POST", "/api/v1/things", `{"name":"s-1","thingType":"sensor","attributes":{"site":"north"}}`)
		if r.status != 201 || r.header.Get("ETag") != `"1"` || r.header.Get("Location") != "/api/v1/things/s-1" {
			t.Fatalf("create thing: %d %v %s", r.status, r.header, r.raw)
		}
		r = f.do(t, f.admin, "PATCH", "/api/v1/things/s-1", `{"attributes":{"site":null,"fw":"2"}}`, "If-Match", `"1"`)
		if r.status != 200 || r.header.Get("ETag") != `"2"` {
			t.Fatalf("patch: %d %s", r.status, r.raw)
		}
		attrs, _ := r.body["attributes"].(map[string]any)
		if attrs["fw"] != "2" || attrs["site"] != nil {
			t.Errorf("attributes after patch = %v", attrs)
		}
		r = f.do(t, f.admin, "DELETE", "/api/v1/things/s-1", "", "If-Match", `"1"`)
		if r.status != 412 {
			t.Errorf("delete with stale ETag = %d, want 412", r.status)
		}
		r = f.do(t, f.admin, "DELETE", "/api/v1/thing-types/sensor", "")
		if r.status != 409 {
			t.Errorf("delete type in use = %d %s, want 409", r.status, r.raw)
		}
		r = f.do(t, f.admin, "DELETE", "/api/v1/things/s-1", "", "If-Match", `"2"`)
		if r.status != 204 {
			t.Errorf("delete = %d %s, want 204", r.status, r.raw)
		}
		r = f.do(t, f.operator, "GET", "/api/v1/events?subject=thing/s-1", "")
		items, _ := r.body["items"].([]any)
		var types []string
		for _, it := range items {
			ev := it.(map[string]any)
			types = append(types, ev["type"].(string))
			if ev["actor"] != "user:admin" {
				t.Errorf("event actor = %v, want user:admin", ev["actor"])
			}
		}
		if got, want := strings.Join(types, " "), "thing.created thing.updated thing.deleted"; got != want {
			t.Errorf("events = %s, want %s", got, want)
		}
	})
}

func TestPagination(t *testing.T) {
	f := newFixture(t, storetest.SQLiteDSN(t))
	for i := range 7 {
		if r := f.do(t, f.admin, "POST", "/api/v1/things", fmt.Sprintf(`{"name":"t-%d"}`, i)); r.status != 201 {
			t.Fatal(r.raw)
		}
	}
	var names []string
	path := "/api/v1/things?limit=3"
	for pages := 0; pages < 5; pages++ {
		r := f.do(t, f.admin, "GET", path, "")
		for _, it := range r.body["items"].([]any) {
			names = append(names, it.(map[string]any)["name"].(string))
		}
		next, _ := r.body["next"].(string)
		if next == "" {
			break
		}
		path = "/api/v1/things?limit=3&after=" + next
	}
	if got := strings.Join(names, ","); got != "t-0,t-1,t-2,t-3,t-4,t-5,t-6" {
		t.Errorf("paged names = %s", got)
	}
}

// TestConcurrentUpdatesOverHTTP sends many PATCHes at once; none is lost.
func TestConcurrentUpdatesOverHTTP(t *testing.T) {
	forEachDriver(t, func(t *testing.T, f *fixture) {
		f.do(t, f.admin, "POST", "/api/v1/things", `{"name":"hot"}`)
		var wg sync.WaitGroup
		for i := range 16 {
			wg.Go(func() {
				if r := f.do(t, f.admin, "PATCH", "/api/v1/things/hot", fmt.Sprintf(`{"attributes":{"k%d":"v"}}`, i)); r.status != 200 {
					t.Errorf("PATCH %d = %d %s", i, r.status, r.raw)
				}
			})
		}
		wg.Wait()
		r := f.do(t, f.admin, "GET", "/api/v1/things/hot", "")
		if attrs := r.body["attributes"].(map[string]any); len(attrs) != 16 || r.header.Get("ETag") != `"17"` {
			t.Errorf("after 16 concurrent patches: %d attributes, ETag %s; want 16, \"17\"", len(attrs), r.header.Get("ETag"))
		}
	})
}

// TestEventsLongPoll: a long poll blocked on /api/v1/events?wait= returns
// the next event as soon as it is recorded. The handler is called directly
// in a synctest bubble: synctest.Wait returns once the poll is blocked (no
// sleep to guess when), and the bubble's clock shows it returned at once,
// not at a poll interval or its timeout.
func TestEventsLongPoll(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		env := testenv.Core(t)
		boot, err := env.Registry.EnsureBootstrap(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		h := httpapi.New(httpapi.Config{Registry: env.Registry, Events: env.Events, MaxBodyBytes: 4096})
		do := func(method, path, body string) response {
			req := httptest.NewRequestWithContext(t.Context(), method, path, strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+boot.Token)
			if body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			r := response{status: rec.Code, header: rec.Header(), raw: rec.Body.String()}
			_ = json.Unmarshal(rec.Body.Bytes(), &r.body)
			return r
		}
		last := do("GET", "/api/v1/events", "").body["next"].(string)
		done := make(chan response)
		go func() { done <- do("GET", "/api/v1/events?wait=20s&after="+last, "") }()
		synctest.Wait()
		start := time.Now()
		if r := do("POST", "/api/v1/users", `{"username":"zoe","password":"long enough pw"}`); r.status != http.StatusCreated {
			t.Fatalf("create user: %d %s", r.status, r.raw)
		}
		got := <-done
		items, _ := got.body["items"].([]any)
		if len(items) != 1 || items[0].(map[string]any)["type"] != "user.created" {
			t.Errorf("long poll returned %s, want the user.created event", got.raw)
		}
		if waited := time.Since(start); waited != 0 {
			t.Errorf("long poll returned %v after the event, want at once", waited)
		}
		if r := do("GET", "/api/v1/events?wait=1h", ""); r.status != 400 {
			t.Errorf("wait=1h = %d, want 400", r.status)
		}
	})
}

// TestEventsNewestFirst: order=newest lists the latest events first, and
// its next cursor given as before= pages backwards through the rest; type,
// actor and a time range narrow it; bad values are refused.
func TestEventsNewestFirst(t *testing.T) {
	forEachDriver(t, func(t *testing.T, f *fixture) {
		for _, u := range []string{"ann", "ben", "cat"} {
			if r := f.do(t, f.admin, "POST", "/api/v1/users", `{"username":"`+u+`","password":"long enough pw"}`); r.status != http.StatusCreated {
				t.Fatalf("create %s: %d %s", u, r.status, r.raw)
			}
		}
		subjects := func(r response) []string {
			var out []string
			items, _ := r.body["items"].([]any)
			for _, it := range items {
				out = append(out, it.(map[string]any)["subject"].(string))
			}
			return out
		}
		first := f.do(t, f.admin, "GET", "/api/v1/events?order=newest&type=user.created&limit=2", "")
		if got, want := fmt.Sprint(subjects(first)), "[user/cat user/ben]"; first.status != 200 || got != want {
			t.Fatalf("newest page = %d %s, want %s", first.status, got, want)
		}
		next, _ := first.body["next"].(string)
		second := f.do(t, f.admin, "GET", "/api/v1/events?order=newest&type=user.created&limit=2&before="+next, "")
		if got := fmt.Sprint(subjects(second)); !strings.HasPrefix(got, "[user/ann") {
			t.Errorf("page before %s = %s, want user/ann first", next, got)
		}
		future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
		past := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
		if r := f.do(t, f.admin, "GET", "/api/v1/events?type=user.created&since="+future, ""); len(subjects(r)) != 0 {
			t.Errorf("since an hour ahead = %s, want none", r.raw)
		}
		if r := f.do(t, f.admin, "GET", "/api/v1/events?type=user.created&since="+past+"&until="+future, ""); len(subjects(r)) < 3 {
			t.Errorf("within the last hour = %s, want the three users", r.raw)
		}
		for _, bad := range []string{"order=sideways", "before=x", "since=yesterday", "until=2026-13-01", "order=newest&wait=1s"} {
			if r := f.do(t, f.admin, "GET", "/api/v1/events?"+bad, ""); r.status != http.StatusBadRequest {
				t.Errorf("%s = %d %s, want 400", bad, r.status, r.raw)
			}
		}
	})
}
