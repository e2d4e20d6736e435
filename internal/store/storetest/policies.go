package storetest

import (
	"errors"
	"strings"
	"testing"

	"github.com/gatehouse-iot/gatehouse/internal/store"
)

func testPolicies(t *testing.T, s *store.Store) {
	ctx := t.Context()
	doc1 := []byte(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"*"}]}`)
	p := &store.Policy{Name: "connect", Description: "may connect", CreatedAt: t0, UpdatedAt: t0}
	if err := s.CreatePolicy(ctx, p, doc1); err != nil {
		t.Fatal(err)
	}
	if err := s.CreatePolicy(ctx, &store.Policy{Name: "connect"}, doc1); !errors.Is(err, store.ErrExists) {
		t.Errorf("duplicate policy: err = %v, want ErrExists", err)
	}
	doc2 := []byte(`{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"iot:Connect","Resource":"*"}]}`)
	err := s.InTx(ctx, func(tx *store.Tx) error {
		cur, err := tx.GetPolicy(ctx, "connect")
		if err != nil {
			return err
		}
		if err := tx.AddPolicyVersion(ctx, &store.PolicyVersion{Policy: "connect", VersionID: cur.NextVersion, Document: doc2, CreatedAt: t0}); err != nil {
			return err
		}
		cur.DefaultVersion, cur.NextVersion = cur.NextVersion, cur.NextVersion+1
		return tx.UpdatePolicy(ctx, cur)
	})
	if err != nil {
		t.Fatal(err)
	}
	versions, err := s.ListPolicyVersions(ctx, "connect")
	if err != nil || len(versions) != 2 || versions[0].VersionID != 2 || !versions[0].IsDefault || versions[1].IsDefault {
		t.Fatalf("ListPolicyVersions = %+v, %v", versions, err)
	}
	docs, err := s.DefaultPolicyDocuments(ctx, []string{"connect", "missing"})
	if err != nil || len(docs) != 1 || !strings.Contains(string(docs["connect"]), "Deny") {
		t.Errorf("DefaultPolicyDocuments = %v, %v; want the version 2 document only", docs, err)
	}
	if err := s.DeletePolicyVersion(ctx, "connect", 1); err != nil {
		t.Errorf("DeletePolicyVersion: %v", err)
	}
	for _, a := range []store.PolicyAttachment{
		{Policy: "connect", TargetKind: store.TargetThing, Target: "pump-1"},
		{Policy: "connect", TargetKind: store.TargetScope, Target: "publish"},
	} {
		if err := s.AttachPolicy(ctx, &a); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AttachPolicy(ctx, &store.PolicyAttachment{Policy: "nope", TargetKind: store.TargetThing, Target: "x"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("attach missing policy: err = %v, want ErrNotFound", err)
	}
	names, err := s.PoliciesAttachedTo(ctx, map[string][]string{store.TargetThing: {"pump-1", "pump-2"}, store.TargetScope: {"publish"}})
	if err != nil || len(names) != 1 || names[0] != "connect" {
		t.Errorf("PoliciesAttachedTo = %v, %v; want [connect] once", names, err)
	}
	if err := s.DetachPolicy(ctx, store.PolicyAttachment{Policy: "connect", TargetKind: store.TargetThing, Target: "pump-1"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.ListPolicyAttachments(ctx, store.AttachmentFilter{Policy: "connect"}); len(got) != 1 || got[0].TargetKind != store.TargetScope {
		t.Errorf("attachments after detach = %+v", got)
	}
	if err := s.DeletePolicy(ctx, "connect"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.ListPolicyAttachments(ctx, store.AttachmentFilter{}); len(got) != 0 {
		t.Errorf("attachments after DeletePolicy = %+v", got)
	}
	if got, _ := s.ListPolicies(ctx, store.Page{}); len(got) != 0 {
		t.Errorf("ListPolicies after delete = %+v", got)
	}
}
