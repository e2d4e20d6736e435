package broker_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"

	"github.com/gatehouse-iot/gatehouse/internal/broker"
	"github.com/gatehouse-iot/gatehouse/internal/testenv"
)

// TestExpiredTokenRefused: a Gatehouse token is refused from the second of
// its exp on, by the broker's clock, with no leeway: at CONNECT (0x86), so
// a PUBLISH pipelined behind the CONNECT is never delivered and a
// persistent session resumed with the expired token gets none of its
// queued messages (they wait for a valid credential); a session still
// connected publishes nothing from that instant either.
func TestExpiredTokenRefused(t *testing.T) {
	clk := testenv.NewClock(time.Now().UTC().Truncate(time.Second))
	f := newFixtureWith(t, time.Hour, func(c *broker.Config) { c.Now = clk.Now }, testenv.Now(clk.Now))
	for name, secret := range f.env.Things(f.env.As("test"), "sensor", "s-3", "s-4") {
		f.secrets[name] = secret
	}

	old := []byte(f.token("s-3", "mqtt")) // exp = now + 1h
	old4 := []byte(f.token("s-4", "mqtt"))

	// 1s before exp the token is good: s-3 connects, then leaves a
	// persistent session subscribed to commands/#, and a message is queued
	// for it.
	clk.Advance(time.Hour - time.Second)
	if c, code, err := f.connect("s-3", "s-3", old, nil); code != 0 {
		t.Fatalf("1s before exp: CONNACK = %#x (%v), want 0", code, err)
	} else {
		_ = c.Disconnect(&paho.Disconnect{})
	}
	watcher := f.mustConnect("s-1", "s-1", []byte(f.token("s-1", "mqtt")))
	for _, filter := range []string{"commands/#", "$gatehouse/events/broker.disconnected/#"} {
		if got := subscribe(t, watcher, filter); got != 1 {
			t.Fatalf("subscribe %s = %#x", filter, got)
		}
	}
	pub := f.mustConnect("s-2", "s-2", []byte(f.token("s-2", "mqtt")))
	live := f.mustConnect("s-4", "s-4", old4) // stays connected past exp
	away := f.connectPersistent(t, "s-3", old)
	if got := subscribe(t, away, "commands/#"); got != 1 {
		t.Fatalf("subscribe = %#x", got)
	}
	_ = away.Disconnect(&paho.Disconnect{})
	watcher.waitFor(t, "$gatehouse/events/broker.disconnected/client/s-3")
	if got := publish(t, pub, "commands/queued", 1, false); got != 0 {
		t.Fatalf("publish = %#x", got)
	}
	watcher.waitFor(t, "commands/queued")

	expiry := uint32(300)
	resume := &packets.Connect{ProtocolName: "MQTT", ProtocolVersion: 5, ClientID: "s-3", UsernameFlag: true, Username: "s-3",
		PasswordFlag: true, Password: old, KeepAlive: 30, CleanStart: false,
		Properties: &packets.Properties{SessionExpiryInterval: &expiry}}
	clk.Advance(time.Second) // at exp
	// The live session's token expired this instant: whether or not the
	// expiry kick has run yet, its publish is refused.
	if got := publish(t, live, "commands/late", 1, false); got != 0x87 {
		t.Errorf("at exp, a publish of the live session = %#x, want 0x87", got)
	}
	if got := rawExchange(t, f.broker.Addr("mqtt"), resume); len(got) != 1 || got[0].Type != packets.CONNACK || got[0].Content.(*packets.Connack).ReasonCode != 0x86 {
		t.Errorf("at exp, a persistent session resumed with the token: got %v, want only CONNACK 0x86", packetTypes(got))
	}

	pipelined := &packets.Connect{ProtocolName: "MQTT", ProtocolVersion: 5, ClientID: "s-3", UsernameFlag: true, Username: "s-3",
		PasswordFlag: true, Password: old, KeepAlive: 30, CleanStart: true}
	leak := &packets.Publish{Topic: "commands/leak", QoS: 0, Payload: []byte("under an expired token")}
	clk.Advance(time.Second) // 1s after exp
	if got := rawExchange(t, f.broker.Addr("mqtt"), pipelined, leak); len(got) != 1 || got[0].Type != packets.CONNACK || got[0].Content.(*packets.Connack).ReasonCode != 0x86 {
		t.Errorf("1s after exp, CONNECT+PUBLISH with the token: got %v, want only CONNACK 0x86", packetTypes(got))
	}
	// The sentinel follows the pipelined PUBLISH: had that been delivered,
	// it would be there first.
	if got := publish(t, pub, "commands/sentinel", 1, false); got != 0 {
		t.Fatalf("publish sentinel = %#x", got)
	}
	watcher.waitFor(t, "commands/sentinel")
	for _, m := range watcher.messages() {
		switch m.Topic {
		case "commands/leak":
			t.Error("a PUBLISH pipelined behind a CONNECT with an expired token was delivered")
		case "commands/late":
			t.Error("a PUBLISH of a live session whose token had expired was delivered")
		}
	}

	// With a valid token the session and its queued message are there.
	back := f.connectPersistent(t, "s-3", []byte(f.token("s-3", "mqtt")))
	back.waitFor(t, "commands/queued")
	_ = back.Disconnect(&paho.Disconnect{})
}

// rawExchange writes pks to a new connection in one write and returns every
// packet the broker sends until it closes the connection.
func rawExchange(t *testing.T, addr string, pks ...packets.Packet) []*packets.ControlPacket {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var buf bytes.Buffer
	for _, pk := range pks {
		if _, err := pk.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := conn.Write(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	// A safety net against a broker that never closes, not a measurement.
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var got []*packets.ControlPacket
	for {
		cp, err := packets.ReadPacket(conn)
		if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err) {
			return got
		}
		if err != nil {
			t.Fatalf("read after %v: %v", packetTypes(got), err)
		}
		got = append(got, cp)
	}
}

// isReset reports a connection reset by the broker, a close like EOF.
func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && !op.Timeout()
}

func packetTypes(pks []*packets.ControlPacket) []string {
	var out []string
	for _, p := range pks {
		out = append(out, p.PacketType())
	}
	return out
}
