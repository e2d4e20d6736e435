package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"

	"github.com/gatehouse-iot/gatehouse/internal/store/storetest"
	"github.com/gatehouse-iot/gatehouse/internal/testenv"
)

// replicaIssuer is the external URL every replica is given: the OAuth
// issuer (and the default audience) of tokens, so it must be the same on
// all of them. Each replica is then reached at its own address, as a load
// balancer would.
const replicaIssuer = "http://gatehouse.test"

// startReplicas starts n `gatehouse serve` processes on one fresh
// PostgreSQL schema with one master key file and one external URL. They
// start one after the other (the first bootstraps the database and creates
// the master key); all get the first one's admin token. It also returns
// the DSN.
func startReplicas(t *testing.T, n int) ([]*server, string) {
	t.Helper()
	return startReplicasWith(t, n, "")
}

// startReplicasWith is startReplicas with more settings (YAML) in the
// shared configuration file.
func startReplicasWith(t *testing.T, n int, settings string) ([]*server, string) {
	t.Helper()
	dsn := storetest.PostgresDSN(t) // skips without GATEHOUSE_TEST_POSTGRES
	shared := t.TempDir()
	cfg := filepath.Join(shared, "gatehouse.yaml")
	yaml := "secrets:\n  masterKeyFile: " + filepath.Join(shared, "master.key") + "\n" + settings
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	var out []*server
	for i := range n {
		s := startServer(t, "--config", cfg, "--data-dir", t.TempDir(), "--dsn", dsn, "--external-url", replicaIssuer)
		if s.URL == "" || s.MQTT == "" {
			t.Fatalf("replica %d banner lacks http or mqtt:\n%s", i, s.Stdout())
		}
		if i == 0 {
			if s.Token == "" {
				t.Fatalf("first replica did not bootstrap:\n%s", s.Stdout())
			}
		} else {
			if strings.Contains(s.Stdout(), "admin token") {
				t.Errorf("replica %d bootstrapped a second administrator:\n%s", i, s.Stdout())
			}
			s.Token = out[0].Token
		}
		out = append(out, s)
	}
	return out, dsn
}

// clientCredentials gets an access token with the client credentials grant.
func clientCredentials(t *testing.T, s *server, id, secret, scope string) string {
	t.Helper()
	code, tok := postForm(t, s.URL+"/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {secret}, "scope": {scope}})
	at, _ := tok["access_token"].(string)
	if code != 200 || at == "" {
		t.Fatalf("client credentials on %s = %d %v", s.URL, code, tok)
	}
	return at
}

// introspect asks s whether token is active, authenticating as the client.
func introspect(t *testing.T, s *server, id, secret, token string) bool {
	t.Helper()
	code, m := postForm(t, s.URL+"/oauth2/introspect", url.Values{"token": {token}, "client_id": {id}, "client_secret": {secret}})
	if code != 200 {
		t.Fatalf("introspect on %s = %d %v", s.URL, code, m)
	}
	return m["active"] == true
}

// jwtKID returns the kid of a JWT's header, unverified.
func jwtKID(t *testing.T, tok string) string {
	t.Helper()
	h, _, _ := strings.Cut(tok, ".")
	b, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	kid, _ := m["kid"].(string)
	if kid == "" {
		t.Fatalf("JWT header without kid: %s", b)
	}
	return kid
}

// mqtt5Client is an MQTT 5 connection to one replica's broker.
type mqtt5Client struct {
	c    *paho.Client
	gone chan *paho.Disconnect // DISCONNECT packets from the server
}

// mqtt5Connect connects to s's MQTT listener with the token as password and
// returns the client (nil if refused) and the CONNACK reason code.
func mqtt5Connect(t *testing.T, s *server, clientID, token string) (*mqtt5Client, byte) {
	t.Helper()
	conn, err := net.Dial("tcp", s.MQTT)
	if err != nil {
		t.Fatal(err)
	}
	m := &mqtt5Client{gone: make(chan *paho.Disconnect, 1)}
	m.c = paho.NewClient(paho.ClientConfig{
		Conn: packets.NewThreadSafeConn(conn),
		OnServerDisconnect: func(d *paho.Disconnect) {
			select {
			case m.gone <- d:
			default:
			}
		},
		OnClientError: func(error) {},
	})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	ca, err := m.c.Connect(ctx, &paho.Connect{ClientID: clientID, Username: clientID, UsernameFlag: true, Password: []byte(token), PasswordFlag: true, KeepAlive: 30, CleanStart: true})
	if ca == nil {
		t.Fatalf("connect to %s: %v", s.MQTT, err)
	}
	if ca.ReasonCode != 0 {
		conn.Close()
		return nil, ca.ReasonCode
	}
	t.Cleanup(func() { _ = m.c.Disconnect(&paho.Disconnect{}); conn.Close() })
	return m, 0
}

// publish sends a QoS 1 message and returns the PUBACK reason code.
func (m *mqtt5Client) publish(t *testing.T, topic string) byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	pr, err := m.c.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte("hello")})
	if pr == nil {
		t.Fatalf("publish %s: %v", topic, err)
	}
	return pr.ReasonCode
}

// httpsPublish publishes to s's HTTP publish endpoint with a bearer token.
func httpsPublish(t *testing.T, s *server, topic, token string) int {
	t.Helper()
	return httpsPublishBody(t, s, topic, token, "hello", "")
}

// TestReplicas runs three `gatehouse serve` processes on one PostgreSQL
// schema with the same master key and external URL and checks that they
// behave as one service: tokens, key rotation, revocation, the device flow
// and policy changes cross from A to B. C only serves its JWKS, to see a
// rotation arrive by the periodic key reload alone.
func TestReplicas(t *testing.T) {
	t.Parallel()
	rs, dsn := startReplicas(t, 3)
	a, b, c3 := rs[0], rs[1], rs[2]
	botSecret, _ := setupBot(t, a)

	// 1. A token issued by A verifies on B: introspection, MQTT CONNECT
	// with the token as password, HTTPS publish.
	tok := clientCredentials(t, a, "thingymabot", botSecret, "publish")
	if iss := jwtClaims(t, tok)["iss"]; iss != replicaIssuer {
		t.Fatalf("token iss = %v, want %s", iss, replicaIssuer)
	}
	if !introspect(t, b, "thingymabot", botSecret, tok) {
		t.Fatal("B: token from A is not active")
	}
	if code := httpsPublish(t, b, "test", tok); code != 200 {
		t.Errorf("B: HTTPS publish with A's token = %d, want 200", code)
	}
	if code := httpsPublish(t, b, "forbidden", tok); code != 403 {
		t.Errorf("B: HTTPS publish to a topic the policy denies = %d, want 403", code)
	}
	c, code := mqtt5Connect(t, b, "thingymabot", tok)
	if code != 0 {
		t.Fatalf("B: MQTT CONNECT with A's token = %#x", code)
	}
	if rc := c.publish(t, "test"); rc != 0 {
		t.Errorf("B: MQTT publish with A's token = %#x", rc)
	}
	_ = c.c.Disconnect(&paho.Disconnect{})

	// 2. Key rotation on A: tokens of the new key verify on B, B publishes
	// the new key within the reload interval, old tokens keep verifying.
	oldKID := jwtKID(t, tok)
	jwks := func(s *server) string {
		code, body := curl(t, "GET", s.URL+"/oauth2/keys", "", "")
		if code != 200 {
			t.Fatalf("GET %s/oauth2/keys = %d %s", s.URL, code, body)
		}
		return body
	}
	if keys := jwks(c3); !strings.Contains(keys, `"`+oldKID+`"`) {
		t.Fatalf("C's JWKS lacks the current key %s: %s", oldKID, keys)
	}
	a.admin(t, "POST", "/api/v1/oauth/rotate-keys", "", 204)
	rotatedAt := time.Now()
	newTok := clientCredentials(t, a, "thingymabot", botSecret, "publish")
	newKID := jwtKID(t, newTok)
	if newKID == oldKID {
		t.Fatalf("A signs with %s after rotation, the old key", newKID)
	}
	took := testenv.Eventually(t, 35*time.Second, "B verifies a token of the new key", func() bool {
		return introspect(t, b, "thingymabot", botSecret, newTok)
	})
	t.Logf("B verified a token of the rotated key after %v", took)
	if c, code := mqtt5Connect(t, b, "thingymabot", newTok); code != 0 {
		t.Errorf("B: MQTT CONNECT with a token of the new key = %#x", code)
	} else {
		_ = c.c.Disconnect(&paho.Disconnect{})
	}
	for _, s := range rs {
		if !introspect(t, s, "thingymabot", botSecret, tok) {
			t.Errorf("%s: a token of the previous key is no longer active", s.URL)
		}
	}
	if code := httpsPublish(t, b, "test", tok); code != 200 {
		t.Errorf("B: HTTPS publish with a token of the previous key = %d, want 200", code)
	}
	// B reloaded its keys on meeting the unknown kid: its JWKS (what
	// external verifiers fetch) has both keys and it signs with the new one.
	if keys := jwks(b); !strings.Contains(keys, `"`+newKID+`"`) || !strings.Contains(keys, `"`+oldKID+`"`) {
		t.Errorf("B's JWKS after the reload lacks the new or the previous key: %s", keys)
	}
	if kid := jwtKID(t, clientCredentials(t, b, "thingymabot", botSecret, "publish")); kid != newKID {
		t.Errorf("B signs with %s after reloading, want the new key %s", kid, newKID)
	}

	// 3. Revocation on A disconnects a live MQTT 5 session on B (0x87)
	// and B refuses the token afterwards.
	live := clientCredentials(t, a, "thingymabot", botSecret, "publish")
	c, code = mqtt5Connect(t, b, "thingymabot", live)
	if code != 0 {
		t.Fatalf("B: MQTT CONNECT = %#x", code)
	}
	a.admin(t, "POST", "/api/v1/oauth/revoke", jsonString(map[string]string{"token": live}), 204)
	revokedAt := time.Now()
	select {
	case d := <-c.gone:
		if d.ReasonCode != 0x87 {
			t.Errorf("B disconnected the session with %#x, want 0x87", d.ReasonCode)
		}
		t.Logf("B disconnected the session %v after the revocation on A", time.Since(revokedAt))
	case <-time.After(10 * time.Second):
		t.Fatal("B did not disconnect the session within 10s of the revocation on A")
	}
	// At once: the broker remembers what its event follower saw, so the
	// kicked client cannot come back before B's revocation cache reloads.
	if _, code := mqtt5Connect(t, b, "thingymabot", live); code != 0x86 {
		t.Errorf("B: CONNECT with the revoked token = %#x, want 0x86", code)
	}
	// Introspection and HTTPS publish go by B's revocation cache, reloaded
	// from the database every 2s.
	took = testenv.Eventually(t, 5*time.Second, "B refuses the revoked token at introspection and HTTPS publish", func() bool {
		return !introspect(t, b, "thingymabot", botSecret, live) && httpsPublish(t, b, "test", live) == 401
	})
	t.Logf("B's revocation cache had the revocation %v after the kick", took)

	// 4. The device flow: started on A, approved on B's verification page,
	// polled to completion on A.
	a.admin(t, "POST", "/api/v1/thing-types", `{"name":"tv","scopes":["publish"],"approverRelation":"owner"}`, 201)
	a.admin(t, "POST", "/api/v1/things", `{"name":"deviceagent","thingType":"tv"}`, 201)
	tvSecret := a.admin(t, "POST", "/api/v1/things/deviceagent/secret", "", 201)["clientSecret"].(string)
	a.admin(t, "POST", "/api/v1/users", `{"username":"alice","password":"correct horse battery"}`, 201)
	dcode, da := postForm(t, a.URL+"/oauth2/device/code", url.Values{"client_id": {"deviceagent"}, "client_secret": {tvSecret}, "scope": {"publish"}})
	uri, _ := da["verification_uri_complete"].(string)
	if dcode != 200 || !strings.HasPrefix(uri, replicaIssuer+"/device") {
		t.Fatalf("device code on A = %d %v", dcode, da)
	}
	approveInBrowser(t, b, b.URL+strings.TrimPrefix(uri, replicaIssuer), "alice", "correct horse battery", "deviceagent", "publish")
	poll := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {da["device_code"].(string)}, "client_id": {"deviceagent"}, "client_secret": {tvSecret}}
	var dtok map[string]any
	deadline := time.Now().Add(30 * time.Second)
	for {
		var code int
		code, dtok = postForm(t, a.URL+"/oauth2/token", poll)
		if code == 200 {
			break
		}
		if dtok["error"] != "slow_down" && dtok["error"] != "authorization_pending" {
			t.Fatalf("device poll on A = %d %v", code, dtok)
		}
		if time.Now().After(deadline) {
			t.Fatalf("device flow not complete on A 30s after approval on B: %v", dtok)
		}
		// A device polls at the interval the server asks for (faster
		// polls are answered slow_down and lengthen it): this sleep is
		// part of the device flow under test, not a wait for Eventually.
		time.Sleep(time.Second)
	}
	if at, _ := dtok["access_token"].(string); at == "" || dtok["refresh_token"] == nil {
		t.Fatalf("device flow tokens: %v", dtok)
	} else if !introspect(t, b, "deviceagent", tvSecret, at) {
		t.Error("B: the device flow token from A is not active")
	}

	// 5. A policy version created through A applies to a live session on
	// B: publishing to test2 becomes allowed, to test denied.
	c, code = mqtt5Connect(t, b, "thingymabot", clientCredentials(t, a, "thingymabot", botSecret, "publish"))
	if code != 0 {
		t.Fatalf("B: MQTT CONNECT = %#x", code)
	}
	if rc := c.publish(t, "test"); rc != 0 {
		t.Fatalf("B: publish to test before the new policy version = %#x", rc)
	}
	if rc := c.publish(t, "test2"); rc != 0x87 {
		t.Fatalf("B: publish to test2 before the new policy version = %#x, want 0x87", rc)
	}
	a.admin(t, "POST", "/api/v1/policies/publish-test/versions", `{"setAsDefault":true,"document":{"Version":"2012-10-17","Statement":[
	  {"Effect":"Allow","Action":"iot:Connect","Resource":"arn:aws:iot:*:*:client/${iot:Connection.Thing.ThingName}"},
	  {"Effect":"Allow","Action":"iot:Publish","Resource":"arn:aws:iot:*:*:topic/test2"}]}}`, 201)
	changedAt := time.Now()
	testenv.Eventually(t, 10*time.Second, "B applies the new policy version to the live session", func() bool {
		return c.publish(t, "test2") == 0
	})
	t.Logf("B applied the policy version created on A after %v", time.Since(changedAt))
	if rc := c.publish(t, "test"); rc != 0x87 {
		t.Errorf("B: publish to test after the new policy version = %#x, want 0x87", rc)
	}
	select {
	case d := <-c.gone:
		t.Errorf("B disconnected the session on the policy change: %#x", d.ReasonCode)
	default:
	}

	// 6. C saw no token of the new key; its periodic reload (every 30s)
	// publishes the new key all the same, keeping the previous one.
	testenv.Eventually(t, 40*time.Second-time.Since(rotatedAt), "C publishes the rotated key in its JWKS", func() bool {
		keys := jwks(c3)
		return strings.Contains(keys, `"`+newKID+`"`) && strings.Contains(keys, `"`+oldKID+`"`)
	})
	t.Logf("C published the rotated key %v after the rotation on A", time.Since(rotatedAt))

	// A replica with another master key cannot open the shared keys and
	// does not start.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary, "serve", "--data-dir", t.TempDir(), "--dsn", dsn, "--external-url", replicaIssuer,
		"--http-addr", "127.0.0.1:0", "--mqtt-addr", "127.0.0.1:0", "--ws-addr", "127.0.0.1:0", "--mqtts-addr", "127.0.0.1:0", "--https-addr", "127.0.0.1:0").CombinedOutput()
	if err == nil || ctx.Err() != nil || !strings.Contains(string(out), "wrong master key") {
		t.Errorf("replica with another master key: err %v, output:\n%s", err, out)
	}
}
