package e2e

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
)

// fleetProvSampleTemplate is the template of AWS's fleet provisioning sample
// (aws-iot-device-sdk-js-v2 samples/node/service_clients/fleet_provisioning),
// unchanged.
const fleetProvSampleTemplate = `{"Parameters": {"DeviceLocation": {"Type": "String"},"AWS::IoT::Certificate::Id": {"Type": "String"},"SerialNumber": {"Type": "String"}},"Mappings": {"LocationTable": {"Seattle": {"LocationUrl": "https://example.aws"}}},"Resources": {"thing": {"Type": "AWS::IoT::Thing","Properties": {"ThingName": {"Fn::Join": ["",["ThingPrefix_",{"Ref": "SerialNumber"}]]},"AttributePayload": {"version": "v1","serialNumber": "serialNumber"}},"OverrideSettings": {"AttributePayload": "MERGE","ThingTypeName": "REPLACE","ThingGroups": "DO_NOTHING"}},"certificate": {"Type": "AWS::IoT::Certificate","Properties": {"CertificateId": {"Ref": "AWS::IoT::Certificate::Id"},"Status": "Active"},"OverrideSettings": {"Status": "REPLACE"}},"policy": {"Type": "AWS::IoT::Policy","Properties": {"PolicyDocument": {"Version": "2012-10-17","Statement": [{"Effect": "Allow","Action": ["iot:Connect","iot:Subscribe","iot:Publish","iot:Receive"],"Resource": "*"}]}}}},"DeviceConfiguration": {"FallbackUrl": "https://www.example.com/test-site","LocationUrl": {"Fn::FindInMap": ["LocationTable",{"Ref": "DeviceLocation"},"LocationUrl"]}}}`

// nodeSDK finds node and the AWS IoT Device SDK (npm ci --prefix
// e2e/browser), skipping without them unless GATEHOUSE_TEST_BROWSER_REQUIRED=1.
func nodeSDK(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: runs the AWS IoT Device SDK in Node.js")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missingBrowserTool(t, "node is not installed")
	}
	if _, err := os.Stat(filepath.Join("browser", "node_modules", "aws-iot-device-sdk-v2", "package.json")); err != nil {
		missingBrowserTool(t, "the AWS IoT Device SDK is not installed (npm ci --prefix e2e/browser)")
	}
	return node
}

// TestFleetProvisioningAWSSDK: a device built with the AWS IoT Device SDK
// for JavaScript v2 provisions itself against Gatehouse exactly as AWS's
// fleet provisioning sample does against AWS IoT Core: the operator creates
// AWS's sample template (CLI) and mints a temporary claim certificate
// (trusted-user flow, CLI); the device connects to the MQTTS listener with
// the claim, calls CreateKeysAndCertificate and RegisterThing through the
// SDK's iotidentity client, is refused a second RegisterThing with the same
// ownership token, and connects again under its new identity and publishes.
// This side checks the thing, the active certificate and its policy, and
// the events.
func TestFleetProvisioningAWSSDK(t *testing.T) {
	node := nodeSDK(t)
	s := startServer(t, "--data-dir", t.TempDir())
	dir := t.TempDir()
	tplFile := filepath.Join(dir, "template.json")
	if err := os.WriteFile(tplFile, []byte(fleetProvSampleTemplate), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, errOut, err := s.cli(t, "", "provisioning-templates", "create", "FleetTemplate", tplFile, "--enabled", "--description", "AWS sample"); err != nil {
		t.Fatalf("provisioning-templates create: %v\n%s%s", err, out, errOut)
	}
	claimDir := filepath.Join(dir, "claim")
	out, errOut, err := s.cli(t, "", "provisioning-templates", "claim-certificate", "FleetTemplate", "--out", claimDir)
	if err != nil {
		t.Fatalf("claim-certificate: %v\n%s%s", err, out, errOut)
	}
	var claim struct {
		CertificateID string `json:"certificateId"`
	}
	if err := json.Unmarshal([]byte(out), &claim); err != nil || claim.CertificateID == "" {
		t.Fatalf("claim-certificate printed %q: %v", out, err)
	}
	status, chain := curl(t, "GET", s.URL+"/ca", "", "")
	if status != 200 {
		t.Fatalf("GET /ca = %d", status)
	}
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, []byte(chain), 0o600); err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(s.MQTTS)

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join("browser", "fleetprov.test.mjs"))
	cmd.Env = append(os.Environ(), "MQTT_HOST="+host, "MQTT_PORT="+port, "CA_FILE="+caFile,
		"CLAIM_CERT="+filepath.Join(claimDir, "claim.pem.crt"), "CLAIM_KEY="+filepath.Join(claimDir, "claim.private.key"),
		"TEMPLATE=FleetTemplate", `TEMPLATE_PARAMETERS={"SerialNumber":"1","DeviceLocation":"Seattle"}`, "OUT_DIR="+dir)
	sdkOut, err := cmd.CombinedOutput()
	t.Logf("AWS IoT Device SDK:\n%s", sdkOut)
	if err != nil {
		t.Fatalf("the SDK's fleet provisioning failed: %v", err)
	}

	var answers struct {
		CertificateID string `json:"certificateId"`
		Registered    struct {
			ThingName           string            `json:"thingName"`
			DeviceConfiguration map[string]string `json:"deviceConfiguration"`
		} `json:"registered"`
		Refusal map[string]any `json:"refusal"`
	}
	readJSON(t, filepath.Join(dir, "answers.json"), &answers)
	if got := answers.Registered; got.ThingName != "ThingPrefix_1" || got.DeviceConfiguration["LocationUrl"] != "https://example.aws" ||
		got.DeviceConfiguration["FallbackUrl"] != "https://www.example.com/test-site" {
		t.Errorf("RegisterThing answered %+v", got)
	}
	if r := answers.Refusal; r["statusCode"] != float64(400) || r["errorCode"] != "InvalidParameters" || !strings.Contains(jsonString(r["errorMessage"]), "certificateOwnershipToken") {
		t.Errorf("RegisterThing with a used token answered %v, want statusCode 400 InvalidParameters", r)
	}
	var published struct {
		PubackReason int `json:"pubackReason"`
	}
	readJSON(t, filepath.Join(dir, "published.json"), &published)
	if published.PubackReason != 0 {
		t.Errorf("publish under the new identity: PUBACK reason %#x, want success", published.PubackReason)
	}

	th := s.admin(t, "GET", "/api/v1/things/ThingPrefix_1", "", 200)
	if jsonString(th["attributes"]) != `{"serialNumber":"serialNumber","version":"v1"}` {
		t.Errorf("thing ThingPrefix_1 = %v", th)
	}
	cert := s.admin(t, "GET", "/api/v1/certificates/"+answers.CertificateID, "", 200)
	if cert["status"] != "ACTIVE" || cert["thingName"] != "ThingPrefix_1" {
		t.Errorf("the new certificate = %v, want ACTIVE for ThingPrefix_1", cert)
	}
	atts := s.admin(t, "GET", "/api/v1/policy-attachments?targetKind=certificate&target="+answers.CertificateID, "", 200)
	if !strings.Contains(jsonString(atts), "fleetprov-FleetTemplate-") {
		t.Errorf("policies attached to the new certificate: %v", atts)
	}
	evs := s.admin(t, "GET", "/api/v1/events?subject=thing/ThingPrefix_1", "", 200)
	if e := jsonString(evs); !strings.Contains(e, `"thing.registered"`) || !strings.Contains(e, `"fleet-provisioning"`) || !strings.Contains(e, "certificate:"+claim.CertificateID) {
		t.Errorf("events of thing/ThingPrefix_1 = %s, want thing.registered via fleet-provisioning by the claim", e)
	}
	// The new identity's publish reached the broker as the thing.
	evs = s.admin(t, "GET", "/api/v1/events?type=broker.connected", "", 200)
	if e := jsonString(evs); !strings.Contains(e, `"thing:ThingPrefix_1"`) {
		t.Errorf("broker.connected events = %s, want one of thing:ThingPrefix_1", e)
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// claimClient is an MQTT 5 client on the MQTTS listener that logs in with a
// certificate alone and hands over what it receives, in order.
type claimClient struct {
	*mqttPeer
	recv chan *paho.Publish
}

func connectClaim(t *testing.T, s *server, certPEM, keyPEM, clientID string) *claimClient {
	t.Helper()
	cert, err := tls.X509KeyPair([]byte(certPEM), []byte(keyPEM))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if _, chain := curl(t, "GET", s.URL+"/ca", "", ""); !roots.AppendCertsFromPEM([]byte(chain)) {
		t.Fatal("no CA chain")
	}
	conn := dialMQTT(t, "mqtts", s, &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: roots, ServerName: "127.0.0.1"})
	m := &claimClient{mqttPeer: &mqttPeer{}, recv: make(chan *paho.Publish, 16)}
	m.c = paho.NewClient(paho.ClientConfig{Conn: packets.NewThreadSafeConn(conn), OnClientError: func(error) {},
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			m.recv <- pr.Packet
			return true, nil
		}}})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	ca, err := m.c.Connect(ctx, &paho.Connect{ClientID: clientID, KeepAlive: 30, CleanStart: true})
	if ca == nil || ca.ReasonCode != 0 {
		t.Fatalf("connect %s: %v %v", clientID, ca, err)
	}
	t.Cleanup(func() { _ = m.c.Disconnect(&paho.Disconnect{}); conn.Close() })
	return m
}

// subscribe returns the SUBACK reason codes.
func (m *claimClient) subscribeAll(t *testing.T, filters ...string) []byte {
	t.Helper()
	var subs []paho.SubscribeOptions
	for _, f := range filters {
		subs = append(subs, paho.SubscribeOptions{Topic: f, QoS: 1})
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	sa, err := m.c.Subscribe(ctx, &paho.Subscribe{Subscriptions: subs})
	if sa == nil {
		t.Fatalf("subscribe %v: %v", filters, err)
	}
	return sa.Reasons
}

// next waits for the next message received.
func (m *claimClient) next(t *testing.T) *paho.Publish {
	t.Helper()
	select {
	case p := <-m.recv:
		return p
	case <-time.After(10 * time.Second):
		t.Fatal("no message received")
		return nil
	}
}

// request publishes a fleet provisioning request and returns the answer
// (its topic and JSON object).
func (m *claimClient) request(t *testing.T, topic, payload string) (string, map[string]any) {
	t.Helper()
	if code := m.publish(t, topic, payload); code != 0 {
		t.Fatalf("publish to %s: reason %#x", topic, code)
	}
	p := m.next(t)
	var out map[string]any
	_ = json.Unmarshal(p.Payload, &out)
	return p.Topic, out
}

// TestFleetProvisioningRefusals: what the fleet provisioning API refuses,
// seen by real MQTT clients holding claim certificates: an answer (with its
// private key) reaches only the connection that asked, never another claim
// subscribed to the same reply topic; an ownership token is good only on the
// connection that got it; nobody publishes a forged answer; an unknown
// template is answered ResourceNotFound; a claim reaches no other topic;
// the /cbor variant answers in CBOR.
func TestFleetProvisioningRefusals(t *testing.T) {
	s := startServer(t, "--data-dir", t.TempDir())
	s.admin(t, "POST", "/api/v1/policies", `{"name":"sensor","document":{"Version":"2012-10-17","Statement":[
	  {"Effect":"Allow","Action":"iot:Connect","Resource":"client/${iot:Connection.Thing.ThingName}"}]}}`, 201)
	s.admin(t, "POST", "/api/v1/provisioning-templates", `{"templateName":"fleet","enabled":true,"templateBody":{
	  "Parameters":{"Serial":{"Type":"String"}},
	  "Resources":{"thing":{"Type":"AWS::IoT::Thing","Properties":{"ThingName":{"Fn::Sub":"sensor-${Serial}"}}},
	    "certificate":{"Type":"AWS::IoT::Certificate","Properties":{"CertificateId":{"Ref":"AWS::IoT::Certificate::Id"},"Status":"Active"}},
	    "policy":{"Type":"AWS::IoT::Policy","Properties":{"PolicyName":"sensor"}}}}}`, 201)
	claim := func() (string, string) {
		c := s.admin(t, "POST", "/api/v1/provisioning-templates/fleet/claim-certificates", `{"validitySeconds":600}`, 201)
		return c["certificatePem"].(string), c["keyPair"].(map[string]any)["PrivateKey"].(string)
	}
	certA, keyA := claim()
	certB, keyB := claim()
	a := connectClaim(t, s, certA, keyA, "claim-a")
	b := connectClaim(t, s, certB, keyB, "claim-b")
	const created = "$aws/certificates/create/json"
	for _, m := range []*claimClient{a, b} {
		if codes := m.subscribeAll(t, created+"/accepted", created+"/rejected", "$aws/provisioning-templates/fleet/provision/json/+"); string(codes) != "\x01\x01\x01" {
			t.Fatalf("claim subscribe: SUBACK %x", codes)
		}
	}

	topic, ans := a.request(t, created, "{}")
	if topic != created+"/accepted" || ans["privateKey"] == nil || ans["certificateOwnershipToken"] == nil {
		t.Fatalf("CreateKeysAndCertificate answered %s %v", topic, ans)
	}
	tokenA := ans["certificateOwnershipToken"].(string)
	// B, subscribed to the same reply topic, gets its own answer and
	// nothing of A's: B's connection would have delivered A's first.
	if topic, ansB := b.request(t, created, ""); topic != created+"/accepted" || ansB["certificateId"] == ans["certificateId"] {
		t.Fatalf("B's CreateKeysAndCertificate answered %s %v", topic, ansB)
	}

	provision := "$aws/provisioning-templates/fleet/provision/json"
	if topic, rej := b.request(t, provision, `{"certificateOwnershipToken":"`+tokenA+`","parameters":{"Serial":"b"}}`); topic != provision+"/rejected" ||
		rej["statusCode"] != float64(400) || rej["errorCode"] != "InvalidParameters" {
		t.Errorf("RegisterThing with another connection's token answered %s %v", topic, rej)
	}
	if topic, ok := a.request(t, provision, `{"certificateOwnershipToken":"`+tokenA+`","parameters":{"Serial":"a"}}`); topic != provision+"/accepted" || ok["thingName"] != "sensor-a" {
		t.Errorf("RegisterThing answered %s %v", topic, ok)
	}
	if topic, rej := a.request(t, provision, `{"parameters":{"Serial":"a"}}`); topic != provision+"/rejected" || rej["errorCode"] != "InvalidParameters" {
		t.Errorf("RegisterThing without a token answered %s %v", topic, rej)
	}
	if topic, rej := a.request(t, provision, `{not json`); topic != provision+"/rejected" || rej["errorCode"] != "InvalidPayload" {
		t.Errorf("RegisterThing with a payload that is not JSON answered %s %v", topic, rej)
	}

	// A claim publishes nothing but requests, and reaches no other topic.
	for _, topic := range []string{created + "/accepted", provision + "/rejected", "telemetry/claim-a", "$aws/things/x/shadow/update"} {
		if code := a.publish(t, topic, `{"certificateId":"forged"}`); code != 0x87 {
			t.Errorf("claim publish to %s: PUBACK %#x, want 0x87 not authorized", topic, code)
		}
	}
	if codes := a.subscribeAll(t, "telemetry/#", "#", "$aws/things/+/shadow/#"); string(codes) != "\x87\x87\x87" {
		t.Errorf("claim subscribe to other topics: SUBACK %x, want 87 87 87", codes)
	}

	// A claim whose policy allows every template: an unknown one is
	// answered ResourceNotFound.
	s.admin(t, "POST", "/api/v1/policies", `{"name":"any-template","document":{"Version":"2012-10-17","Statement":[
	  {"Effect":"Allow","Action":["iot:Publish","iot:Receive"],"Resource":"topic/$aws/provisioning-templates/*"},
	  {"Effect":"Allow","Action":"iot:Subscribe","Resource":"topicfilter/$aws/provisioning-templates/*"}]}}`, 201)
	fpB := pemFingerprint(t, certB)
	s.admin(t, "POST", "/api/v1/policies/any-template/attachments", `{"targetKind":"certificate","target":"`+fpB+`"}`, 201)
	b2 := connectClaim(t, s, certB, keyB, "claim-b2")
	unknown := "$aws/provisioning-templates/nope/provision/json"
	b2.subscribeAll(t, unknown+"/+")
	if topic, rej := b2.request(t, unknown, `{"certificateOwnershipToken":"x"}`); topic != unknown+"/rejected" || rej["statusCode"] != float64(404) || rej["errorCode"] != "ResourceNotFound" {
		t.Errorf("RegisterThing with an unknown template answered %s %v", topic, rej)
	}

	// The CBOR variant answers in CBOR.
	b2.subscribeAll(t, "$aws/certificates/create/cbor/accepted")
	if code := b2.publish(t, "$aws/certificates/create/cbor", "\xa0"); code != 0 {
		t.Fatalf("CBOR request: PUBACK %#x", code)
	}
	if p := b2.next(t); p.Topic != "$aws/certificates/create/cbor/accepted" || len(p.Payload) == 0 || p.Payload[0]&0xe0 != 0xa0 ||
		!strings.Contains(string(p.Payload), "certificateOwnershipToken") {
		t.Errorf("CBOR answer on %s: % x", p.Topic, p.Payload[:min(len(p.Payload), 16)])
	}

}

// pemFingerprint is the SHA-256 fingerprint of a PEM certificate.
func pemFingerprint(t *testing.T, certPEM string) string {
	t.Helper()
	blk, _ := pem.Decode([]byte(certPEM))
	if blk == nil {
		t.Fatal("no PEM certificate")
	}
	sum := sha256.Sum256(blk.Bytes)
	return hex.EncodeToString(sum[:])
}
