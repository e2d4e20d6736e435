package storetest

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// The OAuth authorization server's records (internal/oauth).

func testOAuthSigningKeys(t *testing.T, s *store.Store) {
	ctx := t.Context()
	for i, kid := range []string{"k1", "k2", "k3"} {
		k := &store.SigningKey{KID: kid, Algorithm: "ES256", PublicJWK: []byte(`{"kty":"EC"}`), SealedPrivate: []byte{0, 1, 2, byte(i), 0xff}, CreatedAt: t0.Add(time.Duration(i) * time.Hour)}
		if err := s.CreateSigningKey(ctx, k); err != nil {
			t.Fatalf("CreateSigningKey(%s): %v", kid, err)
		}
	}
	if err := s.CreateSigningKey(ctx, &store.SigningKey{KID: "k1", Algorithm: "ES256", PublicJWK: []byte("{}"), SealedPrivate: []byte{1}, CreatedAt: t0}); !errors.Is(err, store.ErrExists) {
		t.Errorf("duplicate CreateSigningKey: err = %v, want ErrExists", err)
	}
	if err := s.InTx(ctx, func(tx *store.Tx) error {
		if err := tx.LockOAuthKeys(ctx); err != nil {
			return err
		}
		return tx.RetireSigningKey(ctx, "k1", t0.Add(5*time.Hour))
	}); err != nil {
		t.Fatalf("retire k1: %v", err)
	}
	if err := s.RetireSigningKey(ctx, "k1", t0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("retire twice: err = %v, want ErrNotFound", err)
	}
	keys, err := s.ListSigningKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, k := range keys {
		kids = append(kids, k.KID)
	}
	if !slices.Equal(kids, []string{"k3", "k2"}) {
		t.Fatalf("ListSigningKeys kids = %v, want [k3 k2]", kids)
	}
	if got := keys[0]; string(got.PublicJWK) != `{"kty":"EC"}` || !slices.Equal(got.SealedPrivate, []byte{0, 1, 2, 2, 0xff}) || !got.CreatedAt.Equal(t0.Add(2*time.Hour)) || !got.RetiredAt.IsZero() {
		t.Errorf("ListSigningKeys[0] = %+v", got)
	}
}

func testOAuthThingCredentials(t *testing.T, s *store.Store) {
	ctx := t.Context()
	if err := s.CreateThingType(ctx, &store.ThingType{Name: "meter", AuthMethods: []string{"client_secret"}, Scopes: []string{"publish", "subscribe"},
		ApproverRelation: "owner", CreatedAt: t0, UpdatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	typed := newThing("meter-1")
	typed.ThingType = "meter"
	for _, th := range []*store.Thing{typed, newThing("bare")} {
		if err := s.CreateThing(ctx, th); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetThingSecret(ctx, "meter-1", "hash-1", t0); err != nil {
		t.Fatalf("SetThingSecret: %v", err)
	}
	if err := s.SetThingSecret(ctx, "meter-1", "hash-2", t0.Add(time.Minute)); err != nil {
		t.Fatalf("SetThingSecret (replace): %v", err)
	}
	got, err := s.GetThingClient(ctx, "meter-1")
	if err != nil {
		t.Fatalf("GetThingClient: %v", err)
	}
	if got.Name != "meter-1" || got.State != store.StateEnabled || got.ThingType != "meter" || !slices.Equal(got.AuthMethods, []string{"client_secret"}) ||
		!slices.Equal(got.Scopes, []string{"publish", "subscribe"}) || got.ApproverRelation != "owner" || got.SecretHash != "hash-2" || !got.SecretCreatedAt.Equal(t0.Add(time.Minute)) {
		t.Errorf("GetThingClient(meter-1) = %+v", got)
	}
	bare, err := s.GetThingClient(ctx, "bare")
	if err != nil {
		t.Fatalf("GetThingClient(bare): %v", err)
	}
	if bare.ThingType != "" || bare.SecretHash != "" || bare.AuthMethods == nil || len(bare.AuthMethods) != 0 || bare.Scopes == nil || len(bare.Scopes) != 0 {
		t.Errorf("GetThingClient(bare) = %+v, want no type, no secret, empty lists", bare)
	}

	key := func(thing, kid string) *store.ThingKey {
		return &store.ThingKey{Thing: thing, KID: kid, Algorithm: "ES256", JWK: []byte(`{"kid":"` + kid + `"}`), CreatedAt: t0}
	}
	if err := s.AddThingKey(ctx, key("meter-1", "b")); err != nil {
		t.Fatalf("AddThingKey: %v", err)
	}
	if err := s.AddThingKey(ctx, key("meter-1", "a")); err != nil {
		t.Fatalf("AddThingKey: %v", err)
	}
	tests := []struct {
		name string
		err  error
		want error
	}{
		{"secret of unknown thing", s.SetThingSecret(ctx, "ghost", "h", t0), store.ErrNotFound},
		{"client of unknown thing", func() error { _, err := s.GetThingClient(ctx, "ghost"); return err }(), store.ErrNotFound},
		{"duplicate key id", s.AddThingKey(ctx, key("meter-1", "a")), store.ErrExists},
		{"key of unknown thing", s.AddThingKey(ctx, key("ghost", "a")), store.ErrNotFound},
		{"remove missing key", s.RemoveThingKey(ctx, "meter-1", "zzz"), store.ErrNotFound},
		{"delete missing secret", s.DeleteThingSecret(ctx, "bare"), store.ErrNotFound},
	}
	for _, tc := range tests {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, tc.err, tc.want)
		}
	}
	keys, err := s.ListThingKeys(ctx, "meter-1")
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[0].KID != "a" || keys[1].KID != "b" || string(keys[0].JWK) != `{"kid":"a"}` || keys[0].Algorithm != "ES256" || !keys[0].CreatedAt.Equal(t0) {
		t.Errorf("ListThingKeys = %+v, want a, b", keys)
	}
	if err := s.RemoveThingKey(ctx, "meter-1", "b"); err != nil {
		t.Errorf("RemoveThingKey: %v", err)
	}
	// Deleting the thing takes its credentials with it.
	if err := s.DeleteThing(ctx, "meter-1"); err != nil {
		t.Fatalf("DeleteThing: %v", err)
	}
	if keys, err := s.ListThingKeys(ctx, "meter-1"); err != nil || len(keys) != 0 {
		t.Errorf("keys after DeleteThing = %v, %v; want none", keys, err)
	}
	if err := s.DeleteThingSecret(ctx, "meter-1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("secret after DeleteThing: err = %v, want ErrNotFound", err)
	}
	// A thing re-created under the same name starts without credentials.
	if err := s.CreateThing(ctx, newThing("meter-1")); err != nil {
		t.Fatal(err)
	}
	if again, err := s.GetThingClient(ctx, "meter-1"); err != nil || again.SecretHash != "" {
		t.Errorf("re-created thing client = %+v, %v; want no secret", again, err)
	}
}

func testOAuthAssertionIDs(t *testing.T, s *store.Store) {
	ctx := t.Context()
	exp := t0.Add(5 * time.Minute)
	if err := s.UseAssertionID(ctx, "meter-1", "j1", exp, t0); err != nil {
		t.Fatalf("first use: %v", err)
	}
	if err := s.UseAssertionID(ctx, "meter-1", "j1", exp, t0.Add(time.Minute)); !errors.Is(err, store.ErrExists) {
		t.Errorf("replay: err = %v, want ErrExists", err)
	}
	if err := s.UseAssertionID(ctx, "other", "j1", exp, t0); err != nil {
		t.Errorf("same jti, other issuer: %v", err)
	}
	// Once the first record expired, the ID may be used again.
	if err := s.UseAssertionID(ctx, "meter-1", "j1", exp.Add(time.Hour), exp.Add(time.Second)); err != nil {
		t.Errorf("reuse after expiry: %v", err)
	}
	if err := s.UseAssertionID(ctx, "meter-1", "j1", exp.Add(time.Hour), exp.Add(2*time.Second)); !errors.Is(err, store.ErrExists) {
		t.Errorf("replay of renewed id: err = %v, want ErrExists", err)
	}
}

func testOAuthDeviceAuthorizations(t *testing.T, s *store.Store) {
	ctx := t.Context()
	d := &store.DeviceAuthorization{CodeHash: "dc1", UserCode: "BCDFGHJK", ClientID: "tv-1", Scopes: []string{"publish"}, State: store.DeviceStatePending,
		Interval: 5 * time.Second, CreatedAt: t0, ExpiresAt: t0.Add(10 * time.Minute)}
	if err := s.CreateDeviceAuthorization(ctx, d); err != nil {
		t.Fatalf("CreateDeviceAuthorization: %v", err)
	}
	dupUser := *d
	dupUser.CodeHash = "dc2"
	if err := s.CreateDeviceAuthorization(ctx, &dupUser); !errors.Is(err, store.ErrExists) {
		t.Errorf("duplicate user code: err = %v, want ErrExists", err)
	}
	err := s.InTx(ctx, func(tx *store.Tx) error {
		got, err := tx.GetDeviceAuthorizationByUserCode(ctx, "BCDFGHJK")
		if err != nil {
			return err
		}
		got.State, got.Subject, got.ConsentHash = store.DeviceStateApproved, "alice", "ch"
		got.Interval, got.LastPollAt, got.DecidedAt = 10*time.Second, t0.Add(time.Minute), t0.Add(30*time.Second)
		return tx.UpdateDeviceAuthorization(ctx, got)
	})
	if err != nil {
		t.Fatalf("update in tx: %v", err)
	}
	got, err := s.GetDeviceAuthorization(ctx, "dc1")
	if err != nil {
		t.Fatal(err)
	}
	want := *d
	want.State, want.Subject, want.ConsentHash, want.Interval, want.LastPollAt = store.DeviceStateApproved, "alice", "ch", 10*time.Second, t0.Add(time.Minute)
	if got.CodeHash != want.CodeHash || got.UserCode != want.UserCode || got.ClientID != want.ClientID || !slices.Equal(got.Scopes, want.Scopes) ||
		got.State != want.State || got.Subject != want.Subject || got.ConsentHash != want.ConsentHash || got.Interval != want.Interval ||
		!got.LastPollAt.Equal(want.LastPollAt) || !got.CreatedAt.Equal(want.CreatedAt) || !got.ExpiresAt.Equal(want.ExpiresAt) ||
		!got.DecidedAt.Equal(t0.Add(30*time.Second)) {
		t.Errorf("GetDeviceAuthorization = %+v, want %+v", got, want)
	}
	if _, err := s.GetDeviceAuthorization(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown device code: err = %v, want ErrNotFound", err)
	}
	if _, err := s.GetDeviceAuthorizationByUserCode(ctx, "NOPE"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown user code: err = %v, want ErrNotFound", err)
	}
	missing := want
	missing.CodeHash = "nope"
	if err := s.UpdateDeviceAuthorization(ctx, &missing); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("update unknown: err = %v, want ErrNotFound", err)
	}
}

func testOAuthRefreshTokens(t *testing.T, s *store.Store) {
	ctx := t.Context()
	rt := func(hash, jti string, at time.Time) *store.RefreshToken {
		return &store.RefreshToken{Hash: hash, FamilyID: "fam", ClientID: "tv-1", Subject: "alice", Scopes: []string{"publish"},
			AccessJTI: jti, AccessExpiresAt: at.Add(time.Hour), CreatedAt: at, ExpiresAt: at.Add(24 * time.Hour), AuthTime: t0.Add(-time.Minute)}
	}
	if err := s.CreateRefreshToken(ctx, rt("r1", "a1", t0)); err != nil {
		t.Fatalf("CreateRefreshToken: %v", err)
	}
	if err := s.CreateRefreshToken(ctx, rt("r1", "a1", t0)); !errors.Is(err, store.ErrExists) {
		t.Errorf("duplicate: err = %v, want ErrExists", err)
	}
	if err := s.MarkRefreshTokenUsed(ctx, "r1", t0.Add(time.Minute)); err != nil {
		t.Fatalf("MarkRefreshTokenUsed: %v", err)
	}
	if err := s.MarkRefreshTokenUsed(ctx, "r1", t0.Add(2*time.Minute)); !errors.Is(err, store.ErrStale) {
		t.Errorf("second use: err = %v, want ErrStale", err)
	}
	if err := s.CreateRefreshToken(ctx, rt("r2", "a2", t0.Add(time.Minute))); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetRefreshToken(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	if got.FamilyID != "fam" || got.ClientID != "tv-1" || got.Subject != "alice" || !slices.Equal(got.Scopes, []string{"publish"}) || got.AccessJTI != "a1" ||
		!got.AccessExpiresAt.Equal(t0.Add(time.Hour)) || !got.UsedAt.Equal(t0.Add(time.Minute)) || !got.RevokedAt.IsZero() || !got.ExpiresAt.Equal(t0.Add(24*time.Hour)) ||
		!got.AuthTime.Equal(t0.Add(-time.Minute)) {
		t.Errorf("GetRefreshToken(r1) = %+v", got)
	}
	revoked, err := s.RevokeRefreshFamily(ctx, "fam", t0.Add(3*time.Minute))
	if err != nil {
		t.Fatalf("RevokeRefreshFamily: %v", err)
	}
	if len(revoked) != 2 || revoked[0].AccessJTI != "a1" || revoked[1].AccessJTI != "a2" {
		t.Errorf("RevokeRefreshFamily = %+v, want r1, r2", revoked)
	}
	if again, err := s.RevokeRefreshFamily(ctx, "fam", t0.Add(4*time.Minute)); err != nil || len(again) != 0 {
		t.Errorf("second RevokeRefreshFamily = %v, %v; want none", again, err)
	}
	if err := s.MarkRefreshTokenUsed(ctx, "r2", t0.Add(5*time.Minute)); !errors.Is(err, store.ErrStale) {
		t.Errorf("use of revoked token: err = %v, want ErrStale", err)
	}
	if got, err := s.GetRefreshToken(ctx, "r2"); err != nil || !got.RevokedAt.Equal(t0.Add(3*time.Minute)) {
		t.Errorf("r2 after revoke = %+v, %v", got, err)
	}
	if _, err := s.GetRefreshToken(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown refresh token: err = %v, want ErrNotFound", err)
	}
}

func testOAuthRevocationAndPurge(t *testing.T, s *store.Store) {
	ctx := t.Context()
	if err := s.RevokeAccessToken(ctx, "live", t0.Add(time.Hour), t0); err != nil {
		t.Fatalf("RevokeAccessToken: %v", err)
	}
	if err := s.RevokeAccessToken(ctx, "live", t0.Add(time.Hour), t0.Add(time.Second)); err != nil {
		t.Errorf("revoke twice: %v", err)
	}
	if err := s.RevokeAccessToken(ctx, "old", t0.Add(time.Minute), t0); err != nil {
		t.Fatal(err)
	}
	got, err := s.ListRevokedAccessTokens(ctx, t0.Add(30*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !got["live"].Equal(t0.Add(time.Hour)) {
		t.Errorf("ListRevokedAccessTokens = %v, want only live", got)
	}
	if err := s.UseAssertionID(ctx, "x", "j", t0.Add(time.Minute), t0); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateDeviceAuthorization(ctx, &store.DeviceAuthorization{CodeHash: "d", UserCode: "U", ClientID: "c", State: store.DeviceStatePending,
		Interval: 5 * time.Second, CreatedAt: t0, ExpiresAt: t0.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateRefreshToken(ctx, &store.RefreshToken{Hash: "r", FamilyID: "f", ClientID: "c", Subject: "s", CreatedAt: t0, ExpiresAt: t0.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	n, err := s.PurgeExpiredOAuth(ctx, t0.Add(30*time.Minute))
	if err != nil || n != 4 {
		t.Errorf("PurgeExpiredOAuth = %d, %v; want 4 rows", n, err)
	}
	if all, _ := s.ListRevokedAccessTokens(ctx, t0); len(all) != 1 {
		t.Errorf("revocations after purge = %v, want only live", all)
	}
}

func testOAuthAppendEvents(t *testing.T, s *store.Store) {
	ctx := t.Context()
	first := &store.Event{Time: t0, Type: "thing.created", Subject: "thing/a", Actor: "x"}
	if err := s.AppendEvent(ctx, first); err != nil {
		t.Fatal(err)
	}
	batch := make([]*store.Event, 700) // more than one statement's worth
	for i := range batch {
		batch[i] = &store.Event{Time: t0.Add(time.Duration(i) * time.Millisecond), Type: "token.issued", Subject: "thing/a", Actor: "thing:a",
			Details: []byte(`{"n":` + strconv.Itoa(i) + `}`)}
	}
	if err := s.InTx(ctx, func(tx *store.Tx) error { return tx.AppendEvents(ctx, batch) }); err != nil {
		t.Fatalf("AppendEvents: %v", err)
	}
	got, err := s.ListEvents(ctx, store.EventFilter{AfterID: first.ID, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(batch) {
		t.Fatalf("ListEvents after batch = %d events, want %d", len(got), len(batch))
	}
	for i, ev := range got {
		if ev.ID != batch[i].ID || ev.ID <= first.ID || string(ev.Details) != string(batch[i].Details) || !ev.Time.Equal(batch[i].Time) || ev.Actor != "thing:a" {
			t.Fatalf("event %d = %+v (details %s), want id %d details %s", i, ev, ev.Details, batch[i].ID, batch[i].Details)
		}
	}
	if err := s.AppendEvents(ctx, nil); err != nil {
		t.Errorf("AppendEvents(nil): %v", err)
	}

	// No details are stored as {}, a count as given; a batch whose
	// transaction rolls back leaves nothing.
	last := batch[len(batch)-1].ID
	plain := []*store.Event{
		{Time: t0, Type: "broker.denied", Subject: "client/c", Actor: "thing:c", Count: 7},
		{Time: t0, Type: "broker.connected", Subject: "client/c", Actor: "thing:c"},
	}
	if err := s.InTx(ctx, func(tx *store.Tx) error { return tx.AppendEvents(ctx, plain) }); err != nil {
		t.Fatalf("AppendEvents: %v", err)
	}
	rolledBack := errors.New("rolled back")
	if err := s.InTx(ctx, func(tx *store.Tx) error {
		if err := tx.AppendEvents(ctx, []*store.Event{{Time: t0, Type: "broker.lost", Subject: "client/c", Actor: "thing:c"}}); err != nil {
			return err
		}
		return rolledBack
	}); !errors.Is(err, rolledBack) {
		t.Fatalf("rolled-back AppendEvents: %v", err)
	}
	got, err = s.ListEvents(ctx, store.EventFilter{AfterID: last})
	if err != nil {
		t.Fatal(err)
	}
	var summary []string
	for _, ev := range got {
		summary = append(summary, fmt.Sprintf("%s %s count=%d", ev.Type, ev.Details, ev.Count))
	}
	if want := []string{"broker.denied {} count=7", "broker.connected {} count=0"}; !slices.Equal(summary, want) {
		t.Errorf("events after the batch = %q, want %q", summary, want)
	}
	if len(got) == 2 && (got[0].ID != plain[0].ID || got[1].ID != plain[1].ID) {
		t.Errorf("IDs = %d, %d, want %d, %d", got[0].ID, got[1].ID, plain[0].ID, plain[1].ID)
	}
}
