package e2e

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/testenv"
)

// admin sends an admin API request and decodes the JSON answer.
func (s *server) admin(t *testing.T, method, path, body string, want int) map[string]any {
	t.Helper()
	code, out := curl(t, method, s.URL+path, s.Token, body)
	if code != want {
		t.Fatalf("%s %s = %d %s, want %d", method, path, code, out, want)
	}
	var m map[string]any
	_ = json.Unmarshal([]byte(out), &m)
	return m
}

// mosquitto runs mosquitto_pub or mosquitto_sub against the server.
func mosquitto(t *testing.T, ctx context.Context, tool string, s *server, args ...string) (string, error) {
	t.Helper()
	path, err := exec.LookPath(tool)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s not installed; .ci/run installs mosquitto-clients", tool)
		}
		t.Skipf("%s not installed (apt-get install mosquitto-clients)", tool)
	}
	host, port, _ := strings.Cut(s.MQTT, ":")
	cmd := exec.CommandContext(ctx, path, append([]string{"-h", host, "-p", port}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	return out.String(), err
}

// setupBot creates the seed 003 world: a thing type allowing the publish
// scope, a policy letting things publish to "test" under their own client
// id, the thing thingymabot with a secret, and a dashboard thing that may
// read "test".
func setupBot(t *testing.T, s *server) (botSecret, dashSecret string) {
	t.Helper()
	s.admin(t, "POST", "/api/v1/policies", `{"name":"publish-test","document":{"Version":"2012-10-17","Statement":[
	  {"Effect":"Allow","Action":"iot:Connect","Resource":"arn:aws:iot:*:*:client/${iot:Connection.Thing.ThingName}"},
	  {"Effect":"Allow","Action":"iot:Publish","Resource":"arn:aws:iot:*:*:topic/test"}]}}`, 201)
	s.admin(t, "POST", "/api/v1/policies", `{"name":"read-test","document":{"Version":"2012-10-17","Statement":[
	  {"Effect":"Allow","Action":"iot:Connect","Resource":"client/${iot:Connection.Thing.ThingName}"},
	  {"Effect":"Allow","Action":["iot:Subscribe","iot:Receive"],"Resource":["topicfilter/test","topic/test","topicfilter/forbidden","topic/forbidden"]}]}}`, 201)
	s.admin(t, "POST", "/api/v1/thing-types", `{"name":"bot","scopes":["publish"],"defaultPolicies":["publish-test"]}`, 201)
	s.admin(t, "POST", "/api/v1/thing-types", `{"name":"dashboard","scopes":["read"],"defaultPolicies":["read-test"]}`, 201)
	s.admin(t, "POST", "/api/v1/things", `{"name":"thingymabot","thingType":"bot"}`, 201)
	s.admin(t, "POST", "/api/v1/things", `{"name":"dash","thingType":"dashboard"}`, 201)
	botSecret = s.admin(t, "POST", "/api/v1/things/thingymabot/secret", "", 201)["clientSecret"].(string)
	dashSecret = s.admin(t, "POST", "/api/v1/things/dash/secret", "", 201)["clientSecret"].(string)
	return botSecret, dashSecret
}

// thingToken uses the ForgeRock-style things endpoint, as in seed 003.
func thingToken(t *testing.T, s *server, thing, secret string, scopes ...string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"scope": scopes})
	req, _ := http.NewRequest("POST", s.URL+"/things/"+thing+"?_action=get_access_token", bytes.NewReader(body))
	req.SetBasicAuth(thing, secret)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || json.Unmarshal(raw, &out) != nil || out["access_token"] == nil {
		t.Fatalf("things endpoint = %d %s", resp.StatusCode, raw)
	}
	return out["access_token"].(string)
}

// TestSeed003TokenAsMQTTPassword is seed 003: a thing gets an access token
// with the publish scope and publishes with mosquitto_pub, the token as
// MQTT password; the broker verifies it locally and applies policy.
func TestSeed003TokenAsMQTTPassword(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--data-dir", t.TempDir())
	botSecret, dashSecret := setupBot(t, s)
	accessToken := thingToken(t, s, "thingymabot", botSecret, "publish")

	// The CLI gets the dashboard its token with client credentials.
	out, errOut, err := s.cli(t, "", "token", "--client-id", "dash", "--client-secret", dashSecret, "--scope", "read")
	if err != nil {
		t.Fatalf("gatehouse token: %v %s", err, errOut)
	}
	dashToken := strings.TrimSpace(out)
	if strings.Count(dashToken, ".") != 2 {
		t.Fatalf("gatehouse token printed %q, want the access token", out)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	subOut := make(chan string, 1)
	go func() {
		o, _ := mosquitto(t, ctx, "mosquitto_sub", s, "-t", "test", "-t", "forbidden", "-i", "dash", "-u", "dash", "-P", dashToken, "-C", "3", "-W", "30", "-v")
		subOut <- o
	}()
	// The subscription is in place once the broker counts it.
	waitMetric(t, s, "gatehouse_mqtt_subscriptions", 1)
	for i, v := range []string{"311", "5", "31"} {
		msg := "Time now is " + time.Now().UTC().Format(time.RFC3339) + " #" + string(rune('1'+i))
		if o, err := mosquitto(t, ctx, "mosquitto_pub", s, "-V", v, "-t", "test", "-i", "thingymabot", "-u", "thingymabot", "-P", accessToken, "-m", msg); err != nil {
			t.Errorf("mosquitto_pub -V %s: %v %s", v, err, o)
		}
		// Each mosquitto_pub uses the same client id: the next one's
		// CONNECT takes the session over, and could end this connection
		// before the broker has read the QoS 0 PUBLISH it sent. Wait for
		// the delivery to the subscriber (the only one) first.
		waitMetric(t, s, "gatehouse_mqtt_messages_sent_total", float64(i+1))
	}
	// Denied: another topic (v3.1.1 QoS 1 gets disconnected), a wrong
	// password, another thing's client id.
	if o, err := mosquitto(t, ctx, "mosquitto_pub", s, "-q", "1", "-t", "forbidden", "-i", "thingymabot", "-u", "thingymabot", "-P", accessToken, "-m", "x"); err == nil {
		t.Errorf("publish to a forbidden topic succeeded: %s", o)
	}
	if o, err := mosquitto(t, ctx, "mosquitto_pub", s, "-t", "test", "-i", "thingymabot", "-u", "thingymabot", "-P", "5tr0ngG3n3r@ted", "-m", "x"); err == nil || !strings.Contains(o, "Connection Refused: bad user name or password.") {
		t.Errorf("wrong password: err %v, output %q, want MQTT 3.1.1 return code 4, bad user name or password", err, o)
	}
	if o, err := mosquitto(t, ctx, "mosquitto_pub", s, "-t", "test", "-i", "dash", "-P", accessToken, "-m", "x"); err == nil {
		t.Errorf("publishing as another client id succeeded: %s", o)
	}
	got := <-subOut
	if n := strings.Count(got, "test Time now is"); n != 3 || strings.Contains(got, "forbidden") {
		t.Errorf("subscriber got:\n%s\nwant the three messages on test only", got)
	}
	// The broker's counters show what happened.
	_, metrics := curl(t, "GET", s.URL+"/metrics", "", "")
	for _, want := range []string{`gatehouse_mqtt_connects_total{result="accepted"}`, `gatehouse_mqtt_connects_total{result="refused"}`,
		`gatehouse_mqtt_denied_total{action="iot:Publish"}`, "gatehouse_mqtt_messages_received_total", "gatehouse_mqtt_clients_connected",
		`gatehouse_oauth_tokens_issued_total{grant="client_credentials"} 2`, "gatehouse_mqtt_events_dropped_total 0"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// Introspection through the CLI shows the token active with its thing.
	out, errOut, err = s.cli(t, "", "introspect", "--client-id", "thingymabot", "--client-secret", botSecret, accessToken)
	if err != nil || !strings.Contains(out, `"active": true`) || !strings.Contains(out, "thingymabot") {
		t.Errorf("gatehouse introspect: %v %s %s", err, out, errOut)
	}
}

var (
	csrfRE    = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	codeRE    = regexp.MustCompile(`name="user_code" value="([^"]+)"`)
	consentRE = regexp.MustCompile(`name="consent" value="([^"]+)"`)
)

// approveInBrowser plays the person at the verification page: open the
// complete URI, log in, check that the consent page shows each of
// consentShows (the thing, its scopes), approve.
func approveInBrowser(t *testing.T, s *server, uri, user, pass string, consentShows ...string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	b := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	get := func(method, u string, form url.Values) string {
		t.Helper()
		var resp *http.Response
		var err error
		if method == "GET" {
			resp, err = b.Get(u)
		} else {
			resp, err = b.PostForm(u, form)
		}
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s %s = %d\n%s", method, u, resp.StatusCode, raw)
		}
		return string(raw)
	}
	page := get("GET", uri, nil)
	match := func(re *regexp.Regexp, html string) string {
		m := re.FindStringSubmatch(html)
		if m == nil {
			t.Fatalf("page lacks %s:\n%s", re, html)
		}
		return m[1]
	}
	csrf, code := match(csrfRE, page), match(codeRE, page)
	page = get("POST", s.URL+"/device", url.Values{"csrf": {csrf}, "step": {"login"}, "user_code": {code}, "username": {user}, "password": {pass}})
	for _, want := range consentShows {
		if !strings.Contains(page, want) {
			t.Errorf("consent page does not show %q:\n%s", want, page)
		}
	}
	get("POST", s.URL+"/device", url.Values{"csrf": {csrf}, "step": {"decide"}, "user_code": {code}, "consent": {match(consentRE, page)}, "action": {"approve"}})
}

func postForm(t *testing.T, u string, form url.Values) (int, map[string]any) {
	t.Helper()
	resp, err := http.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

// TestSeed001DeviceFlowCustomAuthorizer is seed 001: an input-limited
// device runs the device authorization grant, a person approves it on the
// verification page, and the device publishes over HTTPS through a custom
// authorizer with a token signature; Deny answers 403.
func TestSeed001DeviceFlowCustomAuthorizer(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--data-dir", t.TempDir())
	s.admin(t, "POST", "/api/v1/thing-types", `{"name":"tv","scopes":["publish"],"approverRelation":"owner"}`, 201)
	s.admin(t, "POST", "/api/v1/things", `{"name":"deviceagent","thingType":"tv"}`, 201)
	secret := s.admin(t, "POST", "/api/v1/things/deviceagent/secret", "", 201)["clientSecret"].(string)
	s.admin(t, "POST", "/api/v1/users", `{"username":"alice","password":"correct horse battery"}`, 201)
	s.admin(t, "POST", "/api/v1/policies", `{"name":"publish-customauth","document":{"Version":"2012-10-17","Statement":[
	  {"Effect":"Allow","Action":"iot:Publish","Resource":"topic/customauthtesting"}]}}`, 201)
	s.admin(t, "POST", "/api/v1/policies/publish-customauth/attachments", `{"targetKind":"scope","target":"publish"}`, 201)

	// The device asks for a code (it is a confidential client: it
	// authenticates here too).
	code, da := postForm(t, s.URL+"/oauth2/device/code", url.Values{"client_id": {"deviceagent"}, "client_secret": {secret}, "scope": {"publish"}})
	if code != 200 || da["user_code"] == nil || da["verification_uri_complete"] == nil {
		t.Fatalf("device code = %d %v", code, da)
	}
	poll := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {da["device_code"].(string)}, "client_id": {"deviceagent"}, "client_secret": {secret}}
	if code, body := postForm(t, s.URL+"/oauth2/token", poll); code != 400 || body["error"] != "authorization_pending" {
		t.Errorf("poll before approval = %d %v, want authorization_pending", code, body)
	}
	approveInBrowser(t, s, da["verification_uri_complete"].(string), "alice", "correct horse battery", "deviceagent", "publish")
	var tok map[string]any
	for i := 0; i < 10; i++ {
		var code int
		code, tok = postForm(t, s.URL+"/oauth2/token", poll)
		if code == 200 {
			break
		}
		if tok["error"] != "slow_down" && tok["error"] != "authorization_pending" {
			t.Fatalf("poll = %d %v", code, tok)
		}
		time.Sleep(time.Duration(5+i) * time.Second / 5) // the interval the server asks for (device flow under test)
	}
	accessToken, _ := tok["access_token"].(string)
	if accessToken == "" || tok["refresh_token"] == nil {
		t.Fatalf("no tokens after approval: %v", tok)
	}
	rels := s.admin(t, "GET", "/api/v1/relationships?object=deviceagent", "", 200)
	if got := jsonString(rels); !strings.Contains(got, `"relation":"owner"`) || !strings.Contains(got, `"subject":"alice"`) {
		t.Errorf("approval did not record alice as owner: %v", rels)
	}

	// The custom authorizer, set up as in the seed with an RSA key pair.
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	pub, _ := json.Marshal(string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})))
	s.admin(t, "POST", "/api/v1/authorizers", `{"authorizerName":"iot-openam-authorizer","tokenKeyName":"token","tokenSigningPublicKeys":{"FIRST_KEY":`+string(pub)+`},"default":true}`, 201)
	sign := func(tok string) string { // echo -n TOKEN | openssl dgst -sha256 -sign private.pem | openssl base64
		sum := sha256.Sum256([]byte(tok))
		sig, _ := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
		return base64.StdEncoding.EncodeToString(sig)
	}
	publish := func(topic, sig, tok string) int {
		req, _ := http.NewRequest("POST", s.URL+"/topics/"+topic, strings.NewReader("Test message from openam protected device"))
		req.Header.Set("X-Amz-CustomAuthorizer-Name", "iot-openam-authorizer")
		req.Header.Set("X-Amz-CustomAuthorizer-Signature", sig)
		req.Header.Set("token", tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	tests := []struct {
		name, topic, sig, tok string
		want                  int
	}{
		{"allowed", "customauthtesting", sign(accessToken), accessToken, 200},
		{"policy denies the topic", "elsewhere", sign(accessToken), accessToken, 403},
		{"signature of another token", "customauthtesting", sign("x"), accessToken, 401},
		{"not a token", "customauthtesting", sign("garbage"), "garbage", 401},
	}
	for _, tc := range tests {
		if got := publish(tc.topic, tc.sig, tc.tok); got != tc.want {
			t.Errorf("%s: POST /topics/%s = %d, want %d", tc.name, tc.topic, got, tc.want)
		}
	}
	// Refresh rotates; reusing the old refresh token is refused.
	refresh := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}, "client_id": {"deviceagent"}, "client_secret": {secret}}
	if code, body := postForm(t, s.URL+"/oauth2/token", refresh); code != 200 || body["refresh_token"] == tok["refresh_token"] {
		t.Errorf("refresh = %d %v", code, body)
	}
	if code, body := postForm(t, s.URL+"/oauth2/token", refresh); code != 400 || body["error"] != "invalid_grant" {
		t.Errorf("refresh token reuse = %d %v, want invalid_grant", code, body)
	}
	evs := s.admin(t, "GET", "/api/v1/events?type=device.", "", 200)
	if !strings.Contains(jsonString(evs), "device.approved") {
		t.Errorf("no device.approved event: %v", evs)
	}
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// waitMetric waits until the server's /metrics reports name (unlabelled) at
// or above min.
func waitMetric(t *testing.T, s *server, name string, min float64) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, fmt.Sprintf("%s reaching %v", name, min), func() bool {
		_, body := curl(t, "GET", s.URL+"/metrics", "", "")
		for _, line := range strings.Split(body, "\n") {
			if v, ok := strings.CutPrefix(line, name+" "); ok {
				if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil && f >= min {
					return true
				}
			}
		}
		return false
	})
}
