package oauth_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/gatehouse-iot/gatehouse/internal/oauth"
	"github.com/gatehouse-iot/gatehouse/internal/store/storetest"
)

// TestEndpointRules sends what a careless or hostile client sends to the
// token, device authorization, introspection and revocation endpoints, over
// real HTTP, and checks the MUSTs of RFC 6749 (sections 2.3.1, 3.1, 3.2,
// 5.1, 5.2), RFC 7009 2.1, RFC 7662 2.1 and RFC 8628 3.1: POST only (405
// with Allow), nothing in the query string, no parameter twice, responses
// not stored by caches, and 401 with WWW-Authenticate.
func TestEndpointRules(t *testing.T) {
	e := newEnv(t, storetest.SQLiteDSN(t))
	sec := e.secrets["sensor-1"]
	token := func() string {
		_, body := e.postForm(oauth.PathToken, url.Values{"grant_type": {"client_credentials"}, "client_id": {"sensor-1"}, "client_secret": {sec}}, "", "")
		at, _ := body["access_token"].(string)
		if at == "" {
			t.Fatalf("no access token: %v", body)
		}
		return at
	}
	cc := "grant_type=client_credentials&client_id=sensor-1&client_secret=" + url.QueryEscape(sec)
	tests := []struct {
		name       string
		method     string
		path       string // with its query, if any
		body       string
		basic      [2]string
		wantStatus int
		wantError  string            // the RFC 6749 "error", if any
		wantHeader map[string]string // header -> value it must have
	}{
		{name: "token by GET", method: "GET", path: oauth.PathToken + "?" + cc,
			wantStatus: 405, wantHeader: map[string]string{"Allow": "POST"}},
		{name: "token by PUT", method: "PUT", path: oauth.PathToken, body: cc,
			wantStatus: 405, wantHeader: map[string]string{"Allow": "POST"}},
		{name: "device code by GET", method: "GET", path: oauth.PathDeviceCode + "?client_id=sensor-1",
			wantStatus: 405, wantHeader: map[string]string{"Allow": "POST"}},
		{name: "introspect by GET", method: "GET", path: oauth.PathIntrospect + "?token=x",
			wantStatus: 405, wantHeader: map[string]string{"Allow": "POST"}},
		{name: "revoke by GET", method: "GET", path: oauth.PathRevoke + "?token=x",
			wantStatus: 405, wantHeader: map[string]string{"Allow": "POST"}},
		{name: "client secret in the query", method: "POST", path: oauth.PathToken + "?client_secret=" + url.QueryEscape(sec),
			body: "grant_type=client_credentials&client_id=sensor-1", wantStatus: 400, wantError: "invalid_request"},
		{name: "token in the revocation query", method: "POST", path: oauth.PathRevoke + "?token=x",
			body: "client_id=sensor-1&client_secret=" + url.QueryEscape(sec), wantStatus: 400, wantError: "invalid_request"},
		{name: "grant_type twice", method: "POST", path: oauth.PathToken,
			body: cc + "&grant_type=urn:ietf:params:oauth:grant-type:device_code", wantStatus: 400, wantError: "invalid_request"},
		{name: "scope twice", method: "POST", path: oauth.PathToken,
			body: cc + "&scope=publish&scope=subscribe", wantStatus: 400, wantError: "invalid_request"},
		{name: "client_id twice at device authorization", method: "POST", path: oauth.PathDeviceCode,
			body: "client_id=sensor-1&client_id=sensor-2&client_secret=" + url.QueryEscape(sec), wantStatus: 400, wantError: "invalid_request"},
		{name: "token twice at introspection", method: "POST", path: oauth.PathIntrospect, basic: [2]string{"resource-server", "rs-secret"},
			body: "token=a&token=b", wantStatus: 400, wantError: "invalid_request"},
		{name: "token response", method: "POST", path: oauth.PathToken, body: cc,
			wantStatus: 200, wantHeader: map[string]string{"Cache-Control": "no-store", "Pragma": "no-cache"}},
		{name: "token response through op", method: "POST", path: oauth.PathToken, basic: [2]string{"sensor-1", sec},
			body: "grant_type=client_credentials&scope=publish", wantStatus: 200, wantHeader: map[string]string{"Cache-Control": "no-store", "Pragma": "no-cache"}},
		{name: "token error", method: "POST", path: oauth.PathToken, body: "grant_type=client_credentials&client_id=sensor-1&client_secret=wrong",
			wantStatus: 401, wantError: "invalid_client", wantHeader: map[string]string{"Cache-Control": "no-store", "Pragma": "no-cache"}},
		{name: "device authorization response", method: "POST", path: oauth.PathDeviceCode,
			body:       "client_id=sensor-1&client_secret=" + url.QueryEscape(sec) + "&scope=publish",
			wantStatus: 200, wantHeader: map[string]string{"Cache-Control": "no-store", "Pragma": "no-cache"}},
		{name: "introspection response", method: "POST", path: oauth.PathIntrospect, basic: [2]string{"resource-server", "rs-secret"},
			body: "token=" + token(), wantStatus: 200, wantHeader: map[string]string{"Cache-Control": "no-store", "Pragma": "no-cache"}},
		{name: "thing token endpoint", method: "POST", path: oauth.PathThingsPrefix + "*?_action=get_access_token", basic: [2]string{"sensor-1", sec},
			body: "", wantStatus: 200, wantHeader: map[string]string{"Cache-Control": "no-store", "Pragma": "no-cache"}},
		{name: "wrong Basic secret at the token endpoint", method: "POST", path: oauth.PathToken, basic: [2]string{"sensor-1", "wrong"},
			body: "grant_type=client_credentials", wantStatus: 401, wantError: "invalid_client",
			wantHeader: map[string]string{"WWW-Authenticate": `Basic realm="gatehouse"`}},
		{name: "wrong Basic secret at device authorization", method: "POST", path: oauth.PathDeviceCode, basic: [2]string{"sensor-1", "wrong"},
			body: "scope=publish", wantStatus: 401, wantError: "invalid_client",
			wantHeader: map[string]string{"WWW-Authenticate": `Basic realm="gatehouse"`}},
		{name: "wrong Basic secret at introspection", method: "POST", path: oauth.PathIntrospect, basic: [2]string{"resource-server", "wrong"},
			body: "token=x", wantStatus: 401, wantError: "invalid_client",
			wantHeader: map[string]string{"WWW-Authenticate": `Basic realm="gatehouse"`}},
		{name: "token exchange is not offered", method: "POST", path: oauth.PathToken, basic: [2]string{"sensor-1", sec},
			body:       "grant_type=urn:ietf:params:oauth:grant-type:token-exchange&subject_token=x&subject_token_type=urn:ietf:params:oauth:token-type:access_token",
			wantStatus: 400, wantError: "unsupported_grant_type"},
		{name: "an unknown grant type", method: "POST", path: oauth.PathToken, basic: [2]string{"sensor-1", sec},
			body: "grant_type=urn:example:nothing", wantStatus: 400, wantError: "unsupported_grant_type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, e.url(tt.path), strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if tt.body != "" || tt.method == "POST" {
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			if tt.basic[0] != "" {
				req.SetBasicAuth(tt.basic[0], tt.basic[1])
			}
			if strings.HasPrefix(tt.path, oauth.PathThingsPrefix) {
				req.Header.Set("Content-Type", "application/json")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if got := resp.StatusCode; got != tt.wantStatus {
				t.Errorf("status = %d, want %d (%s)", got, tt.wantStatus, raw)
			}
			if tt.wantError != "" {
				var body struct {
					Error string `json:"error"`
				}
				_ = json.Unmarshal(raw, &body)
				if body.Error != tt.wantError {
					t.Errorf("error = %q, want %q (%s)", body.Error, tt.wantError, raw)
				}
			}
			for h, want := range tt.wantHeader {
				if got := resp.Header.Get(h); got != want {
					t.Errorf("%s = %q, want %q", h, got, want)
				}
			}
		})
	}
}
