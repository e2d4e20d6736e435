package broker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt3 "github.com/eclipse/paho.mqtt.golang"
	packets3 "github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/gatehouse-iot/gatehouse/internal/broker"
	"github.com/gatehouse-iot/gatehouse/internal/events"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/store"
	"github.com/gatehouse-iot/gatehouse/internal/testenv"
)

// recordingConn keeps every byte the server sent, to tell afterwards which
// packets arrived (paho.mqtt.golang ignores a DISCONNECT it receives).
type recordingConn struct {
	net.Conn
	mu  sync.Mutex
	got bytes.Buffer
}

func (c *recordingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.got.Write(p[:n])
	c.mu.Unlock()
	return n, err
}

// sentDisconnect reports whether the server sent a DISCONNECT.
func (c *recordingConn) sentDisconnect(t *testing.T) bool {
	t.Helper()
	c.mu.Lock()
	r := bytes.NewReader(c.got.Bytes())
	c.mu.Unlock()
	for r.Len() > 0 {
		cp, err := packets3.ReadPacket(r)
		if err != nil {
			t.Fatalf("decode what the server sent: %v", err)
		}
		if _, ok := cp.(*packets3.DisconnectPacket); ok {
			return true
		}
	}
	return false
}

// client311 is an MQTT 3.1.1 client (eclipse/paho.mqtt.golang) whose
// connection records what the server sent and reports its loss on lost.
type client311 struct {
	mqtt3.Client
	conn *recordingConn
	lost chan error
}

// connect311 connects an MQTT 3.1.1 client; opts adjusts its options. It
// returns the client and the CONNACK return code.
func (f *fixture) connect311(clientID, username, password string, opts func(*mqtt3.ClientOptions)) (*client311, byte) {
	f.t.Helper()
	c := &client311{lost: make(chan error, 1)}
	o := mqtt3.NewClientOptions().AddBroker("tcp://" + f.broker.Addr("mqtt")).SetClientID(clientID).
		SetUsername(username).SetPassword(password).SetProtocolVersion(4).SetAutoReconnect(false).
		SetKeepAlive(30 * time.Second).SetConnectTimeout(10 * time.Second).
		SetConnectionLostHandler(func(_ mqtt3.Client, err error) { c.lost <- err }).
		SetCustomOpenConnectionFn(func(u *url.URL, _ mqtt3.ClientOptions) (net.Conn, error) {
			conn, err := net.Dial("tcp", u.Host)
			if err != nil {
				return nil, err
			}
			c.conn = &recordingConn{Conn: conn}
			return c.conn, nil
		})
	if opts != nil {
		opts(o)
	}
	c.Client = mqtt3.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		f.t.Fatalf("connect %s: no CONNACK", clientID)
	}
	code := tok.(*mqtt3.ConnectToken).ReturnCode()
	if code == 0 {
		f.t.Cleanup(func() { c.Disconnect(0) })
	}
	return c, code
}

// waitClosed waits until the server closes c's connection and checks that
// it sent no DISCONNECT, which MQTT 3.1.1 does not have.
func (c *client311) waitClosed(t *testing.T, failure string) {
	t.Helper()
	select {
	case <-c.lost:
	case <-time.After(10 * time.Second):
		t.Fatal(failure)
	}
	if c.conn.sentDisconnect(t) {
		t.Error("the server sent an MQTT 3.1.1 client a DISCONNECT, which 3.1.1 does not have")
	}
}

// publish311 publishes and waits for the acknowledgement (QoS 1/2) or the
// write (QoS 0).
func (c *client311) publish(topic string, qos byte, retain bool) error {
	tok := c.Publish(topic, qos, retain, "hello "+topic)
	if !tok.WaitTimeout(10 * time.Second) {
		return errors.New("no acknowledgement")
	}
	return tok.Error()
}

// TestV311ConnackCodes: an MQTT 3.1.1 client refused at CONNECT gets a
// return code 3.1.1 defines (0x87 and the like are MQTT 5 only), and
// mosquitto_pub says why.
func TestV311ConnackCodes(t *testing.T) {
	f := newFixtureWith(t, time.Hour, func(c *broker.Config) { c.ConnectionsPerThing = 1 })
	tok1, tok2 := f.token("s-1", "mqtt"), f.token("s-2", "mqtt")
	f.connect311("s-2", "s-2", tok2, nil) // s-2's one connection
	deniedWill := func(o *mqtt3.ClientOptions) { o.SetWill("things/s-1/firmware", "gone", 0, false) }
	tests := []struct {
		name                         string
		clientID, username, password string
		opts                         func(*mqtt3.ClientOptions)
		want                         byte
	}{
		{"bad credentials", "s-1", "s-1", "not-a-token", nil, 4},
		{"client id not allowed", "s-1-other", "s-1", tok1, nil, 5},
		{"will denied", "s-1", "s-1", tok1, deniedWill, 5},
		{"connections per thing", "s-2-b", "s-2", tok2, nil, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, got := f.connect311(tt.clientID, tt.username, tt.password, tt.opts); got != tt.want {
				t.Errorf("CONNACK return code = %#x, want %#x", got, tt.want)
			}
		})
	}
	t.Run("thing disabled", func(t *testing.T) {
		disabled := store.StateDisabled
		if _, err := f.reg.UpdateThing(events.WithActor(context.Background(), "test"), "s-1", 0, registry.ThingPatch{State: &disabled}); err != nil {
			t.Fatal(err)
		}
		if _, got := f.connect311("s-1", "s-1", tok1, nil); got != 5 {
			t.Errorf("CONNACK return code = %#x, want 0x05", got)
		}
	})
	t.Run("mosquitto_pub", func(t *testing.T) {
		if _, err := exec.LookPath("mosquitto_pub"); err != nil {
			t.Skip("mosquitto_pub not installed (apt-get install mosquitto-clients)")
		}
		host, port, _ := net.SplitHostPort(f.broker.Addr("mqtt"))
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, "mosquitto_pub", "-h", host, "-p", port, "-V", "mqttv311",
			"-i", "s-2-c", "-u", "s-2", "-P", tok2, "-t", "things/s-2/x", "-m", "x").CombinedOutput()
		if err == nil || !strings.Contains(string(out), "Connection Refused: not authorised.") {
			t.Errorf("mosquitto_pub refused by policy: %v, %q; want \"Connection Refused: not authorised.\"", err, out)
		}
	})
}

// TestV311NoServerDisconnect: MQTT 3.1.1 has no server DISCONNECT; a
// 3.1.1 client the server ends (a refused QoS 1/2 publish, a retained QoS 2
// publish the policy refuses, a takeover, revocation, a disabled thing,
// token expiry) has its connection closed and gets no DISCONNECT packet.
func TestV311NoServerDisconnect(t *testing.T) {
	f := newFixture(t, time.Hour)
	ctx := events.WithActor(context.Background(), "test")
	tests := []struct {
		name string
		// end does what ends the connection of c, connected as s-2.
		end func(t *testing.T, c *client311, tok string)
	}{
		{"publish QoS 1 denied", func(t *testing.T, c *client311, _ string) { _ = c.publish("things/s-2/firmware", 1, false) }},
		{"publish QoS 2 denied", func(t *testing.T, c *client311, _ string) { _ = c.publish("things/s-2/firmware", 2, false) }},
		{"retained QoS 2 denied", func(t *testing.T, c *client311, _ string) { _ = c.publish("things/s-2/temp", 2, true) }},
		{"taken over", func(t *testing.T, _ *client311, tok string) { f.connect311("s-2", "s-2", tok, nil) }},
		{"token revoked", func(t *testing.T, _ *client311, tok string) {
			if err := f.oauth.RevokeAccessToken(ctx, tok); err != nil {
				t.Fatal(err)
			}
		}},
		{"thing disabled", func(t *testing.T, _ *client311, _ string) {
			disabled := store.StateDisabled
			if _, err := f.reg.UpdateThing(ctx, "s-2", 0, registry.ThingPatch{State: &disabled}); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := f.token("s-2", "mqtt")
			c, code := f.connect311("s-2", "s-2", tok, nil)
			if code != 0 {
				t.Fatalf("connect: %#x", code)
			}
			tt.end(t, c, tok)
			c.waitClosed(t, "the connection stayed open")
		})
	}
	t.Run("token expired", func(t *testing.T) {
		g := newFixture(t, 2*time.Second)
		c, code := g.connect311("s-1", "s-1", g.token("s-1", "mqtt"), nil)
		if code != 0 {
			t.Fatalf("connect: %#x", code)
		}
		c.waitClosed(t, "the connection outlived its token")
	})
}

// TestQoS2RefusedWithPubrec: a QoS 2 PUBLISH the broker refuses after
// authorizing the topic (iot:RetainPublish, mqtt.maxMessageSize) is
// answered with PUBREC and the reason code (MQTT 5 §4.3.3), not PUBACK.
func TestQoS2RefusedWithPubrec(t *testing.T) {
	f := newFixtureWith(t, time.Hour, func(c *broker.Config) { c.MaxMessageSize = 16 })
	c := f.mustConnect("s-1", "s-1", []byte(f.token("s-1", "mqtt")))
	tests := []struct {
		name    string
		topic   string
		retain  bool
		payload []byte
		want    byte
	}{
		{"retained without iot:RetainPublish", "things/s-1/temp", true, []byte("21"), 0x87},
		{"over mqtt.maxMessageSize", "things/s-1/temp", false, bytes.Repeat([]byte("x"), 17), 0x95},
		{"allowed", "things/s-1/temp", false, []byte("21"), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			pr, err := c.Publish(ctx, &paho.Publish{Topic: tt.topic, QoS: 2, Retain: tt.retain, Payload: tt.payload})
			if pr == nil {
				t.Fatalf("no PUBREC: %v", err)
			}
			if pr.ReasonCode != tt.want {
				t.Errorf("PUBREC reason = %#x, want %#x", pr.ReasonCode, tt.want)
			}
		})
	}
}

// TestTopicAliases: the broker announces a Topic Alias Maximum and
// authorizes a PUBLISH that names its topic by alias for that topic.
func TestTopicAliases(t *testing.T) {
	f := newFixture(t, time.Hour)
	obs := f.observer(t)
	subscribe(t, obs, "things/s-1/#")
	c := newClient(f.dial("tcp"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ca, err := c.Connect(ctx, &paho.Connect{ClientID: "s-1", Username: "s-1", UsernameFlag: true,
		Password: []byte(f.token("s-1", "mqtt")), PasswordFlag: true, KeepAlive: 30, CleanStart: true})
	if err != nil || ca.ReasonCode != 0 {
		t.Fatalf("connect: %v %v", ca, err)
	}
	if ca.Properties == nil || ca.Properties.TopicAliasMaximum == nil || *ca.Properties.TopicAliasMaximum != 8 {
		t.Fatalf("CONNACK announces no Topic Alias Maximum of 8: %+v", ca.Properties)
	}
	pub := func(topic string, alias uint16, payload string) (byte, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		pr, err := c.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte(payload),
			Properties: &paho.PublishProperties{TopicAlias: &alias}})
		if pr == nil {
			return 0, err
		}
		return pr.ReasonCode, nil
	}
	steps := []struct {
		name, topic string
		alias       uint16
		want        byte
	}{
		{"set alias 1", "things/s-1/temp", 1, 0},
		{"use alias 1", "", 1, 0},
		{"set alias 2 to a denied topic", "things/s-1/firmware", 2, 0x87},
		{"use alias 2", "", 2, 0x87},
		{"use alias 1 again", "", 1, 0},
	}
	for _, s := range steps {
		got, err := pub(s.topic, s.alias, s.name)
		if err != nil || got != s.want {
			t.Errorf("%s: PUBACK %#x, %v; want %#x", s.name, got, err, s.want)
		}
		if s.want == 0 {
			obs.waitForPayload(t, "things/s-1/temp", s.name)
		}
	}
	if _, err := pub("", 3, "never set"); err == nil {
		t.Error("publish with an alias never set was acknowledged")
	}
	waitDisconnect(t, c, 0x94, "an alias never set did not end the connection with 0x94")
}

// waitForPayload waits until a message on topic with payload arrives.
func (c *client) waitForPayload(t *testing.T, topic, payload string) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, "message "+payload+" on "+topic, func() bool {
		for _, m := range c.messages() {
			if m.Topic == topic && string(m.Payload) == payload {
				return true
			}
		}
		return false
	})
}

// TestDeniedQoS0From311: a QoS 0 PUBLISH the policy refuses ends an MQTT
// 3.1.1 client's connection by default (as AWS IoT Core does); with
// DropDeniedQoS0 it is dropped and the connection stays (shown by a
// sentinel publish after it arriving).
func TestDeniedQoS0From311(t *testing.T) {
	for _, drop := range []bool{false, true} {
		name := map[bool]string{false: "disconnect (default)", true: "drop"}[drop]
		t.Run(name, func(t *testing.T) {
			f := newFixtureWith(t, time.Hour, func(c *broker.Config) { c.DropDeniedQoS0 = drop })
			obs := f.observer(t)
			subscribe(t, obs, "things/s-1/#")
			c, code := f.connect311("s-1", "s-1", f.token("s-1", "mqtt"), nil)
			if code != 0 {
				t.Fatalf("connect: %#x", code)
			}
			if err := c.publish("things/s-1/firmware", 0, false); err != nil {
				t.Fatal(err)
			}
			if !drop {
				c.waitClosed(t, "a denied QoS 0 publish did not end the connection")
				return
			}
			if err := c.publish("things/s-1/temp", 1, false); err != nil {
				t.Fatalf("publish after the dropped one: %v", err)
			}
			obs.waitForPayload(t, "things/s-1/temp", "hello things/s-1/temp")
			select {
			case err := <-c.lost:
				t.Fatalf("connection lost: %v", err)
			default:
			}
		})
	}
}

// TestReceiveRevokedAndRestored: a policy change that takes iot:Receive
// away keeps the subscription and withholds deliveries; restoring the
// policy resumes them, without the client subscribing again.
func TestReceiveRevokedAndRestored(t *testing.T) {
	f := newFixture(t, time.Hour)
	c, code := f.connect311("s-1", "s-1", f.token("s-1", "mqtt"), nil)
	if code != 0 {
		t.Fatalf("connect: %#x", code)
	}
	var mu sync.Mutex
	var got []string
	for _, topic := range []string{"things/s-1/temp", "things/s-1/humidity"} {
		tok := c.Subscribe(topic, 1, func(_ mqtt3.Client, m mqtt3.Message) {
			mu.Lock()
			got = append(got, m.Topic()+" "+string(m.Payload()))
			mu.Unlock()
		})
		if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("subscribe %s: %v", topic, tok.Error())
		}
	}
	received := func(msg string) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, g := range got {
			if g == msg {
				return true
			}
		}
		return false
	}
	ctx := events.WithActor(context.Background(), "test")
	setPolicy := func(doc string) {
		t.Helper()
		if _, err := f.reg.CreatePolicyVersion(ctx, "telemetry", 0, []byte(doc), true); err != nil {
			t.Fatal(err)
		}
	}
	// n numbers each round of publishes, so each is told apart.
	n := 0
	round := func() (temp, sentinel string) {
		n++
		temp, sentinel = fmtRound("temp", n), fmtRound("humidity", n)
		if err := f.broker.Publish("things/s-1/temp", []byte(temp), false, 1); err != nil {
			t.Fatal(err)
		}
		if err := f.broker.Publish("things/s-1/humidity", []byte(sentinel), false, 1); err != nil {
			t.Fatal(err)
		}
		return "things/s-1/temp " + temp, "things/s-1/humidity " + sentinel
	}
	noTempReceive := strings.Replace(telemetry, `"Resource":"topic/*/firmware"}]}`,
		`"Resource":"topic/*/firmware"},
 {"Effect":"Deny","Action":"iot:Receive","Resource":"topic/things/*/temp"}]}`, 1)
	if noTempReceive == telemetry {
		t.Fatal("policy edit did not apply")
	}
	setPolicy(noTempReceive)
	// Applied once a round's sentinel arrives without its temp; the
	// sentinel is delivered after the temp, on the same session.
	testenv.Eventually(t, 10*time.Second, "iot:Receive being withdrawn", func() bool {
		temp, sentinel := round()
		waitReceived(t, received, sentinel)
		return !received(temp)
	})
	setPolicy(telemetry)
	testenv.Eventually(t, 10*time.Second, "deliveries resuming when iot:Receive is restored", func() bool {
		temp, sentinel := round()
		waitReceived(t, received, sentinel)
		return received(temp)
	})
}

func fmtRound(what string, n int) string { return fmt.Sprintf("%s %d", what, n) }

// waitReceived waits until received(msg) holds.
func waitReceived(t *testing.T, received func(string) bool, msg string) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, "sentinel "+msg, func() bool { return received(msg) })
}

// TestV311SubackCodes: a filter the policy refuses gets SUBACK 0x80, the
// only failure code of MQTT 3.1.1 (mochi maps 0x87 itself; this keeps the
// table in docs/policies.md true).
func TestV311SubackCodes(t *testing.T) {
	f := newFixture(t, time.Hour)
	c, code := f.connect311("s-1", "s-1", f.token("s-1", "mqtt"), nil)
	if code != 0 {
		t.Fatalf("connect: %#x", code)
	}
	tok := c.SubscribeMultiple(map[string]byte{"things/s-1/temp": 1, "things/s-2/temp": 1}, nil)
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	got := tok.(*mqtt3.SubscribeToken).Result()
	want := map[string]byte{"things/s-1/temp": 1, "things/s-2/temp": 0x80}
	for filter, w := range want {
		if got[filter] != w {
			t.Errorf("SUBACK for %s = %#x, want %#x", filter, got[filter], w)
		}
	}
}
