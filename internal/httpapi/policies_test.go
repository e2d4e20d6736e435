package httpapi_test

import (
	"net/http"
	"strings"
	"testing"
)

const telemetryPolicy = `{"Version":"2012-10-17","Statement":[
 {"Effect":"Allow","Action":"iot:Connect","Resource":"arn:aws:iot:eu-west-1:123456789012:client/${iot:Connection.Thing.ThingName}"},
 {"Effect":"Allow","Action":["iot:Publish","iot:Receive"],"Resource":"arn:aws:iot:eu-west-1:123456789012:topic/things/${iot:Connection.Thing.ThingName}/*"},
 {"Effect":"Allow","Action":"iot:Subscribe","Resource":"arn:aws:iot:eu-west-1:123456789012:topicfilter/things/${iot:Connection.Thing.ThingName}/*"},
 {"Sid":"NoFirmware","Effect":"Deny","Action":"iot:Publish","Resource":"topic/things/*/firmware"}]}`

func TestPolicies(t *testing.T) {
	forEachDriver(t, func(t *testing.T, f *fixture) {
		mustStatus := func(r response, want int) response {
			t.Helper()
			if r.status != want {
				t.Fatalf("status %d %s, want %d", r.status, r.raw, want)
			}
			return r
		}
		mustStatus(f.do(t, f.admin, "POST", "/api/v1/thing-types", `{"name":"sensor","defaultPolicies":["telemetry"]}`), 201)
		mustStatus(f.do(t, f.admin, "POST", "/api/v1/things", `{"name":"s-1","thingType":"sensor"}`), 201)
		mustStatus(f.do(t, f.admin, "POST", "/api/v1/policies", `{"name":"telemetry","document":`+telemetryPolicy+`}`), 201)

		bad := []struct{ name, body, detail string }{
			{"bad effect", `{"name":"p1","document":{"Version":"2012-10-17","Statement":[{"Effect":"Alow","Action":"iot:Connect","Resource":"*"}]}}`, "Alow"},
			{"unknown action", `{"name":"p2","document":{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Fly","Resource":"*"}]}}`, "iot:Fly"},
			{"not an object", `{"name":"p3","document":"allow all"}`, "JSON object"},
			{"bad name", `{"name":"p 4","document":` + telemetryPolicy + `}`, "name"},
		}
		for _, tc := range bad {
			r := f.do(t, f.admin, "POST", "/api/v1/policies", tc.body)
			if r.status != http.StatusBadRequest || !strings.Contains(r.raw, tc.detail) {
				t.Errorf("%s: %d %s, want 400 mentioning %q", tc.name, r.status, r.raw, tc.detail)
			}
		}
		// telemetry and the bootstrap policy gatehouse-people.
		if r := f.do(t, f.admin, "GET", "/api/v1/policies", ""); len(r.body["items"].([]any)) != 2 {
			t.Errorf("rejected policies were stored: %s", r.raw)
		}

		sim := func(body string) map[string]any {
			t.Helper()
			return mustStatus(f.do(t, f.operator, "POST", "/api/v1/policies/simulate", body), 200).body
		}
		tests := []struct {
			body   string
			allow  bool
			reason string
		}{
			{`{"thingName":"s-1","action":"iot:Connect","resource":"s-1"}`, true, "ExplicitAllow"},
			{`{"thingName":"s-1","action":"iot:Connect","resource":"s-2"}`, false, "ImplicitDeny"},
			{`{"thingName":"s-1","action":"iot:Publish","resource":"things/s-1/temp"}`, true, "ExplicitAllow"},
			{`{"thingName":"s-1","action":"iot:Publish","resource":"things/s-2/temp"}`, false, "ImplicitDeny"},
			{`{"thingName":"s-1","action":"iot:Publish","resource":"things/s-1/firmware"}`, false, "ExplicitDeny"},
			{`{"thingName":"s-1","action":"iot:Subscribe","resource":"things/s-1/#"}`, true, "ExplicitAllow"},
			{`{"thingName":"s-1","clientId":"other","action":"iot:Publish","resource":"things/s-1/temp"}`, false, "ImplicitDeny"},
			{`{"action":"iot:Connect","resource":"s-1"}`, false, "ImplicitDeny"},
		}
		for _, tc := range tests {
			got := sim(tc.body)
			if got["allowed"] != tc.allow || got["reason"] != tc.reason {
				t.Errorf("simulate %s = allowed %v reason %v, want %v %s", tc.body, got["allowed"], got["reason"], tc.allow, tc.reason)
			}
		}
		deny := sim(`{"thingName":"s-1","action":"iot:Publish","resource":"things/s-1/firmware"}`)
		if m := deny["matchedStatements"].([]any); len(m) < 1 || m[0].(map[string]any)["sid"] != "NoFirmware" {
			t.Errorf("explicit deny matched %v, want NoFirmware first", deny["matchedStatements"])
		}
		if r := f.do(t, f.operator, "POST", "/api/v1/policies/simulate", `{"action":"iot:Teleport","resource":"x"}`); r.status != 400 {
			t.Errorf("simulate unknown action = %d, want 400", r.status)
		}

		// A scope-attached policy grants a token holder publish rights.
		mustStatus(f.do(t, f.admin, "POST", "/api/v1/policies", `{"name":"publish-scope","document":{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Publish","Resource":"topic/public/*"}]}}`), 201)
		mustStatus(f.do(t, f.admin, "POST", "/api/v1/policies/publish-scope/attachments", `{"targetKind":"scope","target":"publish"}`), 201)
		if got := sim(`{"scopes":["publish"],"action":"iot:Publish","resource":"public/news"}`); got["allowed"] != true {
			t.Errorf("scope policy: %v", got)
		}
		if r := f.do(t, f.admin, "POST", "/api/v1/policies/publish-scope/attachments", `{"targetKind":"thing","target":"ghost"}`); r.status != 400 {
			t.Errorf("attach to missing thing = %d, want 400", r.status)
		}
		if r := f.do(t, f.admin, "DELETE", "/api/v1/policies/publish-scope", ""); r.status != 409 {
			t.Errorf("delete attached policy = %d, want 409", r.status)
		}
		if r := f.do(t, f.admin, "DELETE", "/api/v1/policies/telemetry", ""); r.status != 409 {
			t.Errorf("delete a thing type's default policy = %d, want 409", r.status)
		}

		// Versions: a new default changes decisions; at most five versions.
		denyAll := `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"iot:*","Resource":"*"}]}`
		mustStatus(f.do(t, f.admin, "POST", "/api/v1/policies/telemetry/versions", `{"document":`+denyAll+`,"setAsDefault":true}`), 201)
		if got := sim(`{"thingName":"s-1","action":"iot:Connect","resource":"s-1"}`); got["allowed"] != false {
			t.Errorf("after new default version Connect allowed: %v", got)
		}
		mustStatus(f.do(t, f.admin, "PUT", "/api/v1/policies/telemetry/default-version", `{"versionId":1}`), 200)
		if got := sim(`{"thingName":"s-1","action":"iot:Connect","resource":"s-1"}`); got["allowed"] != true {
			t.Errorf("after restoring version 1 Connect denied: %v", got)
		}
		if r := f.do(t, f.admin, "DELETE", "/api/v1/policies/telemetry/versions/1", ""); r.status != 409 {
			t.Errorf("delete default version = %d, want 409", r.status)
		}
		for i := 3; i <= 5; i++ {
			mustStatus(f.do(t, f.admin, "POST", "/api/v1/policies/telemetry/versions", `{"document":`+denyAll+`}`), 201)
		}
		if r := f.do(t, f.admin, "POST", "/api/v1/policies/telemetry/versions", `{"document":`+denyAll+`}`); r.status != 400 || !strings.Contains(r.raw, "delete one first") {
			t.Errorf("sixth version = %d %s, want 400", r.status, r.raw)
		}
		r := mustStatus(f.do(t, f.operator, "GET", "/api/v1/policies/telemetry", ""), 200)
		if r.body["defaultVersionId"] != float64(1) || !strings.Contains(r.raw, "NoFirmware") {
			t.Errorf("GET policy = %s", r.raw)
		}
		mustStatus(f.do(t, f.admin, "DELETE", "/api/v1/policies/publish-scope/attachments?targetKind=scope&target=publish", ""), 204)
		mustStatus(f.do(t, f.admin, "DELETE", "/api/v1/policies/publish-scope", ""), 204)
		evs := mustStatus(f.do(t, f.operator, "GET", "/api/v1/events?type=policy.", ""), 200)
		if n := len(evs.body["items"].([]any)); n < 10 {
			t.Errorf("policy events = %d, want every change recorded", n)
		}
	})
}

// TestPolicyBuiltInMarked: the people's policy, which Gatehouse needs, is
// marked builtIn in the list and on its own (and refused deletion); an
// operator's policy is not marked.
func TestPolicyBuiltInMarked(t *testing.T) {
	f := newFixture(t, "")
	if r := f.do(t, f.admin, "POST", "/api/v1/policies", `{"name":"mine","document":{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"*"}]}}`); r.status != 201 || r.body["builtIn"] != nil {
		t.Fatalf("create mine = %d %s", r.status, r.raw)
	}
	r := f.do(t, f.admin, "GET", "/api/v1/policies", "")
	got := map[string]any{}
	for _, it := range r.body["items"].([]any) {
		p := it.(map[string]any)
		got[p["name"].(string)] = p["builtIn"]
		if _, ok := p["document"]; ok {
			t.Errorf("list item %s carries a document", p["name"])
		}
	}
	if got["gatehouse-people"] != true || got["mine"] != nil {
		t.Errorf("builtIn in the list = %v, want gatehouse-people only", got)
	}
	if r := f.do(t, f.admin, "GET", "/api/v1/policies/gatehouse-people", ""); r.body["builtIn"] != true || r.body["document"] == nil {
		t.Errorf("GET gatehouse-people = %s, want builtIn with its document", r.raw)
	}
	if r := f.do(t, f.admin, "DELETE", "/api/v1/policies/gatehouse-people", ""); r.status < 400 {
		t.Errorf("DELETE gatehouse-people = %d, want refused", r.status)
	}
}
