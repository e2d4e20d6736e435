package broker_test

import (
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"

	"github.com/gatehouse-iot/gatehouse/internal/broker"
	"github.com/gatehouse-iot/gatehouse/internal/testenv"
)

// lockedBuffer collects log output from many goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestSecondConnectLogsNoSecret: a client that sends a second CONNECT on
// its connection (a protocol error) makes mochi log the offending packet;
// neither the access token it carries nor a PUBLISH payload may reach the
// log, in any encoding, even at debug level and in either handler format.
func TestSecondConnectLogsNoSecret(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			var logs lockedBuffer
			opts := &slog.HandlerOptions{Level: slog.LevelDebug}
			var h slog.Handler = slog.NewTextHandler(&logs, opts)
			if format == "json" {
				h = slog.NewJSONHandler(&logs, opts)
			}
			f := newFixtureWith(t, time.Hour, func(c *broker.Config) { c.Logger = slog.New(h) })
			tok := []byte(f.token("s-1", "mqtt"))
			payload := []byte("payload-sentinel-4711")

			conn, err := net.Dial("tcp", f.broker.Addr("mqtt"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			connect := &packets.Connect{ProtocolName: "MQTT", ProtocolVersion: 5, ClientID: "s-1", UsernameFlag: true, Username: "s-1",
				PasswordFlag: true, Password: tok, KeepAlive: 30, CleanStart: true}
			if _, err := connect.WriteTo(conn); err != nil {
				t.Fatal(err)
			}
			_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			cp, err := packets.ReadPacket(conn)
			if err != nil {
				t.Fatal(err)
			}
			if ack, ok := cp.Content.(*packets.Connack); !ok || ack.ReasonCode != 0 {
				t.Fatalf("first CONNECT answered %v", cp)
			}
			// A PUBLISH the policy refuses (mochi logs rejected packets at
			// debug), then the protocol error.
			pub := &packets.Publish{Topic: "things/s-2/x", QoS: 1, PacketID: 1, Payload: payload}
			if _, err := pub.WriteTo(conn); err != nil {
				t.Fatal(err)
			}
			if _, err := connect.WriteTo(conn); err != nil {
				t.Fatal(err)
			}
			// The broker ends the connection: read until it is gone.
			for {
				if _, err := packets.ReadPacket(conn); err != nil {
					if err != io.EOF && !strings.Contains(err.Error(), "reset") {
						t.Logf("read after second CONNECT: %v", err)
					}
					break
				}
			}
			// mochi logs the protocol error, then "client disconnected"
			// from the same goroutine: once that is there, so is the
			// error, and absence below is not absence of logging.
			testenv.Eventually(t, 10*time.Second, "mochi logging the disconnection", func() bool {
				return strings.Contains(logs.String(), "client disconnected")
			})
			got := logs.String()
			if !strings.Contains(got, "error processing packet") || !strings.Contains(got, "Connect packet (content not logged)") {
				t.Fatalf("mochi did not log the protocol error with the packet's type; log:\n%s", got)
			}
			for name, secret := range map[string][]byte{"token": tok, "payload": payload} {
				for _, form := range []string{string(secret), base64.StdEncoding.EncodeToString(secret), strings.Trim(fmt.Sprint(secret), "[]")} {
					// Parts long enough to be unambiguous.
					if strings.Contains(got, form[len(form)/2:]) {
						t.Errorf("the %s reached the log (as %.20q...):\n%s", name, form, got)
					}
				}
			}
		})
	}
}
