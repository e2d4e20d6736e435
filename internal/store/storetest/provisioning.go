package storetest

import (
	"errors"
	"testing"

	"github.com/gatehouse-iot/gatehouse/internal/store"
)

func testProvisioningTemplates(t *testing.T, s *store.Store) {
	ctx := t.Context()
	tpl := &store.ProvisioningTemplate{Name: "fleet", Description: "claims", Enabled: true, PreProvisioningHook: "https://hook.example/check", CreatedAt: t0, UpdatedAt: t0}
	if err := s.CreateProvisioningTemplate(ctx, tpl, []byte(`{"Resources":{}}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateProvisioningTemplate(ctx, &store.ProvisioningTemplate{Name: "fleet"}, []byte(`{}`)); !errors.Is(err, store.ErrExists) {
		t.Errorf("duplicate template: err = %v, want ErrExists", err)
	}
	got, err := s.GetProvisioningTemplate(ctx, "fleet")
	if err != nil || *got != *tpl {
		t.Fatalf("GetProvisioningTemplate = %+v, %v; want %+v", got, err, tpl)
	}
	if err := s.AddProvisioningTemplateVersion(ctx, &store.ProvisioningTemplateVersion{Template: "fleet", VersionID: 2, Body: []byte(`{"Resources":{"x":{}}}`), CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddProvisioningTemplateVersion(ctx, &store.ProvisioningTemplateVersion{Template: "fleet", VersionID: 2, Body: []byte(`{}`), CreatedAt: t0}); !errors.Is(err, store.ErrExists) {
		t.Errorf("duplicate version: err = %v, want ErrExists", err)
	}
	got.DefaultVersion, got.NextVersion, got.Enabled = 2, 3, false
	if err := s.UpdateProvisioningTemplate(ctx, got); err != nil || got.Version != 2 {
		t.Fatalf("UpdateProvisioningTemplate: version %d, %v", got.Version, err)
	}
	stale := *tpl
	if err := s.UpdateProvisioningTemplate(ctx, &stale); !errors.Is(err, store.ErrStale) {
		t.Errorf("stale update: err = %v, want ErrStale", err)
	}
	def, err := s.GetProvisioningTemplateVersion(ctx, "fleet", 0)
	if err != nil || def.VersionID != 2 || !def.IsDefault || string(def.Body) != `{"Resources":{"x":{}}}` {
		t.Errorf("default version = %+v, %v; want version 2", def, err)
	}
	if v1, err := s.GetProvisioningTemplateVersion(ctx, "fleet", 1); err != nil || v1.IsDefault || string(v1.Body) != `{"Resources":{}}` {
		t.Errorf("version 1 = %+v, %v", v1, err)
	}
	if _, err := s.GetProvisioningTemplateVersion(ctx, "fleet", 9); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("version 9: err = %v, want ErrNotFound", err)
	}
	vs, err := s.ListProvisioningTemplateVersions(ctx, "fleet")
	if err != nil || len(vs) != 2 || vs[0].VersionID != 2 {
		t.Errorf("ListProvisioningTemplateVersions = %+v, %v; want 2 then 1", vs, err)
	}
	if err := s.DeleteProvisioningTemplateVersion(ctx, "fleet", 1); err != nil {
		t.Fatal(err)
	}
	if list, err := s.ListProvisioningTemplates(ctx, store.Page{}); err != nil || len(list) != 1 || list[0].Name != "fleet" {
		t.Errorf("ListProvisioningTemplates = %+v, %v", list, err)
	}
	if err := s.DeleteProvisioningTemplate(ctx, "fleet"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetProvisioningTemplate(ctx, "fleet"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("after delete: err = %v, want ErrNotFound", err)
	}
	if err := s.DeleteProvisioningTemplate(ctx, "fleet"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("delete twice: err = %v, want ErrNotFound", err)
	}
}
