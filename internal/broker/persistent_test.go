package broker_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/gatehouse-iot/gatehouse/internal/events"
)

// connectPersistent opens an MQTT 5 session that survives disconnection
// (CleanStart false, session expiry 300 s) and collects what it receives.
func (f *fixture) connectPersistent(t *testing.T, clientID string, password []byte) *client {
	t.Helper()
	c := newClient(f.dial("tcp"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	expiry := uint32(300)
	ca, err := c.Connect(ctx, &paho.Connect{ClientID: clientID, Username: clientID, UsernameFlag: true, Password: password, PasswordFlag: true,
		KeepAlive: 30, CleanStart: false, Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry}})
	if err != nil || ca.ReasonCode != 0 {
		t.Fatalf("connect %s: %v %v", clientID, ca, err)
	}
	return c
}

// TestPersistentSessionQueues checks AWS-IoT-style persistent sessions: QoS
// 1 messages published while a client with a persistent session is away
// are delivered when it returns - unless policy stopped allowing iot:Receive
// in the meantime.
func TestPersistentSessionQueues(t *testing.T) {
	f := newFixture(t, time.Hour)
	tok := []byte(f.token("s-1", "mqtt"))
	pub := f.mustConnect("s-2", "s-2", []byte(f.token("s-2", "mqtt")))

	c := f.connectPersistent(t, "s-1", tok)
	if got := subscribe(t, c, "commands/#"); got != 1 {
		t.Fatalf("subscribe = %#x", got)
	}
	_ = c.Disconnect(&paho.Disconnect{})
	f.waitGone(t, "s-1")
	if got := publish(t, pub, "commands/reboot", 1, false); got != 0 {
		t.Fatalf("publish while away = %#x", got)
	}
	back := f.connectPersistent(t, "s-1", tok)
	back.waitFor(t, "commands/reboot")
	_ = back.Disconnect(&paho.Disconnect{})
	f.waitGone(t, "s-1")

	// While s-1 is away, a new policy version denies it commands/ping.
	ctx := events.WithActor(context.Background(), "test")
	noPing := strings.Replace(telemetry, `"Resource":"topic/*/firmware"}`, `"Resource":["topic/*/firmware","topic/commands/ping"]}`, 1)
	if _, err := f.reg.CreatePolicyVersion(ctx, "telemetry", 0, []byte(noPing), true); err != nil {
		t.Fatal(err)
	}
	f.caughtUp(t) // the follower rebinds offline sessions too
	publish(t, pub, "commands/ping", 1, false)
	publish(t, pub, "commands/update", 1, false)
	again := f.connectPersistent(t, "s-1", tok)
	defer again.Disconnect(&paho.Disconnect{})
	again.waitFor(t, "commands/update")
	for _, m := range again.messages() {
		if m.Topic == "commands/ping" {
			t.Error("a message the policy no longer allows was delivered from the queue")
		}
	}
}
