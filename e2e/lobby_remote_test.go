package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/thing"
)

// TestLobbyGatehouseTarget routes a lobby device to another Gatehouse
// (two binaries, SQLite each): the lobby keeps the target's API token
// sealed, a claim mints a registration token at the target, the device
// registers there with a CSR, logs in to the target's broker with its new
// certificate and reports its arrival to the lobby. A target with a wrong
// token fails the claim with 502 and the device can be rerouted.
func TestLobbyGatehouseTarget(t *testing.T) {
	t.Parallel()
	lob := startServer(t, "--data-dir", t.TempDir())
	plant := startServer(t, "--data-dir", t.TempDir())
	caPEM, device, _, fp := manufacturer(t, "meter-3")
	setupLobby(t, lob, caPEM)

	// The target: a thing type for lobby devices and an API token for the
	// lobby.
	plant.admin(t, "POST", "/api/v1/policies", `{"name":"meter-telemetry","document":{"Version":"2012-10-17","Statement":[
	  {"Effect":"Allow","Action":"iot:Connect","Resource":"client/${iot:Connection.Thing.ThingName}"},
	  {"Effect":"Allow","Action":"iot:Publish","Resource":"topic/meters/${iot:Connection.Thing.ThingName}/*"}]}}`, 201)
	plant.admin(t, "POST", "/api/v1/thing-types", `{"name":"meter","defaultPolicies":["meter-telemetry"]}`, 201)
	tok := plant.admin(t, "POST", "/api/v1/api-tokens", `{"name":"lobby","roles":["admin"]}`, 201)["token"].(string)

	// Bad input changes nothing.
	for _, body := range []string{
		`{"name":"p","kind":"gatehouse","apiUrl":"` + plant.URL + `","thingType":"meter"}`,      // no token
		`{"name":"p","kind":"gatehouse","apiToken":"x","thingType":"meter"}`,                    // no URL
		`{"name":"p","kind":"gatehouse","apiUrl":"ftp://x","apiToken":"x","thingType":"meter"}`, // not http(s)
		`{"name":"p","kind":"gatehouse","apiUrl":"` + plant.URL + `","apiToken":"x"}`,           // no thing type
		`{"name":"p","kind":"local","apiUrl":"` + plant.URL + `","apiToken":"x"}`,               // not for local
		`{"name":"p","kind":"gatehouse","apiUrl":"` + plant.URL + `","apiToken":"x","thingType":"meter","endpoint":"http://x"}`,
	} {
		if code, out := curl(t, "POST", lob.URL+"/api/v1/lobby/targets", lob.Token, body); code != 400 {
			t.Errorf("POST target %s = %d %s, want 400", body, code, out)
		}
	}
	if code, _ := curl(t, "GET", lob.URL+"/api/v1/lobby/targets/p", lob.Token, ""); code != 404 {
		t.Errorf("a refused target exists: %d", code)
	}
	created := lob.admin(t, "POST", "/api/v1/lobby/targets", `{"name":"plant-b","kind":"gatehouse","apiUrl":"`+plant.URL+`","apiToken":"`+tok+
		`","thingType":"meter","endpoint":"mqtts://`+plant.MQTTS+`","config":"plant b"}`, 201)
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte("ghat_wrong\n"), 0o600)
	if out, errOut, err := lob.cli(t, "", "lobby", "targets", "create", "wrong", "--kind", "gatehouse", "--api-url", plant.URL,
		"--api-token-file", tokenFile, "--thing-type", "meter"); err != nil || strings.Contains(out, "ghat_wrong") {
		t.Fatalf("gatehouse lobby targets create: %v %s %s", err, out, errOut)
	}
	if _, out := curl(t, "GET", lob.URL+"/api/v1/lobby/targets/plant-b", lob.Token, ""); strings.Contains(out, tok) || strings.Contains(jsonString(created), tok) {
		t.Errorf("the target's API token is shown: %s", out)
	}

	done := joinInBackground(t, thing.LobbyConfig{Lobbies: []string{"mqtts://" + lob.MQTTS}, Certificate: device, RootCAs: lobbyRoots(t, lob),
		StateDir: t.TempDir(), KnockInterval: 300 * time.Millisecond})
	awaitLobbyState(t, lob, fp, "inlobby")

	// The wrong token: 502, the claim stands, nothing is delivered.
	if code, out := curl(t, "POST", lob.URL+"/api/v1/lobby/claims", lob.Token, `{"device":"`+fp+`","target":"wrong"}`); code != 502 || !strings.Contains(out, "401") {
		t.Errorf("claim for a target refusing the lobby = %d %s, want 502 naming the 401", code, out)
	}
	awaitLobbyState(t, lob, fp, "claimed")

	dev := lob.admin(t, "POST", "/api/v1/lobby/devices/"+fp+"/reroute", `{"target":"plant-b"}`, 200)
	if dev["state"] != "commissioned" {
		t.Errorf("after the reroute: %v", dev)
	}
	j := awaitJoin(t, done)
	if a := j.Assignment; a.Kind != thing.TargetGatehouse || a.ServerURL != plant.URL || a.ThingName != "meter-3" || a.Config != "plant b" || a.RegistrationToken == "" {
		t.Errorf("assignment = %+v", a)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := j.Conn.Publish(ctx, "meters/meter-3/kwh", []byte("3"), 1, false); err != nil {
		t.Errorf("publish at the target Gatehouse: %v", err)
	}
	if j.Thing.CertificateID() == fp || j.Thing.CertificateID() == "" {
		t.Errorf("certificate at the target = %q, want a new one (not the manufacturer's %s)", j.Thing.CertificateID(), fp)
	}
	dev = awaitLobbyState(t, lob, fp, "arrived")
	// The lobby asked the target before it believed the device.
	evs := lob.admin(t, "GET", "/api/v1/events?type=lobby.arrived&subject=lobby/"+fp, "", 200)["items"].([]any)
	if len(evs) != 1 || !strings.Contains(jsonString(evs[0]), `"verifiedAt":"plant-b"`) || !strings.Contains(jsonString(evs[0]), j.Thing.CertificateID()) {
		t.Errorf("lobby.arrived events = %v", evs)
	}

	// The target knows the thing with the certificate it issued; the
	// registration token is used up.
	th := plant.admin(t, "GET", "/api/v1/things/meter-3", "", 200)
	if th["thingType"] != "meter" {
		t.Errorf("thing at the target = %v", th)
	}
	plant.admin(t, "GET", "/api/v1/certificates/"+j.Thing.CertificateID(), "", 200)
	// A device pre-claimed for the target before it was ever seen is
	// commissioned there when it shows up.
	ca2PEM, device2, _, fp2 := manufacturer(t, "meter-6")
	ca2JSON, _ := json.Marshal(ca2PEM)
	lob.admin(t, "POST", "/api/v1/manufacturer-cas", `{"name":"acme-2","certificatePem":`+string(ca2JSON)+`}`, 201)
	if pre := lob.admin(t, "POST", "/api/v1/lobby/preclaims", `{"device":"`+fp2+`","target":"plant-b","thingName":"meter-six"}`, 200); pre["state"] != "claimed" {
		t.Errorf("pre-claim = %v", pre)
	}
	j2 := awaitJoin(t, joinInBackground(t, thing.LobbyConfig{Lobbies: []string{"mqtts://" + lob.MQTTS}, Certificate: device2,
		RootCAs: lobbyRoots(t, lob), StateDir: t.TempDir(), KnockInterval: 300 * time.Millisecond}))
	if err := j2.Conn.Publish(ctx, "meters/meter-six/kwh", []byte("6"), 1, false); err != nil || j2.Thing.Name() != "meter-six" {
		t.Errorf("pre-claimed device at the target as %s: %v", j2.Thing.Name(), err)
	}
	awaitLobbyState(t, lob, fp2, "arrived")

	again := newThing(t, plant, thing.Config{Name: "meter-x"})
	if _, err := again.Register(ctx, j.Assignment.RegistrationToken, "1"); err == nil {
		t.Error("the lobby's registration token registered a second thing")
	}
	// The registration token never shows in the lobby's API or events.
	_, events := curl(t, "GET", lob.URL+"/api/v1/events?limit=1000", lob.Token, "")
	for _, body := range []string{jsonString(dev), events} {
		if strings.Contains(body, j.Assignment.RegistrationToken) || strings.Contains(body, tok) {
			t.Errorf("a secret shows in the lobby's API: %.300s", body)
		}
	}
}

// TestLobbyMQTTTarget routes a lobby device to an MQTT target: another
// broker (here a second Gatehouse that trusts the manufacturer's CA and
// registers its devices just in time). The device logs in there with its
// manufacturer certificate, its common name as client id, and reports its
// arrival to the lobby.
func TestLobbyMQTTTarget(t *testing.T) {
	t.Parallel()
	lob := startServer(t, "--data-dir", t.TempDir())
	plant := startServer(t, "--data-dir", t.TempDir())
	caPEM, device, _, fp := manufacturer(t, "meter-4")
	setupLobby(t, lob, caPEM)
	plant.admin(t, "POST", "/api/v1/policies", `{"name":"meter-telemetry","document":{"Version":"2012-10-17","Statement":[
	  {"Effect":"Allow","Action":"iot:Connect","Resource":"client/${iot:Connection.Thing.ThingName}"},
	  {"Effect":"Allow","Action":"iot:Publish","Resource":"topic/meters/${iot:Connection.Thing.ThingName}/*"}]}}`, 201)
	plant.admin(t, "POST", "/api/v1/thing-types", `{"name":"meter","defaultPolicies":["meter-telemetry"]}`, 201)
	caJSON, _ := json.Marshal(caPEM)
	plant.admin(t, "POST", "/api/v1/manufacturer-cas", `{"name":"acme","certificatePem":`+string(caJSON)+`,"autoRegister":true,"jitStatus":"ACTIVE","thingType":"meter"}`, 201)
	code, plantCA := curl(t, "GET", plant.URL+"/ca", "", "")
	if code != 200 {
		t.Fatalf("GET /ca at the plant = %d", code)
	}
	plantCAJSON, _ := json.Marshal(plantCA)
	lob.admin(t, "POST", "/api/v1/lobby/targets", `{"name":"plant-mqtt","kind":"mqtt","endpoint":"mqtts://`+plant.MQTTS+`","caPem":`+string(plantCAJSON)+`}`, 201)

	done := joinInBackground(t, thing.LobbyConfig{Lobbies: []string{"mqtts://" + lob.MQTTS}, Certificate: device, RootCAs: lobbyRoots(t, lob),
		StateDir: t.TempDir(), KnockInterval: 300 * time.Millisecond})
	awaitLobbyState(t, lob, fp, "inlobby")
	lob.admin(t, "POST", "/api/v1/lobby/claims", `{"device":"`+fp+`","target":"plant-mqtt","config":"to the plant"}`, 200)
	j := awaitJoin(t, done)
	if a := j.Assignment; a.Kind != thing.TargetMQTT || a.Endpoint != "mqtts://"+plant.MQTTS || a.Config != "to the plant" || j.Thing.Name() != "meter-4" {
		t.Errorf("assignment = %+v, thing %s", a, j.Thing.Name())
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := j.Conn.Publish(ctx, "meters/meter-4/kwh", []byte("4"), 1, false); err != nil {
		t.Errorf("publish at the MQTT target: %v", err)
	}
	plant.admin(t, "GET", "/api/v1/certificates/"+fp, "", 200) // registered there just in time
	awaitLobbyState(t, lob, fp, "arrived")
}

// TestLobbyGatehouseTargetCleanup: a device that arrived at another
// Gatehouse (two binaries) and is rerouted, then another one that is
// decommissioned, leave nothing active there: their certificates are
// revoked, their things deleted and their registration tokens revoked, by
// the lobby's API token, and the lobby records lobby.remote_cleaned. While
// the target refuses the lobby (its API token revoked), the reroute fails
// with 502 and neither side changes.
func TestLobbyGatehouseTargetCleanup(t *testing.T) {
	t.Parallel()
	lob := startServer(t, "--data-dir", t.TempDir())
	plant := startServer(t, "--data-dir", t.TempDir())
	caPEM, device, _, fp := manufacturer(t, "meter-7")
	setupLobby(t, lob, caPEM)
	plant.admin(t, "POST", "/api/v1/policies", `{"name":"meter-connect","document":{"Version":"2012-10-17","Statement":[
	  {"Effect":"Allow","Action":"iot:Connect","Resource":"client/${iot:Connection.Thing.ThingName}"}]}}`, 201)
	plant.admin(t, "POST", "/api/v1/thing-types", `{"name":"meter","defaultPolicies":["meter-connect"]}`, 201)
	created := plant.admin(t, "POST", "/api/v1/api-tokens", `{"name":"lobby","roles":["admin"]}`, 201)
	tok, tokID := created["token"].(string), created["id"].(string)
	target := `{"name":"plant-b","kind":"gatehouse","apiUrl":"` + plant.URL + `","thingType":"meter","endpoint":"mqtts://` + plant.MQTTS + `","apiToken":"`
	lob.admin(t, "POST", "/api/v1/lobby/targets", target+tok+`"}`, 201)

	done := joinInBackground(t, thing.LobbyConfig{Lobbies: []string{"mqtts://" + lob.MQTTS}, Certificate: device, RootCAs: lobbyRoots(t, lob),
		StateDir: t.TempDir(), KnockInterval: 300 * time.Millisecond})
	awaitLobbyState(t, lob, fp, "inlobby")
	lob.admin(t, "POST", "/api/v1/lobby/claims", `{"device":"`+fp+`","target":"plant-b"}`, 200)
	j := awaitJoin(t, done)
	certID := j.Thing.CertificateID()
	awaitLobbyState(t, lob, fp, "arrived")

	// The target refuses the lobby: 502, nothing changes on either side.
	plant.admin(t, "DELETE", "/api/v1/api-tokens/"+tokID, "", 204)
	if code, out := curl(t, "POST", lob.URL+"/api/v1/lobby/devices/"+fp+"/reroute", lob.Token, `{"target":"here"}`); code != 502 || !strings.Contains(out, "401") {
		t.Errorf("reroute while the target refuses the lobby = %d %s, want 502 naming the 401", code, out)
	}
	if dev := lob.admin(t, "GET", "/api/v1/lobby/devices/"+fp, "", 200); dev["state"] != "arrived" || dev["target"] != "plant-b" {
		t.Errorf("ledger after the failed reroute: %v", dev)
	}
	plant.admin(t, "GET", "/api/v1/things/meter-7", "", 200)
	if c := plant.admin(t, "GET", "/api/v1/certificates/"+certID, "", 200); c["status"] != "ACTIVE" {
		t.Errorf("certificate at the target after the failed reroute: %v", c["status"])
	}

	// A new token for the target: the reroute cleans up there.
	created2 := plant.admin(t, "POST", "/api/v1/api-tokens", `{"name":"lobby-2","roles":["admin"]}`, 201)
	tok2, tok2ID := created2["token"].(string), created2["id"].(string)
	lob.admin(t, "PUT", "/api/v1/lobby/targets/plant-b", `{"kind":"gatehouse","apiUrl":"`+plant.URL+`","thingType":"meter","endpoint":"mqtts://`+plant.MQTTS+`","apiToken":"`+tok2+`"}`, 200)
	if dev := lob.admin(t, "POST", "/api/v1/lobby/devices/"+fp+"/reroute", `{"target":"here"}`, 200); dev["state"] != "commissioned" || dev["target"] != "here" {
		t.Errorf("after the reroute: %v", dev)
	}
	if code, _ := curl(t, "GET", plant.URL+"/api/v1/things/meter-7", plant.Token, ""); code != 404 {
		t.Errorf("thing at the target after the reroute: %d, want 404", code)
	}
	if c := plant.admin(t, "GET", "/api/v1/certificates/"+certID, "", 200); c["status"] != "REVOKED" {
		t.Errorf("certificate at the target after the reroute: %v, want REVOKED", c["status"])
	}
	for _, typ := range []string{"certificate.revoked", "thing.deleted", "registration_token.revoked"} {
		evs := plant.admin(t, "GET", "/api/v1/events?type="+typ, "", 200)["items"].([]any)
		if len(evs) != 1 || evs[0].(map[string]any)["actor"] != "token:"+tok2ID {
			t.Errorf("%s events at the target = %v, want one by the lobby's token", typ, evs)
		}
	}
	evs := lob.admin(t, "GET", "/api/v1/events?type=lobby.remote_cleaned&subject=lobby/"+fp, "", 200)["items"].([]any)
	if len(evs) != 1 || !strings.Contains(jsonString(evs[0]), certID) || !strings.Contains(jsonString(evs[0]), `"thingDeleted":true`) {
		t.Errorf("lobby.remote_cleaned events = %v", evs)
	}

	// A device claimed for the target that never registered there: its
	// token is revoked when it is decommissioned.
	_, _, _, fp2 := manufacturer(t, "meter-8")
	lob.admin(t, "POST", "/api/v1/lobby/preclaims", `{"device":"`+fp2+`","target":"plant-b"}`, 200)
	lob.admin(t, "POST", "/api/v1/lobby/devices/"+fp2+"/decommission", `{"reason":"never shipped"}`, 200)
	toks := plant.admin(t, "GET", "/api/v1/registration-tokens", "", 200)["items"].([]any)
	for _, tk := range toks {
		if tk.(map[string]any)["revokedAt"] == nil {
			t.Errorf("registration token left usable at the target: %v", tk)
		}
	}
}
