package broker_test

import (
	"context"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/gatehouse-iot/gatehouse/internal/broker"
)

// TestMaxKeepAlive: an MQTT 5 client asking for a keep-alive above
// Config.MaxKeepAlive, or for none, is told the cap as Server Keep Alive in
// the CONNACK; one asking for less is left alone.
func TestMaxKeepAlive(t *testing.T) {
	f := newFixtureWith(t, time.Hour, func(c *broker.Config) { c.MaxKeepAlive = 60 * time.Second })
	tests := []struct {
		name  string
		asked uint16
		want  uint16 // 0: no Server Keep Alive in the CONNACK
	}{
		{"above the cap", 120, 60},
		{"no keep-alive", 0, 60},
		{"at the cap", 60, 0},
		{"below the cap", 30, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := paho.NewClient(paho.ClientConfig{Conn: f.dial("tcp")})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			ca, err := c.Connect(ctx, &paho.Connect{ClientID: "s-1", Username: "s-1", UsernameFlag: true,
				Password: []byte(f.token("s-1", "mqtt")), PasswordFlag: true, KeepAlive: tc.asked, CleanStart: true})
			if err != nil {
				t.Fatalf("connect: %v", err)
			}
			defer c.Disconnect(&paho.Disconnect{})
			var got uint16
			if ca.Properties != nil && ca.Properties.ServerKeepAlive != nil {
				got = *ca.Properties.ServerKeepAlive
			}
			if got != tc.want {
				t.Errorf("Server Keep Alive = %d, want %d", got, tc.want)
			}
		})
	}
}
