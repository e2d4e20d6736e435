package httpapi_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gatehouse-iot/gatehouse/internal/fleetprov"
	"github.com/gatehouse-iot/gatehouse/internal/httpapi"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/store/storetest"
	"github.com/gatehouse-iot/gatehouse/internal/testenv"
)

func newProvisioningFixture(t *testing.T, dsn string) *fixture {
	t.Helper()
	env := testenv.Core(t, testenv.DSN(dsn))
	boot, err := env.Registry.EnsureBootstrap(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	op, _, err := env.Registry.CreateAPIToken(t.Context(), "ro", "", []string{registry.RoleOperator}, 0)
	if err != nil {
		t.Fatal(err)
	}
	cs := env.Certs()
	fp, err := fleetprov.New(fleetprov.Config{Store: env.Store, Registry: env.Registry, Certs: cs, Events: env.Events})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(httpapi.New(httpapi.Config{Registry: env.Registry, Events: env.Events, Certs: cs, FleetProv: fp, MaxBodyBytes: 1 << 16}))
	t.Cleanup(srv.Close)
	return &fixture{srv: srv, store: env.Store, admin: boot.Token, operator: op}
}

func TestProvisioningTemplates(t *testing.T) {
	for _, d := range storetest.Drivers() {
		t.Run(d.Name, func(t *testing.T) {
			f := newProvisioningFixture(t, d.DSN(t))
			must := func(r response, want int) response {
				t.Helper()
				if r.status != want {
					t.Fatalf("status %d %s, want %d", r.status, r.raw, want)
				}
				return r
			}
			const body = `{"Parameters":{"Serial":{"Type":"String"}},"Resources":{"thing":{"Type":"AWS::IoT::Thing","Properties":{"ThingName":{"Ref":"Serial"}}}}}`
			if r := f.do(t, f.operator, "POST", "/api/v1/provisioning-templates", `{"templateName":"fleet","templateBody":`+body+`}`); r.status != http.StatusForbidden {
				t.Errorf("operator creates a template: %d, want 403", r.status)
			}
			bad := []struct{ name, body, detail string }{
				{"unknown resource type", `{"templateName":"b1","templateBody":{"Resources":{"x":{"Type":"AWS::S3::Bucket"}}}}`, "AWS::S3::Bucket"},
				{"undeclared Ref", `{"templateName":"b2","templateBody":{"Resources":{"t":{"Type":"AWS::IoT::Thing","Properties":{"ThingName":{"Ref":"Nope"}}}}}}`, "Nope"},
				{"not an object", `{"templateName":"b3","templateBody":42}`, "templateBody"},
				{"plain http hook", `{"templateName":"b4","templateBody":` + body + `,"preProvisioningHook":"http://hooks.example/x"}`, "loopback"},
				{"bad name", `{"templateName":"has space","templateBody":` + body + `}`, "templateName"},
			}
			for _, tc := range bad {
				if r := f.do(t, f.admin, "POST", "/api/v1/provisioning-templates", tc.body); r.status != http.StatusBadRequest || !strings.Contains(r.raw, tc.detail) {
					t.Errorf("%s: %d %s, want 400 mentioning %q", tc.name, r.status, r.raw, tc.detail)
				}
			}
			// A body given as a string, as the AWS CLI passes it.
			quoted := strings.ReplaceAll(body, `"`, `\"`)
			created := must(f.do(t, f.admin, "POST", "/api/v1/provisioning-templates", `{"templateName":"fleet","enabled":true,"templateBody":"`+quoted+`"}`), 201)
			if created.body["defaultVersionId"] != float64(1) || created.header.Get("ETag") == "" {
				t.Errorf("created = %s (ETag %q)", created.raw, created.header.Get("ETag"))
			}
			must(f.do(t, f.admin, "POST", "/api/v1/provisioning-templates/fleet/versions", `{"templateBody":`+strings.Replace(body, `{"Ref":"Serial"}`, `{"Fn::Sub":"s-${Serial}"}`, 1)+`,"setAsDefault":true}`), 201)
			got := must(f.do(t, f.operator, "GET", "/api/v1/provisioning-templates/fleet", ""), 200)
			if got.body["defaultVersionId"] != float64(2) || !strings.Contains(got.raw, "Fn::Sub") {
				t.Errorf("GET = %s", got.raw)
			}
			if r := f.do(t, f.admin, "PATCH", "/api/v1/provisioning-templates/fleet", `{"enabled":false}`, "If-Match", `"1"`); r.status != http.StatusPreconditionFailed {
				t.Errorf("PATCH with a stale If-Match: %d, want 412", r.status)
			}
			patched := must(f.do(t, f.admin, "PATCH", "/api/v1/provisioning-templates/fleet", `{"enabled":false,"defaultVersionId":1}`, "If-Match", got.header.Get("ETag")), 200)
			if patched.body["enabled"] != false || patched.body["defaultVersionId"] != float64(1) {
				t.Errorf("PATCH = %s", patched.raw)
			}
			if r := f.do(t, f.admin, "DELETE", "/api/v1/provisioning-templates/fleet/versions/1", ""); r.status != http.StatusBadRequest {
				t.Errorf("DELETE the default version: %d, want 400", r.status)
			}
			must(f.do(t, f.admin, "DELETE", "/api/v1/provisioning-templates/fleet/versions/2", ""), 204)
			if vs := must(f.do(t, f.operator, "GET", "/api/v1/provisioning-templates/fleet/versions", ""), 200); len(vs.body["items"].([]any)) != 1 {
				t.Errorf("versions = %s", vs.raw)
			}
			claim := must(f.do(t, f.admin, "POST", "/api/v1/provisioning-templates/fleet/claim-certificates", `{"validitySeconds":120}`), 201)
			if !strings.Contains(claim.raw, "BEGIN CERTIFICATE") || claim.body["keyPair"].(map[string]any)["PrivateKey"] == "" {
				t.Errorf("claim certificate = %.200s", claim.raw)
			}
			if r := f.do(t, f.admin, "POST", "/api/v1/provisioning-templates/nope/claim-certificates", ""); r.status != http.StatusNotFound {
				t.Errorf("claim certificate of an unknown template: %d, want 404", r.status)
			}
			if r := must(f.do(t, f.operator, "GET", "/api/v1/provisioning-templates", ""), 200); len(r.body["items"].([]any)) != 1 {
				t.Errorf("list = %s", r.raw)
			}
			must(f.do(t, f.admin, "DELETE", "/api/v1/provisioning-templates/fleet", ""), 204)
			must(f.do(t, f.operator, "GET", "/api/v1/provisioning-templates/fleet", ""), 404)
		})
	}
}
