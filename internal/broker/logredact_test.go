package broker

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// TestRedactHandler: every way mochi hands packet content to its logger
// (packets, pointers to them, wills, raw bytes, under known keys or inside
// groups and With attributes) comes out without it; plain strings, numbers
// and errors pass.
func TestRedactHandler(t *testing.T) {
	const secret = "sentinel-secret-0451"
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, TopicName: "t", Payload: []byte(secret)}
	tests := []struct {
		name string
		attr slog.Attr
		want string
	}{
		{"packet", slog.Any("pk", pk), `pk="Publish packet (content not logged)"`},
		{"packet pointer", slog.Any("packet", &pk), `packet="Publish packet (content not logged)"`},
		{"will", slog.Any("will", mqtt.Will{Payload: []byte(secret)}), `will=[redacted]`},
		{"mochi type under any key", slog.Any("x", mqtt.Will{TopicName: secret}), `x=[redacted]`},
		{"bytes", slog.Any("raw", []byte(secret)), `raw=[redacted]`},
		{"password string", slog.String("password", secret), `password=[redacted]`},
		{"group", slog.Group("g", slog.Any("pk", pk)), `g.pk="Publish packet (content not logged)"`},
		{"string", slog.String("client", "s-1"), `client=s-1`},
		{"error", slog.Any("error", errors.New("protocol violation")), `error="protocol violation"`},
		{"code", slog.Any("error", packets.ErrProtocolViolationSecondConnect), `error="protocol violation: second connect packet"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			log := slog.New(newRedactHandler(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
			log.Debug("m", tt.attr)
			log.With(tt.attr).Debug("with")
			got := buf.String()
			if strings.Contains(got, secret) {
				t.Errorf("the secret reached the log: %s", got)
			}
			if n := strings.Count(got, tt.want); n != 2 {
				t.Errorf("log = %s, want %s twice", got, tt.want)
			}
		})
	}
}
