package lobby_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/lobby"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/store"
	"github.com/gatehouse-iot/gatehouse/internal/store/storetest"
	"github.com/gatehouse-iot/gatehouse/internal/testenv"
	"github.com/gatehouse-iot/gatehouse/thing"
)

// TestLobbyHijack: a client whose policy allows iot:Publish on everything
// - here another lobby device with a broad policy attached to its
// certificate - cannot forge the lobby's messages: no assignment on a
// victim's topic (which would send it, with its manufacturer certificate,
// to the attacker's endpoint), no knock rewriting the victim's ledger
// entry. A knock the broker's own inline client publishes (what an HTTPS
// publish is) does not count either: the lobby checks who published.
func TestLobbyHijack(t *testing.T) {
	f := newFixture(t, storetest.SQLiteDSN(t), true)
	victim, fp := f.device("meter-1")
	attacker, attackerFP := f.device("meter-2")
	if _, err := f.reg.CreatePolicy(f.admin, registry.NewPolicy{Name: "everything",
		Document: []byte(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:*","Resource":"*"}]}`)}); err != nil {
		t.Fatal(err)
	}

	v, code := f.connect(fp, victim)
	if code != 0 {
		t.Fatalf("victim connect = %#x", code)
	}
	if got := subscribe(t, v, lobby.AssignmentTopic(fp)); got != 1 {
		t.Fatalf("victim SUBACK = %#x", got)
	}
	if got := publish(t, v, lobby.KnockTopic(fp), []byte(`{"state":"factory default","config":"v1"}`)); got != 0 {
		t.Fatalf("victim knock = %#x", got)
	}
	f.waitState(fp, store.LobbyInLobby)

	a, code := f.connect(attackerFP, attacker)
	if code != 0 {
		t.Fatalf("attacker connect = %#x", code)
	}
	f.waitState(attackerFP, store.LobbyKnocking)
	if _, err := f.reg.AttachPolicy(f.admin, "everything", store.TargetCertificate, attackerFP); err != nil {
		t.Fatal(err)
	}
	// The attacker's session now holds the broad policy (a policy change
	// re-binds live sessions): it may publish anywhere outside $gatehouse/.
	testenv.Eventually(t, 10*time.Second, "the broad policy reaching the attacker's session", func() bool {
		return publish(t, a, "things/anything", []byte("x")) == 0
	})

	forged := []byte(`{"kind":"mqtt","endpoint":"mqtts://evil.example:8883","caChain":"-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----"}`)
	for _, topic := range []string{lobby.AssignmentTopic(fp), lobby.KnockTopic(fp)} {
		if got := publish(t, a, topic, forged); got != 0x87 {
			t.Errorf("attacker PUBLISH %s = %#x, want 0x87", topic, got)
		}
	}
	// Through the server's inline client (an HTTPS publish is one): the
	// handler runs before Publish returns, and drops the knock.
	if err := f.broker.Publish(lobby.KnockTopic(fp), []byte(`{"state":"pwned","config":"evil"}`), false, 1); err != nil {
		t.Fatal(err)
	}
	d, err := f.lobby.Get(context.Background(), fp)
	if err != nil {
		t.Fatal(err)
	}
	if d.DeviceState != "factory default" || d.DeviceConfig != "v1" || d.State != store.LobbyInLobby {
		t.Errorf("a forged knock changed the ledger: state %s, device state %q, config %q", d.State, d.DeviceState, d.DeviceConfig)
	}
	// The victim's own knock still counts.
	if got := publish(t, v, lobby.KnockTopic(fp), []byte(`{"state":"factory default","config":"v2"}`)); got != 0 {
		t.Fatalf("victim knock = %#x", got)
	}
	testenv.Eventually(t, 10*time.Second, "the device's own knock recorded", func() bool {
		d, _ := f.lobby.Get(context.Background(), fp)
		return d.DeviceConfig == "v2"
	})
}

// TestSDKRefusesForgedAssignment: a device waiting in the lobby
// (thing.WaitForAssignment) refuses an assignment the lobby did not sign -
// here one retained on its topic by the server's inline client, which no
// reservation stops - and takes the lobby's signed one once claimed.
func TestSDKRefusesForgedAssignment(t *testing.T) {
	f := newFixture(t, storetest.SQLiteDSN(t), true)
	cert, fp := f.device("meter-3")
	forged := []byte(`{"kind":"mqtt","endpoint":"mqtts://evil.example:8883"}`)
	if err := f.broker.Publish(lobby.AssignmentTopic(fp), forged, true, 1); err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(f.broker.Addr("mqtts"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	type result struct {
		a   *thing.Assignment
		err error
	}
	done := make(chan result, 1)
	go func() {
		a, err := thing.WaitForAssignment(ctx, thing.LobbyConfig{Lobbies: []string{"mqtts://localhost:" + port}, Certificate: cert,
			RootCAs: f.roots, StateDir: t.TempDir(), KnockInterval: 100 * time.Millisecond})
		done <- result{a, err}
	}()
	f.waitState(fp, store.LobbyInLobby) // knocked: subscribed, the forged retained assignment delivered
	if _, err := f.lobby.Claim(f.admin, lobby.ClaimRequest{Device: fp, Target: "here"}); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("WaitForAssignment: %v", r.err)
	}
	if r.a.Endpoint != "mqtts://localhost:8883" || r.a.ThingName != "meter-3" {
		t.Errorf("assignment = %+v, want the lobby's (mqtts://localhost:8883, meter-3)", r.a)
	}
}

// TestRejectClosesLobbySession: rejecting a device closes its open lobby
// session at once, as disabling a thing or revoking a certificate does
// (before, the session lived on, and could still read its topic).
func TestRejectClosesLobbySession(t *testing.T) {
	f := newFixture(t, storetest.SQLiteDSN(t), true)
	cert, fp := f.device("meter-4")
	c, code := f.connect(fp, cert)
	if code != 0 {
		t.Fatalf("lobby connect = %#x", code)
	}
	if got := publish(t, c, lobby.KnockTopic(fp), []byte(`{"state":"factory default"}`)); got != 0 {
		t.Fatalf("knock = %#x", got)
	}
	f.waitState(fp, store.LobbyInLobby)
	if _, err := f.lobby.Reject(f.admin, fp, "stolen"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the rejected device's lobby session is still open")
	}
}
