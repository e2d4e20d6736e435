package lobby_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/authn"
	"github.com/gatehouse-iot/gatehouse/internal/lobby"
	"github.com/gatehouse-iot/gatehouse/internal/policy"
	"github.com/gatehouse-iot/gatehouse/internal/store"
	"github.com/gatehouse-iot/gatehouse/internal/store/storetest"
	"github.com/gatehouse-iot/gatehouse/internal/testenv"
)

func TestParseAnnounce(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		want    lobby.AnnounceMessage
		wantErr bool
	}{
		{"the reference device's", `{"state": "factory default", "iotep": "lobby.example", "config": "default"}`,
			lobby.AnnounceMessage{State: "factory default", IoTEP: "lobby.example", Config: "default"}, false},
		{"empty", ``, lobby.AnnounceMessage{}, false},
		{"object config as JSON", `{"config": {"a": [1, 2]}}`, lobby.AnnounceMessage{Config: `{"a":[1,2]}`}, false},
		{"null config", `{"config": null, "other": 1}`, lobby.AnnounceMessage{}, false},
		{"not JSON", `factory default`, lobby.AnnounceMessage{}, true},
		{"not an object", `["state"]`, lobby.AnnounceMessage{}, true},
		{"state not a string", `{"state": 1}`, lobby.AnnounceMessage{}, true},
		{"state too long", `{"state": "` + strings.Repeat("s", 257) + `"}`, lobby.AnnounceMessage{}, true},
		{"config too long", `{"config": "` + strings.Repeat("c", 4097) + `"}`, lobby.AnnounceMessage{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := lobby.ParseAnnounce([]byte(tc.payload))
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("ParseAnnounce(%q) = %+v, %v; want %+v, error %v", tc.payload, got, err, tc.want, tc.wantErr)
			}
			if err != nil && !errors.Is(err, lobby.ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
		})
	}
}

func FuzzParseAnnounce(f *testing.F) {
	for _, seed := range []string{`{"state":"factory default","iotep":"x","config":"default"}`, `{"config":{"a":1}}`, ``, `null`, `{"state":`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		m, err := lobby.ParseAnnounce(payload)
		if err != nil {
			if m != (lobby.AnnounceMessage{}) {
				t.Errorf("an error with a message: %+v", m)
			}
			return
		}
		if len(m.State) > 256 || len(m.IoTEP) > 253 || len(m.Config) > 4096 {
			t.Errorf("over the bounds: %d %d %d", len(m.State), len(m.IoTEP), len(m.Config))
		}
	})
}

func TestAWSReservedGrant(t *testing.T) {
	const fp = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	cert := func(cn ...string) *policy.Certificate {
		return &policy.Certificate{Subject: policy.Name{CommonName: cn}}
	}
	lobbySession := &authn.Identity{Method: authn.MethodCertificate, Principal: lobby.PrincipalPrefix + fp, CredentialID: fp, Certificate: cert("m-1")}
	thingSession := &authn.Identity{Method: authn.MethodCertificate, Principal: "thing:m-1", ThingName: "m-1", CredentialID: fp, Certificate: cert("m-1")}
	tokenSession := &authn.Identity{Method: authn.MethodAccessToken, Principal: "thing:m-1", ThingName: "m-1", CredentialID: "jti"}
	twoCNs := &authn.Identity{Method: authn.MethodCertificate, Principal: lobby.PrincipalPrefix + fp, CredentialID: fp, Certificate: cert("m-1", "m-2")}
	tests := []struct {
		name     string
		id       *authn.Identity
		clientID string
		action   policy.Action
		topic    string
		want     bool
	}{
		{"AWS lobby session announces", lobbySession, "m-1", policy.ActionPublish, lobby.AWSAnnounceTopic, true},
		{"AWS lobby session reads its topic", lobbySession, "m-1", policy.ActionSubscribe, "lobby/m-1", true},
		{"AWS lobby session receives its topic", lobbySession, "m-1", policy.ActionReceive, "lobby/m-1", true},
		{"AWS lobby session publishes its topic", lobbySession, "m-1", policy.ActionPublish, "lobby/m-1", false},
		{"AWS lobby session reads another's", lobbySession, "m-1", policy.ActionSubscribe, "lobby/m-2", false},
		{"AWS lobby session reads all", lobbySession, "m-1", policy.ActionSubscribe, "lobby/+", false},
		{"AWS lobby session retains an announce", lobbySession, "m-1", policy.ActionRetainPublish, lobby.AWSAnnounceTopic, false},
		{"native lobby session announces", lobbySession, fp, policy.ActionPublish, lobby.AWSAnnounceTopic, false},
		{"client id not the CN", lobbySession, "m-2", policy.ActionPublish, lobby.AWSAnnounceTopic, false},
		{"two common names", twoCNs, "m-1", policy.ActionPublish, lobby.AWSAnnounceTopic, false},
		{"thing at work announces", thingSession, "m-1", policy.ActionPublish, lobby.AWSAnnounceTopic, false},
		{"thing at work hears its reset", thingSession, "m-1", policy.ActionReceive, "lobby/m-1", true},
		{"token session reads lobby", tokenSession, "m-1", policy.ActionSubscribe, "lobby/m-1", false},
		{"wildcard client id", thingSession, "#", policy.ActionSubscribe, "lobby/#", false},
		{"no identity", nil, "m-1", policy.ActionReceive, "lobby/m-1", false},
	}
	for _, tc := range tests {
		if got := lobby.AWSReservedGrant(tc.id, tc.clientID, tc.action, tc.topic); got != tc.want {
			t.Errorf("%s: AWSReservedGrant = %v, want %v", tc.name, got, tc.want)
		}
	}
	for topic, want := range map[string]bool{"lobby/m-1": true, "lobby": true, "lobby/#": true, "$aws/rules/lobby": true,
		"lobbyist/x": false, "$aws/rules/other": false, "#": false, "app/m-1": false} {
		if got := lobby.AWSReservedTopic(topic); got != want {
			t.Errorf("AWSReservedTopic(%q) = %v, want %v", topic, got, want)
		}
	}
}

// TestAWSLobbyOverMQTT: a device of the AWS protocol (client id = its
// common name) announces on $aws/rules/lobby and, commissioned to an MQTT
// target, is answered on lobby/<CN> with the target's host and config.
// Another certificate with the same common name, taking over that client
// id, is a lobby session of its own: its announces are answered with its
// own assignment, never the first device's.
func TestAWSLobbyOverMQTT(t *testing.T) {
	f := newFixture(t, storetest.SQLiteDSN(t), true)
	cert, fp := f.device("meter-7")
	c, code := f.connect("meter-7", cert)
	if code != 0 {
		t.Fatalf("AWS protocol lobby connect = %#x", code)
	}
	if got := subscribe(t, c, "lobby/meter-7"); got != 1 {
		t.Fatalf("SUBACK lobby/meter-7 = %#x", got)
	}
	const announce = `{"state":"factory default","iotep":"localhost","config":"default"}`
	if got := publish(t, c, lobby.AWSAnnounceTopic, []byte(announce)); got != 0 {
		t.Fatalf("PUBACK announce = %#x", got)
	}
	d := f.waitState(fp, store.LobbyInLobby)
	if d.DeviceState != "factory default" || d.DeviceConfig != "default" || d.CommonName != "meter-7" {
		t.Errorf("ledger = %+v", d.LobbyDevice)
	}
	if _, err := f.lobby.Claim(f.admin, lobby.ClaimRequest{Device: fp, Target: "eu"}); err != nil {
		t.Fatal(err)
	}
	f.waitState(fp, store.LobbyCommissioned)
	if got := publish(t, c, lobby.AWSAnnounceTopic, []byte(announce)); got != 0 {
		t.Fatalf("PUBACK announce = %#x", got)
	}
	c.waitFor(t, "lobby/meter-7", func(b []byte) bool { return string(b) == `{"iotep":"eu.example","config":"eu config"}` })

	// A look-alike takes the client id over.
	twin, twinFP := f.device("meter-7")
	tc, code := f.connect("meter-7", twin)
	if code != 0 {
		t.Fatalf("twin connect = %#x", code)
	}
	if got := subscribe(t, tc, "lobby/meter-7"); got != 1 {
		t.Fatalf("twin SUBACK = %#x", got)
	}
	// It announces as the device does, every few seconds: an announce
	// published while the broker is still taking the client id over from
	// the first device's session has no publisher to act for and is
	// dropped.
	announceUntil := func(what string, done func() bool) {
		t.Helper()
		testenv.Eventually(t, 10*time.Second, what, func() bool {
			if got := publish(t, tc, lobby.AWSAnnounceTopic, []byte(announce)); got != 0 {
				t.Fatalf("twin PUBACK announce = %#x", got)
			}
			return done()
		})
	}
	announceUntil("the twin in the lobby", func() bool {
		d, err := f.lobby.Get(f.admin, twinFP)
		return err == nil && d.State == store.LobbyInLobby
	})
	// Its own reply, once it is commissioned, is the sentinel.
	if _, err := f.lobby.Claim(f.admin, lobby.ClaimRequest{Device: twinFP, Target: "here", ThingName: "meter-7b"}); err != nil {
		t.Fatal(err)
	}
	announceUntil("the twin's own assignment", func() bool {
		tc.mu.Lock()
		defer tc.mu.Unlock()
		for _, m := range tc.got {
			if m.Topic == "lobby/meter-7" && strings.Contains(string(m.Payload), `"iotep":"localhost"`) {
				return true
			}
		}
		return false
	})
	tc.mu.Lock()
	defer tc.mu.Unlock()
	for _, m := range tc.got {
		if strings.Contains(string(m.Payload), "eu.example") {
			t.Errorf("the twin was told meter-7's assignment: %s", m.Payload)
		}
	}
}
