package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"

	"github.com/gatehouse-iot/gatehouse/internal/testenv"
)

// Mosquitto with the Gatehouse plugin (cmd/gatehouse-mosquitto), started by
// the tests on free ports with their own configuration.
type mosquittoBroker struct {
	// srv points mqttClient, tryMQTT and mosquitto (the client tools)
	// at the broker's plain listener.
	srv  *server
	tls  string // the mutual-TLS listener
	ca   *x509.CertPool
	mu   sync.Mutex
	logs strings.Builder
}

func (b *mosquittoBroker) Logs() string { b.mu.Lock(); defer b.mu.Unlock(); return b.logs.String() }

var (
	pluginOnce sync.Once
	pluginPath string
	pluginErr  error
)

// mosquittoPlugin builds the plugin once per test binary, or skips (fails
// under CI) when Mosquitto or its headers are missing.
func mosquittoPlugin(t *testing.T) string {
	t.Helper()
	for _, f := range []string{"/usr/sbin/mosquitto", "/usr/include/mosquitto_plugin.h", "/usr/include/openssl/x509.h"} {
		if _, err := os.Stat(f); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s missing; scripts/test-deps.sh installs mosquitto, mosquitto-dev and libssl-dev", f)
			}
			t.Skipf("%s missing (apt-get install mosquitto mosquitto-dev libmosquitto-dev libssl-dev)", f)
		}
	}
	pluginOnce.Do(func() {
		dir, err := os.MkdirTemp("", "gatehouse-mosquitto")
		if err != nil {
			pluginErr = err
			return
		}
		pluginPath = filepath.Join(dir, "gatehouse-mosquitto.so")
		cmd := exec.Command("go", "build", "-buildmode=c-shared", "-tags", "mosquitto", "-o", pluginPath, "../cmd/gatehouse-mosquitto")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			pluginErr = fmt.Errorf("build the plugin: %v\n%s", err, out)
		}
	})
	if pluginErr != nil {
		t.Fatal(pluginErr)
	}
	return pluginPath
}

// freeAddr returns a loopback address with a port free at the moment.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startMosquitto starts /usr/sbin/mosquitto with the plugin on s's data
// directory: a plain listener, and a mutual-TLS one whose clients present
// certificates of Gatehouse's CA. extra lines are added to the
// configuration.
func startMosquitto(t *testing.T, s *server, dataDir string, extra ...string) (*mosquittoBroker, error) {
	t.Helper()
	plugin := mosquittoPlugin(t)
	dir := t.TempDir()
	_, caPEM := curl(t, "GET", s.URL+"/ca", "", "")
	caFile, certFile, keyFile := filepath.Join(dir, "clients-ca.pem"), filepath.Join(dir, "server.pem"), filepath.Join(dir, "server.key")
	if err := os.WriteFile(caFile, []byte(caPEM), 0o600); err != nil {
		t.Fatal(err)
	}
	roots := serverCertificate(t, certFile, keyFile)
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	plain, mtls := freeAddr(t), freeAddr(t)
	_, plainPort, _ := net.SplitHostPort(plain)
	_, tlsPort, _ := net.SplitHostPort(mtls)
	conf := strings.Join(append([]string{
		"user " + u.Username,
		"persistence false",
		"log_dest stderr",
		"log_type error",
		"log_type warning",
		"log_type notice",
		"per_listener_settings false",
		"allow_anonymous false",
		"plugin " + plugin,
		"plugin_opt_dataDir " + dataDir,
		"plugin_opt_http.externalURL " + s.URL,
		"listener " + plainPort + " 127.0.0.1",
		"listener " + tlsPort + " 127.0.0.1",
		"cafile " + caFile,
		"certfile " + certFile,
		"keyfile " + keyFile,
		"require_certificate true",
	}, extra...), "\n") + "\n"
	confFile := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	b := &mosquittoBroker{srv: &server{MQTT: plain}, tls: mtls, ca: roots}
	cmd := exec.Command("/usr/sbin/mosquitto", "-c", confFile)
	cmd.Stdout = lockedWriter{&b.mu, &b.logs}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("mosquitto log:\n%s", b.Logs())
		}
	})
	// Up once the plain listener accepts, or refused to start.
	up := make(chan struct{})
	go func() {
		defer close(up)
		testenv.Eventually(t, 30*time.Second, "mosquitto listening on "+plain, func() bool {
			select {
			case <-exited:
				return true
			default:
			}
			c, err := net.Dial("tcp", plain)
			if err == nil {
				c.Close()
			}
			return err == nil
		})
	}()
	select {
	case err := <-exited:
		return nil, fmt.Errorf("mosquitto exited: %v\n%s", err, b.Logs())
	case <-up:
	}
	select {
	case err := <-exited:
		return nil, fmt.Errorf("mosquitto exited: %v\n%s", err, b.Logs())
	default:
	}
	return b, nil
}

// serverCertificate writes a self-signed certificate for 127.0.0.1 and its
// key, and returns a pool trusting it.
func serverCertificate(t *testing.T, certFile, keyFile string) *x509.CertPool {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mosquitto"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool
}

// mosquittoPolicy lets a thing connect as itself, publish to its own data
// topic, subscribe to data/#, and receive data/* except data/hidden.
const mosquittoPolicy = `{"name":"dev","document":{"Version":"2012-10-17","Statement":[
  {"Effect":"Allow","Action":"iot:Connect","Resource":"client/${iot:Connection.Thing.ThingName}"},
  {"Effect":"Allow","Action":"iot:Publish","Resource":["topic/data/${iot:Connection.Thing.ThingName}","topic/$gatehouse/x"]},
  {"Effect":"Allow","Action":"iot:Subscribe","Resource":"topicfilter/data/#"},
  {"Effect":"Allow","Action":"iot:Receive","Resource":"topic/data/*"},
  {"Effect":"Deny","Action":"iot:Receive","Resource":"topic/data/hidden"}]}}`

// mosquittoFleet starts a server and Mosquitto with the plugin on its
// data directory, with things of type dev (mosquittoPolicy) and their
// tokens.
func mosquittoFleet(t *testing.T, things ...string) (*server, *mosquittoBroker, map[string]string) {
	t.Helper()
	dataDir := t.TempDir()
	s := startServer(t, "--data-dir", dataDir)
	s.admin(t, "POST", "/api/v1/policies", mosquittoPolicy, 201)
	s.admin(t, "POST", "/api/v1/thing-types", `{"name":"dev","scopes":["mqtt"],"defaultPolicies":["dev"]}`, 201)
	tokens := map[string]string{}
	for _, name := range things {
		s.admin(t, "POST", "/api/v1/things", `{"name":"`+name+`","thingType":"dev"}`, 201)
		secret := s.admin(t, "POST", "/api/v1/things/"+name+"/secret", "", 201)["clientSecret"].(string)
		tokens[name] = thingToken(t, s, name, secret, "mqtt")
	}
	b, err := startMosquitto(t, s, dataDir)
	if err != nil {
		t.Fatal(err)
	}
	return s, b, tokens
}

// TestMosquittoPluginTokenAsPassword: mosquitto_pub and mosquitto_sub
// log in to Mosquitto with Gatehouse access tokens as passwords; a wrong
// token is refused.
func TestMosquittoPluginTokenAsPassword(t *testing.T) {
	t.Parallel()
	_, b, tokens := mosquittoFleet(t, "pub-1", "sub-1")
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	subOut := make(chan string, 1)
	go func() {
		o, _ := mosquitto(t, ctx, "mosquitto_sub", b.srv, "-V", "5", "-i", "sub-1", "-u", "sub-1", "-P", tokens["sub-1"], "-t", "data/#", "-C", "1", "-W", "30", "-v")
		subOut <- o
	}()
	// mosquitto_pub until the subscriber (connecting meanwhile) has it.
	var out string
	testenv.Eventually(t, 30*time.Second, "mosquitto_sub receiving mosquitto_pub's message", func() bool {
		if o, err := mosquitto(t, ctx, "mosquitto_pub", b.srv, "-V", "5", "-q", "1", "-i", "pub-1", "-u", "pub-1", "-P", tokens["pub-1"], "-t", "data/pub-1", "-m", "hello"); err != nil {
			t.Fatalf("mosquitto_pub: %v %s", err, o)
		}
		select {
		case out = <-subOut:
			return true
		default:
			return false
		}
	})
	if !strings.Contains(out, "data/pub-1 hello") {
		t.Errorf("mosquitto_sub got %q, want data/pub-1 hello", out)
	}
	o, err := mosquitto(t, ctx, "mosquitto_pub", b.srv, "-V", "5", "-i", "pub-1", "-u", "pub-1", "-P", tokens["pub-1"]+"x", "-t", "data/pub-1", "-m", "forged")
	if err == nil || !strings.Contains(strings.ToLower(o), "not authori") {
		t.Errorf("mosquitto_pub with a forged token: %v %q, want a refusal (not authorized)", err, o)
	}
	if _, code := tryMQTT(t, b.srv, "pub-1", "pub-1", ""); code == 0 {
		t.Error("CONNECT without a password was accepted")
	}
	if _, code := tryMQTT(t, b.srv, "sub-1", "sub-1", tokens["pub-1"]); code == 0 {
		t.Error("CONNECT with another thing's token and client id was accepted (iot:Connect is client/<own name>)")
	}
}

// TestMosquittoPluginDenials: Mosquitto refuses what the policy refuses:
// a publish to another thing's topic or a reserved topic, a subscription
// outside data/#, a delivery the subscriber may not receive, and a will
// on a topic its client may not publish to.
func TestMosquittoPluginDenials(t *testing.T) {
	t.Parallel()
	_, b, tokens := mosquittoFleet(t, "a", "hidden", "watch")
	watch := mqttClient(t, b.srv, "watch", "watch", tokens["watch"])
	if code := watch.subscribe(t, "data/#"); code > 2 {
		t.Fatalf("subscribe data/# = %#x, want granted", code)
	}
	if code := watch.subscribe(t, "other/#"); code < 0x80 {
		t.Errorf("subscribe other/# = %#x, want refused (no iot:Subscribe)", code)
	}
	a := mqttClient(t, b.srv, "a", "a", tokens["a"])
	for topic, want := range map[string]bool{"data/a": true, "data/watch": false, "$gatehouse/x": false} {
		if code := a.publish(t, topic, "m"); (code < 0x80) != want {
			t.Errorf("publish %s = %#x, want allowed %v", topic, code, want)
		}
	}
	// A retained publish needs iot:RetainPublish, which the policy lacks.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	pr, err := a.c.Publish(ctx, &paho.Publish{Topic: "data/a", QoS: 1, Retain: true, Payload: []byte("retained")})
	cancel()
	if pr == nil || pr.ReasonCode < 0x80 {
		t.Errorf("retained publish to data/a: %v %v, want refused", pr, err)
	}
	// Receive: data/hidden is published (its own topic) but never
	// delivered to watch; data/a after it is.
	hidden := mqttClient(t, b.srv, "hidden", "hidden", tokens["hidden"])
	if code := hidden.publish(t, "data/hidden", "secret"); code >= 0x80 {
		t.Fatalf("publish data/hidden = %#x, want allowed", code)
	}
	if code := a.publish(t, "data/a", "sentinel"); code >= 0x80 {
		t.Fatalf("publish data/a = %#x", code)
	}
	watch.waitFor(t, "data/a")
	for _, topic := range []string{"data/hidden", "data/watch", "$gatehouse/x"} {
		if watch.got(topic) {
			t.Errorf("watch received %s, which the policy denies", topic)
		}
	}

	// A will on a topic the client may publish to is sent; one on
	// another thing's topic is not.
	for _, will := range []string{"data/a", "data/watch"} {
		conn, err := net.Dial("tcp", b.srv.MQTT)
		if err != nil {
			t.Fatal(err)
		}
		c := paho.NewClient(paho.ClientConfig{Conn: packets.NewThreadSafeConn(conn), OnClientError: func(error) {}})
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		ca, err := c.Connect(ctx, &paho.Connect{ClientID: "a", Username: "a", UsernameFlag: true, Password: []byte(tokens["a"]), PasswordFlag: true,
			KeepAlive: 30, CleanStart: true, WillMessage: &paho.WillMessage{Topic: will, Payload: []byte("will:" + will), QoS: 1}})
		cancel()
		if ca == nil || ca.ReasonCode != 0 {
			t.Fatalf("connect with a will on %s: %v %v", will, ca, err)
		}
		conn.Close() // without DISCONNECT: the will is due
	}
	// The sentinel: a new connection as "a" takes over (or follows) the
	// last one, so its will was decided before this CONNECT is accepted;
	// the allowed will and the publish after it arrive, the denied will
	// would have come before them.
	a2 := mqttClient(t, b.srv, "a", "a", tokens["a"])
	if code := a2.publish(t, "data/a", "after-wills"); code >= 0x80 {
		t.Fatal(code)
	}
	testenv.Eventually(t, 10*time.Second, "the allowed will and the message after the wills", func() bool {
		return watch.gotPayload("data/a", "will:data/a") && watch.gotPayload("data/a", "after-wills")
	})
	if watch.gotPayload("data/watch", "will:data/watch") {
		t.Error("the will on data/watch, which a may not publish to, was sent")
	}
}

// gotPayload reports whether m received payload on topic.
func (m *mqttPeer) gotPayload(topic, payload string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range m.msgs {
		if p.Topic == topic && string(p.Payload) == payload {
			return true
		}
	}
	return false
}

// TestMosquittoPluginLive: changes in Gatehouse reach live Mosquitto
// clients: a revoked token and a disabled thing disconnect their client, a
// policy edit applies to the next publish; a client certificate of
// Gatehouse's CA logs in over mutual TLS.
func TestMosquittoPluginLive(t *testing.T) {
	t.Parallel()
	s, b, tokens := mosquittoFleet(t, "rev", "dis", "edit")
	rev := mqttClient(t, b.srv, "rev", "rev", tokens["rev"])
	dis := mqttClient(t, b.srv, "dis", "dis", tokens["dis"])
	edit := mqttClient(t, b.srv, "edit", "edit", tokens["edit"])

	// mTLS: a registered device logs in with its certificate alone.
	regTok := s.admin(t, "POST", "/api/v1/registration-tokens", `{"thingType":"dev","maxUses":1}`, 201)["token"].(string)
	cert, _ := registerDevice(t, s, regTok, "meter")
	conn, err := tls.Dial("tcp", b.tls, &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: b.ca, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	mc := paho.NewClient(paho.ClientConfig{Conn: packets.NewThreadSafeConn(conn), OnClientError: func(error) {}})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	ca, err := mc.Connect(ctx, &paho.Connect{ClientID: "meter", KeepAlive: 30, CleanStart: true})
	cancel()
	if ca == nil || ca.ReasonCode != 0 {
		t.Fatalf("mTLS connect with the device certificate: %v %v", ca, err)
	}
	t.Cleanup(func() { _ = mc.Disconnect(&paho.Disconnect{}); conn.Close() })
	ctx, cancel = context.WithTimeout(t.Context(), 10*time.Second)
	pr, err := mc.Publish(ctx, &paho.Publish{Topic: "data/meter", QoS: 1, Payload: []byte("kWh")})
	cancel()
	if pr == nil || pr.ReasonCode >= 0x80 {
		t.Errorf("mTLS publish data/meter: %v %v, want accepted", pr, err)
	}

	// Revoke rev's token: Mosquitto disconnects it.
	code, out := curl(t, "POST", s.URL+"/api/v1/oauth/revoke", s.Token, `{"token":"`+tokens["rev"]+`"}`)
	if code != 200 && code != 204 {
		t.Fatalf("revoke = %d %s", code, out)
	}
	select {
	case <-rev.c.Done():
	case <-time.After(20 * time.Second):
		t.Error("the client of a revoked token is still connected after 20 s")
	}
	// Disable dis: disconnected too.
	s.admin(t, "PATCH", "/api/v1/things/dis", `{"state":"disabled"}`, 200)
	select {
	case <-dis.c.Done():
	case <-time.After(20 * time.Second):
		t.Error("the client of a disabled thing is still connected after 20 s")
	}
	if _, code := tryMQTT(t, b.srv, "dis", "dis", tokens["dis"]); code == 0 {
		t.Error("a disabled thing connected")
	}

	// A policy edit: publishing to its own topic is denied from now on,
	// on the live connection.
	if code := edit.publish(t, "data/edit", "before"); code >= 0x80 {
		t.Fatalf("publish before the edit = %#x", code)
	}
	s.admin(t, "POST", "/api/v1/policies/dev/versions", `{"setAsDefault":true,"document":{"Version":"2012-10-17","Statement":[
	  {"Effect":"Allow","Action":"iot:Connect","Resource":"client/${iot:Connection.Thing.ThingName}"},
	  {"Effect":"Allow","Action":"iot:Subscribe","Resource":"topicfilter/data/#"}]}}`, 201)
	testenv.Eventually(t, 20*time.Second, "the edited policy denying the live client's publish", func() bool {
		return edit.publish(t, "data/edit", "after") >= 0x80
	})
}
