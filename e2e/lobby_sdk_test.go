package e2e

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/testenv"
	"github.com/gatehouse-iot/gatehouse/thing"
)

// lobbyRoots is the CA a device trusts the lobby's broker by (GET /ca).
func lobbyRoots(t *testing.T, s *server) *x509.CertPool {
	t.Helper()
	resp, err := http.Get(s.URL + "/ca")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	chain, _ := io.ReadAll(resp.Body)
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(chain) {
		t.Fatalf("GET /ca = %q", chain)
	}
	return roots
}

// setupLobby registers the manufacturer CA, a telemetry policy for meters,
// the thing type "meter" and the local target "here" on s.
func setupLobby(t *testing.T, s *server, caPEM string) {
	t.Helper()
	caJSON, _ := json.Marshal(caPEM)
	s.admin(t, "POST", "/api/v1/manufacturer-cas", `{"name":"acme","certificatePem":`+string(caJSON)+`}`, 201)
	s.admin(t, "POST", "/api/v1/policies", `{"name":"meter-telemetry","document":{"Version":"2012-10-17","Statement":[
	  {"Effect":"Allow","Action":"iot:Connect","Resource":"client/${iot:Connection.Thing.ThingName}"},
	  {"Effect":"Allow","Action":"iot:Publish","Resource":"topic/meters/${iot:Connection.Thing.ThingName}/*"}]}}`, 201)
	s.admin(t, "POST", "/api/v1/thing-types", `{"name":"meter","defaultPolicies":["meter-telemetry"]}`, 201)
	s.admin(t, "POST", "/api/v1/lobby/targets", `{"name":"here","kind":"local","thingType":"meter","config":"report every 60s"}`, 201)
}

// awaitLobbyState polls s's ledger until the device is in state (a device
// not seen yet is 404 meanwhile).
func awaitLobbyState(t *testing.T, s *server, fp, state string) map[string]any {
	t.Helper()
	var dev map[string]any
	testenv.Eventually(t, 60*time.Second, "lobby device on "+s.URL+" in state "+state, func() bool {
		code, out := curl(t, "GET", s.URL+"/api/v1/lobby/devices/"+fp, s.Token, "")
		dev = nil
		_ = json.Unmarshal([]byte(out), &dev)
		return code == 200 && dev["state"] == state
	})
	return dev
}

type joinResult struct {
	j   *thing.Joined
	err error
}

// joinInBackground runs thing.JoinLobby until it returns or the test ends.
func joinInBackground(t *testing.T, cfg thing.LobbyConfig) <-chan joinResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	done := make(chan joinResult, 1)
	go func() {
		defer cancel()
		j, err := thing.JoinLobby(ctx, cfg)
		done <- joinResult{j, err}
	}()
	return done
}

func awaitJoin(t *testing.T, done <-chan joinResult) *thing.Joined {
	t.Helper()
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("JoinLobby: %v", r.err)
		}
		t.Cleanup(func() { r.j.Conn.Close(context.Background()) })
		return r.j
	case <-time.After(90 * time.Second):
		t.Fatal("JoinLobby did not return")
		return nil
	}
}

// TestSDKJoinLobby is seed 004 through the SDK against the binary: the
// device joins the lobby with its manufacturer certificate, knocks, the
// operator claims it through the admin API, the device gets its
// assignment, logs in at the target as its thing (which marks it arrived)
// and publishes. Started again, it goes to its target without the lobby.
func TestSDKJoinLobby(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--data-dir", t.TempDir())
	caPEM, device, _, fp := manufacturer(t, "meter-7")
	setupLobby(t, s, caPEM)
	cfg := thing.LobbyConfig{Lobbies: []string{"mqtts://" + s.MQTTS}, Certificate: device, RootCAs: lobbyRoots(t, s),
		StateDir: t.TempDir(), Config: "fw 1.2", KnockInterval: 300 * time.Millisecond}

	if got, err := thing.Fingerprint(device); err != nil || got != fp {
		t.Fatalf("Fingerprint = %q, %v; want %s", got, err, fp)
	}
	done := joinInBackground(t, cfg)
	dev := awaitLobbyState(t, s, fp, "inlobby")
	if dev["deviceConfig"] != "fw 1.2" {
		t.Errorf("knock recorded deviceConfig %v, want fw 1.2", dev["deviceConfig"])
	}
	s.admin(t, "POST", "/api/v1/lobby/claims", `{"device":"GH1:`+fp+`","target":"here"}`, 200)
	j := awaitJoin(t, done)
	if a := j.Assignment; a.Kind != thing.TargetLocal || a.ThingName != "meter-7" || a.Config != "report every 60s" || a.CAChain == "" {
		t.Errorf("assignment = %+v", a)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := j.Conn.Publish(ctx, "meters/meter-7/kwh", []byte("7"), 1, false); err != nil {
		t.Errorf("publish at the target: %v", err)
	}
	if err := j.Conn.Publish(ctx, "meters/other/kwh", []byte("7"), 1, false); err == nil {
		t.Error("publish to another meter's topic was accepted")
	}
	awaitLobbyState(t, s, fp, "arrived")
	j.Conn.Close(ctx)

	// After a restart the device goes straight to its target: the lobby
	// address it is given now does not even answer.
	cfg.Lobbies = []string{"mqtts://127.0.0.1:1"}
	again := awaitJoin(t, joinInBackground(t, cfg))
	if err := again.Conn.Publish(ctx, "meters/meter-7/kwh", []byte("8"), 1, false); err != nil {
		t.Errorf("publish after restart: %v", err)
	}
	again.Conn.Close(ctx)

	// A factory reset deactivates the certificate here: the target refuses
	// the device, which goes back to the lobby by itself and arrives again
	// once claimed again.
	reset := s.admin(t, "POST", "/api/v1/lobby/devices/"+fp+"/factory-reset", "", 200)
	cfg.Lobbies = []string{"mqtts://" + s.MQTTS}
	done = joinInBackground(t, cfg)
	testenv.Eventually(t, 60*time.Second, "the device knocking again after the reset", func() bool {
		code, out := curl(t, "GET", s.URL+"/api/v1/lobby/devices/"+fp, s.Token, "")
		var d map[string]any
		_ = json.Unmarshal([]byte(out), &d)
		return code == 200 && d["state"] == "inlobby" && d["lastSeenAt"] != reset["lastSeenAt"]
	})
	s.admin(t, "POST", "/api/v1/lobby/claims", `{"device":"`+fp+`","target":"here","config":"report every 10s"}`, 200)
	third := awaitJoin(t, done)
	if third.Assignment.Config != "report every 10s" {
		t.Errorf("assignment after the reset = %+v", third.Assignment)
	}
	if err := third.Conn.Publish(ctx, "meters/meter-7/kwh", []byte("9"), 1, false); err != nil {
		t.Errorf("publish after the second claim: %v", err)
	}
	awaitLobbyState(t, s, fp, "arrived")
}

// TestSDKJoinLobbyRefused: a rejected device is refused at the lobby and
// JoinLobby says so instead of waiting forever.
func TestSDKJoinLobbyRefused(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--data-dir", t.TempDir())
	caPEM, device, _, fp := manufacturer(t, "meter-8")
	setupLobby(t, s, caPEM)
	s.admin(t, "POST", "/api/v1/lobby/devices/"+fp+"/reject", `{"reason":"stolen"}`, 200)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	_, err := thing.JoinLobby(ctx, thing.LobbyConfig{Lobbies: []string{"mqtts://" + s.MQTTS}, Certificate: device, RootCAs: lobbyRoots(t, s), StateDir: t.TempDir()})
	if err == nil || ctx.Err() != nil {
		t.Fatalf("JoinLobby of a rejected device = %v (ctx %v), want a refusal", err, ctx.Err())
	}
	// A certificate no manufacturer CA signed is refused too.
	_, stranger, _, _ := manufacturer(t, "meter-9")
	_, err = thing.JoinLobby(ctx, thing.LobbyConfig{Lobbies: []string{"mqtts://" + s.MQTTS}, Certificate: stranger, RootCAs: lobbyRoots(t, s), StateDir: t.TempDir()})
	if err == nil || ctx.Err() != nil {
		t.Fatalf("JoinLobby with an unknown manufacturer = %v, want a refusal", err)
	}
}

// TestDeviceLobbyCLI: `gatehouse device lobby` waits in the lobby until
// the device is claimed with `gatehouse lobby claim`, then prints where it
// arrived. Started before its manufacturer CA is registered, it is refused
// and tries again rather than exiting.
func TestDeviceLobbyCLI(t *testing.T) {
	t.Parallel()
	for _, lateCA := range []bool{false, true} {
		t.Run(fmt.Sprintf("lateCA=%v", lateCA), func(t *testing.T) {
			t.Parallel()
			testDeviceLobbyCLI(t, lateCA)
		})
	}
}

func testDeviceLobbyCLI(t *testing.T, lateCA bool) {
	s := startServer(t, "--data-dir", t.TempDir())
	caPEM, device, devicePEM, fp := manufacturer(t, "meter-5")
	if !lateCA {
		setupLobby(t, s, caPEM)
	}
	dir := t.TempDir()
	keyDER, err := x509.MarshalPKCS8PrivateKey(device.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, caFile := filepath.Join(dir, "device.pem"), filepath.Join(dir, "device.key"), filepath.Join(dir, "ca.pem")
	os.WriteFile(certFile, devicePEM, 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
	code, chain := curl(t, "GET", s.URL+"/ca", "", "")
	if code != 200 {
		t.Fatalf("GET /ca = %d", code)
	}
	os.WriteFile(caFile, []byte(chain), 0o600)
	type result struct {
		out, errOut string
		err         error
	}
	done := make(chan result, 1)
	go func() {
		out, errOut, err := s.cli(t, "", "device", "lobby", "--lobby", "mqtts://"+s.MQTTS, "--cert", certFile, "--key", keyFile, "--ca", caFile,
			"--state-dir", filepath.Join(dir, "state"), "--knock-interval", "300ms")
		done <- result{out, errOut, err}
	}()
	if lateCA {
		testenv.Eventually(t, 30*time.Second, "the server refusing the device's first connect", func() bool {
			return strings.Contains(s.Stdout()+s.Stderr(), "client="+fp)
		})
		setupLobby(t, s, caPEM)
	}
	awaitLobbyState(t, s, fp, "inlobby")
	if out, errOut, err := s.cli(t, "", "lobby", "claim", "GH1:"+fp, "--target", "here"); err != nil {
		t.Fatalf("gatehouse lobby claim: %v %s %s", err, out, errOut)
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("gatehouse device lobby: %v\n%s\n%s", r.err, r.out, r.errOut)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(r.out), &got); err != nil {
		t.Fatalf("output %q: %v", r.out, err)
	}
	if got["thingName"] != "meter-5" || got["kind"] != "local" || got["certificateId"] != fp {
		t.Errorf("output = %v", got)
	}
	awaitLobbyState(t, s, fp, "arrived")
}
