package storetest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/store"
)

func testOAuthApps(t *testing.T, s *store.Store) {
	ctx := t.Context()
	a := &store.App{ClientID: "app.console", Description: "console", RedirectURIs: []string{"https://gh.example/cb"}, Scopes: []string{"openid"}, GrantTypes: []string{"authorization_code"}, CreatedAt: t0}
	if err := s.CreateApp(ctx, a); err != nil {
		t.Fatalf("CreateApp: %v", err)
	}
	if err := s.CreateApp(ctx, a); !errors.Is(err, store.ErrExists) {
		t.Errorf("duplicate app: err = %v, want ErrExists", err)
	}
	b := &store.App{ClientID: "app.backend", SecretHash: "h", CreatedAt: t0}
	if err := s.CreateApp(ctx, b); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetApp(ctx, "app.console")
	if err != nil || got.Description != "console" || !got.Public() || !slices.Equal(got.RedirectURIs, a.RedirectURIs) ||
		!slices.Equal(got.Scopes, a.Scopes) || !slices.Equal(got.GrantTypes, a.GrantTypes) || !got.CreatedAt.Equal(t0) {
		t.Errorf("GetApp = %+v, %v; want %+v", got, err, a)
	}
	list, err := s.ListApps(ctx)
	if err != nil || len(list) != 2 || list[0].ClientID != "app.backend" || list[0].Public() || list[0].RedirectURIs == nil {
		t.Errorf("ListApps = %+v, %v", list, err)
	}

	r := &store.AuthRequest{IDHash: "id1", ClientID: "app.console", RedirectURI: "https://gh.example/cb", Scopes: []string{"openid"}, State: "st",
		Nonce: "n", CodeChallenge: "cc", CodeChallengeMethod: "S256", CreatedAt: t0, ExpiresAt: t0.Add(10 * time.Minute)}
	if err := s.CreateAuthRequest(ctx, r); err != nil {
		t.Fatalf("CreateAuthRequest: %v", err)
	}
	if _, err := s.GetAuthRequestByCode(ctx, ""); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("request by empty code: err = %v, want ErrNotFound", err)
	}
	err = s.InTx(ctx, func(tx *store.Tx) error {
		if _, err := tx.GetAuthRequest(ctx, "id1"); err != nil {
			return err
		}
		return tx.SaveAuthCode(ctx, "id1", "alice", "code1", t0.Add(time.Minute))
	})
	if err != nil {
		t.Fatalf("SaveAuthCode: %v", err)
	}
	gr, err := s.GetAuthRequestByCode(ctx, "code1")
	want := *r
	want.Subject, want.CodeHash, want.ExpiresAt = "alice", "code1", t0.Add(time.Minute)
	if err != nil || gr.IDHash != want.IDHash || gr.ClientID != want.ClientID || gr.RedirectURI != want.RedirectURI || !slices.Equal(gr.Scopes, want.Scopes) ||
		gr.State != want.State || gr.Nonce != want.Nonce || gr.CodeChallenge != want.CodeChallenge || gr.CodeChallengeMethod != want.CodeChallengeMethod ||
		gr.Subject != want.Subject || gr.CodeHash != want.CodeHash || !gr.CreatedAt.Equal(want.CreatedAt) || !gr.ExpiresAt.Equal(want.ExpiresAt) {
		t.Errorf("GetAuthRequestByCode = %+v, %v; want %+v", gr, err, want)
	}
	if err := s.SaveAuthCode(ctx, "nope", "a", "c", t0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SaveAuthCode(unknown) err = %v, want ErrNotFound", err)
	}
	if err := s.DeleteAuthRequest(ctx, "id1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetAuthRequest(ctx, "id1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleted request: err = %v, want ErrNotFound", err)
	}
	if err := s.DeleteAuthRequest(ctx, "id1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("delete twice: err = %v, want ErrNotFound", err)
	}
	// Expired requests are purged; deleting an app drops its requests.
	old := *r
	old.IDHash, old.ExpiresAt = "id2", t0
	pending := *r
	pending.IDHash = "id3"
	for _, x := range []*store.AuthRequest{&old, &pending} {
		if err := s.CreateAuthRequest(ctx, x); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.PurgeExpiredOAuth(ctx, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetAuthRequest(ctx, "id2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("expired request survived the purge: %v", err)
	}
	if err := s.DeleteApp(ctx, "app.console"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetAuthRequest(ctx, "id3"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("request of a deleted app survived: %v", err)
	}
	if err := s.DeleteApp(ctx, "app.console"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("delete app twice: err = %v, want ErrNotFound", err)
	}
}
