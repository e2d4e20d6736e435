package e2e

import (
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/testenv"
	"github.com/gatehouse-iot/gatehouse/thing"
)

// TestLobbyReplicas runs two lobbies (gatehouse serve replicas) on one
// PostgreSQL schema with devices using the SDK:
//   - a device connected to replica B only is claimed through A's API: B
//     sees the claim in the shared event log and delivers the assignment
//     (the device does not knock again meanwhile), and the device arrives
//     at A;
//   - a device given both lobbies knocks at A, A is killed, the device
//     fails over to B, the operator claims it through B's API, and it
//     arrives at B.
func TestLobbyReplicas(t *testing.T) {
	t.Parallel()
	reps, _ := startReplicas(t, 2)
	a, b := reps[0], reps[1]
	if a.MQTTS == "" || b.MQTTS == "" {
		t.Fatalf("replicas without mqtts listeners:\n%s", a.Stdout())
	}
	caPEM, device1, _, fp1 := manufacturer(t, "meter-1")
	setupLobby(t, a, caPEM)
	ca2PEM, device2, _, fp2 := manufacturer(t, "meter-2")
	ca2JSON, _ := json.Marshal(ca2PEM)
	b.admin(t, "POST", "/api/v1/manufacturer-cas", `{"name":"acme-2","certificatePem":`+string(ca2JSON)+`}`, 201)
	roots := lobbyRoots(t, a) // one CA for all replicas

	// Device 2 waits at B and knocks once only; the claim is made on A.
	done2 := joinInBackground(t, thing.LobbyConfig{Lobbies: []string{"mqtts://" + b.MQTTS}, Certificate: device2, RootCAs: roots,
		StateDir: t.TempDir(), KnockInterval: time.Hour})
	awaitLobbyState(t, a, fp2, "inlobby")
	a.admin(t, "POST", "/api/v1/lobby/claims", `{"device":"`+fp2+`","target":"here"}`, 200)
	j2 := awaitJoin(t, done2)
	if got, want := j2.Assignment.Endpoint, "mqtts://localhost:"+port(t, a.MQTTS); got != want {
		t.Errorf("device 2 assigned to %s, want replica A's %s", got, want)
	}
	awaitLobbyState(t, b, fp2, "arrived")

	// Device 1 knocks at A (the first lobby it is given).
	done1 := joinInBackground(t, thing.LobbyConfig{Lobbies: []string{"mqtts://" + a.MQTTS, "mqtts://" + b.MQTTS}, Certificate: device1, RootCAs: roots,
		StateDir: t.TempDir(), KnockInterval: 300 * time.Millisecond})
	awaitLobbyState(t, b, fp1, "inlobby")

	// A dies; the device moves on to B, where it keeps knocking.
	if err := a.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-a.done
	dev := b.admin(t, "GET", "/api/v1/lobby/devices/"+fp1, "", 200)
	seenAtA, _ := dev["lastSeenAt"].(string)
	testenv.Eventually(t, 30*time.Second, "device 1 knocking at B", func() bool {
		code, out := curl(t, "GET", b.URL+"/api/v1/lobby/devices/"+fp1, b.Token, "")
		var d map[string]any
		_ = json.Unmarshal([]byte(out), &d)
		return code == 200 && d["lastSeenAt"] != seenAtA
	})
	b.admin(t, "POST", "/api/v1/lobby/claims", `{"device":"GH1:`+fp1+`","target":"here","thingName":"meter-1-b"}`, 200)
	j1 := awaitJoin(t, done1)
	if got, want := j1.Assignment.Endpoint, "mqtts://localhost:"+port(t, b.MQTTS); got != want {
		t.Errorf("device 1 assigned to %s, want replica B's %s", got, want)
	}
	if got := j1.Thing.Name(); got != "meter-1-b" {
		t.Errorf("device 1 is %q at its target, want meter-1-b", got)
	}
	dev = awaitLobbyState(t, b, fp1, "arrived")
	var states []string
	for _, h := range dev["history"].([]any) {
		states = append(states, h.(map[string]any)["to"].(string))
	}
	if got := strings.Join(states, ","); got != "knocking,inlobby,claimed,commissioned,arrived" {
		t.Errorf("device 1 history = %s", got)
	}
}

func port(t *testing.T, hostport string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
