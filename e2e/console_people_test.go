package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// TestConsolePeopleBrowser drives the console's people, access and admin
// pages and its MQTT test client in a real Chromium
// (e2e/browser/console-people.test.mjs): a user page (email, password
// reset, disable, console sessions signed out, API tokens), groups and
// members, a gateway -> child relationship, an access request made by a
// person with role "user" and approved with an expiry by the thing's owner
// (another denied), custom authorizers, OAuth apps, API tokens and AWS
// keys, a manufacturer CA's subject and expiry, a certificate's chain,
// revocation with a reason and status history, and the MQTT test client
// subscribing and publishing over the WebSocket listener as the signed-in
// person, with the broker's refusals shown. lamp-1, a real MQTT client
// here, echoes every command it receives as telemetry.
func TestConsolePeopleBrowser(t *testing.T) {
	node, chromium := browserTools(t)
	s := startServer(t, "--data-dir", t.TempDir())
	s.admin(t, "POST", "/api/v1/policies", lampPolicy, 201)
	s.admin(t, "POST", "/api/v1/thing-types", `{"name":"lamp","scopes":["mqtt"],"defaultPolicies":["lamp"]}`, 201)
	for _, name := range []string{"lamp-1", "lamp-9", "gw-1", "sensor-7"} {
		s.admin(t, "POST", "/api/v1/things", `{"name":"`+name+`","thingType":"lamp"}`, 201)
	}
	s.admin(t, "POST", "/api/v1/users", `{"username":"owen","password":"owen owns the lamp","roles":["user"]}`, 201)
	s.admin(t, "POST", "/api/v1/users", `{"username":"carol","password":"carol asks politely","roles":["user"]}`, 201)
	s.admin(t, "POST", "/api/v1/relationships", `{"subjectKind":"user","subject":"owen","relation":"owner","objectKind":"thing","object":"lamp-1"}`, 201)

	// A manufacturer CA, and a certificate Gatehouse issued, to inspect.
	caPEM, _, _, _ := manufacturer(t, "meter-1")
	caJSON, _ := json.Marshal(caPEM)
	s.admin(t, "POST", "/api/v1/manufacturer-cas", `{"name":"acme","certificatePem":`+string(caJSON)+`}`, 201)
	regTok := s.admin(t, "POST", "/api/v1/registration-tokens", `{"thingType":"lamp","maxUses":1}`, 201)["token"].(string)
	req, _ := http.NewRequest("POST", s.URL+"/register", strings.NewReader(`{"thingName":"cam-1","version":"1.0"}`))
	req.Header.Set("Authorization", "DeviceToken "+regTok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("register cam-1 = %d", resp.StatusCode)
	}
	certs := s.admin(t, "GET", "/api/v1/certificates?thingName=cam-1", "", 200)["items"].([]any)
	if len(certs) != 1 {
		t.Fatalf("cam-1 certificates = %v", certs)
	}
	certID := certs[0].(map[string]any)["certificateId"].(string)

	// An authorizer's signing key.
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(key.Public())
	authKey := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))

	// lamp-1 echoes each command as telemetry.
	secret := s.admin(t, "POST", "/api/v1/things/lamp-1/secret", "", 201)["clientSecret"].(string)
	lamp := mqttClient(t, s, "lamp-1", "lamp-1", thingToken(t, s, "lamp-1", secret, "mqtt"))
	echoCtx, stopEcho := context.WithCancel(t.Context())
	defer stopEcho()
	lamp.c.AddOnPublishReceived(func(pr paho.PublishReceived) (bool, error) {
		topic, ok := strings.CutPrefix(pr.Packet.Topic, "things/lamp-1/commands/")
		if !ok {
			return false, nil
		}
		payload := bytes.Clone(pr.Packet.Payload)
		go func() {
			ctx, cancel := context.WithTimeout(echoCtx, 10*time.Second)
			defer cancel()
			_, _ = lamp.c.Publish(ctx, &paho.Publish{Topic: "things/lamp-1/telemetry/" + topic, QoS: 1, Payload: payload})
		}()
		return true, nil
	})
	if got := lamp.subscribe(t, "things/lamp-1/commands/#"); got != 1 {
		t.Fatalf("lamp-1 subscribe = %#x", got)
	}

	shots := os.Getenv("SCREENSHOT_DIR")
	if shots == "" {
		shots, _ = filepath.Abs(filepath.Join("browser", "artifacts"))
	}
	nctx, ncancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer ncancel()
	cmd := exec.CommandContext(nctx, node, "--test", "--test-reporter=spec", filepath.Join("browser", "console-people.test.mjs"))
	cmd.Env = append(os.Environ(),
		"BASE_URL="+s.URL, "ADMIN_USER=admin", "ADMIN_PASSWORD="+s.Pass,
		"OWNER_NAME=owen", "OWNER_PASSWORD=owen owns the lamp", "REQUESTER_NAME=carol", "REQUESTER_PASSWORD=carol asks politely",
		"CERT_ID="+certID, "AUTH_KEY_PEM="+authKey,
		"SCREENSHOT_DIR="+shots, "CHROMIUM="+chromium)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	t.Logf("browser scenarios (screenshots in %s):\n%s", shots, out.String())
	if err != nil {
		t.Fatalf("browser scenarios failed: %v", err)
	}

	// What the browser did, seen through the API.
	if u := s.admin(t, "GET", "/api/v1/users/carol", "", 200); u["email"] != "carol@example.com" || u["disabled"] != false {
		t.Errorf("carol = %v, want her new email and enabled again", u)
	}
	rels := jsonString(s.admin(t, "GET", "/api/v1/relationships?subject=carol", "", 200))
	if !strings.Contains(rels, `"relation":"viewer"`) || !strings.Contains(rels, `"expiresAt"`) || strings.Contains(rels, `"relation":"operator"`) {
		t.Errorf("carol's relationships = %s, want viewer of lamp-1 with an expiry (approved) and not operator (denied)", rels)
	}
	if rels := jsonString(s.admin(t, "GET", "/api/v1/relationships?relation=gateway", "", 200)); !strings.Contains(rels, `"subject":"gw-1"`) || !strings.Contains(rels, `"object":"sensor-7"`) {
		t.Errorf("gateway relationships = %s", rels)
	}
	if c := s.admin(t, "GET", "/api/v1/certificates/"+certID, "", 200); c["status"] != "REVOKED" || c["revocationReason"] != 1.0 {
		t.Errorf("cam-1 certificate = %v, want REVOKED for key compromise", c)
	}
	if a := s.admin(t, "GET", "/api/v1/authorizers/devices", "", 200); a["default"] != true || len(a["tokenSigningPublicKeys"].(map[string]any)) != 2 {
		t.Errorf("authorizer = %v, want the default with two keys", a)
	}
	if m := s.admin(t, "GET", "/api/v1/groups/night-shift/members", "", 200); !strings.Contains(jsonString(m), `"member":"carol"`) {
		t.Errorf("night-shift members = %v", m)
	}
	if !lamp.got("things/lamp-1/commands/on") {
		t.Error("lamp-1 did not receive the command published from the browser")
	}
	// carol's command was refused (PUBACK 0x87 in her browser) before owen
	// published his: had it been delivered, it would have arrived first.
	if lamp.got("things/lamp-1/commands/from-carol") {
		t.Error("carol's refused command reached lamp-1")
	}
}

// TestConsoleMQTTCodec runs the console MQTT client's packet codec tests
// (e2e/browser/mqttws.test.mjs) under node: broker packets decode with
// their reasons, encoded packets are well-formed, cut input waits for the
// rest, and 20000 random packets decode or throw an Error.
func TestConsoleMQTTCodec(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: runs node")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("GATEHOUSE_TEST_BROWSER_REQUIRED") == "1" {
			t.Fatal("node is not installed (GATEHOUSE_TEST_BROWSER_REQUIRED=1)")
		}
		t.Skip("node is not installed")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, node, "--test", filepath.Join("browser", "mqttws.test.mjs")).CombinedOutput()
	if err != nil {
		t.Fatalf("node --test mqttws.test.mjs: %v\n%s", err, out)
	}
}
