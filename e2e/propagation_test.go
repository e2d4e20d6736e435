package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"

	"github.com/gatehouse-iot/gatehouse/internal/testenv"
)

// mqttsCertConnect connects to s's MQTT-over-TLS listener with a client
// certificate and no password, and returns the CONNACK reason code (or
// 0xFF when the TLS handshake or the connection failed).
func mqttsCertConnect(t *testing.T, s *server, clientID string, cert tls.Certificate, roots *x509.CertPool) byte {
	t.Helper()
	conn, err := tls.Dial("tcp", s.MQTTS, &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: roots, ServerName: "127.0.0.1"})
	if err != nil {
		return 0xFF
	}
	defer conn.Close()
	c := paho.NewClient(paho.ClientConfig{Conn: packets.NewThreadSafeConn(conn), OnClientError: func(error) {}})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	ca, _ := c.Connect(ctx, &paho.Connect{ClientID: clientID, KeepAlive: 30, CleanStart: true})
	if ca == nil {
		return 0xFF
	}
	if ca.ReasonCode == 0 {
		_ = c.Disconnect(&paho.Disconnect{})
	}
	return ca.ReasonCode
}

// TestPropagation: what one replica changes in keys and trust applies on
// the other within seconds, driven by the event log (docs/deploy.md).
//
//   - After two key rotations on A, B stops accepting a token signed by
//     the key the second rotation retired, although B had verified (and
//     cached) it, and B signs with the newest key.
//   - A manufacturer CA registered on A is trusted on B: a device
//     certificate it signed, refused by B before, logs in to B's lobby.
func TestPropagation(t *testing.T) {
	t.Parallel()
	reps, _ := startReplicas(t, 2)
	a, b := reps[0], reps[1]
	botSecret, _ := setupBot(t, a)

	old := clientCredentials(t, a, "thingymabot", botSecret, "publish")
	if !introspect(t, b, "thingymabot", botSecret, old) {
		t.Fatal("B: a token from A is not active")
	}
	a.admin(t, "POST", "/api/v1/oauth/rotate-keys", "", 204)
	a.admin(t, "POST", "/api/v1/oauth/rotate-keys", "", 204)
	newest := jwtKID(t, clientCredentials(t, a, "thingymabot", botSecret, "publish"))
	took := testenv.Eventually(t, 10*time.Second, "B refusing a token of the retired key", func() bool {
		return !introspect(t, b, "thingymabot", botSecret, old)
	})
	t.Logf("B refused the retired key %v after the second rotation", took)
	if kid := jwtKID(t, clientCredentials(t, b, "thingymabot", botSecret, "publish")); kid != newest {
		t.Errorf("B signs with %s, want the newest key %s", kid, newest)
	}

	if a.MQTTS == "" || b.MQTTS == "" {
		t.Fatalf("replicas without mqtts listeners:\n%s", a.Stdout())
	}
	caPEM, device, _, fp := manufacturer(t, "meter-p")
	roots := lobbyRoots(t, a)
	if code := mqttsCertConnect(t, b, fp, device, roots); code == 0 {
		t.Fatal("B admitted a device of a manufacturer CA nobody registered")
	}
	caJSON, _ := json.Marshal(caPEM)
	a.admin(t, "POST", "/api/v1/manufacturer-cas", `{"name":"acme-p","certificatePem":`+string(caJSON)+`}`, 201)
	took = testenv.Eventually(t, 10*time.Second, "B trusting the manufacturer CA registered on A", func() bool {
		return mqttsCertConnect(t, b, fp, device, roots) == 0
	})
	t.Logf("B trusted the manufacturer CA %v after it was registered on A", took)
}
