package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/gatehouse-iot/gatehouse/internal/testenv"
)

// dlDevice is the AWS Device Lobby reference device
// (aws-samples/aws-device-lobby, device/aws-iot-python-sdkv2/dl_pubsub.py)
// with its MQTT 3.1.1 client, speaking exactly its protocol. Booted
// without dev.cfg it connects to its lobby endpoint, with its certificate
// and the certificate's common name as client id (clean session, keep-alive
// 30 s), subscribes to lobby/<name> at QoS 1 and announces itself on
// $aws/rules/lobby with {"state":"factory default","iotep":<lobby
// endpoint>,"config":"default"} every interval (5 s in the sample). With
// dev.cfg it connects to its "iotep" - same port, same root CA - subscribes
// the same and publishes app/<name> instead. After each publish it looks
// at the last message received on lobby/<name>: {"config":"factory reset"}
// removes dev.cfg (the sample crashes when there is none), anything else
// becomes dev.cfg; then it disconnects and reboots. A lost connection is
// resumed the same way (the SDK reconnects and resubscribes).
type dlDevice struct {
	t        *testing.T
	cert     tls.Certificate
	name     string
	roots    *x509.CertPool
	lobby    string // --endpoint
	port     string // --port
	interval time.Duration

	mu       sync.Mutex
	cfg      []byte // dev.cfg, nil if absent
	boots    []dlBoot
	messages []string // everything received on lobby/<name>
	crashes  []string // what would have crashed the Python device
}

// dlBoot is one connection of the device.
type dlBoot struct {
	host string
	app  bool
	// subscribed: the SUBACK granted lobby/<name>.
	subscribed bool
}

func (d *dlDevice) run(ctx context.Context) {
	for ctx.Err() == nil {
		if err := d.boot(ctx); err != nil && ctx.Err() == nil {
			// "Connection to IoT Core failed... retrying in 5s."
			select {
			case <-ctx.Done():
			case <-time.After(d.interval):
			}
		}
	}
}

func (d *dlDevice) boot(ctx context.Context) error {
	d.mu.Lock()
	host, app := d.lobby, false
	if d.cfg != nil {
		var c struct {
			IoTEP string `json:"iotep"`
		}
		if err := json.Unmarshal(d.cfg, &c); err != nil || c.IoTEP == "" {
			d.crashes = append(d.crashes, "dev.cfg without iotep: "+string(d.cfg))
			d.cfg = nil
			d.mu.Unlock()
			return errors.New("crashed")
		}
		host, app = c.IoTEP, true
	}
	d.mu.Unlock()

	received := make(chan string, 64)
	lost := make(chan struct{}, 1)
	opts := mqtt3.NewClientOptions().AddBroker("ssl://" + net.JoinHostPort(host, d.port)).SetClientID(d.name).
		SetCleanSession(true).SetKeepAlive(30 * time.Second).SetProtocolVersion(4).SetAutoReconnect(false).
		SetConnectTimeout(10 * time.Second).
		SetTLSConfig(&tls.Config{Certificates: []tls.Certificate{d.cert}, RootCAs: d.roots, ServerName: host}).
		SetConnectionLostHandler(func(mqtt3.Client, error) { lost <- struct{}{} })
	c := mqtt3.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		return errors.New("connect failed")
	}
	defer c.Disconnect(0)
	topic := "lobby/" + d.name
	sub := c.Subscribe(topic, 1, func(_ mqtt3.Client, m mqtt3.Message) {
		d.mu.Lock()
		d.messages = append(d.messages, string(m.Payload()))
		d.mu.Unlock()
		received <- string(m.Payload())
	})
	if !sub.WaitTimeout(10 * time.Second) {
		return errors.New("no SUBACK")
	}
	code := sub.(*mqtt3.SubscribeToken).Result()[topic]
	d.mu.Lock()
	d.boots = append(d.boots, dlBoot{host: host, app: app, subscribed: code < 0x80})
	d.mu.Unlock()

	announce, _ := json.Marshal(map[string]string{"state": "factory default", "iotep": d.lobby, "config": "default"})
	appMessage, _ := json.Marshal(map[string]any{"Device": d.name, "Sensor 1": 42, "Status": "Doing my IoT job!"})
	for {
		if app {
			c.Publish("app/"+d.name, 1, false, appMessage)
		} else {
			c.Publish("$aws/rules/lobby", 1, false, announce)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(d.interval):
		}
		var last string
		for more := true; more; {
			select {
			case last = <-received:
			default:
				more = false
			}
		}
		if last != "" {
			d.writeReset(last)
			return nil // disconnect, "restarting device"
		}
		select {
		case <-lost:
			return errors.New("connection lost") // the SDK reconnects
		default:
		}
	}
}

// writeReset is the sample's write_reset.
func (d *dlDevice) writeReset(cfg string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var m map[string]any
	if err := json.Unmarshal([]byte(cfg), &m); err != nil {
		d.crashes = append(d.crashes, "not JSON: "+cfg)
		return
	}
	config, ok := m["config"]
	if !ok {
		d.crashes = append(d.crashes, "KeyError 'config': "+cfg)
		return
	}
	if config == "factory reset" {
		if d.cfg == nil {
			d.crashes = append(d.crashes, "factory reset without dev.cfg: os.remove fails")
		}
		d.cfg = nil
		return
	}
	d.cfg = []byte(cfg)
}

// awaitBoot waits for a connection of the device after the first after
// ones (counted from 0) in the given mode, subscribed to its lobby topic,
// and returns how many connections it made up to that one. (A connection
// may be lost and resumed in the same mode meanwhile: the broker ends the
// sessions of a certificate it deactivates when it reads the event, which
// may be after the device is back in the lobby with it.)
func (d *dlDevice) awaitBoot(after int, host string, app bool) int {
	d.t.Helper()
	n := 0
	testenv.Eventually(d.t, 60*time.Second, fmt.Sprintf("a connection of the AWS reference device to %s (app mode %v)", host, app), func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		for i := after; i < len(d.boots); i++ {
			if b := d.boots[i]; b.host == host && b.app == app && b.subscribed {
				n = i + 1
				return true
			}
		}
		return false
	})
	return n
}

func (d *dlDevice) received() ([]string, []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.messages...), append([]string(nil), d.crashes...)
}

// tlsPeer connects an MQTT 5 client over TLS with a certificate and no
// other credentials; it returns the client (nil if refused) and the
// CONNACK reason code.
func tlsPeer(t *testing.T, s *server, cert tls.Certificate, roots *x509.CertPool, clientID string) (*mqttPeer, byte) {
	t.Helper()
	conn, err := tls.Dial("tcp", s.MQTTS, &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: roots, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	return connectPeer(t, conn, &paho.Connect{ClientID: clientID, KeepAlive: 30, CleanStart: true})
}

// TestAWSDeviceLobbyReferenceDevice serves the AWS Device Lobby reference
// device unchanged (dlDevice): it knocks with its common name as client
// id and its announce, is claimed with the CLI by its QR code (the plain
// hex fingerprint), is told {"iotep","config"} on lobby/<name>, reconnects
// to that host as its thing and arrives; a factory reset at work sends it
// back to the lobby, from where it is claimed again. Nobody else publishes
// on lobby/ or $aws/rules/lobby, or reads another device's lobby topic:
// not a thing whose policy allows everything (MQTT, HTTPS), not another
// lobby device of either protocol.
func TestAWSDeviceLobbyReferenceDevice(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--data-dir", t.TempDir())
	caPEM, cert, _, fp := manufacturer(t, "dl-meter-1")
	setupLobby(t, s, caPEM)
	// At work the device publishes app/<name> and hears resets on
	// lobby/<name>: its thing type's policy allows both.
	s.admin(t, "POST", "/api/v1/policies", `{"name":"dl-app","document":{"Version":"2012-10-17","Statement":[
	  {"Effect":"Allow","Action":"iot:Connect","Resource":"client/${iot:Connection.Thing.ThingName}"},
	  {"Effect":"Allow","Action":"iot:Publish","Resource":"topic/app/${iot:Connection.Thing.ThingName}"},
	  {"Effect":"Allow","Action":"iot:Subscribe","Resource":"topicfilter/lobby/${iot:Connection.Thing.ThingName}"},
	  {"Effect":"Allow","Action":"iot:Receive","Resource":"topic/lobby/${iot:Connection.Thing.ThingName}"}]}}`, 201)
	s.admin(t, "POST", "/api/v1/thing-types", `{"name":"dl","defaultPolicies":["dl-app"]}`, 201)
	s.admin(t, "POST", "/api/v1/lobby/targets", `{"name":"work","kind":"local","thingType":"dl","config":"report every 60s"}`, 201)
	roots := lobbyRoots(t, s)
	host, port, _ := net.SplitHostPort(s.MQTTS)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	dev := &dlDevice{t: t, cert: cert, name: "dl-meter-1", roots: roots, lobby: host, port: port, interval: 200 * time.Millisecond}
	go dev.run(ctx)
	boots := dev.awaitBoot(0, host, false)
	awaitLobbyState(t, s, fp, "inlobby")
	evs := s.admin(t, "GET", "/api/v1/events?type=lobby.knocked&subject=lobby/"+fp, "", 200)["items"].([]any)
	if len(evs) != 1 || !strings.Contains(jsonString(evs[0]), `"protocol":"aws"`) {
		t.Errorf("lobby.knocked events = %v, want one of the aws protocol", evs)
	}

	// Before the claim, everyone else tries to talk on the lobby's topics.
	s.admin(t, "POST", "/api/v1/policies", `{"name":"everything","document":{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:*","Resource":"*"}]}}`, 201)
	s.admin(t, "POST", "/api/v1/thing-types", `{"name":"intruder","scopes":["publish"],"defaultPolicies":["everything"]}`, 201)
	s.admin(t, "POST", "/api/v1/things", `{"name":"evil","thingType":"intruder"}`, 201)
	secret := s.admin(t, "POST", "/api/v1/things/evil/secret", "", 201)["clientSecret"].(string)
	evilToken := clientCredentials(t, s, "evil", secret, "publish")
	evil := mqttClient(t, s, "evil", "evil", evilToken)
	forged := `{"iotep":"evil.example","config":"forged"}`
	for _, topic := range []string{"lobby/dl-meter-1", "lobby/evil", "$aws/rules/lobby"} {
		if got := evil.publish(t, topic, forged); got != 0x87 {
			t.Errorf("a thing allowed everything: PUBLISH %s = %#x, want 0x87", topic, got)
		}
		if got := httpsPublishBody(t, s, topic, evilToken, forged, ""); got != 403 {
			t.Errorf("a thing allowed everything: HTTPS publish %s = %d, want 403", topic, got)
		}
	}
	for _, filter := range []string{"lobby/dl-meter-1", "lobby/+", "lobby/#", "$aws/rules/lobby", "$share/g/lobby/dl-meter-1"} {
		if got := evil.subscribe(t, filter); got < 0x80 {
			t.Errorf("a thing allowed everything: SUBSCRIBE %s = %#x, want a refusal", filter, got)
		}
	}
	if got := evil.subscribe(t, "#"); got >= 0x80 {
		t.Fatalf("SUBSCRIBE # = %#x", got) // granted, but delivers nothing from lobby/ (below)
	}

	// Another lobby device, in the lobby over the AWS protocol.
	other, otherFP := anotherMaker(t, s, "dl-meter-2")
	peer, code := tlsPeer(t, s, other, roots, "dl-meter-2")
	if code != 0 {
		t.Fatalf("the second device's AWS protocol lobby session = %#x", code)
	}
	if got := peer.subscribe(t, "lobby/dl-meter-2"); got != 1 {
		t.Errorf("second device: SUBSCRIBE its own lobby topic = %#x, want 1", got)
	}
	for _, filter := range []string{"lobby/dl-meter-1", "lobby/+", "$aws/rules/lobby"} {
		if got := peer.subscribe(t, filter); got < 0x80 {
			t.Errorf("second device: SUBSCRIBE %s = %#x, want a refusal", filter, got)
		}
	}
	for _, topic := range []string{"lobby/dl-meter-1", "lobby/dl-meter-2", "$gatehouse/lobby/" + otherFP + "/knock", "app/dl-meter-2"} {
		if got := peer.publish(t, topic, forged); got != 0x87 {
			t.Errorf("second device: PUBLISH %s = %#x, want 0x87", topic, got)
		}
	}
	if got := peer.publish(t, "$aws/rules/lobby", `{"state":"factory default","iotep":"127.0.0.1","config":"default"}`); got != 0 {
		t.Errorf("second device: its announce = %#x, want 0", got)
	}
	awaitLobbyState(t, s, otherFP, "inlobby")
	// Its native lobby session (client id = fingerprint) may not announce
	// the AWS way.
	native, code := tlsPeer(t, s, other, roots, otherFP)
	if code != 0 {
		t.Fatalf("native lobby session = %#x", code)
	}
	if got := native.publish(t, "$aws/rules/lobby", `{"state":"factory default"}`); got != 0x87 {
		t.Errorf("native lobby session: PUBLISH $aws/rules/lobby = %#x, want 0x87", got)
	}

	// The operator scans the QR code - the plain hex fingerprint the
	// sample prints - and claims the device.
	if out, errOut, err := s.cli(t, "", "lobby", "claim", fp, "--target", "work"); err != nil {
		t.Fatalf("gatehouse lobby claim: %v %s %s", err, out, errOut)
	}
	boots = dev.awaitBoot(boots, "localhost", true) // iotep
	msgs, _ := dev.received()
	var first map[string]any
	if len(msgs) == 0 || json.Unmarshal([]byte(msgs[0]), &first) != nil || first["iotep"] != "localhost" || first["config"] != "report every 60s" ||
		!strings.Contains(first["caChain"].(string), "BEGIN CERTIFICATE") {
		t.Fatalf("the device was told %q, want {iotep: localhost, config: report every 60s, caChain}", msgs)
	}
	dl := awaitLobbyState(t, s, fp, "arrived")
	if dl["thingName"] != "dl-meter-1" || dl["commonName"] != "dl-meter-1" {
		t.Errorf("ledger after arrival = %v", dl)
	}
	s.admin(t, "GET", "/api/v1/certificates/"+fp, "", 200)

	// Factory reset, from the CLI: the device hears it at work, forgets its
	// configuration and is back in the lobby.
	if out, errOut, err := s.cli(t, "", "lobby", "reset", fp); err != nil {
		t.Fatalf("gatehouse lobby reset: %v %s %s", err, out, errOut)
	}
	boots = dev.awaitBoot(boots, host, false)
	msgs, _ = dev.received()
	if msgs[len(msgs)-1] != `{"config":"factory reset"}` {
		t.Errorf("last message = %q, want the factory reset", msgs[len(msgs)-1])
	}
	if got := s.admin(t, "GET", "/api/v1/lobby/devices/"+fp, "", 200)["state"]; got != "inlobby" {
		t.Errorf("after the reset the device is %v, want inlobby", got)
	}

	// From the lobby it goes to work again with the next claim.
	if out, errOut, err := s.cli(t, "", "lobby", "claim", fp, "--target", "work", "--config", "second"); err != nil {
		t.Fatalf("second claim: %v %s %s", err, out, errOut)
	}
	dev.awaitBoot(boots, "localhost", true)
	awaitLobbyState(t, s, fp, "arrived")

	// Only the server spoke on lobby/dl-meter-1, and the device never
	// stumbled.
	msgs, crashes := dev.received()
	for _, m := range msgs {
		if strings.Contains(m, "evil") || strings.Contains(m, "forged") {
			t.Errorf("the device received a forged message: %s", m)
		}
	}
	if len(crashes) != 0 {
		t.Errorf("the reference device would have crashed: %v", crashes)
	}
	// The intruder's # received nothing from lobby/ or $aws/: the sentinel,
	// published after all the above, arrives alone.
	if got := evil.publish(t, "things/evil/sentinel", "sentinel"); got != 0 {
		t.Fatalf("sentinel = %#x", got)
	}
	evil.waitFor(t, "things/evil/sentinel")
	evil.mu.Lock()
	for _, m := range evil.msgs {
		if strings.HasPrefix(m.Topic, "lobby/") || strings.HasPrefix(m.Topic, "$aws/") {
			t.Errorf("the intruder's # received %s", m.Topic)
		}
	}
	evil.mu.Unlock()
}

// anotherMaker registers another manufacturer's CA on s and returns a
// device certificate it made, with common name cn, and its fingerprint.
func anotherMaker(t *testing.T, s *server, cn string) (tls.Certificate, string) {
	t.Helper()
	caPEM, cert, _, fp := manufacturer(t, cn)
	caJSON, _ := json.Marshal(caPEM)
	s.admin(t, "POST", "/api/v1/manufacturer-cas", `{"name":"acme-`+cn+`","certificatePem":`+string(caJSON)+`}`, 201)
	return cert, fp
}
