package broker_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse-iot/gatehouse/internal/broker"
	"github.com/gatehouse-iot/gatehouse/internal/events"
	"github.com/gatehouse-iot/gatehouse/internal/ratelimit"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/store"
	"github.com/gatehouse-iot/gatehouse/internal/testenv"
)

// rejections reads gatehouse_limit_rejections_total{limit=name} from reg.
func rejections(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	v, ok := counter(t, reg, "gatehouse_limit_rejections_total", "limit", name)
	if !ok {
		t.Fatalf("no rejection counter for %s", name)
	}
	return v
}

// counter reads the counter metric{label=value} from reg.
func counter(t *testing.T, reg *prometheus.Registry, metric, label, value string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != metric {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					return m.GetCounter().GetValue(), true
				}
			}
		}
	}
	return 0, false
}

func newRejections(t *testing.T) (*prometheus.Registry, *ratelimit.Rejections) {
	t.Helper()
	reg := prometheus.NewRegistry()
	rej, err := ratelimit.NewRejections(reg, "connectPerIP", "connectionsPerThing", "mqtt.maxPacketSize", "mqtt.maxMessageSize",
		"pendingConnectionsPerIP", "mqtt.maxTopicBytes", "mqtt.maxTopicLevels")
	if err != nil {
		t.Fatal(err)
	}
	return reg, rej
}

// TestConnectPerIPLimit: CONNECTs from one address over the limit are
// refused with 0x9F before any authentication, and allowed again as the
// injected clock moves on.
func TestConnectPerIPLimit(t *testing.T) {
	clk := testenv.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	reg, rej := newRejections(t)
	f := newFixtureWith(t, time.Hour, func(c *broker.Config) {
		c.ConnectPerIP = ratelimit.New("connectPerIP", ratelimit.Rate{Burst: 2, Per: time.Minute}, ratelimit.Options{Now: clk.Now, Rejections: rej})
		c.Rejections = rej
	})
	tok := []byte(f.token("s-1", "mqtt"))
	steps := []struct {
		name     string
		advance  time.Duration
		password []byte
		want     byte
	}{
		{"first", 0, tok, 0},
		{"bad password, counted too", 0, []byte("wrong"), 0x86},
		{"over the limit, before authentication", 0, []byte("wrong"), 0x9F},
		{"over the limit with a good token", 0, tok, 0x9F},
		{"a token back after 30s", 30 * time.Second, tok, 0},
	}
	for _, s := range steps {
		clk.Advance(s.advance)
		c, got, _ := f.connect("s-1", "s-1", s.password, nil)
		if got != s.want {
			t.Errorf("%s: CONNACK %#x, want %#x", s.name, got, s.want)
		}
		if c != nil && got == 0 {
			_ = c.Disconnect(&paho.Disconnect{})
		}
	}
	// MQTT 3.1.1 has no 0x9F: the refusal is return code 3, server
	// unavailable.
	clk.Advance(30 * time.Second)
	_, _, _ = f.connect("s-1", "s-1", tok, nil) // takes the token back
	conn, err := net.Dial("tcp", f.broker.Addr("mqtt"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	connect311 := []byte{0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 30, 0, 1, 'x'}
	if _, err := conn.Write(connect311); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	ack := make([]byte, 4)
	if _, err := io.ReadFull(conn, ack); err != nil || !bytes.Equal(ack, []byte{0x20, 2, 0, 3}) {
		t.Errorf("MQTT 3.1.1 CONNACK over the limit = % x, %v; want 20 02 00 03", ack, err)
	}
	if got := rejections(t, reg, "connectPerIP"); got != 3 {
		t.Errorf("connectPerIP rejections = %v, want 3", got)
	}
}

// TestConnectionsPerThing: a thing may hold N connections (distinct client
// ids); the next is refused with 0x97 and the existing ones stay; a
// reconnect under a connected client id is a takeover, and a closed
// connection frees its place.
func TestConnectionsPerThing(t *testing.T) {
	reg, rej := newRejections(t)
	f := newFixtureWith(t, time.Hour, func(c *broker.Config) {
		c.ConnectionsPerThing = 2
		c.Rejections = rej
	})
	// Let s-1 and s-2 connect under other client ids (thing variables do
	// not resolve for those, so the resource is literal).
	admin := events.WithActor(context.Background(), "test")
	const multi = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"client/s-*"}]}`
	if _, err := f.reg.CreatePolicy(admin, registry.NewPolicy{Name: "multi", Document: []byte(multi)}); err != nil {
		t.Fatal(err)
	}
	for _, thing := range []string{"s-1", "s-2"} {
		if _, err := f.reg.AttachPolicy(admin, "multi", store.TargetThing, thing); err != nil {
			t.Fatal(err)
		}
	}
	tok1, tok2 := []byte(f.token("s-1", "mqtt")), []byte(f.token("s-2", "mqtt"))
	a := f.mustConnect("s-1", "s-1", tok1)
	b := f.mustConnect("s-1-b", "s-1", tok1)
	if _, got, _ := f.connect("s-1-c", "s-1", tok1, nil); got != 0x97 {
		t.Fatalf("third connection of s-1: CONNACK %#x, want 0x97 quota exceeded", got)
	}
	// The existing connections are untouched.
	for _, c := range []*client{a, b} {
		select {
		case d := <-c.disconnected:
			t.Fatalf("an existing connection was disconnected: %#x", d.ReasonCode)
		default:
		}
	}
	if got := publish(t, a, "things/s-1/x", 1, false); got != 0 {
		t.Errorf("publish on the first connection after the refusal: %#x", got)
	}
	// Another thing has its own count.
	f.mustConnect("s-2", "s-2", tok2)
	f.mustConnect("s-2-b", "s-2", tok2)
	// Taking over a connected client id is not a new connection.
	f.mustConnect("s-1-b", "s-1", tok1)
	// Closing one frees its place.
	_ = a.Disconnect(&paho.Disconnect{})
	f.waitGone(t, "s-1")
	f.mustConnect("s-1-c", "s-1", tok1)
	if got := rejections(t, reg, "connectionsPerThing"); got != 1 {
		t.Errorf("connectionsPerThing rejections = %v, want 1", got)
	}
}

// TestMaxMessageAndPacketSize: a PUBLISH payload over maxMessageSize is
// refused with 0x95 in the PUBACK (the connection stays); a packet over
// maxPacketSize ends the connection.
func TestMaxMessageAndPacketSize(t *testing.T) {
	reg, rej := newRejections(t)
	f := newFixtureWith(t, time.Hour, func(c *broker.Config) {
		c.MaxPacketSize, c.MaxMessageSize = 2048, 512
		c.Rejections = rej
	})
	c := f.mustConnect("s-1", "s-1", []byte(f.token("s-1", "mqtt")))
	sub := f.mustConnect("s-2", "s-2", []byte(f.token("s-2", "mqtt")))
	if got := subscribe(t, sub, "commands/#"); got != 1 {
		t.Fatalf("subscribe: %#x", got)
	}
	pub := func(size int) (byte, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		pr, err := c.Publish(ctx, &paho.Publish{Topic: "commands/big", QoS: 1, Payload: bytes.Repeat([]byte("x"), size)})
		if pr == nil {
			return 0, err
		}
		return pr.ReasonCode, err
	}
	if got, err := pub(512); got != 0 {
		t.Errorf("publish of 512 bytes: %#x %v, want 0", got, err)
	}
	if got, _ := pub(513); got != 0x95 {
		t.Errorf("publish of 513 bytes: %#x, want 0x95 packet too large", got)
	}
	sub.waitFor(t, "commands/big")
	for _, m := range sub.messages() {
		if len(m.Payload) > 512 {
			t.Errorf("the subscriber received %d bytes", len(m.Payload))
		}
	}
	if got := rejections(t, reg, "mqtt.maxMessageSize"); got != 1 {
		t.Errorf("mqtt.maxMessageSize rejections = %v, want 1", got)
	}
	// Over the packet size the broker closes the connection.
	_, _ = pub(4096)
	f.waitGone(t, "s-1")
	testenv.Eventually(t, 10*time.Second, "an mqtt.maxPacketSize rejection", func() bool { return rejections(t, reg, "mqtt.maxPacketSize") >= 1 })
	if got := rejections(t, reg, "mqtt.maxPacketSize"); got != 1 {
		t.Errorf("mqtt.maxPacketSize rejections = %v, want 1", got)
	}
}

// TestAbandonedConnectsDoNotCount: clients that send a CONNECT and reset
// the connection at once (before or while the CONNACK is written) leave
// no connection counted against their thing: afterwards the thing still
// connects under a limit of one.
func TestAbandonedConnectsDoNotCount(t *testing.T) {
	f := newFixtureWith(t, time.Hour, func(c *broker.Config) { c.ConnectionsPerThing = 1 })
	admin := events.WithActor(context.Background(), "test")
	const multi = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"client/s-1*"}]}`
	if _, err := f.reg.CreatePolicy(admin, registry.NewPolicy{Name: "multi", Document: []byte(multi)}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.AttachPolicy(admin, "multi", store.TargetThing, "s-1"); err != nil {
		t.Fatal(err)
	}
	tok := []byte(f.token("s-1", "mqtt"))
	for i := range 30 {
		conn, err := net.Dial("tcp", f.broker.Addr("mqtt"))
		if err != nil {
			t.Fatal(err)
		}
		cp := &packets.Connect{ProtocolName: "MQTT", ProtocolVersion: 5, ClientID: fmt.Sprintf("s-1-%d", i), UsernameFlag: true, Username: "s-1",
			PasswordFlag: true, Password: tok, KeepAlive: 30, CleanStart: true}
		if _, err := cp.WriteTo(conn); err != nil {
			t.Fatal(err)
		}
		_ = conn.(*net.TCPConn).SetLinger(0) // close with RST
		conn.Close()
	}
	// The server notices the resets asynchronously; the thing must
	// connect once it has.
	testenv.Eventually(t, 10*time.Second, "s-1 connecting again after abandoned CONNECTs", func() bool {
		c, code, _ := f.connect("s-1", "s-1", tok, nil)
		if code == 0 {
			_ = c.Disconnect(&paho.Disconnect{})
			return true
		}
		return false
	})
}
