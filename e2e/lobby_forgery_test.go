package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/thing"
)

// TestLobbyForgedMessages: a thing whose policy allows everything
// (iot:* on *) tries, with mosquitto_pub and mosquitto_sub against the
// binary, to hijack a device waiting in the lobby (thing.JoinLobby): a
// retained assignment to its own endpoint on the device's topic, a knock
// rewriting the device's ledger entry, a forged event on the event mirror,
// and reading the lobby's topics. Each is refused, and the device still
// goes where the operator sends it.
func TestLobbyForgedMessages(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--data-dir", t.TempDir())
	caPEM, device, _, fp := manufacturer(t, "meter-6")
	setupLobby(t, s, caPEM)
	s.admin(t, "POST", "/api/v1/policies", `{"name":"everything","document":{"Version":"2012-10-17","Statement":[
	  {"Effect":"Allow","Action":"iot:*","Resource":"*"}]}}`, 201)
	s.admin(t, "POST", "/api/v1/thing-types", `{"name":"intruder","scopes":["mqtt"],"defaultPolicies":["everything"]}`, 201)
	s.admin(t, "POST", "/api/v1/things", `{"name":"evil","thingType":"intruder"}`, 201)
	secret := s.admin(t, "POST", "/api/v1/things/evil/secret", "", 201)["clientSecret"].(string)
	tok := thingToken(t, s, "evil", secret, "mqtt")

	cfg := thing.LobbyConfig{Lobbies: []string{"mqtts://" + s.MQTTS}, Certificate: device, RootCAs: lobbyRoots(t, s),
		StateDir: t.TempDir(), Config: "fw 1", KnockInterval: 300 * time.Millisecond}
	done := joinInBackground(t, cfg)
	awaitLobbyState(t, s, fp, "inlobby")

	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	forged := `{"kind":"mqtt","endpoint":"mqtts://evil.example:8883","caChain":"","sub":"` + fp + `"}`
	pubs := []struct{ name, topic, payload string }{
		{"retained assignment", "$gatehouse/lobby/" + fp + "/assignment", forged},
		{"knock", "$gatehouse/lobby/" + fp + "/knock", `{"state":"pwned","config":"evil"}`},
		{"event", "$gatehouse/events/thing.deleted/thing/evil", `{"type":"thing.deleted"}`},
	}
	for _, p := range pubs {
		out, err := mosquitto(t, ctx, "mosquitto_pub", s, "-V", "5", "-q", "1", "-r", "-t", p.topic, "-m", p.payload, "-i", "evil", "-u", "evil", "-P", tok)
		if !strings.Contains(strings.ToLower(out), "not authorized") {
			t.Errorf("mosquitto_pub forged %s: %v %q, want not authorized", p.name, err, out)
		}
	}
	out, err := mosquitto(t, ctx, "mosquitto_sub", s, "-V", "5", "-t", "$gatehouse/#", "-i", "evil", "-u", "evil", "-P", tok, "-W", "5")
	if !strings.Contains(out, "denied") {
		t.Errorf("mosquitto_sub $gatehouse/#: %v %q, want the subscription denied", err, out)
	}
	if dev := s.admin(t, "GET", "/api/v1/lobby/devices/"+fp, "", 200); dev["deviceState"] == "pwned" || dev["deviceConfig"] != "fw 1" {
		t.Errorf("the forged knock reached the ledger: %v", dev)
	}

	s.admin(t, "POST", "/api/v1/lobby/claims", `{"device":"GH1:`+fp+`","target":"here"}`, 200)
	j := awaitJoin(t, done)
	if a := j.Assignment; a.Kind != thing.TargetLocal || a.ThingName != "meter-6" || strings.Contains(a.Endpoint, "evil") {
		t.Errorf("assignment = %+v, want the lobby's", a)
	}
}
