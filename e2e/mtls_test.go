package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
)

// TestSeed002RegisterAndCertificateBoundTokens is seed 002 and RFC 8705: a
// device registers with a registration token and gets a certificate and
// key (POST /register); with that certificate it authenticates at the token
// endpoint over mutual TLS (tls_client_auth) and gets a token bound to the
// certificate (cnf x5t#S256), which the broker accepts only together with
// the certificate.
func TestSeed002RegisterAndCertificateBoundTokens(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--data-dir", t.TempDir())
	if s.HTTPS == "" || s.MQTTS == "" {
		t.Fatalf("banner lacks https or mqtts:\n%s", s.Stdout())
	}
	s.admin(t, "POST", "/api/v1/policies", `{"name":"meter-telemetry","document":{"Version":"2012-10-17","Statement":[
	  {"Effect":"Allow","Action":"iot:Connect","Resource":"client/${iot:Connection.Thing.ThingName}"},
	  {"Effect":"Allow","Action":"iot:Publish","Resource":"topic/meters/${iot:Connection.Thing.ThingName}/*"},
	  {"Effect":"Allow","Action":"iot:Publish","Resource":"topic/meters/https-check"}]}}`, 201)
	s.admin(t, "POST", "/api/v1/thing-types", `{"name":"meter","scopes":["telemetry"],"defaultPolicies":["meter-telemetry"]}`, 201)
	regTok := s.admin(t, "POST", "/api/v1/registration-tokens", `{"thingType":"meter","maxUses":2}`, 201)["token"].(string)

	register := func(thing string) (int, map[string]any) {
		req, _ := http.NewRequest("POST", s.URL+"/register", strings.NewReader(`{"thingName":"`+thing+`","version":"1.0"}`))
		req.Header.Set("Authorization", "DeviceToken "+regTok)
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
	code, reg := register("meter-1")
	if code != 200 {
		t.Fatalf("register = %d %v", code, reg)
	}
	if code, again := register("meter-1"); code != 400 || again["status"] != false {
		t.Errorf("register an existing thing = %d %v, want 400 {status:false}", code, again)
	}
	cd := reg["certificateData"].(map[string]any)
	kp := cd["key_pair"].(map[string]any)
	cert, err := tls.X509KeyPair([]byte(cd["pem"].(string)), []byte(kp["private_key"].(string)))
	if err != nil {
		t.Fatalf("certificate and key from /register: %v", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM([]byte(reg["rootCa"].(string))) {
		t.Fatal("rootCa is not PEM")
	}
	tlsCfg := &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: roots, ServerName: "127.0.0.1"}
	mtls := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg}, Timeout: 30 * time.Second}

	// tls_client_auth: client_id and the certificate, no secret.
	resp, err := mtls.PostForm("https://"+s.HTTPS+"/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {"meter-1"}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var tok map[string]any
	if resp.StatusCode != 200 || json.Unmarshal(body, &tok) != nil {
		t.Fatalf("token over mutual TLS = %d %s", resp.StatusCode, body)
	}
	access := tok["access_token"].(string)
	if !strings.Contains(decodeClaims(t, access), `"x5t#S256"`) {
		t.Errorf("token is not bound to the certificate: %s", decodeClaims(t, access))
	}
	// Another client id with this certificate is refused.
	resp, err = mtls.PostForm("https://"+s.HTTPS+"/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {"meter-2"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("token for another client id with this certificate = %d, want 401", resp.StatusCode)
	}

	connect := func(network string, password []byte) byte {
		t.Helper()
		conn := dialMQTT(t, network, s, tlsCfg)
		c := paho.NewClient(paho.ClientConfig{Conn: packets.NewThreadSafeConn(conn)})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ca, err := c.Connect(ctx, &paho.Connect{ClientID: "meter-1", Username: "meter-1", UsernameFlag: true, Password: password, PasswordFlag: password != nil, KeepAlive: 30, CleanStart: true})
		if ca == nil {
			t.Fatalf("connect over %s: %v", network, err)
		}
		if ca.ReasonCode == 0 {
			pr, err := c.Publish(ctx, &paho.Publish{Topic: "meters/meter-1/kwh", QoS: 1, Payload: []byte("42")})
			if err != nil || pr.ReasonCode != 0 {
				t.Errorf("publish over %s: %v %v", network, pr, err)
			}
			_ = c.Disconnect(&paho.Disconnect{})
		}
		return ca.ReasonCode
	}
	tests := []struct {
		name     string
		network  string
		password []byte
		want     byte
	}{
		{"certificate alone (mqtts)", "mqtts", nil, 0},
		{"bound token with its certificate (mqtts)", "mqtts", []byte(access), 0},
		{"bound token without the certificate (mqtt)", "mqtt", []byte(access), 0x86},
	}
	for _, tc := range tests {
		if got := connect(tc.network, tc.password); got != tc.want {
			t.Errorf("%s: CONNACK = %#x, want %#x", tc.name, got, tc.want)
		}
	}
	// Deactivating, then revoking the certificate reaches the token bound
	// to it everywhere: the live session bound to it is kicked, and
	// MQTTS, HTTPS publish, introspection and tls_client_auth refuse it.
	id := reg["certificateId"].(string)
	secret := s.admin(t, "POST", "/api/v1/things/meter-1/secret", "", 201)["clientSecret"].(string)
	httpsPublish := func() int {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), "POST", "https://"+s.HTTPS+"/topics/meters/https-check", strings.NewReader("42"))
		req.Header.Set("Authorization", "Bearer "+access)
		resp, err := mtls.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	tokenOverMTLS := func() int {
		t.Helper()
		resp, err := mtls.PostForm("https://"+s.HTTPS+"/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {"meter-1"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, step := range []struct{ action, status string }{{"deactivate", "INACTIVE"}, {"revoke", "REVOKED"}} {
		if got := httpsPublish(); got != 200 {
			t.Fatalf("before %s: HTTPS publish with the bound token = %d, want 200", step.action, got)
		}
		if !introspect(t, s, "meter-1", secret, access) {
			t.Fatalf("before %s: the bound token introspects as inactive", step.action)
		}
		live := mqttsConnect(t, s, tlsCfg, "meter-1", access)
		if got := s.admin(t, "POST", "/api/v1/certificates/"+id+"/"+step.action, `{}`, 200)["status"]; got != step.status {
			t.Fatalf("%s: status = %v, want %s", step.action, got, step.status)
		}
		select {
		case d := <-live.gone:
			if d.ReasonCode != 0x87 {
				t.Errorf("%s: live session with the bound token disconnected with %#x, want 0x87", step.action, d.ReasonCode)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("%s: the live session with the bound token was not disconnected", step.action)
		}
		if got := connect("mqtts", []byte(access)); got == 0 {
			t.Errorf("%s: the bound token connected over MQTTS", step.action)
		}
		if got := connect("mqtts", nil); got == 0 {
			t.Errorf("%s: the certificate connected over MQTTS", step.action)
		}
		if got := httpsPublish(); got != 401 && got != 403 {
			t.Errorf("%s: HTTPS publish with the bound token = %d, want 401 or 403", step.action, got)
		}
		if introspect(t, s, "meter-1", secret, access) {
			t.Errorf("%s: the bound token introspects as active", step.action)
		}
		if got := tokenOverMTLS(); got != 401 {
			t.Errorf("%s: tls_client_auth token request = %d, want 401", step.action, got)
		}
		if step.action == "deactivate" {
			s.admin(t, "POST", "/api/v1/certificates/"+id+"/activate", `{}`, 200)
			if got := connect("mqtts", []byte(access)); got != 0 {
				t.Fatalf("activated again: the bound token's CONNACK = %#x, want 0", got)
			}
		}
	}
}

// mqttsConnect connects an MQTT 5 client to s's mutual-TLS listener with
// cfg's certificate and token as password; the connection must be accepted.
func mqttsConnect(t *testing.T, s *server, cfg *tls.Config, clientID, token string) *mqtt5Client {
	t.Helper()
	conn := dialMQTT(t, "mqtts", s, cfg)
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
	if ca == nil || ca.ReasonCode != 0 {
		t.Fatalf("connect to %s: %v %v", s.MQTTS, ca, err)
	}
	t.Cleanup(func() { _ = m.c.Disconnect(&paho.Disconnect{}); conn.Close() })
	return m
}

// dialMQTT connects to the MQTT listener ("mqtt") or the mutual-TLS one
// ("mqtts") of s.
func dialMQTT(t *testing.T, network string, s *server, cfg *tls.Config) net.Conn {
	t.Helper()
	if network == "mqtts" {
		conn, err := tls.Dial("tcp", s.MQTTS, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return conn
	}
	conn, err := net.Dial("tcp", s.MQTT)
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

// decodeClaims returns the JSON payload of a JWT, unverified.
func decodeClaims(t *testing.T, jwt string) string {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %.20s", jwt)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
