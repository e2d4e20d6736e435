package thing_test

import (
	"context"
	"fmt"
	"log"

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
