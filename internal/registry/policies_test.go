package registry_test

import (
	"errors"
	"testing"

	"github.com/gatehouse-iot/gatehouse/internal/events"
	"github.com/gatehouse-iot/gatehouse/internal/policy"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

func TestCompileStoredPolicy(t *testing.T) {
	forEachDriver(t, func(t *testing.T, svc *registry.Service, s *store.Store) {
		ctx := events.WithActor(t.Context(), "user:test")
		v1 := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Publish","Resource":"topic/open/${iot:ClientId}"}]}`
		v2 := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Publish","Resource":"topic/other/*"}]}`
		if _, err := svc.CreatePolicy(ctx, registry.NewPolicy{Name: "interop", Document: []byte(v1)}); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.CreatePolicyVersion(ctx, "interop", 0, []byte(v2), false); err != nil {
			t.Fatal(err)
		}
		set, err := svc.CompileStoredPolicy(ctx, "interop", policy.Options{})
		if err != nil {
			t.Fatal(err)
		}
		b := set.Bind(policy.Context{ClientID: "c1"})
		// The default version (v1) is the one compiled.
		for topic, want := range map[string]bool{"open/c1": true, "open/c2": false, "other/x": false} {
			if got := b.Allowed(policy.ActionPublish, topic); got != want {
				t.Errorf("Allowed(Publish, %s) = %v, want %v", topic, got, want)
			}
		}
		if _, err := svc.CompileStoredPolicy(ctx, "ghost", policy.Options{}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("missing policy: err = %v, want ErrNotFound", err)
		}
	})
}
