package e2e

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

// TestEventsHoldNoSecrets triggers every kind of event that handles a
// secret (passwords, thing client secrets, access and device codes,
// registration tokens and the keys they buy, admin API tokens, wrong
// secrets offered by attackers) and scans the whole event log, details,
// subjects and actors, for any of them.
func TestEventsHoldNoSecrets(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--data-dir", t.TempDir())
	secrets := map[string]string{"bootstrap admin token": s.Token, "bootstrap admin password": s.Pass}

	s.admin(t, "POST", "/api/v1/thing-types", `{"name":"meter","scopes":["read","publish"],"approverRelation":"owner"}`, 201)
	s.admin(t, "POST", "/api/v1/things", `{"name":"meter-1","thingType":"meter"}`, 201)
	secrets["first thing secret"] = s.admin(t, "POST", "/api/v1/things/meter-1/secret", "", 201)["clientSecret"].(string)
	secret := s.admin(t, "POST", "/api/v1/things/meter-1/secret", "", 201)["clientSecret"].(string)
	secrets["rotated thing secret"] = secret

	const pw1, pw2 = "correct horse battery staple", "tr0ub4dor&3 but longer"
	secrets["user password"], secrets["changed password"] = pw1, pw2
	s.admin(t, "POST", "/api/v1/users", `{"username":"carol","password":"`+pw1+`"}`, 201)
	s.admin(t, "PATCH", "/api/v1/users/carol", `{"password":"`+pw2+`"}`, 200)

	op := s.admin(t, "POST", "/api/v1/api-tokens", `{"name":"ops","roles":["operator"]}`, 201)
	secrets["operator API token"] = op["token"].(string)
	s.admin(t, "DELETE", "/api/v1/api-tokens/"+op["id"].(string), "", 204)

	regTok := s.admin(t, "POST", "/api/v1/registration-tokens", `{"thingType":"meter","maxUses":1}`, 201)["token"].(string)
	secrets["registration token"] = regTok
	req, _ := http.NewRequest("POST", s.URL+"/register", strings.NewReader(`{"thingName":"meter-2","version":"1.0"}`))
	req.Header.Set("Authorization", "DeviceToken "+regTok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var reg map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&reg)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("register = %d %v", resp.StatusCode, reg)
	}
	kp := reg["certificateData"].(map[string]any)["key_pair"].(map[string]any)
	secrets["registered device private key"] = kp["private_key"].(string)
	// A second use of the spent token, and a made-up one.
	for _, tok := range []string{regTok, "ghrt_made-up-registration-token-0123456789"} {
		req, _ := http.NewRequest("POST", s.URL+"/register", strings.NewReader(`{"thingName":"meter-3"}`))
		req.Header.Set("Authorization", "DeviceToken "+tok)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}
	secrets["made-up registration token"] = "ghrt_made-up-registration-token-0123456789"

	at := clientCredentials(t, s, "meter-1", secret, "read")
	secrets["access token"] = at
	const wrong = "wrong-secret-an-attacker-tried-0123456789"
	secrets["wrong client secret"] = wrong
	postForm(t, s.URL+"/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {"meter-1"}, "client_secret": {wrong}})
	postForm(t, s.URL+"/oauth2/revoke", url.Values{"token": {at}, "client_id": {"meter-1"}, "client_secret": {secret}})

	code, da := postForm(t, s.URL+"/oauth2/device/code", url.Values{"client_id": {"meter-1"}, "client_secret": {secret}, "scope": {"publish"}})
	if code == 200 {
		dc, _ := da["device_code"].(string)
		secrets["device code"] = dc
		postForm(t, s.URL+"/oauth2/token", url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {dc}, "client_id": {"meter-1"}, "client_secret": {secret}})
	} else {
		t.Logf("device authorization = %d %v (skipped)", code, da)
	}
	// Bad bearer tokens at the admin API and the HTTPS publish endpoint.
	const badBearer = "ghat_not-a-real-token-but-secret-looking-0123"
	secrets["bad admin bearer"] = badBearer
	curl(t, "GET", s.URL+"/api/v1/things", badBearer, "")
	curl(t, "POST", s.URL+"/topics/meters/x", at, "{}")
	s.admin(t, "DELETE", "/api/v1/things/meter-1/secret", "", 204)

	// Scan every event.
	after, n, types := "", 0, map[string]bool{}
	for {
		u := s.URL + "/api/v1/events?limit=1000"
		if after != "" {
			u += "&after=" + after
		}
		code, body := curl(t, "GET", u, s.Token, "")
		if code != 200 {
			t.Fatalf("GET events = %d %s", code, body)
		}
		var page struct {
			Items []struct {
				ID      int64           `json:"id"`
				Type    string          `json:"type"`
				Subject string          `json:"subject"`
				Actor   string          `json:"actor"`
				Details json.RawMessage `json:"details"`
			} `json:"items"`
		}
		if err := json.Unmarshal([]byte(body), &page); err != nil {
			t.Fatal(err)
		}
		if len(page.Items) == 0 {
			break
		}
		for _, ev := range page.Items {
			n++
			types[ev.Type] = true
			text := ev.Type + " " + ev.Subject + " " + ev.Actor + " " + string(ev.Details)
			for what, sec := range secrets {
				for _, needle := range needles(sec) {
					if strings.Contains(text, needle) {
						t.Errorf("event %d (%s) contains the %s: %s", ev.ID, ev.Type, what, text)
					}
				}
			}
		}
		after = strconv.FormatInt(page.Items[len(page.Items)-1].ID, 10)
	}
	for _, want := range []string{"thing.secret_set", "thing.secret_removed", "user.created", "user.updated", "apitoken.created",
		"apitoken.revoked", "token.revoked", "registration_token.created", "thing.registered", "certificate.issued"} {
		if !types[want] {
			t.Errorf("no %s event: the test no longer covers it", want)
		}
	}
	t.Logf("scanned %d events of %d types (%v) for %d secrets", n, len(types), types, len(secrets))
	for _, sec := range secrets {
		if strings.Contains(s.Stderr(), sec) {
			t.Errorf("the server log contains a secret")
		}
	}
}

// needles are the secret and, for long ones, its last 24 characters, so
// a secret stored with a changed prefix is caught too.
func needles(secret string) []string {
	if secret == "" {
		return nil
	}
	out := []string{secret}
	if len(secret) >= 40 {
		out = append(out, secret[len(secret)-24:])
	}
	for _, line := range strings.Split(secret, "\n") {
		if len(line) >= 40 && !strings.HasPrefix(line, "-----") {
			out = append(out, line) // a line of a PEM block
		}
	}
	return out
}
