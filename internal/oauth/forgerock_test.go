package oauth_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/oauth"
	"github.com/gatehouse-iot/gatehouse/internal/store/storetest"
)

// TestAMSession: the /am zero-page login for things and people, and the
// session token at /am/json/things/* until it expires (AMSessionTTL, on
// the injected clock).
func TestAMSession(t *testing.T) {
	e := newEnv(t, storetest.Drivers()[0].DSN(t))
	login := func(user, pass string) (int, map[string]any) {
		req, _ := http.NewRequest("POST", e.url("/am/json/realms/root/authenticate"), nil)
		req.Header.Set("X-OpenAM-Username", user)
		req.Header.Set("X-OpenAM-Password", pass)
		return e.do(req)
	}
	thingToken := func(session string) (int, map[string]any) {
		req, _ := http.NewRequest("POST", e.url("/am/json/things/*?_action=get_access_token"), strings.NewReader(`{"scope":["publish"]}`))
		req.AddCookie(&http.Cookie{Name: oauth.AMSessionCookie, Value: session})
		return e.do(req)
	}
	tests := []struct {
		name, user, pass string
		wantLogin        int
		wantToken        int
	}{
		{"thing with its secret", "sensor-1", e.secrets["sensor-1"], 200, 200},
		{"thing with another's secret", "sensor-1", e.secrets["sensor-2"], 401, 0},
		{"person with a password", "alice", "correct horse", 200, 400},
		{"person with a wrong password", "alice", "wrong", 401, 0},
		{"no such name", "nobody", "x", 401, 0},
		{"no password", "sensor-1", "", 401, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := login(tc.user, tc.pass)
			if code != tc.wantLogin {
				t.Fatalf("login = %d %v, want %d", code, body, tc.wantLogin)
			}
			if code != 200 {
				if body["tokenId"] != nil {
					t.Errorf("a refused login answered a tokenId: %v", body)
				}
				return
			}
			if body["realm"] != "/" || body["successUrl"] == nil {
				t.Errorf("login = %v", body)
			}
			if code, tok := thingToken(body["tokenId"].(string)); code != tc.wantToken {
				t.Errorf("things/* = %d %v, want %d", code, tok, tc.wantToken)
			}
		})
	}

	_, body := login("sensor-1", e.secrets["sensor-1"])
	session := body["tokenId"].(string)
	e.clock.Advance(oauth.AMSessionTTL - time.Second)
	if code, tok := thingToken(session); code != 200 {
		t.Fatalf("session a second before expiry: %d %v", code, tok)
	}
	e.clock.Advance(time.Second)
	if code, tok := thingToken(session); code != 401 || tok["error"] != "invalid_client" {
		t.Errorf("expired session = %d %v, want 401 invalid_client", code, tok)
	}
}

// TestAMDeviceCodeAnswer: the OpenAM device/code path adds
// verification_url and drops ?realm=; other query parameters are refused
// as at /oauth2/device/code.
func TestAMDeviceCodeAnswer(t *testing.T) {
	e := newEnv(t, storetest.Drivers()[0].DSN(t))
	post := func(path string) (int, map[string]any) {
		resp, err := http.Post(e.url(path), "application/x-www-form-urlencoded", strings.NewReader("client_id=gatehouse-cli&scope=openid"))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		return resp.StatusCode, m
	}
	tests := []struct {
		path   string
		want   int
		hasURL bool
	}{
		{"/am/oauth2/device/code?realm=awsiot", 200, true},
		{"/am/oauth2/realms/root/device/code", 200, true},
		{"/am/oauth2/device/code?scope=openid", 400, false},
		{"/oauth2/device/code", 200, false},
	}
	for _, tc := range tests {
		code, m := post(tc.path)
		if code != tc.want || (m["verification_url"] != nil) != tc.hasURL || (tc.hasURL && m["verification_url"] != m["verification_uri"]) {
			t.Errorf("POST %s = %d %v, want %d with verification_url %v", tc.path, code, m, tc.want, tc.hasURL)
		}
	}
}
