package e2e

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestMosquittoV311Refusals: with mosquitto clients speaking MQTT 3.1.1
// against the binary, a connection the policy refuses is told "not
// authorised" (return code 5, not the MQTT 5 code 0x87, which mosquitto
// reads as "unknown reason" and a protocol error), and a refused QoS 1
// publish or QoS 0 publish closes the connection without a DISCONNECT
// packet, which 3.1.1 does not have (mosquitto calls one a protocol error).
func TestMosquittoV311Refusals(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--data-dir", t.TempDir())
	s.admin(t, "POST", "/api/v1/policies", `{"name":"status","document":{"Version":"2012-10-17","Statement":[
	  {"Effect":"Allow","Action":"iot:Connect","Resource":"client/${iot:Connection.Thing.ThingName}"},
	  {"Effect":"Allow","Action":"iot:Publish","Resource":"topic/status/${iot:Connection.Thing.ThingName}"}]}}`, 201)
	s.admin(t, "POST", "/api/v1/thing-types", `{"name":"lamp","scopes":["mqtt"],"defaultPolicies":["status"]}`, 201)
	s.admin(t, "POST", "/api/v1/things", `{"name":"lamp-1","thingType":"lamp"}`, 201)
	secret := s.admin(t, "POST", "/api/v1/things/lamp-1/secret", "", 201)["clientSecret"].(string)
	tok := thingToken(t, s, "lamp-1", secret, "mqtt")
	tests := []struct {
		name     string
		args     []string
		want     string
		mustNot  string
		wantFail bool
	}{
		{"client id not allowed", []string{"-i", "lamp-2", "-t", "status/lamp-1", "-m", "x"}, "Connection Refused: not authorised.", "", true},
		{"bad credentials", []string{"-i", "lamp-1", "-P", "wrong", "-t", "status/lamp-1", "-m", "x"}, "Connection Refused: bad user name or password.", "", true},
		{"allowed", []string{"-i", "lamp-1", "-t", "status/lamp-1", "-m", "x", "-q", "1"}, "", "", false},
		{"publish QoS 1 refused", []string{"-i", "lamp-1", "-t", "status/lamp-2", "-m", "x", "-q", "1"}, "The connection was lost.", "protocol error", true},
		{"publish QoS 0 refused", []string{"-i", "lamp-1", "-t", "status/lamp-2", "-m", "x", "-q", "0", "--repeat", "3", "--repeat-delay", "1"}, "The connection was lost.", "protocol error", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			args := append([]string{"-V", "mqttv311", "-u", "lamp-1", "-P", tok}, tt.args...)
			out, err := mosquitto(t, ctx, "mosquitto_pub", s, args...)
			if (err != nil) != tt.wantFail {
				t.Errorf("mosquitto_pub: %v, want failure %v; output %q", err, tt.wantFail, out)
			}
			if tt.want != "" && !strings.Contains(out, tt.want) {
				t.Errorf("mosquitto_pub said %q, want %q", out, tt.want)
			}
			if tt.mustNot != "" && strings.Contains(out, tt.mustNot) {
				t.Errorf("mosquitto_pub said %q: the server broke MQTT 3.1.1", out)
			}
		})
	}
}
