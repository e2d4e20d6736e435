package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/simulate"
)

// TestSimulateFleet runs the fleet simulator (package simulate, the engine
// of `gatehouse simulate`) in-process against the binary, with both kinds
// of device authentication: every device gets its credentials, connects
// and publishes, nothing fails, and the things are in the registry.
func TestSimulateFleet(t *testing.T) {
	t.Parallel()
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

// TestSimulateUnderLimits is issue #23's run at a small scale: a fleet
// registering through one address faster than limits.registerPerIP allows
// (40 devices at 40/s against a burst of 10 and 5/s) ends with every
// device registered and connected: the device SDK retries the 429s after
// Retry-After plus jitter, and the summary counts those retries apart from
// errors (0 of those). With the address in limits.exemptSources, the same
// fleet is not held back at all.
func TestSimulateUnderLimits(t *testing.T) {
	const things = 40
	tests := []struct {
		name        string
		exempt      string
		duration    time.Duration // ample: the limited fleet needs about 8s, and a server built with -race registers slowly
		wantRetries bool
	}{
		{"limited", "", 25 * time.Second, true},
		{"exempt source", "127.0.0.0/8", 15 * time.Second, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("GATEHOUSE_LIMITS_REGISTER_PER_IP", "10/2s")
			t.Setenv("GATEHOUSE_LIMITS_EXEMPT_SOURCES", tc.exempt)
			s := startServer(t, "--data-dir", t.TempDir())
			ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
			defer cancel()
			sum, err := simulate.Run(ctx, simulate.Config{
				Server: s.URL, AdminToken: s.Token, MQTTSURL: "mqtts://" + s.MQTTS,
				Things: things, Rate: 40, Duration: tc.duration, PublishInterval: 2 * time.Second,
				Auth: simulate.AuthCert, Prefix: "lim", StateDir: t.TempDir(),
			})
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			t.Logf("summary: %+v", *sum)
			if sum.Errors != 0 || len(sum.ErrorsByKind) != 0 {
				t.Errorf("permanent errors: %d %v %v", sum.Errors, sum.ErrorsByKind, sum.FirstErrorByKind)
			}
			if sum.Registered != things || sum.Connected != things {
				t.Errorf("registered %d, connected %d, want %d each", sum.Registered, sum.Connected, things)
			}
			switch {
			case tc.wantRetries && (sum.Retries == 0 || sum.RetriesByOp["register"] == 0 || sum.DelayedDevices == 0 || sum.RetryWaitSeconds <= 0):
				t.Errorf("retries %d by op %v, %d devices delayed, %.1fs waited: want register retries and delays", sum.Retries, sum.RetriesByOp, sum.DelayedDevices, sum.RetryWaitSeconds)
			case !tc.wantRetries && sum.Retries != 0:
				t.Errorf("retries %d by op %v from an exempt address, want 0", sum.Retries, sum.RetriesByOp)
			}
			_, m := curl(t, "GET", s.URL+"/metrics", "", "")
			if got := strings.Contains(m, `gatehouse_limit_rejections_total{limit="registerPerIP"} 0`); got == tc.wantRetries {
				t.Errorf("registerPerIP rejections at 0 = %v, want %v", got, !tc.wantRetries)
			}
		})
	}
}
