package e2e

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestWillOnTakeover: with mosquitto clients against the binary, a client
// whose session is taken over by a new connection with the same client id
// has its will published (MQTT 5 §3.1.4; AWS IoT on DUPLICATE_CLIENTID).
func TestWillOnTakeover(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"mosquitto_pub", "mosquitto_sub"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (apt-get install mosquitto-clients)", tool)
		}
	}
	s := startServer(t, "--data-dir", t.TempDir())
	s.admin(t, "POST", "/api/v1/policies", `{"name":"status","document":{"Version":"2012-10-17","Statement":[
	  {"Effect":"Allow","Action":"iot:Connect","Resource":"client/${iot:Connection.Thing.ThingName}"},
	  {"Effect":"Allow","Action":"iot:Publish","Resource":"topic/status/${iot:Connection.Thing.ThingName}"},
	  {"Effect":"Allow","Action":"iot:Subscribe","Resource":"topicfilter/status/#"},
	  {"Effect":"Allow","Action":"iot:Receive","Resource":"topic/status/*"}]}}`, 201)
	s.admin(t, "POST", "/api/v1/thing-types", `{"name":"lamp","scopes":["mqtt"],"defaultPolicies":["status"]}`, 201)
	tokens := map[string]string{}
	for _, name := range []string{"lamp-1", "watch"} {
		s.admin(t, "POST", "/api/v1/things", `{"name":"`+name+`","thingType":"lamp"}`, 201)
		secret := s.admin(t, "POST", "/api/v1/things/"+name+"/secret", "", 201)["clientSecret"].(string)
		tokens[name] = thingToken(t, s, name, secret, "mqtt")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	subOut := make(chan string, 1)
	go func() {
		o, _ := mosquitto(t, ctx, "mosquitto_sub", s, "-V", "5", "-t", "status/#", "-i", "watch", "-u", "watch", "-P", tokens["watch"], "-C", "2", "-W", "30", "-v")
		subOut <- o
	}()
	waitMetric(t, s, "gatehouse_mqtt_subscriptions", 1)

	// The first connection stays up (reading lines from stdin) with its will.
	host, port, _ := strings.Cut(s.MQTT, ":")
	first := exec.CommandContext(ctx, "mosquitto_pub", "-h", host, "-p", port, "-V", "5", "-i", "lamp-1", "-u", "lamp-1", "-P", tokens["lamp-1"],
		"--will-topic", "status/lamp-1", "--will-payload", "gone", "-t", "status/lamp-1", "-l")
	stdin, err := first.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); _ = first.Wait() }()
	waitMetric(t, s, "gatehouse_mqtt_clients_connected", 2)

	if o, err := mosquitto(t, ctx, "mosquitto_pub", s, "-V", "5", "-i", "lamp-1", "-u", "lamp-1", "-P", tokens["lamp-1"], "-t", "status/lamp-1", "-m", "back"); err != nil {
		t.Fatalf("mosquitto_pub taking the session over: %v %s", err, o)
	}
	out := <-subOut
	if !strings.Contains(out, "status/lamp-1 gone") || !strings.Contains(out, "status/lamp-1 back") {
		t.Errorf("mosquitto_sub got %q, want the taken-over session's will and the new publish", out)
	}
}
