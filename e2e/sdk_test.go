package e2e

import (
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/testenv"
	"github.com/gatehouse-iot/gatehouse/thing"
)

// newThing is a device with its own state directory.
func newThing(t *testing.T, s *server, cfg thing.Config) *thing.Thing {
	t.Helper()
	cfg.ServerURL = s.URL
	if cfg.StateDir == "" {
		cfg.StateDir = t.TempDir()
	}
	th, err := thing.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return th
}

// TestSDKSeed002RegisterMTLS is seed 002 through the SDK: a registration
// token from the admin API, Register with a CSR (the key stays on the
// device), then MQTT over mutual TLS with the new certificate, the server
// verified against the returned root CA, publishing as the thing type's
// policy allows.
func TestSDKSeed002RegisterMTLS(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--data-dir", t.TempDir())
	if s.MQTTS == "" {
		t.Fatalf("banner lacks the mqtts listener:\n%s", s.Stdout())
	}
	s.admin(t, "POST", "/api/v1/policies", `{"name":"sensor-policy","document":{"Version":"2012-10-17","Statement":[
	  {"Effect":"Allow","Action":"iot:Connect","Resource":"client/${iot:Connection.Thing.ThingName}"},
	  {"Effect":"Allow","Action":"iot:Publish","Resource":"topic/tlm/*/${iot:Connection.Thing.ThingName}/d2c"},
	  {"Effect":"Allow","Action":["iot:Subscribe","iot:Receive"],"Resource":["topicfilter/cmd/${iot:Connection.Thing.ThingName}/c2d","topic/cmd/${iot:Connection.Thing.ThingName}/c2d"]}]}}`, 201)
	s.admin(t, "POST", "/api/v1/thing-types", `{"name":"sensor","defaultPolicies":["sensor-policy"]}`, 201)
	regToken := s.admin(t, "POST", "/api/v1/registration-tokens", `{"thingType":"sensor","maxUses":2}`, 201)["token"].(string)

	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	th := newThing(t, s, thing.Config{Name: "sensor-1", StateDir: dir})
	reg, err := th.Register(ctx, regToken, "1.0")
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	if got := reg.Certificate.Subject.CommonName; got != "sensor-1" {
		t.Errorf("certificate CN = %q, want sensor-1", got)
	}
	if reg.CertificateID == "" {
		t.Error("Register returned no certificate id")
	}
	for _, f := range []string{"key.pem", "cert.pem", "ca.pem", "state.json"} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Errorf("state file %s: %v", f, err)
			continue
		}
		if got := fi.Mode().Perm(); got != 0o600 {
			t.Errorf("%s mode = %o, want 600", f, got)
		}
	}
	thingJSON := s.admin(t, "GET", "/api/v1/things/sensor-1", "", 200)
	if got := thingJSON["thingType"]; got != "sensor" {
		t.Errorf("registered thing type = %v, want sensor", got)
	}
	if _, err := th.Register(ctx, regToken, "1.0"); !errors.Is(err, thing.ErrAlreadyRegistered) {
		t.Errorf("second Register = %v, want ErrAlreadyRegistered", err)
	}

	// A restarted device finds everything in its state directory.
	th = newThing(t, s, thing.Config{StateDir: dir})
	if got, want := th.Name(), "sensor-1"; got != want {
		t.Errorf("reloaded Name() = %q, want %q", got, want)
	}
	if got := th.CertificateID(); got != reg.CertificateID {
		t.Errorf("reloaded CertificateID() = %q, want %q", got, reg.CertificateID)
	}

	conn, err := th.Connect(ctx, thing.MQTTOptions{URL: "mqtts://" + s.MQTTS, Auth: thing.MQTTCertificate})
	if err != nil {
		t.Fatalf("Connect with the certificate: %v", err)
	}
	defer conn.Close(context.Background())
	tests := []struct {
		topic   string
		allowed bool
	}{
		{"tlm/temp/sensor-1/d2c", true},
		{"tlm/temp/sensor-2/d2c", false},
		{"elsewhere", false},
	}
	for _, tc := range tests {
		err := conn.Publish(ctx, tc.topic, []byte(`{"t":21.5}`), 1, false)
		if got := err == nil; got != tc.allowed {
			t.Errorf("Publish %s: err %v, want allowed=%v", tc.topic, err, tc.allowed)
		}
	}
	if err := conn.Subscribe(ctx, "cmd/sensor-2/c2d", 1, func(thing.Message) {}); err == nil {
		t.Error("Subscribe to another thing's commands succeeded")
	}
	// Without the registered certificate the TLS listener refuses.
	other := newThing(t, s, thing.Config{Name: "sensor-x"})
	if _, err := other.Connect(ctx, thing.MQTTOptions{URL: "mqtts://" + s.MQTTS, Auth: thing.MQTTCertificate}); err == nil {
		t.Error("Connect without a certificate succeeded")
	}
}

// TestSDKTokenAsPasswordReconnect: a thing logs in with its access token
// as MQTT password; when the token is revoked the broker disconnects it
// (0x87) and the SDK reconnects with a fresh token, keeping its
// subscriptions.
func TestSDKTokenAsPasswordReconnect(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--data-dir", t.TempDir())
	botSecret, dashSecret := setupBot(t, s)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()

	bot := newThing(t, s, thing.Config{Name: "thingymabot", Scopes: []string{"publish"}})
	if err := bot.SetClientSecret(botSecret); err != nil {
		t.Fatal(err)
	}
	dash := newThing(t, s, thing.Config{Name: "dash", Auth: thing.AuthClientSecretPost})
	if err := dash.SetClientSecret(dashSecret); err != nil {
		t.Fatal(err)
	}
	url := "mqtt://" + s.MQTT
	sub, err := dash.Connect(ctx, thing.MQTTOptions{URL: url})
	if err != nil {
		t.Fatalf("dash Connect: %v", err)
	}
	defer sub.Close(context.Background())
	got := make(chan string, 10)
	if err := sub.Subscribe(ctx, "test", 1, func(m thing.Message) { got <- string(m.Payload) }); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	pub, err := bot.Connect(ctx, thing.MQTTOptions{URL: url})
	if err != nil {
		t.Fatalf("bot Connect: %v", err)
	}
	defer pub.Close(context.Background())
	receive := func(want string) {
		t.Helper()
		select {
		case m := <-got:
			if m != want {
				t.Errorf("received %q, want %q", m, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("did not receive %q", want)
		}
	}
	if err := pub.Publish(ctx, "test", []byte("one"), 1, false); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	receive("one")

	old, err := bot.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.admin(t, "POST", "/api/v1/oauth/revoke", jsonString(map[string]string{"token": old}), 204)
	revoked := time.Now()
	testenv.Eventually(t, 20*time.Second, "the SDK replacing the revoked token", func() bool {
		tok, err := bot.Token(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return tok != old
	})
	// The new connection is up with the fresh token (within the same 20s).
	testenv.Eventually(t, 20*time.Second-time.Since(revoked), "Publish succeeding after the reconnect", func() bool {
		return pub.Publish(ctx, "test", []byte("two"), 1, false) == nil
	})
	receive("two")
	if err := pub.Publish(ctx, "forbidden", []byte("x"), 1, false); err == nil {
		t.Error("Publish to a topic the policy does not allow succeeded")
	}
}

// TestSDKTokens gets tokens every supported way; the token is cached in
// memory and on disk.
func TestSDKTokens(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--data-dir", t.TempDir())
	s.admin(t, "POST", "/api/v1/thing-types", `{"name":"bot","scopes":["publish","read"]}`, 201)
	tests := []struct {
		name     string
		auth     thing.AuthMethod
		endpoint thing.TokenEndpoint
		key      bool
	}{
		{"secret-basic", thing.AuthClientSecretBasic, thing.EndpointOAuth, false},
		{"secret-post", thing.AuthClientSecretPost, thing.EndpointOAuth, false},
		{"jwt", thing.AuthPrivateKeyJWT, thing.EndpointOAuth, true},
		{"things-secret", thing.AuthAuto, thing.EndpointThings, false},
		{"things-jwt", thing.AuthPrivateKeyJWT, thing.EndpointThings, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			s.admin(t, "POST", "/api/v1/things", `{"name":"`+tc.name+`","thingType":"bot"}`, 201)
			dir := t.TempDir()
			th := newThing(t, s, thing.Config{Name: tc.name, StateDir: dir, Auth: tc.auth, Endpoint: tc.endpoint, Scopes: []string{"publish"}})
			if tc.key {
				jwk, err := th.PublicJWK()
				if err != nil {
					t.Fatal(err)
				}
				if strings.Contains(string(jwk), `"d"`) {
					t.Fatalf("PublicJWK leaks the private key: %s", jwk)
				}
				s.admin(t, "POST", "/api/v1/things/"+tc.name+"/keys", string(jwk), 201)
			} else {
				secret := s.admin(t, "POST", "/api/v1/things/"+tc.name+"/secret", "", 201)["clientSecret"].(string)
				if err := th.SetClientSecret(secret); err != nil {
					t.Fatal(err)
				}
			}
			tok, err := th.Token(ctx)
			if err != nil {
				t.Fatalf("Token: %v", err)
			}
			claims := jwtClaims(t, tok)
			if got := claims["thing_name"]; got != tc.name {
				t.Errorf("token thing_name = %v, want %s", got, tc.name)
			}
			if got := claims["scope"]; got != "publish" {
				t.Errorf("token scope = %v, want publish", got)
			}
			again, err := th.Token(ctx)
			if err != nil || again != tok {
				t.Errorf("second Token = %v, new token %v, want the cached one", err, again != tok)
			}
			reloaded := newThing(t, s, thing.Config{StateDir: dir, Auth: tc.auth, Endpoint: tc.endpoint})
			if got, err := reloaded.Token(ctx); err != nil || got != tok {
				t.Errorf("Token after restart = %v, new token %v, want the stored one", err, got != tok)
			}
			// A second fetch signs a new assertion (fresh jti).
			th.InvalidateToken()
			if got, err := th.Token(ctx); err != nil || got == tok {
				t.Errorf("Token after InvalidateToken = %v, same token %v, want a new one", err, got == tok)
			}
		})
	}
	// Wrong credentials are an OAuth error.
	s.admin(t, "POST", "/api/v1/things", `{"name":"wrong","thingType":"bot"}`, 201)
	th := newThing(t, s, thing.Config{Name: "wrong"})
	th.SetClientSecret("not-the-secret")
	var he *thing.HTTPError
	if _, err := th.Token(t.Context()); !errors.As(err, &he) || he.Code != "invalid_client" {
		t.Errorf("Token with a wrong secret = %v, want invalid_client", err)
	}
}

// TestSDKHTTPSPublishAndCustomAuthorizer publishes over HTTPS with a
// bearer token and through a custom authorizer (signature of the token
// with a device-held ECDSA key), and logs in over MQTT the AWS way.
func TestSDKHTTPSPublishAndCustomAuthorizer(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--data-dir", t.TempDir())
	botSecret, _ := setupBot(t, s)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	bot := newThing(t, s, thing.Config{Name: "thingymabot", Scopes: []string{"publish"}})
	if err := bot.SetClientSecret(botSecret); err != nil {
		t.Fatal(err)
	}
	signer, err := bot.LoadOrCreateSigningKey("authorizer-key.pem")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := thing.PublicKeyPEM(signer)
	if err != nil {
		t.Fatal(err)
	}
	s.admin(t, "POST", "/api/v1/authorizers", `{"authorizerName":"device-auth","tokenKeyName":"token","tokenSigningPublicKeys":{"k1":`+jsonString(pub)+`}}`, 201)
	auth := &thing.CustomAuthorizer{Name: "device-auth", Signer: signer}
	wrong := &thing.CustomAuthorizer{Name: "device-auth", Signer: mustKey(t, bot)}

	tests := []struct {
		name  string
		topic string
		opts  thing.HTTPSOptions
		want  int // 0 for success
	}{
		{"bearer allowed", "test", thing.HTTPSOptions{QoS: 1}, 0},
		{"bearer denied", "forbidden", thing.HTTPSOptions{}, 403},
		{"authorizer allowed", "test", thing.HTTPSOptions{Authorizer: auth}, 0},
		{"authorizer denied", "elsewhere", thing.HTTPSOptions{Authorizer: auth}, 403},
		{"authorizer wrong key", "test", thing.HTTPSOptions{Authorizer: wrong}, 401},
	}
	for _, tc := range tests {
		err := bot.PublishHTTPS(ctx, tc.topic, []byte("hello"), tc.opts)
		var he *thing.HTTPError
		got := 0
		if errors.As(err, &he) {
			got = he.StatusCode
		} else if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if got != tc.want {
			t.Errorf("%s: PublishHTTPS status = %d (%v), want %d", tc.name, got, err, tc.want)
		}
	}

	conn, err := bot.Connect(ctx, thing.MQTTOptions{URL: "mqtt://" + s.MQTT, Auth: thing.MQTTCustomAuthorizer, Authorizer: auth})
	if err != nil {
		t.Fatalf("Connect through the custom authorizer: %v", err)
	}
	defer conn.Close(context.Background())
	if err := conn.Publish(ctx, "test", []byte("via authorizer"), 1, false); err != nil {
		t.Errorf("Publish through the custom authorizer: %v", err)
	}
	short, cancelShort := context.WithTimeout(ctx, 3*time.Second)
	defer cancelShort()
	if _, err := bot.Connect(short, thing.MQTTOptions{URL: "mqtt://" + s.MQTT, Auth: thing.MQTTCustomAuthorizer, Authorizer: wrong, ClientID: "thingymabot"}); err == nil {
		t.Error("Connect with a signature of an unknown key succeeded")
	}
}

func mustKey(t *testing.T, th *thing.Thing) *ecdsaSigner {
	t.Helper()
	k, err := th.LoadOrCreateSigningKey("other-key.pem")
	if err != nil {
		t.Fatal(err)
	}
	return &ecdsaSigner{k}
}

// TestSDKDeviceFlow runs the device authorization grant through the SDK: the
// code goes to a callback (here a person approves it in the browser at
// once), the SDK polls honouring the interval, and refreshes afterwards
// with the refresh token.
func TestSDKDeviceFlow(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--data-dir", t.TempDir())
	s.admin(t, "POST", "/api/v1/thing-types", `{"name":"tv","scopes":["publish"],"approverRelation":"owner"}`, 201)
	s.admin(t, "POST", "/api/v1/things", `{"name":"deviceagent","thingType":"tv"}`, 201)
	secret := s.admin(t, "POST", "/api/v1/things/deviceagent/secret", "", 201)["clientSecret"].(string)
	s.admin(t, "POST", "/api/v1/users", `{"username":"alice","password":"correct horse battery"}`, 201)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()

	tv := newThing(t, s, thing.Config{Name: "deviceagent", Scopes: []string{"publish"}, Auth: thing.AuthClientSecretPost})
	if err := tv.SetClientSecret(secret); err != nil {
		t.Fatal(err)
	}
	var shown thing.DeviceCode
	tok, err := tv.DeviceFlow(ctx, func(_ context.Context, dc thing.DeviceCode) error {
		shown = dc
		approveInBrowser(t, s, dc.VerificationURIComplete, "alice", "correct horse battery", "deviceagent", "publish")
		return nil
	})
	if err != nil {
		t.Fatalf("DeviceFlow: %v", err)
	}
	if shown.UserCode == "" || !strings.HasPrefix(shown.VerificationURI, s.URL) || shown.Interval <= 0 {
		t.Errorf("shown device code = %+v", shown)
	}
	if tok.RefreshToken == "" || tok.AccessToken == "" {
		t.Fatalf("DeviceFlow tokens lack access or refresh token: access %v refresh %v", tok.AccessToken != "", tok.RefreshToken != "")
	}
	if got, err := tv.Token(ctx); err != nil || got != tok.AccessToken {
		t.Errorf("Token after DeviceFlow = %v, new token %v, want the cached one", err, got != tok.AccessToken)
	}
	tv.InvalidateToken()
	refreshed, err := tv.Token(ctx)
	if err != nil || refreshed == tok.AccessToken {
		t.Fatalf("refresh = %v, same token %v", err, refreshed == tok.AccessToken)
	}
	if got := jwtClaims(t, refreshed)["sub"]; got == nil {
		t.Errorf("refreshed token has no sub")
	}
	rels := s.admin(t, "GET", "/api/v1/relationships?object=deviceagent", "", 200)
	if got := jsonString(rels); !strings.Contains(got, `"subject":"alice"`) {
		t.Errorf("approval did not record alice as owner: %s", got)
	}
}

// jwtClaims decodes a JWT's claims without verifying it.
func jwtClaims(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %d parts", len(parts))
	}
	b, err := base64URLDecode(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func base64URLDecode(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

// ecdsaSigner hides a key's concrete type, as a hardware-backed signer would.
type ecdsaSigner struct{ crypto.Signer }
