package storetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/store"
)

func testLobby(t *testing.T, s *store.Store) {
	ctx := t.Context()

	// Targets.
	local := &store.LobbyTarget{Name: "here", Kind: store.LobbyTargetLocal, ThingType: "pump", CreatedAt: t0, UpdatedAt: t0}
	remote := &store.LobbyTarget{Name: "eu", Kind: store.LobbyTargetMQTT, Endpoint: "mqtts://eu.example:8883", CAPEM: "pem", Config: `{"a":1}`, CreatedAt: t0, UpdatedAt: t0}
	for _, tg := range []*store.LobbyTarget{local, remote} {
		if err := s.CreateLobbyTarget(ctx, tg); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateLobbyTarget(ctx, &store.LobbyTarget{Name: "here", Kind: store.LobbyTargetLocal}); !errors.Is(err, store.ErrExists) {
		t.Errorf("duplicate target: err = %v, want ErrExists", err)
	}
	gotT, err := s.GetLobbyTarget(ctx, "eu")
	if err != nil || gotT.Endpoint != remote.Endpoint || gotT.Config != `{"a":1}` || gotT.Version != 1 {
		t.Fatalf("GetLobbyTarget = %+v, %v", gotT, err)
	}
	gotT.Endpoint = "mqtts://eu2.example:8883"
	if err := s.UpdateLobbyTarget(ctx, gotT); err != nil {
		t.Fatal(err)
	}
	staleT := *gotT
	staleT.Version = 1
	if err := s.UpdateLobbyTarget(ctx, &staleT); !errors.Is(err, store.ErrStale) {
		t.Errorf("stale target update: err = %v, want ErrStale", err)
	}
	if ts, err := s.ListLobbyTargets(ctx, store.Page{}); err != nil || len(ts) != 2 || ts[0].Name != "eu" || ts[0].Endpoint != "mqtts://eu2.example:8883" {
		t.Errorf("ListLobbyTargets = %+v, %v", ts, err)
	}

	// Devices: seen, pre-claimed, paged by state.
	for i := range 12 {
		d := &store.LobbyDevice{Fingerprint: fmt.Sprintf("%064x", i), State: store.LobbyInLobby, CommonName: fmt.Sprintf("dev-%d", i),
			CA: "acme", CertificatePEM: "pem", FirstSeenAt: t0, LastSeenAt: t0, CreatedAt: t0, UpdatedAt: t0}
		if i%3 == 0 {
			d.State, d.Target, d.CertificatePEM, d.Claims = store.LobbyClaimed, "eu", "", 1
		}
		if err := s.CreateLobbyDevice(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateLobbyDevice(ctx, &store.LobbyDevice{Fingerprint: fmt.Sprintf("%064x", 1), State: store.LobbyKnocking}); !errors.Is(err, store.ErrExists) {
		t.Errorf("duplicate device: err = %v, want ErrExists", err)
	}
	tests := []struct {
		f    store.LobbyFilter
		want int
	}{
		{store.LobbyFilter{}, 12},
		{store.LobbyFilter{State: store.LobbyClaimed}, 4},
		{store.LobbyFilter{State: store.LobbyInLobby, Page: store.Page{Limit: 5}}, 5},
		{store.LobbyFilter{State: store.LobbyInLobby, Page: store.Page{After: fmt.Sprintf("%064x", 7)}}, 3},
		{store.LobbyFilter{Target: "eu"}, 4},
		{store.LobbyFilter{State: store.LobbyArrived}, 0},
	}
	for _, tc := range tests {
		got, err := s.ListLobbyDevices(ctx, tc.f)
		if err != nil || len(got) != tc.want {
			t.Errorf("ListLobbyDevices(%+v) = %d devices, %v; want %d", tc.f, len(got), err, tc.want)
		}
	}
	fp0 := fmt.Sprintf("%064x", 0)
	if err := s.DeleteLobbyTarget(ctx, "eu"); !errors.Is(err, store.ErrInUse) {
		t.Errorf("delete target in use: err = %v, want ErrInUse", err)
	}

	// Optimistic versions and history, in one transaction.
	err = s.InTx(ctx, func(tx *store.Tx) error {
		d, err := tx.GetLobbyDevice(ctx, fp0)
		if err != nil {
			return err
		}
		d.State, d.Assignment, d.CommissionedClaim, d.UpdatedAt = store.LobbyCommissioned, `{"endpoint":"x"}`, 1, t0.Add(time.Minute)
		if err := tx.UpdateLobbyDevice(ctx, d); err != nil {
			return err
		}
		return tx.AddLobbyTransition(ctx, &store.LobbyTransition{Fingerprint: fp0, From: store.LobbyClaimed, To: store.LobbyCommissioned, Actor: "test", Target: "eu", At: t0.Add(time.Minute)})
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.GetLobbyDevice(ctx, fp0)
	if err != nil || got.State != store.LobbyCommissioned || got.Version != 2 || got.Assignment != `{"endpoint":"x"}` || !got.UpdatedAt.Equal(t0.Add(time.Minute)) || !got.FirstSeenAt.Equal(t0) {
		t.Errorf("GetLobbyDevice after update = %+v, %v", got, err)
	}
	stale := *got
	stale.Version = 1
	if err := s.UpdateLobbyDevice(ctx, &stale); !errors.Is(err, store.ErrStale) {
		t.Errorf("stale device update: err = %v, want ErrStale", err)
	}
	missing := store.LobbyDevice{Fingerprint: fmt.Sprintf("%064x", 99), Version: 1}
	if err := s.UpdateLobbyDevice(ctx, &missing); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("update missing device: err = %v, want ErrNotFound", err)
	}
	if err := s.AddLobbyTransition(ctx, &store.LobbyTransition{Fingerprint: missing.Fingerprint, From: "", To: store.LobbyKnocking, Actor: "x", At: t0}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("transition of unknown device: err = %v, want ErrNotFound", err)
	}
	if err := s.AddLobbyTransition(ctx, &store.LobbyTransition{Fingerprint: fp0, From: store.LobbyCommissioned, To: store.LobbyArrived, Actor: "thing:dev-0", At: t0.Add(2 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	hist, err := s.ListLobbyTransitions(ctx, fp0)
	if err != nil || len(hist) != 2 || hist[0].To != store.LobbyCommissioned || hist[0].Target != "eu" || hist[1].To != store.LobbyArrived || hist[1].ID <= hist[0].ID || !hist[1].At.Equal(t0.Add(2*time.Minute)) {
		t.Errorf("ListLobbyTransitions = %+v, %v", hist, err)
	}
	if _, err := s.GetLobbyDevice(ctx, missing.Fingerprint); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetLobbyDevice(unknown): err = %v, want ErrNotFound", err)
	}
	if err := s.DeleteLobbyTarget(ctx, "here"); err != nil {
		t.Errorf("DeleteLobbyTarget(here): %v", err)
	}
	if err := s.DeleteLobbyTarget(ctx, "here"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("delete target twice: err = %v, want ErrNotFound", err)
	}
}

// testLobbyRemote covers gatehouse targets: the API URL and sealed API
// token of a target, the sealed secret of a device's assignment.
func testLobbyRemote(t *testing.T, s *store.Store) {
	ctx := t.Context()
	tg := &store.LobbyTarget{Name: "peer", Kind: store.LobbyTargetGatehouse, APIURL: "https://peer.example", APITokenSealed: []byte{1, 2, 3},
		ThingType: "meter", CreatedAt: t0, UpdatedAt: t0}
	if err := s.CreateLobbyTarget(ctx, tg); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetLobbyTarget(ctx, "peer")
	if err != nil || got.APIURL != "https://peer.example" || string(got.APITokenSealed) != "\x01\x02\x03" || got.Kind != store.LobbyTargetGatehouse {
		t.Fatalf("GetLobbyTarget = %+v, %v", got, err)
	}
	got.APIURL, got.APITokenSealed = "https://peer2.example", []byte{4}
	if err := s.UpdateLobbyTarget(ctx, got); err != nil {
		t.Fatal(err)
	}
	if got, err = s.GetLobbyTarget(ctx, "peer"); err != nil || got.APIURL != "https://peer2.example" || string(got.APITokenSealed) != "\x04" {
		t.Errorf("after update: %+v, %v", got, err)
	}
	// A target without a token stores none.
	if err := s.CreateLobbyTarget(ctx, &store.LobbyTarget{Name: "plain", Kind: store.LobbyTargetLocal, CreatedAt: t0, UpdatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetLobbyTarget(ctx, "plain"); err != nil || len(got.APITokenSealed) != 0 || got.APIURL != "" {
		t.Errorf("plain target = %+v, %v", got, err)
	}

	fp := fmt.Sprintf("%064x", 0xabc)
	d := &store.LobbyDevice{Fingerprint: fp, State: store.LobbyCommissioned, Target: "peer", Assignment: `{"kind":"gatehouse"}`,
		AssignmentSecret: []byte("sealed"), CreatedAt: t0, UpdatedAt: t0}
	if err := s.CreateLobbyDevice(ctx, d); err != nil {
		t.Fatal(err)
	}
	gotD, err := s.GetLobbyDevice(ctx, fp)
	if err != nil || string(gotD.AssignmentSecret) != "sealed" {
		t.Fatalf("GetLobbyDevice = %+v, %v", gotD, err)
	}
	gotD.AssignmentSecret, gotD.Assignment = nil, ""
	if err := s.UpdateLobbyDevice(ctx, gotD); err != nil {
		t.Fatal(err)
	}
	if gotD, err = s.GetLobbyDevice(ctx, fp); err != nil || len(gotD.AssignmentSecret) != 0 {
		t.Errorf("after clearing the secret: %+v, %v", gotD, err)
	}
}
