package thing_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log"
	"os"

	"github.com/gatehouse-iot/gatehouse/thing"
)

// A new device registers with a registration token, then publishes over
// MQTT with its certificate.
func ExampleThing_Register() {
	ctx := context.Background()
	th, err := thing.New(thing.Config{ServerURL: "https://gatehouse.example.com", Name: "sensor-1", StateDir: "/var/lib/sensor"})
	if err != nil {
		log.Fatal(err)
	}
	reg, err := th.Register(ctx, "ghrt_...", "1.0.3")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("registered", reg.CertificateID)
	conn, err := th.Connect(ctx, thing.MQTTOptions{Auth: thing.MQTTCertificate}) // the registered mqtts endpoint
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := conn.Publish(ctx, "tlm/temp/sensor-1/d2c", []byte(`{"t":21.5}`), 1, false); err != nil {
		log.Fatal(err)
	}
}

// A thing with a client secret logs in with its access token as MQTT
// password; the SDK renews the token and reconnects by itself.
func ExampleThing_Connect() {
	ctx := context.Background()
	th, err := thing.New(thing.Config{ServerURL: "http://127.0.0.1:8080", Name: "thingymabot", StateDir: "state", Scopes: []string{"publish"}})
	if err != nil {
		log.Fatal(err)
	}
	if !th.HasClientSecret() {
		if err := th.SetClientSecret("secret-from-the-operator"); err != nil {
			log.Fatal(err)
		}
	}
	conn, err := th.Connect(ctx, thing.MQTTOptions{URL: "mqtt://127.0.0.1:1884"})
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close(ctx)
	err = conn.Subscribe(ctx, "cmd/thingymabot/c2d", 1, func(m thing.Message) { fmt.Printf("%s: %s\n", m.Topic, m.Payload) })
	if err != nil {
		log.Fatal(err)
	}
}

// An input-limited device asks its owner for approval.
func ExampleThing_DeviceFlow() {
	ctx := context.Background()
	th, err := thing.New(thing.Config{ServerURL: "http://127.0.0.1:8080", Name: "deviceagent", StateDir: "state", Scopes: []string{"publish"}})
	if err != nil {
		log.Fatal(err)
	}
	_, err = th.DeviceFlow(ctx, func(_ context.Context, dc thing.DeviceCode) error {
		fmt.Printf("Open %s and enter %s\n", dc.VerificationURI, dc.UserCode)
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	// From now on Token refreshes with the refresh token.
	if err := th.PublishHTTPS(ctx, "customauthtesting", []byte("hello"), thing.HTTPSOptions{}); err != nil {
		log.Fatal(err)
	}
}

// A thing authenticates with a JWT signed by its own key (private_key_jwt):
// print the public JWK once for the operator to register.
func ExampleThing_PublicJWK() {
	th, err := thing.New(thing.Config{ServerURL: "http://127.0.0.1:8080", Name: "jwtbot", StateDir: "state", Auth: thing.AuthPrivateKeyJWT})
	if err != nil {
		log.Fatal(err)
	}
	jwk, err := th.PublicJWK()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("POST /api/v1/things/jwtbot/keys %s\n", jwk)
}

// A generic device with a manufacturer certificate waits in the device
// lobby until an operator claims it (by the QR code of its certificate
// fingerprint), then goes to the target it was assigned. The assignment is
// kept in the state directory: after a restart the device goes straight to
// its target.
func ExampleJoinLobby() {
	ctx := context.Background()
	cert, err := tls.LoadX509KeyPair("/etc/device/manufacturer.pem", "/etc/device/manufacturer.key")
	if err != nil {
		log.Fatal(err)
	}
	roots := x509.NewCertPool()
	ca, err := os.ReadFile("/etc/device/lobby-ca.pem") // GET /ca of the lobby's Gatehouse
	if err != nil || !roots.AppendCertsFromPEM(ca) {
		log.Fatal("no lobby CA")
	}
	fp, _ := thing.Fingerprint(cert)
	fmt.Println("QR: GH1:" + fp)
	j, err := thing.JoinLobby(ctx, thing.LobbyConfig{
		// Two lobby replicas: the device fails over between them.
		Lobbies:     []string{"mqtts://lobby-a.example.com:8883", "mqtts://lobby-b.example.com:8883"},
		Certificate: cert,
		RootCAs:     roots,
		StateDir:    "/var/lib/device",
		Config:      "fw 1.2",
	})
	if err != nil {
		log.Fatal(err)
	}
	defer j.Conn.Close(ctx)
	fmt.Println("now", j.Thing.Name(), "at", j.Assignment.Endpoint, "with", j.Assignment.Config)
	if err := j.Conn.Publish(ctx, "meters/"+j.Thing.Name()+"/kwh", []byte("7"), 1, false); err != nil {
		log.Fatal(err)
	}
}
