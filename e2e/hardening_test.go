package e2e

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// consoleSession signs in to the console as user and returns a client
// carrying the session cookie and the session's CSRF token.
func consoleSession(t *testing.T, s *server, user, password string) (*http.Client, string) {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Jar: jar}
	body, _ := json.Marshal(map[string]string{"username": user, "password": password})
	resp, err := c.Post(s.URL+"/console/api/login", "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sess struct {
		CSRFToken string `json:"csrfToken"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&sess); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("console login: %d %v", resp.StatusCode, err)
	}
	return c, sess.CSRFToken
}

// sessionRequest sends one request with the console session of c.
func sessionRequest(t *testing.T, c *http.Client, csrf, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-CSRF-Token", csrf)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestAWSKeysUnderTheOneAPI: /api/v1/aws-keys is part of the one admin
// API: the administrator's console session may list and create keys, and
// failed authentications there count against the same per-address limit
// (429 with Retry-After) as everywhere under /api/v1.
func TestAWSKeysUnderTheOneAPI(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--data-dir", t.TempDir())
	c, csrf := consoleSession(t, s, "admin", s.Pass)
	if code, body := sessionRequest(t, c, csrf, "GET", s.URL+"/api/v1/aws-keys", ""); code != http.StatusOK {
		t.Fatalf("GET /api/v1/aws-keys with the admin's console session: %d %s, want 200", code, body)
	}
	if code, body := sessionRequest(t, c, csrf, "POST", s.URL+"/api/v1/aws-keys", `{"name":"from-console"}`); code != http.StatusCreated {
		t.Fatalf("POST /api/v1/aws-keys with the admin's console session: %d %s, want 201", code, body)
	}
	// The default limits.apiAuthFailuresPerIP is 30/m.
	var last int
	for i := 0; i < 31; i++ {
		last, _ = curl(t, "GET", s.URL+"/api/v1/aws-keys", "ghat_wrong", "")
	}
	if last != http.StatusTooManyRequests {
		t.Fatalf("31st wrong token at /api/v1/aws-keys: %d, want 429", last)
	}
	if code, _ := curl(t, "GET", s.URL+"/api/v1/things", s.Token, ""); code != http.StatusTooManyRequests {
		t.Errorf("after the failures the address still reaches /api/v1/things: %d, want 429", code)
	}
}

// TestTLS12OffersAEADOnly: over TLS 1.2 the HTTPS and MQTTS listeners
// accept only AEAD cipher suites: a client offering only CBC-SHA1 suites
// fails the handshake, one offering an AEAD suite succeeds.
func TestTLS12OffersAEADOnly(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--data-dir", t.TempDir())
	cbc := []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
		tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
		tls.TLS_RSA_WITH_AES_128_CBC_SHA, tls.TLS_RSA_WITH_AES_256_CBC_SHA}
	aead := []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}
	for _, l := range []struct{ name, addr string }{{"https", s.HTTPS}, {"mqtts", s.MQTTS}} {
		if l.addr == "" {
			t.Fatalf("no %s listener in the banner", l.name)
		}
		for _, tc := range []struct {
			name   string
			suites []uint16
			ok     bool
		}{{"CBC-SHA1 only", cbc, false}, {"AEAD", aead, true}} {
			t.Run(l.name+"/"+tc.name, func(t *testing.T) {
				conn, err := tls.Dial("tcp", l.addr, &tls.Config{
					MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12, CipherSuites: tc.suites,
					InsecureSkipVerify: true, // only the cipher suite is under test
				})
				if err == nil {
					got := tls.CipherSuiteName(conn.ConnectionState().CipherSuite)
					conn.Close()
					if !tc.ok {
						t.Fatalf("handshake with %s succeeded using %s", tc.name, got)
					}
					return
				}
				if tc.ok {
					t.Fatalf("handshake with %s failed: %v", tc.name, err)
				}
			})
		}
	}
}

// TestBuiltInPoliciesKeepWhatTheyAreFor: a version of gatehouse-lobby or
// gatehouse-people that would deny what lobby devices or people need is
// refused with a clear error, whether saved as the default or made the
// default later, and neither policy can be deleted; a version that only
// adds statements is accepted.
func TestBuiltInPoliciesKeepWhatTheyAreFor(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--data-dir", t.TempDir())
	const denyAll = `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"iot:*","Resource":"*"}]}`
	for _, tc := range []struct{ policy, need, extended string }{
		{"gatehouse-lobby", "lobby devices", `{"Version":"2012-10-17","Statement":[
 {"Effect":"Allow","Action":"iot:Connect","Resource":"client/${iot:ClientId}"},
 {"Effect":"Allow","Action":"iot:Publish","Resource":"topic/$gatehouse/lobby/${iot:ClientId}/knock"},
 {"Effect":"Allow","Action":"iot:Subscribe","Resource":"topicfilter/$gatehouse/lobby/${iot:ClientId}/assignment"},
 {"Effect":"Allow","Action":"iot:Receive","Resource":"topic/$gatehouse/lobby/${iot:ClientId}/assignment"},
 {"Effect":"Allow","Action":"iot:Publish","Resource":"topic/$gatehouse/lobby/${iot:ClientId}/hello"}]}`},
		{"gatehouse-people", "people", `{"Version":"2012-10-17","Statement":[
 {"Effect":"Allow","Action":"iot:Connect","Resource":"client/${gatehouse:User.Name}~*"}]}`},
	} {
		t.Run(tc.policy, func(t *testing.T) {
			base := s.URL + "/api/v1/policies/" + tc.policy
			code, body := curl(t, "POST", base+"/versions", s.Token, `{"setAsDefault":true,"document":`+denyAll+`}`)
			if code != http.StatusBadRequest || !strings.Contains(body, "built-in") || !strings.Contains(body, tc.need) {
				t.Errorf("deny-all version as default: %d %s, want 400 naming the built-in policy and %s", code, body, tc.need)
			}
			// Saved aside, it cannot be made the default either.
			code, body = curl(t, "POST", base+"/versions", s.Token, `{"document":`+denyAll+`}`)
			if code != http.StatusCreated {
				t.Fatalf("deny-all version aside: %d %s", code, body)
			}
			var v struct {
				VersionID int64 `json:"versionId"`
			}
			if err := json.Unmarshal([]byte(body), &v); err != nil {
				t.Fatal(err)
			}
			code, body = curl(t, "PUT", base+"/default-version", s.Token, fmt.Sprintf(`{"versionId":%d}`, v.VersionID))
			if code != http.StatusBadRequest || !strings.Contains(body, "built-in") {
				t.Errorf("deny-all made the default: %d %s, want 400", code, body)
			}
			if code, body := curl(t, "DELETE", base, s.Token, ""); code != http.StatusConflict {
				t.Errorf("delete: %d %s, want 409", code, body)
			}
			code, body = curl(t, "GET", base, s.Token, "")
			if code != http.StatusOK || !strings.Contains(body, `"defaultVersionId":1`) {
				t.Errorf("after refused changes: %d %s, want default version 1", code, body)
			}
			if code, body := curl(t, "POST", base+"/versions", s.Token, `{"setAsDefault":true,"document":`+tc.extended+`}`); code != http.StatusCreated {
				t.Errorf("a version keeping what is needed: %d %s, want 201", code, body)
			}
		})
	}
}

// from sends a request as if from addr, through the trusted proxy the
// server is configured with (X-Forwarded-For).
func from(t *testing.T, c *http.Client, addr, method, u, contentType, body string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Forwarded-For", addr)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// guessCode is the nth of a run of distinct well-formed user codes that
// were never issued (user codes are 8 of 20 consonants).
func guessCode(n int) string {
	const alphabet = "BCDFGHJKLMNPQRSTVWXZ"
	code := []byte("ZZZZ-ZZZZ")
	for i := 8; i > 4 && n > 0; i-- {
		code[i] = alphabet[n%len(alphabet)]
		n /= len(alphabet)
	}
	return string(code)
}

// TestSignInLimits: the console login limit per address is the setting
// limits.consoleLoginPerIP; password guessing against one account spread
// over many addresses is slowed per account (429 with Retry-After for that
// account only); and 21 addresses guessing user codes on /device spend
// their own buckets, so a person at another address still signs in.
func TestSignInLimits(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "gatehouse.yaml")
	if err := os.WriteFile(cfgFile, []byte("http:\n  trustedProxies: [127.0.0.0/8]\nlimits:\n  consoleLoginPerIP: 3/m\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, "--data-dir", filepath.Join(dir, "data"), "--config", cfgFile)
	s.admin(t, "POST", "/api/v1/users", `{"username":"alice","password":"correct horse battery"}`, 201)
	s.admin(t, "POST", "/api/v1/users", `{"username":"bob","password":"bob's long password"}`, 201)
	c := &http.Client{}
	login := func(addr, user, pass string) (int, http.Header) {
		t.Helper()
		body, _ := json.Marshal(map[string]string{"username": user, "password": pass})
		code, h, _ := from(t, c, addr, "POST", s.URL+"/console/api/login", "application/json", string(body))
		return code, h
	}

	t.Run("console login per address is a setting", func(t *testing.T) {
		for i := range 3 {
			if code, _ := login("10.1.0.1", "nobody", "x"); code != http.StatusUnauthorized {
				t.Fatalf("attempt %d: %d, want 401", i+1, code)
			}
		}
		if code, h := login("10.1.0.1", "nobody", "x"); code != http.StatusTooManyRequests || h.Get("Retry-After") == "" {
			t.Fatalf("4th attempt from one address with consoleLoginPerIP 3/m: %d, want 429 with Retry-After", code)
		}
	})

	t.Run("guessing one account from many addresses", func(t *testing.T) {
		// The default: 5 failures free, then waits doubling from 1s.
		for i := range 6 {
			if code, _ := login(fmt.Sprintf("10.2.0.%d", i+1), "alice", "guess"); code != http.StatusUnauthorized {
				t.Fatalf("guess %d: %d, want 401", i+1, code)
			}
		}
		code, h := login("10.2.1.1", "alice", "correct horse battery")
		if code != http.StatusTooManyRequests || h.Get("Retry-After") != "1" {
			t.Errorf("right after 6 failures, from a new address: %d (Retry-After %q), want 429 with Retry-After 1", code, h.Get("Retry-After"))
		}
		if code, _ := login("10.2.1.2", "bob", "bob's long password"); code != http.StatusOK {
			t.Errorf("another account meanwhile: %d, want 200", code)
		}
	})

	t.Run("user code guessing from 21 addresses", func(t *testing.T) {
		status, da := postForm(t, s.URL+"/oauth2/device/code", url.Values{"client_id": {"gatehouse-cli"}, "scope": {"openid"}})
		if status != http.StatusOK {
			t.Fatalf("device code: %d %v", status, da)
		}
		jar, _ := cookiejar.New(nil)
		b := &http.Client{Jar: jar}
		_, _, page := from(t, b, "10.3.0.1", "GET", s.URL+"/device", "", "")
		m := csrfRE.FindStringSubmatch(page)
		if m == nil {
			t.Fatalf("device page has no csrf field:\n%s", page)
		}
		attempt := func(addr, code, user, pass string) int {
			form := url.Values{"csrf": {m[1]}, "step": {"login"}, "user_code": {code}, "username": {user}, "password": {pass}}
			status, _, _ := from(t, b, addr, "POST", s.URL+"/device", "application/x-www-form-urlencoded", form.Encode())
			return status
		}
		n := 0
		for a := range 21 {
			addr := fmt.Sprintf("10.3.1.%d", a+1)
			var last int
			for range 11 {
				n++
				last = attempt(addr, guessCode(n), "bob", "x")
			}
			if last != http.StatusTooManyRequests {
				t.Fatalf("address %s after 11 guesses: %d, want 429", addr, last)
			}
		}
		if got := attempt("10.3.2.1", da["user_code"].(string), "bob", "bob's long password"); got != http.StatusOK {
			t.Errorf("a person at another address after 21 guessing addresses: %d, want 200 (the consent page)", got)
		}
	})
}

// TestConfigCommandMasksSecrets: `gatehouse config` prints the effective
// configuration with every secret masked: adapter keys, the HS256 secret
// and the passwords of a PostgreSQL DSN (user info and query).
func TestConfigCommandMasksSecrets(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "gatehouse.yaml")
	yaml := "store:\n  dsn: postgres://gh:sentinel-user-pw@db/gh?sslmode=verify-full&password=sentinel-query-pw&sslpassword=sentinel-ssl-pw\n" +
		"authorizer:\n  keys: [sentinel-adapter-key]\n"
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), binary, "config", "--config", cfgFile, "--data-dir", dir)
	cmd.Env = append(os.Environ(), "GATEHOUSE_OAUTH_ALGORITHM=HS256", "GATEHOUSE_OAUTH_HS256_SECRET=sentinel-hs256-secret-0123456789abcdef")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("gatehouse config: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "sslmode=verify-full") {
		t.Fatalf("gatehouse config lost the DSN:\n%s", out)
	}
	for _, s := range []string{"sentinel-user-pw", "sentinel-query-pw", "sentinel-ssl-pw", "sentinel-adapter-key", "sentinel-hs256-secret"} {
		if strings.Contains(string(out), s) {
			t.Errorf("gatehouse config shows %s:\n%s", s, out)
		}
	}
}
