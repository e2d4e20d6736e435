package httpapi_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/httpapi"
	"github.com/gatehouse-iot/gatehouse/internal/store/storetest"
	"github.com/gatehouse-iot/gatehouse/internal/testenv"
)

// seedRegistry fills a fixture with one of every kind of record.
func seedRegistry(t *testing.T, f *fixture) {
	t.Helper()
	expires := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Second).Format(time.RFC3339)
	for _, req := range []struct{ path, body string }{
		{"/api/v1/thing-types", `{"name":"pump","description":"water pumps","attributeSchema":[{"name":"site","required":true},{"name":"fw","pattern":"[0-9.]+"}],"scopes":["telemetry"],"approverRelation":"owner"}`},
		{"/api/v1/things", `{"name":"pump-1","thingType":"pump","attributes":{"site":"north","fw":"1.2"}}`},
		{"/api/v1/things", `{"name":"pump-2","thingType":"pump","attributes":{"site":"south"},"state":"disabled"}`},
		{"/api/v1/things", `{"name":"gw-1"}`},
		{"/api/v1/users", `{"username":"alice","password":"long-enough-pw","displayName":"Alice","email":"alice@example.com","roles":["user","operator"]}`},
		{"/api/v1/groups", `{"name":"north","description":"north site"}`},
		{"/api/v1/groups/north/members", `{"kind":"thing","member":"pump-1"}`},
		{"/api/v1/groups/north/members", `{"kind":"user","member":"alice"}`},
		{"/api/v1/relationships", `{"subjectKind":"user","subject":"alice","relation":"owner","objectKind":"thing","object":"pump-1"}`},
		{"/api/v1/relationships", `{"subjectKind":"user","subject":"alice","relation":"viewer","objectKind":"thing","object":"pump-2","expiresAt":"` + expires + `"}`},
		{"/api/v1/relationships", `{"subjectKind":"thing","subject":"gw-1","relation":"gateway","objectKind":"thing","object":"pump-1"}`},
	} {
		if r := f.do(t, f.admin, "POST", req.path, req.body); r.status != http.StatusCreated {
			t.Fatalf("POST %s: %d %s", req.path, r.status, r.raw)
		}
	}
}

func (f *fixture) importFile(t *testing.T, format, body string, dry bool) response {
	t.Helper()
	path := "/api/v1/registry/import?format=" + format
	if dry {
		path += "&dryRun=true"
	}
	ct := "application/json"
	if format == "csv" {
		ct = "text/csv"
	}
	return f.do(t, f.admin, "POST", path, body, "Content-Type", ct)
}

func TestRegistryRoundTrip(t *testing.T) {
	for _, format := range []string{"json", "csv"} {
		t.Run(format, func(t *testing.T) {
			forEachDriver(t, func(t *testing.T, f *fixture) {
				seedRegistry(t, f)
				r := f.do(t, f.operator, "GET", "/api/v1/registry/export?format="+format, "")
				if r.status != http.StatusOK {
					t.Fatalf("export: %d %s", r.status, r.raw)
				}
				export := r.raw
				if strings.Contains(export, "password") || strings.Contains(export, "$argon2") {
					t.Errorf("export contains a password or its hash:\n%s", export)
				}
				// Importing an export changes nothing and says so.
				r = f.importFile(t, format, export, false)
				if r.status != http.StatusOK || r.body["created"] != 0.0 || r.body["updated"] != 0.0 || !strings.Contains(r.body["message"].(string), "nothing to change") {
					t.Fatalf("re-import: %d %s", r.status, r.raw)
				}
				if again := f.do(t, f.operator, "GET", "/api/v1/registry/export?format="+format, "").raw; again != export {
					t.Errorf("export after re-import differs:\n%s\nwas\n%s", again, export)
				}

				// Into an empty registry: everything is created, and its
				// export is the same document.
				g := newFixture(t, freshDSN(t, f))
				r = g.importFile(t, format, export, false)
				// The bootstrap admin exists on both sides already.
				if r.status != http.StatusOK || r.body["created"] != 9.0 || r.body["unchanged"] != 1.0 {
					t.Fatalf("import into a fresh registry: %d %s", r.status, r.raw)
				}
				if got := g.do(t, g.operator, "GET", "/api/v1/registry/export?format="+format, "").raw; got != export {
					t.Errorf("export of the copy differs:\n%s\nwant\n%s", got, export)
				}

				// One changed attribute is one update.
				changed := strings.Replace(export, "north", "east", 1)
				r = g.importFile(t, format, changed, false)
				if r.status != http.StatusOK || r.body["updated"] != 1.0 || r.body["created"] != 0.0 {
					t.Errorf("import of a changed export: %d %s", r.status, r.raw)
				}
			})
		})
	}
}

func TestRegistryImportBadRowsAndDryRun(t *testing.T) {
	forEachDriver(t, func(t *testing.T, f *fixture) {
		things := func() string { return f.do(t, f.operator, "GET", "/api/v1/things", "").raw }
		before := things()
		csv := "kind,name,thing_type,attributes,state\n" +
			"thing,ok-1,,site=north,\n" +
			"thing,bad-attr,,site=has space,\n" +
			"thing,no-type,ghost,,\n" +
			"gizmo,x,,,\n" +
			"thing,ok-1,,,\n" +
			"thing,bad-state,,,maybe\n"
		r := f.importFile(t, "csv", csv, false)
		if r.status != http.StatusBadRequest {
			t.Fatalf("bad rows: %d %s, want 400", r.status, r.raw)
		}
		// kind errors are found while parsing, before any other check.
		if !strings.Contains(r.raw, "row 5") || !strings.Contains(r.raw, `kind \"gizmo\"`) {
			t.Errorf("parse errors = %s, want row 5 with the unknown kind", r.raw)
		}
		csv = strings.Replace(csv, "gizmo,x,,,\n", "", 1)
		r = f.importFile(t, "csv", csv, false)
		if r.status != http.StatusBadRequest {
			t.Fatalf("bad rows: %d %s, want 400", r.status, r.raw)
		}
		for _, want := range []string{"row 3 (thing bad-attr): attributes.site", "row 4 (thing no-type): thingType", "row 5 (thing ok-1)", "first at row 2", "row 6 (thing bad-state): state"} {
			if !strings.Contains(r.raw, want) {
				t.Errorf("errors %s\nlack %q", r.raw, want)
			}
		}
		if strings.Contains(r.raw, "row 2 ") {
			t.Errorf("the valid row 2 is reported: %s", r.raw)
		}
		if got := things(); got != before {
			t.Errorf("a failed import changed things: %s, was %s", got, before)
		}

		for _, tc := range []struct {
			name, format, body, want string
		}{
			{"unknown column", "csv", "kind,name,colour\nthing,a,red\n", "unknown column"},
			{"column of another kind", "csv", "kind,name,email\nthing,a,a@example.com\n", "does not apply"},
			{"short row", "csv", "kind,name,state\nthing,a\n", "row 2"},
			{"malformed json", "json", `{"things":[{"name":"a"}`, "not a registry export"},
			{"unknown json field", "json", `{"things":[{"name":"a","colour":"red"}]}`, "colour"},
			{"json row", "json", `{"things":[{"name":"a"},{"name":"b c"}]}`, "things[1] (thing b c)"},
			{"wrong format", "json", `{"format":"other/9","things":[]}`, "format"},
		} {
			r := f.importFile(t, tc.format, tc.body, false)
			if r.status != http.StatusBadRequest || !strings.Contains(r.raw, tc.want) {
				t.Errorf("%s: %d %s, want 400 with %q", tc.name, r.status, r.raw, tc.want)
			}
		}
		if got := things(); got != before {
			t.Errorf("failed imports changed things: %s, was %s", got, before)
		}

		// A dry run reports and changes nothing.
		good := `{"things":[{"name":"new-1","attributes":{"site":"x"}},{"name":"new-2"}],"groups":[{"name":"g","members":[{"kind":"thing","member":"new-1"}]}]}`
		r = f.importFile(t, "json", good, true)
		if r.status != http.StatusOK || r.body["created"] != 3.0 || r.body["dryRun"] != true || !strings.Contains(r.body["message"].(string), "would create 3") {
			t.Errorf("dry run: %d %s", r.status, r.raw)
		}
		if got := things(); got != before {
			t.Errorf("dry run changed things: %s", got)
		}
		r = f.importFile(t, "json", good, false)
		if r.status != http.StatusOK || r.body["created"] != 3.0 {
			t.Errorf("import: %d %s", r.status, r.raw)
		}
		if r := f.do(t, f.operator, "GET", "/api/v1/groups/g/members", ""); !strings.Contains(r.raw, "new-1") {
			t.Errorf("group members after import: %s", r.raw)
		}
		if r := f.do(t, f.operator, "GET", "/api/v1/events?type=registry.imported", ""); !strings.Contains(r.raw, `"created":3`) {
			t.Errorf("registry.imported event: %s", r.raw)
		}
		if r := f.do(t, f.operator, "POST", "/api/v1/registry/import", good); r.status != http.StatusForbidden {
			t.Errorf("import by an operator: %d, want 403", r.status)
		}
	})
}

// freshDSN returns an empty database of f's driver.
func freshDSN(t *testing.T, f *fixture) string {
	if f.store.Dialect() == "postgres" {
		return storetest.PostgresDSN(t)
	}
	return storetest.SQLiteDSN(t)
}

// TestRegistryImportBodyLimit: an import body over MaxImportBytes is 413
// and creates nothing; one under it, though larger than MaxBodyBytes, is
// imported.
func TestRegistryImportBodyLimit(t *testing.T) {
	env := testenv.Core(t)
	boot, err := env.Registry.EnsureBootstrap(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(httpapi.New(httpapi.Config{Registry: env.Registry, Events: env.Events, MaxBodyBytes: 1024, MaxImportBytes: 4096}))
	t.Cleanup(srv.Close)
	f := &fixture{srv: srv, store: env.Store, admin: boot.Token}
	rows := func(n int) string {
		var b strings.Builder
		b.WriteString("kind,name,thing_type,attributes,state\n")
		for i := range n {
			fmt.Fprintf(&b, "thing,imported-%03d,,,\n", i)
		}
		return b.String()
	}
	tests := []struct {
		name   string
		rows   int
		want   int
		things int64
	}{
		{"over the import limit", 250, http.StatusRequestEntityTooLarge, 0},
		{"over the body limit, under the import limit", 100, http.StatusOK, 100},
	}
	for _, tc := range tests {
		body := rows(tc.rows)
		r := f.importFile(t, "csv", body, false)
		if r.status != tc.want {
			t.Fatalf("%s (%d bytes): %d %s, want %d", tc.name, len(body), r.status, r.raw, tc.want)
		}
		if n, _ := env.Store.CountThings(t.Context()); n != tc.things {
			t.Errorf("%s: %d things, want %d", tc.name, n, tc.things)
		}
	}
}
