package e2e

import (
	"context"
	"net"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
)

var anonRE = regexp.MustCompile(`mqtt/anon\s+mqtt://(\S+)`)

// TestAnonymousInteropListener runs the binary with the unauthenticated
// interop test listener (mqtt.anonymousAddr) bound to a stored policy:
// clients connect without credentials and get exactly what the policy
// allows, the normal listener still wants credentials, and the server
// refuses to start with a non-loopback address or an unknown policy.
func TestAnonymousInteropListener(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	s := startServer(t, "--data-dir", dataDir)
	if strings.Contains(s.Stdout(), "mqtt/anon") {
		t.Errorf("the anonymous listener is on by default:\n%s", s.Stdout())
	}
	doc := `{"Version":"2012-10-17","Statement":[
 {"Effect":"Allow","Action":"iot:Connect","Resource":"client/anon-*"},
 {"Effect":"Allow","Action":["iot:Publish","iot:Receive"],"Resource":"topic/open/*"},
 {"Effect":"Allow","Action":"iot:Subscribe","Resource":"topicfilter/open/*"}]}`
	if out, errOut, err := s.cli(t, "", "policies", "create", "interop", doc); err != nil {
		t.Fatalf("policies create: %v\n%s%s", err, out, errOut)
	}
	if err := s.stop(t); err != nil {
		t.Fatalf("stop: %v", err)
	}

	refusals := []struct {
		name string
		args []string
		want string
	}{
		{"every interface", []string{"--mqtt-anonymous-addr", "0.0.0.0:0", "--mqtt-anonymous-policy", "interop"}, "not a loopback address"},
		{"no policy", []string{"--mqtt-anonymous-addr", "127.0.0.1:0"}, "mqtt.anonymousPolicy"},
		{"unknown policy", []string{"--mqtt-anonymous-addr", "127.0.0.1:0", "--mqtt-anonymous-policy", "ghost"}, "mqtt.anonymousPolicy"},
	}
	for _, tc := range refusals {
		t.Run("refused: "+tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			args := append([]string{"serve", "--data-dir", dataDir, "--http-addr", "127.0.0.1:0", "--mqtt-addr", "127.0.0.1:0",
				"--ws-addr", "", "--mqtts-addr", "", "--https-addr", ""}, tc.args...)
			out, err := exec.CommandContext(ctx, binary, args...).CombinedOutput()
			if ctx.Err() != nil {
				t.Fatalf("gatehouse serve %v started instead of refusing:\n%s", tc.args, out)
			}
			if err == nil || !strings.Contains(string(out), tc.want) {
				t.Errorf("gatehouse serve %v: err %v, output:\n%s\nwant an error mentioning %q", tc.args, err, out, tc.want)
			}
		})
	}

	s = startServer(t, "--data-dir", dataDir, "--mqtt-anonymous-addr", "127.0.0.1:0", "--mqtt-anonymous-policy", "interop")
	m := anonRE.FindStringSubmatch(s.Stdout())
	if m == nil || !strings.Contains(s.Stdout(), "NO AUTHENTICATION") {
		t.Fatalf("banner lacks the anonymous listener:\n%s", s.Stdout())
	}
	anon := m[1]
	if _, code := connectNoCredentials(t, anon, "stranger"); code != 0x87 {
		t.Errorf("CONNECT as a client id the policy refuses = %#x, want 0x87", code)
	}
	if _, code := connectNoCredentials(t, s.MQTT, "anon-1"); code != 0x86 {
		t.Errorf("CONNECT without credentials on the normal listener = %#x, want 0x86", code)
	}
	received := make(chan string, 10)
	sub, code := connectNoCredentials(t, anon, "anon-sub", func(p *paho.Publish) { received <- p.Topic })
	if code != 0 {
		t.Fatalf("anonymous CONNECT = %#x, want 0", code)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for filter, want := range map[string]byte{"open/#": 1, "#": 0x87} {
		sa, err := sub.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}})
		if sa == nil {
			t.Fatalf("subscribe %s: %v", filter, err)
		}
		if got := sa.Reasons[0]; got != want {
			t.Errorf("SUBACK for %s = %#x, want %#x", filter, got, want)
		}
	}
	pub, code := connectNoCredentials(t, anon, "anon-pub")
	if code != 0 {
		t.Fatalf("anonymous CONNECT = %#x, want 0", code)
	}
	for topic, want := range map[string]byte{"open/temp": 0, "closed/temp": 0x87} {
		pr, err := pub.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte("x")})
		if pr == nil {
			t.Fatalf("publish %s: %v", topic, err)
		}
		if pr.ReasonCode != want {
			t.Errorf("PUBACK for %s = %#x, want %#x", topic, pr.ReasonCode, want)
		}
	}
	select {
	case topic := <-received:
		if topic != "open/temp" {
			t.Errorf("subscriber received %s, want open/temp", topic)
		}
	case <-ctx.Done():
		t.Fatal("the subscriber did not receive open/temp")
	}
}

// connectNoCredentials opens an MQTT 5 connection to addr without username
// or password and returns the client (nil if refused) and the CONNACK
// reason code; received, if given, gets every PUBLISH delivered.
func connectNoCredentials(t *testing.T, addr, clientID string, received ...func(*paho.Publish)) (*paho.Client, byte) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	cfg := paho.ClientConfig{Conn: packets.NewThreadSafeConn(conn), OnClientError: func(error) {}}
	for _, r := range received {
		cfg.OnPublishReceived = append(cfg.OnPublishReceived, func(pr paho.PublishReceived) (bool, error) {
			r(pr.Packet)
			return true, nil
		})
	}
	c := paho.NewClient(cfg)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	ca, err := c.Connect(ctx, &paho.Connect{ClientID: clientID, KeepAlive: 30, CleanStart: true})
	if ca == nil {
		t.Fatalf("connect to %s: %v", addr, err)
	}
	if ca.ReasonCode != 0 {
		conn.Close()
		return nil, ca.ReasonCode
	}
	t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}); conn.Close() })
	return c, 0
}
