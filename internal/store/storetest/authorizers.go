package storetest

import (
	"errors"
	"testing"

	"github.com/gatehouse-iot/gatehouse/internal/store"
)

func testAuthorizers(t *testing.T, s *store.Store) {
	ctx := t.Context()
	a := &store.Authorizer{Name: "openam", TokenKeyName: "token", PublicKeys: map[string]string{"FIRST_KEY": "-----BEGIN PUBLIC KEY-----"}, Status: store.AuthorizerActive, CreatedAt: t0, UpdatedAt: t0}
	if err := s.CreateAuthorizer(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateAuthorizer(ctx, &store.Authorizer{Name: "openam", Status: store.AuthorizerActive}); !errors.Is(err, store.ErrExists) {
		t.Errorf("duplicate authorizer: err = %v, want ErrExists", err)
	}
	if _, err := s.DefaultAuthorizer(ctx); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DefaultAuthorizer with none: err = %v, want ErrNotFound", err)
	}
	got, err := s.GetAuthorizer(ctx, "openam")
	if err != nil || got.PublicKeys["FIRST_KEY"] == "" || got.TokenKeyName != "token" {
		t.Fatalf("GetAuthorizer = %+v, %v", got, err)
	}
	got.Default = true
	if err := s.UpdateAuthorizer(ctx, got); err != nil {
		t.Fatal(err)
	}
	if d, err := s.DefaultAuthorizer(ctx); err != nil || d.Name != "openam" {
		t.Errorf("DefaultAuthorizer = %+v, %v", d, err)
	}
	if err := s.ClearDefaultAuthorizer(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DefaultAuthorizer(ctx); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("after clear: err = %v, want ErrNotFound", err)
	}
	if err := s.DeleteAuthorizer(ctx, "openam"); err != nil {
		t.Fatal(err)
	}
	if list, _ := s.ListAuthorizers(ctx); len(list) != 0 {
		t.Errorf("ListAuthorizers after delete = %+v", list)
	}
}
