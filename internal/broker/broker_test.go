package broker_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/gatehouse-iot/gatehouse/internal/broker"
	"github.com/gatehouse-iot/gatehouse/internal/events"
	"github.com/gatehouse-iot/gatehouse/internal/oauth"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/store"
	"github.com/gatehouse-iot/gatehouse/internal/testenv"
)

// telemetry lets a thing connect as itself, publish and receive under
// things/<name>/, subscribe there and read commands/#; it may never touch
// firmware topics, and retained publishes only under things/<name>/state.
const telemetry = `{"Version":"2012-10-17","Statement":[
 {"Effect":"Allow","Action":"iot:Connect","Resource":"client/${iot:Connection.Thing.ThingName}"},
 {"Effect":"Allow","Action":["iot:Publish","iot:Receive"],"Resource":["topic/things/${iot:Connection.Thing.ThingName}/*","topic/commands/*"]},
 {"Effect":"Allow","Action":"iot:Subscribe","Resource":["topicfilter/things/${iot:Connection.Thing.ThingName}/*","topicfilter/commands/#","topicfilter/$gatehouse/events/*"]},
 {"Effect":"Allow","Action":"iot:Receive","Resource":"topic/$gatehouse/events/*"},
 {"Effect":"Allow","Action":"iot:RetainPublish","Resource":"topic/things/${iot:Connection.Thing.ThingName}/state"},
 {"Effect":"Deny","Action":["iot:Publish","iot:Receive"],"Resource":"topic/*/firmware"}]}`

// httpPublish grants HTTPS (no client id) publishing to alerts/* by scope.
const httpPublish = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Publish","Resource":"topic/alerts/*"}]}`

type fixture struct {
	t       testing.TB
	store   *store.Store
	reg     *registry.Service
	oauth   *oauth.Server
	http    *httptest.Server
	broker  *broker.Broker
	secrets map[string]string
	env     *testenv.Env
	// metrics has the broker's series (Broker.RegisterMetrics).
	metrics *prometheus.Registry
}

func newFixture(t testing.TB, tokenTTL time.Duration) *fixture {
	t.Helper()
	return newFixtureWith(t, tokenTTL, nil)
}

// newFixtureWith is newFixture with a chance to adjust the broker's Config
// and the stack's options (a clock, say).
func newFixtureWith(t testing.TB, tokenTTL time.Duration, configure func(*broker.Config), opts ...testenv.Option) *fixture {
	t.Helper()
	env := testenv.New(t, append([]testenv.Option{testenv.TokenTTL(tokenTTL)}, opts...)...)
	cfg := broker.Config{
		Authn: env.Authn, Registry: env.Registry, Events: env.Events,
		TCPAddr: "127.0.0.1:0", WSAddr: "127.0.0.1:0", EventTopicPrefix: "$gatehouse/events",
	}
	if configure != nil {
		configure(&cfg)
	}
	b, err := broker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	env.Mux.Handle("POST /topics/{topic...}", b.PublishHandler())
	metrics := prometheus.NewRegistry()
	if err := b.RegisterMetrics(metrics); err != nil {
		t.Fatal(err)
	}
	env.Go(b.Run)

	f := &fixture{t: t, store: env.Store, reg: env.Registry, oauth: env.OAuth, http: env.HTTP, broker: b, metrics: metrics}
	admin := env.As("test")
	if _, err := f.reg.CreatePolicy(admin, registry.NewPolicy{Name: "telemetry", Document: []byte(telemetry)}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.CreatePolicy(admin, registry.NewPolicy{Name: "http-alerts", Document: []byte(httpPublish)}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.AttachPolicy(admin, "http-alerts", store.TargetScope, "alerts"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.CreateThingType(admin, registry.ThingTypeSpec{Name: "sensor", Scopes: []string{"mqtt", "alerts"}, DefaultPolicies: []string{"telemetry"}}); err != nil {
		t.Fatal(err)
	}
	f.secrets = env.Things(admin, "sensor", "s-1", "s-2")
	f.env = env
	return f
}

// token gets an access token for a thing by client credentials.
func (f *fixture) token(thing string, scopes ...string) string {
	f.t.Helper()
	return f.env.Token(thing, f.secrets[thing], scopes...)
}

// client is a connected MQTT 5 client that collects what it receives.
type client struct {
	*paho.Client
	mu           sync.Mutex
	got          []*paho.Publish
	disconnected chan *paho.Disconnect
}

// newClient is an MQTT client on conn that collects what it receives and
// hands the server's DISCONNECT to c.disconnected.
func newClient(conn net.Conn) *client {
	c := &client{disconnected: make(chan *paho.Disconnect, 1)}
	c.Client = paho.NewClient(paho.ClientConfig{
		Conn: conn,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			c.mu.Lock()
			c.got = append(c.got, pr.Packet)
			c.mu.Unlock()
			return true, nil
		}},
		OnServerDisconnect: func(d *paho.Disconnect) { c.disconnected <- d },
	})
	return c
}

func (c *client) messages() []*paho.Publish {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*paho.Publish(nil), c.got...)
}

// waitFor waits until a message on topic arrives.
func (c *client) waitFor(t *testing.T, topic string) *paho.Publish {
	t.Helper()
	var got *paho.Publish
	testenv.Eventually(t, 10*time.Second, "a message on "+topic, func() bool {
		for _, m := range c.messages() {
			if m.Topic == topic {
				got = m
				return true
			}
		}
		return false
	})
	return got
}

// waitDisconnect waits for the server's DISCONNECT to c and checks its
// reason code; failure is the message when it does not come.
func waitDisconnect(t *testing.T, c *client, want byte, failure string) {
	t.Helper()
	select {
	case d := <-c.disconnected:
		if d.ReasonCode != want {
			t.Errorf("DISCONNECT reason = %#x, want %#x", d.ReasonCode, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal(failure)
	}
}

// caughtUp returns once the broker has applied every event in the log so
// far to its sessions, re-binds included (Broker.Applied).
func (f *fixture) caughtUp(t *testing.T) {
	t.Helper()
	latest, err := f.env.Events.LatestID(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "the broker applying the event log", func() bool { return f.broker.Applied() >= latest })
}

func (f *fixture) dial(network string) net.Conn {
	f.t.Helper()
	switch network {
	case "ws":
		return dialWS(f.t, f.broker.Addr("ws"))
	case "anonymous":
		conn, err := net.Dial("tcp", f.broker.Addr("anonymous"))
		if err != nil {
			f.t.Fatal(err)
		}
		return conn
	}
	conn, err := net.Dial("tcp", f.broker.Addr("mqtt"))
	if err != nil {
		f.t.Fatal(err)
	}
	return conn
}

// connect opens an MQTT 5 session; it returns the CONNACK reason code.
func (f *fixture) connect(clientID, username string, password []byte, will *paho.WillMessage) (*client, byte, error) {
	return f.connectOn("tcp", clientID, username, password, will)
}

func (f *fixture) connectOn(network, clientID, username string, password []byte, will *paho.WillMessage) (*client, byte, error) {
	f.t.Helper()
	c := newClient(f.dial(network))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ca, err := c.Connect(ctx, &paho.Connect{ClientID: clientID, Username: username, UsernameFlag: username != "",
		Password: password, PasswordFlag: password != nil, KeepAlive: 30, CleanStart: true, WillMessage: will})
	if ca == nil {
		return nil, 0, err
	}
	if err == nil {
		f.t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	}
	return c, ca.ReasonCode, err
}

func (f *fixture) mustConnect(clientID, username string, password []byte) *client {
	f.t.Helper()
	c, code, err := f.connect(clientID, username, password, nil)
	if err != nil || code != 0 {
		f.t.Fatalf("connect %s: code %#x, %v", clientID, code, err)
	}
	return c
}

func subscribe(t *testing.T, c *client, filter string) byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sa, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}})
	if sa == nil || len(sa.Reasons) != 1 {
		t.Fatalf("subscribe %s: %v %v", filter, sa, err)
	}
	return sa.Reasons[0]
}

func publish(t *testing.T, c *client, topic string, qos byte, retain bool) byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pr, err := c.Publish(ctx, &paho.Publish{Topic: topic, QoS: qos, Retain: retain, Payload: []byte("hello " + topic)})
	if pr == nil {
		t.Fatalf("publish %s: %v", topic, err)
	}
	return pr.ReasonCode
}

func TestConnectAuthentication(t *testing.T) {
	f := newFixture(t, time.Hour)
	tok := f.token("s-1", "mqtt")
	otherTok := f.token("s-2", "mqtt")
	tests := []struct {
		name     string
		clientID string
		username string
		password []byte
		will     *paho.WillMessage
		want     byte
	}{
		{"token as password", "s-1", "s-1", []byte(tok), nil, 0},
		{"token without username", "s-1", "", []byte(tok), nil, 0},
		{"wrong client id", "s-2", "s-1", []byte(tok), nil, 0x87},
		{"username of another thing", "s-1", "s-2", []byte(tok), nil, 0x86},
		{"another thing's token", "s-1", "", []byte(otherTok), nil, 0x87},
		{"garbage token", "s-1", "s-1", []byte("not-a-token"), nil, 0x86},
		{"tampered token", "s-1", "s-1", []byte(tok[:len(tok)-4] + "AAAA"), nil, 0x86},
		{"oversized token", "s-1", "s-1", []byte(strings.Repeat("a", 9000)), nil, 0x86},
		{"no credentials", "s-1", "", nil, nil, 0x86},
		{"allowed will", "s-1", "s-1", []byte(tok), &paho.WillMessage{Topic: "things/s-1/status", Payload: []byte("gone")}, 0},
		{"denied will", "s-1", "s-1", []byte(tok), &paho.WillMessage{Topic: "things/s-2/status", Payload: []byte("x")}, 0x87},
		{"will retained without RetainPublish", "s-1", "s-1", []byte(tok), &paho.WillMessage{Topic: "things/s-1/status", Retain: true, Payload: []byte("x")}, 0x87},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, code, _ := f.connect(tc.clientID, tc.username, tc.password, tc.will)
			if code != tc.want {
				t.Errorf("CONNACK reason = %#x, want %#x", code, tc.want)
			}
			if c != nil && code == 0 {
				_ = c.Disconnect(&paho.Disconnect{})
			}
		})
	}
	evs, _ := f.store.ListEvents(context.Background(), store.EventFilter{Type: "broker.denied", Limit: 100})
	testenv.Eventually(t, 5*time.Second, "a broker.denied event per refused connect (8)", func() bool {
		evs, _ = f.store.ListEvents(context.Background(), store.EventFilter{Type: "broker.denied", Limit: 100})
		return len(evs) >= 8
	})
	for _, ev := range evs {
		if strings.Contains(string(ev.Details), tok[:20]) {
			t.Errorf("event leaks the token: %s", ev.Details)
		}
	}
}

func TestPublishSubscribeReceive(t *testing.T) {
	f := newFixture(t, time.Hour)
	s1 := f.mustConnect("s-1", "s-1", []byte(f.token("s-1", "mqtt")))
	s2 := f.mustConnect("s-2", "s-2", []byte(f.token("s-2", "mqtt")))

	subs := []struct {
		c      *client
		filter string
		want   byte
	}{
		{s1, "things/s-1/#", 1},
		{s1, "commands/#", 1},
		{s1, "things/s-2/#", 0x87},
		{s1, "#", 0x87},
		{s2, "commands/#", 1},
	}
	for _, tc := range subs {
		if got := subscribe(t, tc.c, tc.filter); got != tc.want {
			t.Errorf("SUBACK for %s = %#x, want %#x", tc.filter, got, tc.want)
		}
	}
	pubs := []struct {
		c      *client
		topic  string
		retain bool
		want   byte
	}{
		{s1, "things/s-1/temp", false, 0},
		{s1, "things/s-2/temp", false, 0x87},
		{s1, "things/s-1/firmware", false, 0x87},
		{s1, "things/s-1/state", true, 0},
		{s1, "things/s-1/temp", true, 0x87},
		{s2, "commands/reboot", false, 0},
		{s2, "commands/firmware", false, 0x87},
	}
	for _, tc := range pubs {
		if got := publish(t, tc.c, tc.topic, 1, tc.retain); got != tc.want {
			t.Errorf("PUBACK for %s (retain %v) = %#x, want %#x", tc.topic, tc.retain, got, tc.want)
		}
	}
	s1.waitFor(t, "things/s-1/temp")
	s1.waitFor(t, "commands/reboot")
	s2.waitFor(t, "commands/reboot")
	// Receive is checked on every delivery: s-1 is subscribed to
	// commands/# but may not receive firmware topics, which an (inline)
	// publish bypassing publish rights would otherwise deliver.
	if err := f.broker.Server().Publish("commands/firmware", []byte("evil"), false, 0); err != nil {
		t.Fatal(err)
	}
	publish(t, s2, "commands/ping", 1, false)
	s1.waitFor(t, "commands/ping")
	for _, m := range s1.messages() {
		if strings.HasSuffix(m.Topic, "firmware") || m.Topic == "things/s-2/temp" {
			t.Errorf("s-1 received %s, which policy denies", m.Topic)
		}
	}
}

func TestLivePolicyChangeAndDisable(t *testing.T) {
	f := newFixture(t, time.Hour)
	s1 := f.mustConnect("s-1", "s-1", []byte(f.token("s-1", "mqtt")))
	if got := publish(t, s1, "things/s-1/temp", 1, false); got != 0 {
		t.Fatalf("publish before change = %#x", got)
	}
	ctx := events.WithActor(context.Background(), "test")
	noTemp := strings.Replace(telemetry, `"Resource":"topic/*/firmware"}`, `"Resource":["topic/*/firmware","topic/things/*/temp"]}`, 1)
	if _, err := f.reg.CreatePolicyVersion(ctx, "telemetry", 0, []byte(noTemp), true); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "the new policy version applying to the live connection", func() bool { return publish(t, s1, "things/s-1/temp", 1, false) != 0 })
	if got := publish(t, s1, "things/s-1/humidity", 1, false); got != 0 {
		t.Errorf("publish still allowed by the new version = %#x, want 0", got)
	}
	disabled := store.StateDisabled
	if _, err := f.reg.UpdateThing(ctx, "s-1", 0, registry.ThingPatch{State: &disabled}); err != nil {
		t.Fatal(err)
	}
	waitDisconnect(t, s1, 0x87, "disabled thing was not disconnected")
	if _, code, _ := f.connect("s-1", "s-1", []byte(f.tokenOrEmpty("s-1")), nil); code == 0 {
		t.Error("a disabled thing connected")
	}
}

// tokenOrEmpty returns a token or "" if the server refuses one.
func (f *fixture) tokenOrEmpty(thing string) string {
	cc := clientcredentials.Config{ClientID: thing, ClientSecret: f.secrets[thing], TokenURL: f.http.URL + "/oauth2/token"}
	tok, err := cc.Token(context.Background())
	if err != nil {
		return "x"
	}
	return tok.AccessToken
}

func TestTokenExpiryAndRevocation(t *testing.T) {
	f := newFixture(t, 2*time.Second)
	s1 := f.mustConnect("s-1", "s-1", []byte(f.token("s-1", "mqtt")))
	select {
	case d := <-s1.disconnected:
		if d.ReasonCode != 0xA0 {
			t.Errorf("DISCONNECT reason = %#x, want 0xA0 (maximum connect time)", d.ReasonCode)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("client was not disconnected when its token expired")
	}

	g := newFixture(t, time.Hour)
	tok := g.token("s-2", "mqtt")
	s2 := g.mustConnect("s-2", "s-2", []byte(tok))
	if err := g.oauth.RevokeAccessToken(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	waitDisconnect(t, s2, 0x87, "client was not disconnected when its token was revoked")
	if _, code, _ := g.connect("s-2", "s-2", []byte(tok), nil); code != 0x86 {
		t.Errorf("reconnect with revoked token: CONNACK %#x, want 0x86", code)
	}
}

// TestRevocationFromAnotherReplica: a token.revoked event written by
// another replica (here straight into the event log, so this process's
// token revocation cache never hears of it) disconnects the session, and
// the broker refuses the token on reconnect instead of letting the client
// back in until the cache reloads.
func TestRevocationFromAnotherReplica(t *testing.T) {
	f := newFixture(t, time.Hour)
	tok := f.token("s-2", "mqtt")
	part := strings.Split(tok, ".")[1]
	raw, err := base64.RawURLEncoding.DecodeString(part)
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		JTI string `json:"jti"`
	}
	if err := json.Unmarshal(raw, &claims); err != nil || claims.JTI == "" {
		t.Fatalf("token claims %s: %v", raw, err)
	}
	c := f.mustConnect("s-2", "s-2", []byte(tok))
	other := events.NewLog(f.store, time.Now) // another replica's log: no local wake-up
	ctx := context.Background()
	if err := f.store.InTx(ctx, func(tx *store.Tx) error {
		_, err := other.Record(ctx, tx, "token.revoked", "thing/s-2", map[string]any{"jti": claims.JTI, "reason": "test"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	waitDisconnect(t, c, 0x87, "client was not disconnected after the revocation event")
	if _, code, _ := f.connect("s-2", "s-2", []byte(tok), nil); code != 0x86 {
		t.Errorf("reconnect with the revoked token: CONNACK %#x, want 0x86", code)
	}
}

// customAuthorizer registers an RSA key as authorizer "openam" and returns
// a function that signs a token with it.
func customAuthorizer(t *testing.T, f *fixture) func(string) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	pub := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	if _, err := f.reg.CreateAuthorizer(events.WithActor(context.Background(), "test"), registry.AuthorizerSpec{
		Name: "openam", TokenKeyName: "token", PublicKeys: map[string]string{"FIRST_KEY": pub}, Default: true}); err != nil {
		t.Fatal(err)
	}
	return func(tok string) string {
		sum := sha256.Sum256([]byte(tok))
		sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
		if err != nil {
			t.Fatal(err)
		}
		return base64.StdEncoding.EncodeToString(sig)
	}
}

func TestCustomAuthorizerMQTT(t *testing.T) {
	f := newFixture(t, time.Hour)
	sign := customAuthorizer(t, f)
	tok := f.token("s-1", "mqtt")
	user := func(name, sig, token string) string {
		return name + "?x-amz-customauthorizer-name=" + url.QueryEscape(name2(name)) + "&x-amz-customauthorizer-signature=" + url.QueryEscape(sig) + "&token=" + url.QueryEscape(token)
	}
	tests := []struct {
		name     string
		username string
		want     byte
	}{
		{"signed token", user("s-1", sign(tok), tok), 0},
		{"signature of another token", user("s-1", sign(tok+"x"), tok), 0x86},
		{"no signature", user("s-1", "", tok), 0x86},
		{"unknown authorizer", "s-1?x-amz-customauthorizer-name=nope&x-amz-customauthorizer-signature=" + url.QueryEscape(sign(tok)) + "&token=" + url.QueryEscape(tok), 0x86},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, code, _ := f.connect("s-1", tc.username, nil, nil)
			if code != tc.want {
				t.Errorf("CONNACK = %#x, want %#x", code, tc.want)
			}
			if c != nil && code == 0 {
				if got := publish(t, c, "things/s-1/temp", 1, false); got != 0 {
					t.Errorf("publish after custom auth = %#x", got)
				}
				_ = c.Disconnect(&paho.Disconnect{})
			}
		})
	}
}

func name2(string) string { return "openam" }

func TestHTTPSPublish(t *testing.T) {
	f := newFixture(t, time.Hour)
	sign := customAuthorizer(t, f)
	sub := f.mustConnect("s-2", "s-2", []byte(f.token("s-2", "mqtt")))
	// s-2 may subscribe to its own topics only; give it alerts via commands.
	if got := subscribe(t, sub, "commands/#"); got != 1 {
		t.Fatalf("subscribe = %#x", got)
	}
	alerts := f.token("s-1", "alerts")
	mqttOnly := f.token("s-1", "mqtt")
	var challenge string // the last answer's WWW-Authenticate
	post := func(path string, h map[string]string, body string) (int, string) {
		req, _ := http.NewRequest("POST", f.http.URL+path, strings.NewReader(body))
		for k, v := range h {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		challenge = resp.Header.Get("WWW-Authenticate")
		return resp.StatusCode, string(b)
	}
	tests := []struct {
		name    string
		path    string
		headers map[string]string
		want    int
	}{
		{"bearer allowed", "/topics/alerts/fire?qos=1", map[string]string{"Authorization": "Bearer " + alerts}, 200},
		{"bearer wrong scope", "/topics/alerts/fire", map[string]string{"Authorization": "Bearer " + mqttOnly}, 403},
		// HTTPS has no client id, so thing variables do not resolve there.
		{"thing-variable topic", "/topics/things/s-1/temp", map[string]string{"Authorization": "Bearer " + alerts}, 403},
		{"retain without RetainPublish", "/topics/alerts/fire?retain=true", map[string]string{"Authorization": "Bearer " + alerts}, 403},
		{"bad token", "/topics/alerts/fire", map[string]string{"Authorization": "Bearer nope"}, 401},
		{"no credentials", "/topics/alerts/fire", nil, 401},
		{"wildcard topic", "/topics/alerts/%2B", map[string]string{"Authorization": "Bearer " + alerts}, 400},
		{"bad qos", "/topics/alerts/fire?qos=2", map[string]string{"Authorization": "Bearer " + alerts}, 400},
		{"custom authorizer headers", "/topics/alerts/fire", map[string]string{"x-amz-customauthorizer-name": "openam", "x-amz-customauthorizer-signature": sign(alerts), "token": alerts}, 200},
		{"custom authorizer bad signature", "/topics/alerts/fire", map[string]string{"x-amz-customauthorizer-name": "openam", "x-amz-customauthorizer-signature": sign("other"), "token": alerts}, 401},
	}
	for _, tc := range tests {
		code, body := post(tc.path, tc.headers, "fire in hall 3")
		if code != tc.want {
			t.Errorf("%s: POST %s = %d %s, want %d", tc.name, tc.path, code, body, tc.want)
		}
	}
	// RFC 6750 section 3: a 401 says how to authenticate, and that a
	// presented token was invalid.
	for _, tc := range []struct {
		headers map[string]string
		want    string
	}{
		{map[string]string{"Authorization": "Bearer nope"}, `Bearer realm="gatehouse", error="invalid_token"`},
		{nil, `Bearer realm="gatehouse"`},
	} {
		if code, _ := post("/topics/alerts/fire", tc.headers, "x"); code != 401 || challenge != tc.want {
			t.Errorf("POST with %v = %d, WWW-Authenticate %q; want 401, %q", tc.headers, code, challenge, tc.want)
		}
	}
	if code, _ := post("/topics/alerts/big", map[string]string{"Authorization": "Bearer " + alerts}, strings.Repeat("x", broker.MaxHTTPPayload+1)); code != 413 {
		t.Errorf("oversized body = %d, want 413", code)
	}
	// Delivery: a thing allowed to receive alerts sees the HTTPS publish.
	ctx := events.WithActor(context.Background(), "test")
	recv := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["iot:Subscribe","iot:Receive"],"Resource":["topicfilter/alerts/*","topic/alerts/*"]}]}`
	if _, err := f.reg.CreatePolicy(ctx, registry.NewPolicy{Name: "alert-reader", Document: []byte(recv)}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.AttachPolicy(ctx, "alert-reader", store.TargetThing, "s-2"); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "the attached policy applying", func() bool { return subscribe(t, sub, "alerts/#") == 1 })
	if code, body := post("/topics/alerts/flood?qos=1", map[string]string{"Authorization": "Bearer " + alerts}, "water"); code != 200 {
		t.Fatalf("publish = %d %s", code, body)
	}
	if m := sub.waitFor(t, "alerts/flood"); string(m.Payload) != "water" {
		t.Errorf("payload = %q", m.Payload)
	}
	var resp map[string]string
	_, body := post("/topics/alerts/x", map[string]string{"Authorization": "Bearer nope"}, "")
	if json.Unmarshal([]byte(body), &resp) != nil || resp["message"] == "" || resp["traceId"] == "" {
		t.Errorf("error body %q is not the AWS data-plane shape", body)
	}
}

func TestEventTopicsAndWebSocket(t *testing.T) {
	f := newFixture(t, time.Hour)
	watcher := f.mustConnect("s-1", "s-1", []byte(f.token("s-1", "mqtt")))
	if got := subscribe(t, watcher, "$gatehouse/events/#"); got != 1 {
		t.Fatalf("subscribe to events = %#x", got)
	}
	c, code, err := f.connectOn("ws", "s-2", "s-2", []byte(f.token("s-2", "mqtt")), nil)
	if err != nil || code != 0 {
		t.Fatalf("connect over websocket: %#x %v", code, err)
	}
	if got := publish(t, c, "things/s-2/temp", 1, false); got != 0 {
		t.Errorf("publish over websocket = %#x", got)
	}
	m := watcher.waitFor(t, "$gatehouse/events/broker.connected/client/s-2")
	var ev store.Event
	if err := json.Unmarshal(m.Payload, &ev); err != nil || ev.Actor != "thing:s-2" {
		t.Errorf("event payload = %s (%v)", m.Payload, err)
	}
}
