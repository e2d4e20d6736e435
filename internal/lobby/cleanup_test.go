package lobby_test

import (
	"context"
	"crypto/x509"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gatehouse-iot/gatehouse/internal/certs"
	"github.com/gatehouse-iot/gatehouse/internal/httpapi"
	"github.com/gatehouse-iot/gatehouse/internal/lobby"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// peer is a second Gatehouse (its own store, registry and CA) serving its
// admin API over real HTTP, as a gatehouse target of the fixture's lobby.
type peer struct {
	*fixture
	srv   *httptest.Server
	token string
}

func newPeer(t *testing.T) *peer {
	t.Helper()
	p := &peer{fixture: newFixture(t, "sqlite:"+t.TempDir()+"/peer.db", false)}
	p.srv = httptest.NewServer(httpapi.New(httpapi.Config{Registry: p.reg, Events: p.log, Certs: p.certs}))
	t.Cleanup(p.srv.Close)
	tok, _, err := p.reg.CreateAPIToken(p.admin, "lobby", "", []string{"admin"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	p.token = tok
	return p
}

// addTarget makes p a gatehouse target of f named name.
func (p *peer) addTarget(t *testing.T, f *fixture, name string) {
	t.Helper()
	ca, err := p.certs.CA(p.admin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.lobby.CreateTarget(f.admin, store.LobbyTarget{Name: name, Kind: store.LobbyTargetGatehouse, APIURL: p.srv.URL,
		APIToken: p.token, ThingType: "meter", CAPEM: string(ca.ChainPEM())}); err != nil {
		t.Fatal(err)
	}
}

// claimAt sees device cn in f's lobby and claims it for target; register:
// the device then registers at the peer with its registration token.
func (p *peer) claimAt(t *testing.T, f *fixture, cn, target string, register bool) (fp, tokenID string) {
	t.Helper()
	cert, fp := f.device(cn)
	leaf, _ := x509.ParseCertificate(cert.Certificate[0])
	if _, err := f.lobby.Seen(f.admin, &certs.ManufacturerDevice{Fingerprint: fp, CA: "acme", CommonName: cn, Leaf: leaf}); err != nil {
		t.Fatal(err)
	}
	d, err := f.lobby.Claim(f.admin, lobby.ClaimRequest{Device: fp, Target: target})
	if err != nil || d.State != store.LobbyCommissioned {
		t.Fatalf("claim %s for %s: %+v %v", cn, target, d, err)
	}
	toks, err := p.certs.RegistrationTokens(p.admin, store.Page{Limit: 1000})
	for _, tok := range toks {
		if strings.Contains(tok.Description, fp[:16]) {
			tokenID = tok.ID
		}
	}
	if err != nil || tokenID == "" {
		t.Fatalf("registration tokens at the peer: %v %v, none for %s", toks, err, fp)
	}
	if register {
		secret, err := f.sealer.Open(d.AssignmentSecret, lobby.AssignmentAD(fp))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.certs.Register(context.Background(), string(secret), certs.RegisterRequest{ThingName: cn, Version: "1"}); err != nil {
			t.Fatalf("register %s at the peer: %v", cn, err)
		}
	}
	return fp, tokenID
}

// TestLeaveGatehouseTarget: rerouting, rejecting, decommissioning or
// resetting a device commissioned at another Gatehouse revokes its
// certificate there, deletes its thing and revokes its registration
// token, with events on both sides.
func TestLeaveGatehouseTarget(t *testing.T) {
	tests := []struct {
		name      string
		register  bool
		op        func(f *fixture, fp string) (*store.LobbyDevice, error)
		wantState string
	}{
		{"reroute", true, func(f *fixture, fp string) (*store.LobbyDevice, error) {
			return f.lobby.Reroute(f.admin, lobby.ClaimRequest{Device: fp, Target: "eu"})
		}, store.LobbyCommissioned},
		{"decommission", true, func(f *fixture, fp string) (*store.LobbyDevice, error) {
			return f.lobby.Decommission(f.admin, fp, "retired")
		}, store.LobbyDecommissioned},
		{"reset", true, func(f *fixture, fp string) (*store.LobbyDevice, error) { return f.lobby.FactoryReset(f.admin, fp) }, store.LobbyInLobby},
		{"reject", true, func(f *fixture, fp string) (*store.LobbyDevice, error) { return f.lobby.Reject(f.admin, fp, "stolen") }, store.LobbyRejected},
		{"reroute before registering", false, func(f *fixture, fp string) (*store.LobbyDevice, error) {
			return f.lobby.Reroute(f.admin, lobby.ClaimRequest{Device: fp, Target: "here"})
		}, store.LobbyCommissioned},
	}
	f := newFixture(t, "sqlite:"+t.TempDir()+"/lobby.db", false)
	p := newPeer(t)
	p.addTarget(t, f, "plant")
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cn := "meter-" + string(rune('a'+i))
			fp, tokenID := p.claimAt(t, f, cn, "plant", tc.register)
			var certID string
			if tc.register {
				cs, err := p.certs.Certificates(p.admin, store.CertificateFilter{ThingName: cn})
				if err != nil || len(cs) != 1 || cs[0].Status != store.CertActive {
					t.Fatalf("certificates of %s at the peer: %+v %v", cn, cs, err)
				}
				certID = cs[0].Fingerprint
			}
			d, err := tc.op(f, fp)
			if err != nil || d.State != tc.wantState {
				t.Fatalf("%s: %+v, %v; want state %s", tc.name, d, err, tc.wantState)
			}
			if _, err := p.store.GetThing(p.admin, cn); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("thing %s at the peer: %v, want it deleted", cn, err)
			}
			if tc.register {
				if c, err := p.certs.Certificate(p.admin, certID); err != nil || c.Status != store.CertRevoked || c.RevocationReason != 5 {
					t.Errorf("certificate at the peer: %+v %v, want revoked (5)", c, err)
				}
			}
			if tok, err := p.certs.RegistrationToken(p.admin, tokenID); err != nil || tok.RevokedAt.IsZero() {
				t.Errorf("registration token at the peer: %+v %v, want revoked", tok, err)
			}
			evs, err := f.store.ListEvents(f.admin, store.EventFilter{Type: "lobby.remote_cleaned", Subject: "lobby/" + fp})
			if err != nil || len(evs) != 1 {
				t.Fatalf("lobby.remote_cleaned events: %v %v", evs, err)
			}
			want := map[bool]string{true: `"thingDeleted":true`, false: `"thingDeleted":false`}[tc.register]
			if got := string(evs[0].Details); !strings.Contains(got, want) || !strings.Contains(got, tokenID) || (tc.register && !strings.Contains(got, certID)) {
				t.Errorf("lobby.remote_cleaned = %s, want %s, the token %s and the certificate", got, want, tokenID)
			}
			peerEvents, _ := p.store.ListEvents(p.admin, store.EventFilter{Subject: "registration-token/" + tokenID, Type: "registration_token.revoked"})
			if len(peerEvents) != 1 || peerEvents[0].Actor == "" {
				t.Errorf("registration_token.revoked at the peer: %+v", peerEvents)
			}
		})
	}
}

// TestLeaveGatehouseTargetFails: a target that fails or cannot be reached
// fails the operation with ErrRemote and the ledger stays as it was; once
// the target answers again the operation cleans up. A thing of the same
// name that the lobby's token did not register stays.
func TestLeaveGatehouseTargetFails(t *testing.T) {
	f := newFixture(t, "sqlite:"+t.TempDir()+"/lobby.db", false)
	p := newPeer(t)
	p.addTarget(t, f, "plant")
	fp, _ := p.claimAt(t, f, "meter-1", "plant", true)
	before, _ := f.store.GetLobbyDevice(f.admin, fp)

	// The target moves to an address where nothing answers.
	stopped := httptest.NewServer(nil)
	stopped.Close()
	if _, err := f.lobby.UpdateTarget(f.admin, "plant", 0, store.LobbyTarget{APIURL: stopped.URL, APIToken: p.token, ThingType: "meter"}); err != nil {
		t.Fatal(err)
	}
	for name, op := range map[string]func() (*store.LobbyDevice, error){
		"reroute": func() (*store.LobbyDevice, error) {
			return f.lobby.Reroute(f.admin, lobby.ClaimRequest{Device: fp, Target: "eu"})
		},
		"decommission": func() (*store.LobbyDevice, error) { return f.lobby.Decommission(f.admin, fp, "") },
		"reset":        func() (*store.LobbyDevice, error) { return f.lobby.FactoryReset(f.admin, fp) },
	} {
		if d, err := op(); !errors.Is(err, lobby.ErrRemote) {
			t.Errorf("%s with the target down: %+v %v, want ErrRemote", name, d, err)
		}
		after, _ := f.store.GetLobbyDevice(f.admin, fp)
		if after.State != before.State || after.Version != before.Version || after.Target != "plant" {
			t.Errorf("%s with the target down changed the ledger: %+v", name, after)
		}
	}
	if _, err := p.store.GetThing(p.admin, "meter-1"); err != nil {
		t.Errorf("thing at the peer after failed cleanups: %v", err)
	}

	// Back up: the reroute cleans up, once.
	ca, _ := p.certs.CA(p.admin)
	if _, err := f.lobby.UpdateTarget(f.admin, "plant", 0, store.LobbyTarget{APIURL: p.srv.URL, APIToken: p.token, ThingType: "meter", CAPEM: string(ca.ChainPEM())}); err != nil {
		t.Fatal(err)
	}
	if d, err := f.lobby.Reroute(f.admin, lobby.ClaimRequest{Device: fp, Target: "eu"}); err != nil || d.State != store.LobbyCommissioned {
		t.Fatalf("reroute with the target back: %+v %v", d, err)
	}
	if _, err := p.store.GetThing(p.admin, "meter-1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("thing at the peer: %v, want deleted", err)
	}

	// A device whose token registered nothing: the thing of that name at
	// the peer (somebody else's) stays.
	fp2, tokenID := p.claimAt(t, f, "meter-2", "plant", false)
	if _, err := p.reg.CreateThing(p.admin, registry.NewThing{Name: "meter-2", ThingType: "meter"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.lobby.Decommission(f.admin, fp2, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := p.store.GetThing(p.admin, "meter-2"); err != nil {
		t.Errorf("a thing the lobby did not register was touched: %v", err)
	}
	if tok, _ := p.certs.RegistrationToken(p.admin, tokenID); tok == nil || tok.RevokedAt.IsZero() {
		t.Errorf("unused registration token not revoked: %+v", tok)
	}
}
