package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/simulate"
)

// TestSimulateFleet runs the fleet simulator (package simulate, the engine
// of `gatehouse simulate`) in-process against the binary, with both kinds
// of device authentication: every device gets its credentials, connects
// and publishes, nothing fails, and the things are in the registry.
func TestSimulateFleet(t *testing.T) {
	s := startServer(t, "--data-dir", t.TempDir())
	if s.MQTT == "" || s.MQTTS == "" || s.Token == "" {
		t.Fatalf("banner lacks mqtt, mqtts or the admin token:\n%s", s.Stdout())
	}
	const things = 20
	for _, auth := range []string{simulate.AuthToken, simulate.AuthCert} {
		t.Run(auth, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
			defer cancel()
			prefix := "sim" + auth
			var progress int
			sum, err := simulate.Run(ctx, simulate.Config{
				Server: s.URL, AdminToken: s.Token,
				MQTTURL: "mqtt://" + s.MQTT, MQTTSURL: "mqtts://" + s.MQTTS,
				Things: things, Rate: 20, Duration: 4 * time.Second, PublishInterval: 250 * time.Millisecond,
				Auth: auth, Prefix: prefix, StateDir: t.TempDir(),
				OnProgress: func(simulate.Progress) { progress++ },
			})
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			t.Logf("summary: %+v", *sum)
			if sum.Started != things || sum.Connected != things {
				t.Errorf("started %d, connected %d, want %d each", sum.Started, sum.Connected, things)
			}
			if sum.Errors != 0 || len(sum.ErrorsByKind) != 0 {
				t.Errorf("errors: %d %v %v", sum.Errors, sum.ErrorsByKind, sum.FirstErrorByKind)
			}
			if sum.Messages <= 0 || sum.PeakMessagesPerSec <= 0 || sum.Latencies[simulate.OpPublish].Count != int(sum.Messages) {
				t.Errorf("messages %d (peak %v/s), publish latencies %+v", sum.Messages, sum.PeakMessagesPerSec, sum.Latencies[simulate.OpPublish])
			}
			if l := sum.Latencies[simulate.OpConnect]; l.Count != things || l.P50Ms <= 0 || l.P99Ms < l.P50Ms {
				t.Errorf("connect latency %+v", l)
			}
			switch auth {
			case simulate.AuthToken:
				if sum.Tokens != things || sum.Registered != 0 {
					t.Errorf("tokens %d, registered %d, want %d and 0", sum.Tokens, sum.Registered, things)
				}
			case simulate.AuthCert:
				if sum.Registered != things || sum.Tokens != 0 {
					t.Errorf("registered %d, tokens %d, want %d and 0", sum.Registered, sum.Tokens, things)
				}
			}
			if progress == 0 {
				t.Error("no progress report in a 4s run")
			}
			for i := range things {
				name := simulate.ThingName(prefix, i)
				th := s.admin(t, "GET", "/api/v1/things/"+name, "", 200)
				if th["thingType"] != prefix {
					t.Errorf("%s: thing type %v, want %s", name, th["thingType"], prefix)
				}
			}
		})
	}
}
