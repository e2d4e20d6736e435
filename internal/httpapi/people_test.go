package httpapi_test

import (
	"testing"
)

// TestSimulatePeople: the simulator answers for a person, with the
// bootstrap gatehouse-people policy and their relationships.
func TestSimulatePeople(t *testing.T) {
	forEachDriver(t, func(t *testing.T, f *fixture) {
		for _, c := range []struct{ method, path, body string }{
			{"POST", "/api/v1/things", `{"name":"lamp-1"}`},
			{"POST", "/api/v1/things", `{"name":"lamp-2"}`},
			{"POST", "/api/v1/users", `{"username":"alice","password":"alice-password"}`},
			{"POST", "/api/v1/users", `{"username":"bob","password":"bob-password"}`},
			{"POST", "/api/v1/relationships", `{"subjectKind":"user","subject":"alice","relation":"owner","objectKind":"thing","object":"lamp-1"}`},
			{"POST", "/api/v1/relationships", `{"subjectKind":"user","subject":"bob","relation":"viewer","objectKind":"thing","object":"lamp-1"}`},
		} {
			if r := f.do(t, f.admin, c.method, c.path, c.body); r.status != 201 {
				t.Fatalf("%s %s = %d %s", c.method, c.path, r.status, r.raw)
			}
		}
		tests := []struct {
			body   string
			status int
			allow  bool
		}{
			{`{"username":"alice","clientId":"alice~phone","action":"iot:Connect","resource":"alice~phone"}`, 200, true},
			{`{"username":"alice","clientId":"alice~phone","action":"iot:Publish","resource":"things/lamp-1/commands/on"}`, 200, true},
			{`{"username":"alice","action":"iot:Publish","resource":"things/lamp-2/commands/on"}`, 200, false},
			{`{"username":"bob","action":"iot:Receive","resource":"things/lamp-1/telemetry/t"}`, 200, true},
			{`{"username":"bob","action":"iot:Publish","resource":"things/lamp-1/commands/on"}`, 200, false},
			{`{"username":"nobody","action":"iot:Publish","resource":"x"}`, 404, false},
			{`{"username":"alice","thingName":"lamp-1","action":"iot:Publish","resource":"x"}`, 400, false},
		}
		for _, tc := range tests {
			r := f.do(t, f.operator, "POST", "/api/v1/policies/simulate", tc.body)
			if r.status != tc.status || (tc.status == 200 && r.body["allowed"] != tc.allow) {
				t.Errorf("simulate %s = %d %s, want %d allowed %v", tc.body, r.status, r.raw, tc.status, tc.allow)
			}
		}
		// Attachment targets for people.
		for _, c := range []struct {
			body   string
			status int
		}{
			{`{"targetKind":"user","target":"alice"}`, 201},
			{`{"targetKind":"user","target":"ghost"}`, 400},
			{`{"targetKind":"all-users","target":"alice"}`, 400},
		} {
			if r := f.do(t, f.admin, "POST", "/api/v1/policies/gatehouse-people/attachments", c.body); r.status != c.status {
				t.Errorf("attach %s = %d %s, want %d", c.body, r.status, r.raw, c.status)
			}
		}
	})
}
