package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
	"github.com/gatehouse-iot/gatehouse/internal/testenv"
)

// lampPolicy lets a lamp connect as itself, publish its telemetry and read
// its commands.
const lampPolicy = `{"name":"lamp","document":{"Version":"2012-10-17","Statement":[
  {"Effect":"Allow","Action":"iot:Connect","Resource":"client/${iot:Connection.Thing.ThingName}"},
  {"Effect":"Allow","Action":"iot:Publish","Resource":"topic/things/${iot:Connection.Thing.ThingName}/telemetry/*"},
  {"Effect":"Allow","Action":"iot:Subscribe","Resource":"topicfilter/things/${iot:Connection.Thing.ThingName}/commands/*"},
  {"Effect":"Allow","Action":"iot:Receive","Resource":"topic/things/${iot:Connection.Thing.ThingName}/commands/*"}]}}`

const consoleRedirect = "http://127.0.0.1:8765/callback"

// TestPeopleAndTheirDevices is the walkthrough (docs/walkthroughs/people.md) "People and their
// devices (seed 000)": alice owns lamp-1 and bob views it; alice signs in
// to a registered app with the authorization code flow and PKCE, bob with
// the device flow; both use their tokens as MQTT passwords. Alice reads
// lamp-1's telemetry and commands it, bob only reads, and lamp-2's
// telemetry reaches neither.
func TestPeopleAndTheirDevices(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--data-dir", t.TempDir())
	s.admin(t, "GET", "/api/v1/policies/gatehouse-people", "", 200)
	s.admin(t, "POST", "/api/v1/policies", lampPolicy, 201)
	run := func(stdin string, args ...string) string {
		t.Helper()
		out, errOut, err := s.cli(t, stdin, args...)
		if err != nil {
			t.Fatalf("gatehouse %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
		}
		return out
	}
	run("", "thing-types", "create", "lamp", "--scopes", "mqtt", "--default-policies", "lamp")
	for _, name := range []string{"lamp-1", "lamp-2"} {
		run("", "things", "create", name, "--type", "lamp")
	}
	run("alice-password-1\n", "users", "create", "alice", "--password-stdin")
	run("bob-password-12\n", "users", "create", "bob", "--password-stdin")
	run("", "relationships", "add", "user", "alice", "owner", "thing", "lamp-1")
	run("", "relationships", "add", "user", "bob", "viewer", "thing", "lamp-1")
	var app struct {
		ClientID     string `json:"clientId"`
		Public       bool   `json:"public"`
		ClientSecret string `json:"clientSecret"`
	}
	if err := json.Unmarshal([]byte(run("", "apps", "create", "console", "--public", "--redirect-uri", consoleRedirect)), &app); err != nil || app.ClientID != "app.console" || !app.Public || app.ClientSecret != "" {
		t.Fatalf("apps create = %+v, %v", app, err)
	}
	if out := run("", "apps", "list"); !strings.Contains(out, `"app.console"`) {
		t.Errorf("apps list does not show the app:\n%s", out)
	}
	if code, out := curl(t, "POST", s.URL+"/api/v1/apps", s.Token, `{"name":"bad","public":true,"grantTypes":["password"],"redirectUris":["http://evil.example/cb"]}`); code != 400 {
		t.Errorf("invalid app = %d %s, want 400", code, out)
	}

	aliceToken := authCodePKCE(t, s, app.ClientID, "alice", "alice-password-1")
	bobToken := deviceFlowToken(t, s, "bob", "bob-password-12")
	if claims := jwtClaims(t, aliceToken); claims["sub"] != "alice" || claims["gatehouse:kind"] != "user" || claims["client_id"] != "app.console" {
		t.Errorf("alice's token claims = %v", claims)
	}

	lampSecret := func(name string) string {
		return s.admin(t, "POST", "/api/v1/things/"+name+"/secret", "", 201)["clientSecret"].(string)
	}
	lamp1 := mqttClient(t, s, "lamp-1", "lamp-1", thingToken(t, s, "lamp-1", lampSecret("lamp-1"), "mqtt"))
	lamp2 := mqttClient(t, s, "lamp-2", "lamp-2", thingToken(t, s, "lamp-2", lampSecret("lamp-2"), "mqtt"))
	alice := mqttClient(t, s, "alice~phone", "alice", aliceToken)
	bob := mqttClient(t, s, "bob~tablet", "bob", bobToken)
	if _, code := tryMQTT(t, s, "lamp-1", "alice", aliceToken); code != 0x87 {
		t.Errorf("alice connecting as lamp-1 = %#x, want 0x87", code)
	}

	for _, c := range []struct {
		who    string
		m      *mqttPeer
		filter string
		want   byte
	}{
		{"lamp-1", lamp1, "things/lamp-1/commands/#", 1},
		{"alice", alice, "things/lamp-1/telemetry/#", 1},
		{"alice", alice, "things/lamp-2/telemetry/#", 0x87},
		{"alice", alice, "things/+/telemetry/#", 0x87},
		{"bob", bob, "things/lamp-1/telemetry/#", 1},
	} {
		if got := c.m.subscribe(t, c.filter); got != c.want {
			t.Errorf("%s subscribe %s = %#x, want %#x", c.who, c.filter, got, c.want)
		}
	}
	if got := lamp2.publish(t, "things/lamp-2/telemetry/temp", "lamp-2 says 19"); got != 0 {
		t.Fatalf("lamp-2 publish = %#x", got)
	}
	if got := lamp1.publish(t, "things/lamp-1/telemetry/temp", "lamp-1 says 21"); got != 0 {
		t.Fatalf("lamp-1 publish = %#x", got)
	}
	alice.waitFor(t, "things/lamp-1/telemetry/temp")
	bob.waitFor(t, "things/lamp-1/telemetry/temp")
	if alice.got("things/lamp-2/telemetry/temp") || bob.got("things/lamp-2/telemetry/temp") {
		t.Error("lamp-2's telemetry reached a person with no relationship to it")
	}
	if got := alice.publish(t, "things/lamp-1/commands/power", "on"); got != 0 {
		t.Errorf("alice's command = %#x, want 0", got)
	}
	lamp1.waitFor(t, "things/lamp-1/commands/power")
	if got := bob.publish(t, "things/lamp-1/commands/power", "off"); got != 0x87 {
		t.Errorf("bob's command = %#x, want 0x87 (viewers only read)", got)
	}
	if got := alice.publish(t, "things/lamp-2/commands/power", "on"); got != 0x87 {
		t.Errorf("alice's command to lamp-2 = %#x, want 0x87", got)
	}

	if out := run("", "policies", "simulate", "iot:Publish", "things/lamp-1/commands/power", "--user", "bob", "--client-id", "bob~tablet"); !strings.Contains(out, `"allowed": false`) && !strings.Contains(out, `"allowed":false`) {
		t.Errorf("simulate bob's command:\n%s", out)
	}
	if out := run("", "policies", "simulate", "iot:Publish", "things/lamp-1/commands/power", "--user", "alice", "--client-id", "alice~phone"); !strings.Contains(out, `"allowed": true`) && !strings.Contains(out, `"allowed":true`) {
		t.Errorf("simulate alice's command:\n%s", out)
	}

	// Taking the relationship away applies to the live connection.
	run("", "relationships", "remove", "user", "bob", "viewer", "thing", "lamp-1")
	testenv.Eventually(t, 10*time.Second, "bob's subscription refused after the relationship was removed", func() bool {
		return bob.subscribe(t, "things/lamp-1/telemetry/#") == 0x87
	})
}

// authCodePKCE signs a person in to a public app: the authorization code
// flow with PKCE (S256), driven as a browser would with plain HTTP.
func authCodePKCE(t *testing.T, s *server, clientID, user, pass string) string {
	t.Helper()
	verifier := base64.RawURLEncoding.EncodeToString([]byte(strings.Repeat("pkce-verifier-", 4)))
	sum := sha256.Sum256([]byte(verifier))
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	q := url.Values{"client_id": {clientID}, "redirect_uri": {consoleRedirect}, "response_type": {"code"}, "scope": {"openid offline_access"},
		"state": {"xyz"}, "code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}}
	resp, err := browser.Get(s.URL + "/oauth2/authorize?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	login := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || !strings.Contains(login, "/login?id=") {
		t.Fatalf("authorize = %d, Location %q", resp.StatusCode, login)
	}
	resp, err = browser.Get(login)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	find := func(re string) string {
		m := regexp.MustCompile(re).FindSubmatch(page)
		if m == nil {
			t.Fatalf("login page lacks %s:\n%s", re, page)
		}
		return string(m[1])
	}
	resp, err = browser.PostForm(s.URL+"/login", url.Values{"csrf": {find(`name="csrf" value="([^"]+)"`)}, "id": {find(`name="id" value="([^"]+)"`)},
		"username": {user}, "password": {pass}, "action": {"approve"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	back, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || err != nil || back.Query().Get("state") != "xyz" || back.Query().Get("code") == "" {
		t.Fatalf("login = %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	code, tok := postForm(t, s.URL+"/oauth2/token", url.Values{"grant_type": {"authorization_code"}, "code": {back.Query().Get("code")},
		"redirect_uri": {consoleRedirect}, "client_id": {clientID}, "code_verifier": {verifier}})
	if code != 200 || tok["access_token"] == nil || tok["refresh_token"] == nil {
		t.Fatalf("code exchange = %d %v", code, tok)
	}
	return tok["access_token"].(string)
}

// deviceFlowToken gets a person's token as a person does: `gatehouse
// device-login` (the SDK's device flow as the public gatehouse-cli
// client), approved on the verification page it prints.
func deviceFlowToken(t *testing.T, s *server, user, pass string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "device-login", "--scope", "openid")
	cmd.Env = append(os.Environ(), "GATEHOUSE_SERVER="+s.URL)
	var out bytes.Buffer
	cmd.Stdout = &out
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var said strings.Builder
	uri := ""
	for sc := bufio.NewScanner(stderr); uri == "" && sc.Scan(); {
		said.WriteString(sc.Text() + "\n")
		if u, ok := strings.CutPrefix(sc.Text(), "(or open "); ok {
			uri = strings.TrimSuffix(u, ")")
		}
	}
	// Read the rest to the end so that the command never blocks on it;
	// Wait only once it is read.
	rest := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(stderr)
		rest <- string(b)
	}()
	if uri == "" {
		said.WriteString(<-rest)
		cmd.Wait()
		t.Fatalf("device-login printed no verification URI:\n%s", said.String())
	}
	approveInBrowser(t, s, uri, user, pass, "gatehouse-cli")
	said.WriteString(<-rest)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("device-login: %v\n%s", err, said.String())
	}
	var tok struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
		Scope        string `json:"scope"`
	}
	if err := json.Unmarshal(out.Bytes(), &tok); err != nil || tok.AccessToken == "" || tok.RefreshToken == "" || !strings.Contains(tok.Scope, "openid") {
		t.Fatalf("device-login printed %q (%v), want access and refresh tokens with scope openid", out.String(), err)
	}
	return tok.AccessToken
}

// mqttPeer is an MQTT 5 connection that keeps what it receives.
type mqttPeer struct {
	c    *paho.Client
	mu   sync.Mutex
	msgs []*paho.Publish
}

// tryMQTT connects with username and token as password; it returns the
// client (nil if refused) and the CONNACK reason code.
func tryMQTT(t *testing.T, s *server, clientID, username, token string) (*mqttPeer, byte) {
	t.Helper()
	conn, err := net.Dial("tcp", s.MQTT)
	if err != nil {
		t.Fatal(err)
	}
	return connectPeer(t, conn, &paho.Connect{ClientID: clientID, Username: username, UsernameFlag: true, Password: []byte(token), PasswordFlag: true, KeepAlive: 30, CleanStart: true})
}

// connectPeer sends connect over conn; it returns the client (nil if
// refused, conn closed) and the CONNACK reason code.
func connectPeer(t *testing.T, conn net.Conn, connect *paho.Connect) (*mqttPeer, byte) {
	t.Helper()
	m := &mqttPeer{}
	m.c = paho.NewClient(paho.ClientConfig{
		Conn: packets.NewThreadSafeConn(conn),
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			m.mu.Lock()
			m.msgs = append(m.msgs, pr.Packet)
			m.mu.Unlock()
			return true, nil
		}},
		OnClientError: func(error) {},
	})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	ca, err := m.c.Connect(ctx, connect)
	if ca == nil {
		t.Fatalf("connect %s: %v", connect.ClientID, err)
	}
	if ca.ReasonCode != 0 {
		conn.Close()
		return nil, ca.ReasonCode
	}
	t.Cleanup(func() { _ = m.c.Disconnect(&paho.Disconnect{}); conn.Close() })
	return m, 0
}

func mqttClient(t *testing.T, s *server, clientID, username, token string) *mqttPeer {
	t.Helper()
	m, code := tryMQTT(t, s, clientID, username, token)
	if m == nil {
		t.Fatalf("connect %s as %s = %#x", clientID, username, code)
	}
	return m
}

func (m *mqttPeer) subscribe(t *testing.T, filter string) byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	sa, err := m.c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}})
	if sa == nil || len(sa.Reasons) != 1 {
		t.Fatalf("subscribe %s: %v", filter, err)
	}
	return sa.Reasons[0]
}

func (m *mqttPeer) publish(t *testing.T, topic, payload string) byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	pr, err := m.c.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte(payload)})
	if pr == nil {
		t.Fatalf("publish %s: %v", topic, err)
	}
	return pr.ReasonCode
}

func (m *mqttPeer) got(topic string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range m.msgs {
		if p.Topic == topic {
			return true
		}
	}
	return false
}

func (m *mqttPeer) waitFor(t *testing.T, topic string) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, "a message on "+topic, func() bool { return m.got(topic) })
}

// TestGatewayActsForChildren: a gateway thing gets tokens for its children
// at the things endpoint and publishes for them over its own connection
// (${gatehouse:Thing.Children}); not for a thing that is not its child.
func TestGatewayActsForChildren(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--data-dir", t.TempDir())
	s.admin(t, "POST", "/api/v1/policies", lampPolicy, 201)
	s.admin(t, "POST", "/api/v1/policies", `{"name":"gateway","document":{"Version":"2012-10-17","Statement":[
	  {"Effect":"Allow","Action":"iot:Connect","Resource":"client/${iot:Connection.Thing.ThingName}"},
	  {"Effect":"Allow","Action":"iot:Publish","Resource":"topic/things/${gatehouse:Thing.Children}/telemetry/*"}]}}`, 201)
	s.admin(t, "POST", "/api/v1/thing-types", `{"name":"lamp","scopes":["mqtt"],"defaultPolicies":["lamp"]}`, 201)
	s.admin(t, "POST", "/api/v1/thing-types", `{"name":"hub","scopes":["mqtt"],"defaultPolicies":["gateway"]}`, 201)
	for _, th := range []string{`{"name":"hub-1","thingType":"hub"}`, `{"name":"bulb-1","thingType":"lamp"}`, `{"name":"bulb-2","thingType":"lamp"}`} {
		s.admin(t, "POST", "/api/v1/things", th, 201)
	}
	s.admin(t, "POST", "/api/v1/relationships", `{"subjectKind":"thing","subject":"hub-1","relation":"gateway","objectKind":"thing","object":"bulb-1"}`, 201)
	hubSecret := s.admin(t, "POST", "/api/v1/things/hub-1/secret", "", 201)["clientSecret"].(string)

	asHub := func(child string) (int, map[string]any) {
		req, _ := http.NewRequestWithContext(t.Context(), "POST", s.URL+"/things/"+child+"?_action=get_access_token", strings.NewReader(`{"scope":["mqtt"]}`))
		req.SetBasicAuth("hub-1", hubSecret)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	code, tok := asHub("bulb-1")
	if code != 200 {
		t.Fatalf("hub token for its child = %d %v", code, tok)
	}
	claims := jwtClaims(t, tok["access_token"].(string))
	if claims["sub"] != "bulb-1" || claims["thing_name"] != "bulb-1" || claims["gatehouse:actor"] != "hub-1" || jsonString(claims["act"]) != `{"sub":"hub-1"}` {
		t.Errorf("child token claims = %v", claims)
	}
	if code, out := asHub("bulb-2"); code != 400 || out["error"] != "unauthorized_client" {
		t.Errorf("hub token for a thing that is not its child = %d %v, want 400 unauthorized_client", code, out)
	}
	// The child token works for the child itself (the gateway can hand it on).
	bulb := mqttClient(t, s, "bulb-1", "bulb-1", tok["access_token"].(string))
	if got := bulb.publish(t, "things/bulb-1/telemetry/lux", "300"); got != 0 {
		t.Errorf("child publishes with the gateway-issued token = %#x", got)
	}
	hub := mqttClient(t, s, "hub-1", "hub-1", thingToken(t, s, "hub-1", hubSecret, "mqtt"))
	if got := hub.publish(t, "things/bulb-1/telemetry/lux", "310"); got != 0 {
		t.Errorf("hub publishes for its child = %#x, want 0", got)
	}
	if got := hub.publish(t, "things/bulb-2/telemetry/lux", "1"); got != 0x87 {
		t.Errorf("hub publishes for a non-child = %#x, want 0x87", got)
	}
}

// TestPasswordGrantOptIn: the resource owner password grant works only when
// oauth.passwordGrant is on, and only for confidential apps allowed it.
func TestPasswordGrantOptIn(t *testing.T) {
	for _, on := range []bool{false, true} {
		if on {
			t.Setenv("GATEHOUSE_OAUTH_PASSWORD_GRANT", "true")
		}
		s := startServer(t, "--data-dir", t.TempDir())
		s.admin(t, "POST", "/api/v1/users", `{"username":"carol","password":"carol-password"}`, 201)
		app := s.admin(t, "POST", "/api/v1/apps", `{"name":"backend","grantTypes":["password","refresh_token"],"scopes":["openid"]}`, 201)
		secret, _ := app["clientSecret"].(string)
		if app["clientId"] != "app.backend" || !strings.HasPrefix(secret, "ghas_") {
			t.Fatalf("app = %v", app)
		}
		code, tok := postForm(t, s.URL+"/oauth2/token", url.Values{"grant_type": {"password"}, "username": {"carol"}, "password": {"carol-password"},
			"client_id": {"app.backend"}, "client_secret": {secret}})
		switch {
		case !on && (code != 400 || tok["error"] != "unsupported_grant_type"):
			t.Errorf("password grant while off = %d %v, want unsupported_grant_type", code, tok)
		case on && (code != 200 || jwtClaims(t, tok["access_token"].(string))["gatehouse:kind"] != "user"):
			t.Errorf("password grant while on = %d %v", code, tok)
		}
	}
}
