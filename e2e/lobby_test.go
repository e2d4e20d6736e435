package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"

	"github.com/gatehouse-iot/gatehouse/internal/testenv"
	"github.com/gatehouse-iot/gatehouse/thing"
)

// manufacturer makes a CA and a device certificate it signed, as a device
// maker's factory would.
func manufacturer(t *testing.T, deviceCN string) (caPEM string, device tls.Certificate, devicePEM []byte, fingerprint string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Acme Devices CA", Organization: []string{"Acme"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	devKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	devTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: deviceCN, Organization: []string{"Acme"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	devDER, err := x509.CreateCertificate(rand.Reader, devTmpl, caCert, &devKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(devKey)
	devicePEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: devDER})
	device, err = tls.X509KeyPair(devicePEM, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(devDER)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})), device, devicePEM, hex.EncodeToString(sum[:])
}

// TestSeed004Lobby is seed 004 with the real binary: a device with a
// manufacturer certificate knocks in the lobby, an operator claims it with
// the CLI by the QR payload of its certificate, the device receives its
// target and arrives there.
func TestSeed004Lobby(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--data-dir", t.TempDir())
	caPEM, device, devicePEM, fp := manufacturer(t, "meter-9")
	caJSON, _ := json.Marshal(caPEM)
	s.admin(t, "POST", "/api/v1/manufacturer-cas", `{"name":"acme","certificatePem":`+string(caJSON)+`}`, 201)
	s.admin(t, "POST", "/api/v1/policies", `{"name":"meter-telemetry","document":{"Version":"2012-10-17","Statement":[
	  {"Effect":"Allow","Action":"iot:Connect","Resource":"client/${iot:Connection.Thing.ThingName}"},
	  {"Effect":"Allow","Action":"iot:Publish","Resource":"topic/meters/${iot:Connection.Thing.ThingName}/*"}]}}`, 201)
	s.admin(t, "POST", "/api/v1/thing-types", `{"name":"meter","defaultPolicies":["meter-telemetry"]}`, 201)
	s.admin(t, "POST", "/api/v1/lobby/targets", `{"name":"here","kind":"local","thingType":"meter","config":"report every 60s"}`, 201)

	// The QR code printed on the device.
	dir := t.TempDir()
	certFile := filepath.Join(dir, "device.pem")
	os.WriteFile(certFile, devicePEM, 0o600)
	out, errOut, err := s.cli(t, "", "qr", "--cert", certFile, "--out", filepath.Join(dir, "qr"))
	if err != nil || !strings.Contains(out, fp) {
		t.Fatalf("gatehouse qr: %v %s %s", err, out, errOut)
	}
	payload := strings.SplitN(out, "\n", 2)[0]
	if png, err := os.ReadFile(filepath.Join(dir, "qr.png")); err != nil || !strings.HasPrefix(string(png), "\x89PNG") {
		t.Errorf("qr.png: %v", err)
	}

	// The device trusts the Gatehouse CA (GET /ca) and opens a lobby
	// session with its fingerprint as client id.
	resp, err := http.Get(s.URL + "/ca")
	if err != nil {
		t.Fatal(err)
	}
	chain, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(chain) {
		t.Fatalf("GET /ca = %q", chain)
	}
	tlsCfg := &tls.Config{Certificates: []tls.Certificate{device}, RootCAs: roots, ServerName: "127.0.0.1"}
	var mu sync.Mutex
	var assignment []byte
	connect := func(clientID string) (*paho.Client, byte) {
		t.Helper()
		conn, err := tls.Dial("tcp", s.MQTTS, tlsCfg)
		if err != nil {
			t.Fatal(err)
		}
		c := paho.NewClient(paho.ClientConfig{Conn: packets.NewThreadSafeConn(conn), OnPublishReceived: []func(paho.PublishReceived) (bool, error){
			func(pr paho.PublishReceived) (bool, error) {
				mu.Lock()
				assignment = pr.Packet.Payload
				mu.Unlock()
				return true, nil
			}}})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ca, err := c.Connect(ctx, &paho.Connect{ClientID: clientID, KeepAlive: 30, CleanStart: true})
		if ca == nil {
			t.Fatalf("connect %s: %v", clientID, err)
		}
		return c, ca.ReasonCode
	}
	c, code := connect(fp)
	if code != 0 {
		t.Fatalf("lobby connect = %#x", code)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "$gatehouse/lobby/" + fp + "/assignment", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Publish(ctx, &paho.Publish{Topic: "$gatehouse/lobby/" + fp + "/knock", QoS: 1, Payload: []byte(`{"state":"factory default","config":"v1"}`)}); err != nil {
		t.Fatal(err)
	}
	waitLobbyState(t, s, fp, "inlobby")

	// The operator scans the QR code and claims the device for "here".
	if out, errOut, err := s.cli(t, "", "lobby", "claim", payload, "--target", "here"); err != nil {
		t.Fatalf("gatehouse lobby claim: %v %s %s", err, out, errOut)
	}
	testenv.Eventually(t, 10*time.Second, "a signed assignment after the claim", func() bool {
		mu.Lock()
		got := assignment
		mu.Unlock()
		// The lobby signs what it tells the device (docs/security.md).
		a, err := thing.VerifyLobbyMessage(got, fp, []string{"127.0.0.1"}, roots, time.Now())
		if err != nil || a.Endpoint == "" {
			return false
		}
		if a.Config != "report every 60s" || a.ThingName != "meter-9" {
			t.Errorf("assignment = %+v", a)
		}
		return true
	})
	_ = c.Disconnect(&paho.Disconnect{})

	// The device goes to its target, as its thing.
	d, code := connect("meter-9")
	if code != 0 {
		t.Fatalf("connect at the target = %#x", code)
	}
	pr, err := d.Publish(ctx, &paho.Publish{Topic: "meters/meter-9/kwh", QoS: 1, Payload: []byte("7")})
	if err != nil || pr.ReasonCode != 0 {
		t.Errorf("publish at the target: %v %v", pr, err)
	}
	_ = d.Disconnect(&paho.Disconnect{})
	dev := waitLobbyState(t, s, fp, "arrived")
	if !strings.Contains(jsonString(dev), `"to":"commissioned"`) {
		t.Errorf("history lacks the commissioning: %v", dev)
	}
	out, _, err = s.cli(t, "", "lobby", "list", "--state", "arrived")
	if err != nil || !strings.Contains(out, fp) {
		t.Errorf("gatehouse lobby list --state arrived: %v %s", err, out)
	}
}

func waitLobbyState(t *testing.T, s *server, fp, state string) map[string]any {
	t.Helper()
	var dev map[string]any
	testenv.Eventually(t, 10*time.Second, "lobby device in state "+state, func() bool {
		dev = s.admin(t, "GET", "/api/v1/lobby/devices/"+fp, "", 200)
		return dev["state"] == state
	})
	return dev
}
