package registry_test

import (
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/gatehouse-iot/gatehouse/internal/policy"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

func TestPeoplePolicies(t *testing.T) {
	forEachDriver(t, func(t *testing.T, svc *registry.Service, s *store.Store) {
		ctx := t.Context()
		if _, err := svc.EnsureBootstrap(ctx); err != nil {
			t.Fatal(err)
		}
		att, err := svc.PolicyAttachments(ctx, store.AttachmentFilter{Policy: registry.PeoplePolicyName})
		if err != nil || len(att) != 1 || att[0].TargetKind != store.TargetAllUsers || att[0].Target != "*" {
			t.Fatalf("bootstrap attachments of %s = %+v, %v; want one all-users attachment", registry.PeoplePolicyName, att, err)
		}
		for _, u := range []string{"alice", "bob"} {
			if _, err := svc.CreateUser(ctx, registry.NewUser{Username: u, Password: "correct horse"}); err != nil {
				t.Fatal(err)
			}
		}
		for _, th := range []string{"lamp-1", "lamp-2", "gw-1", "sensor-1", "sensor-2"} {
			if _, err := svc.CreateThing(ctx, registry.NewThing{Name: th}); err != nil {
				t.Fatal(err)
			}
		}
		rel := func(sk, sub, r, obj string) store.Relationship {
			return store.Relationship{SubjectKind: sk, Subject: sub, Relation: r, ObjectKind: store.KindThing, Object: obj}
		}
		for _, r := range []store.Relationship{
			rel(store.KindUser, "alice", registry.RelOwner, "lamp-1"),
			rel(store.KindUser, "bob", registry.RelViewer, "lamp-1"),
			rel(store.KindThing, "gw-1", registry.RelGateway, "sensor-1"),
		} {
			if _, err := svc.AddRelationship(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := svc.CreateGroup(ctx, registry.NewGroup{Name: "family"}); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.AddGroupMember(ctx, "family", store.KindUser, "alice"); err != nil {
			t.Fatal(err)
		}
		extra := []byte(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Publish","Resource":"topic/family/${gatehouse:User.Groups}/${gatehouse:User.Name}"}]}`)
		if _, err := svc.CreatePolicy(ctx, registry.NewPolicy{Name: "family-chat", Document: extra}); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.AttachPolicy(ctx, "family-chat", store.TargetGroup, "family"); err != nil {
			t.Fatal(err)
		}
		solo := []byte(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Publish","Resource":"topic/bob-only"}]}`)
		if _, err := svc.CreatePolicy(ctx, registry.NewPolicy{Name: "bob-only", Document: solo}); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.AttachPolicy(ctx, "bob-only", store.TargetUser, "bob"); err != nil {
			t.Fatal(err)
		}
		for _, bad := range [][2]string{{store.TargetUser, "nobody"}, {store.TargetAllUsers, "alice"}} {
			_, err := svc.AttachPolicy(ctx, "bob-only", bad[0], bad[1])
			if !errors.Is(err, registry.ErrInvalid) {
				t.Errorf("AttachPolicy(%s %s) err = %v, want ErrInvalid", bad[0], bad[1], err)
			}
		}

		bind := func(sub registry.Subject, clientID string) *policy.Bound {
			t.Helper()
			res, err := svc.ResolvePolicies(ctx, sub, policy.Options{})
			if err != nil {
				t.Fatal(err)
			}
			return res.Set.Bind(registry.PolicyContext(res, clientID, netipZero, nil, nil))
		}
		alice := bind(registry.Subject{UserName: "alice"}, "alice~phone")
		bob := bind(registry.Subject{UserName: "bob"}, "bob~phone")
		gw := bind(registry.Subject{ThingName: "gw-1"}, "gw-1")
		checks := []struct {
			who      string
			b        *policy.Bound
			a        policy.Action
			resource string
			want     bool
		}{
			{"alice", alice, policy.ActionConnect, "alice~phone", true},
			{"alice", alice, policy.ActionConnect, "bob~phone", false},
			{"alice", alice, policy.ActionConnect, "alice", false},
			{"alice", alice, policy.ActionSubscribe, "things/lamp-1/telemetry/#", true},
			{"alice", alice, policy.ActionReceive, "things/lamp-1/telemetry/temp", true},
			{"alice", alice, policy.ActionPublish, "things/lamp-1/commands/on", true},
			{"alice", alice, policy.ActionReceive, "things/lamp-2/telemetry/temp", false},
			{"alice", alice, policy.ActionPublish, "family/family/alice", true},
			{"alice", alice, policy.ActionPublish, "bob-only", false},
			{"bob", bob, policy.ActionSubscribe, "things/lamp-1/telemetry/#", true},
			{"bob", bob, policy.ActionReceive, "things/lamp-1/telemetry/temp", true},
			{"bob", bob, policy.ActionPublish, "things/lamp-1/commands/on", false},
			{"bob", bob, policy.ActionPublish, "family/family/bob", false},
			{"bob", bob, policy.ActionPublish, "bob-only", true},
			{"gw-1", gw, policy.ActionReceive, "things/lamp-1/telemetry/temp", false},
		}
		for _, c := range checks {
			if got := c.b.Allowed(c.a, c.resource); got != c.want {
				t.Errorf("%s: Allowed(%v, %q) = %v, want %v", c.who, c.a, c.resource, got, c.want)
			}
		}
		res, err := svc.ResolvePolicies(ctx, registry.Subject{ThingName: "gw-1"}, policy.Options{})
		if err != nil || !slices.Equal(res.Children, []string{"sensor-1"}) {
			t.Errorf("gw-1 children = %v, %v; want [sensor-1]", res.Children, err)
		}
		for _, c := range []struct {
			gw, child string
			want      bool
		}{{"gw-1", "sensor-1", true}, {"gw-1", "sensor-2", false}, {"lamp-1", "sensor-1", false}} {
			if got, err := svc.IsGatewayOf(ctx, c.gw, c.child); err != nil || got != c.want {
				t.Errorf("IsGatewayOf(%s, %s) = %v, %v; want %v", c.gw, c.child, got, err, c.want)
			}
		}

		// A relationship change applies to the next resolution.
		if err := svc.RemoveRelationship(ctx, rel(store.KindUser, "alice", registry.RelOwner, "lamp-1")); err != nil {
			t.Fatal(err)
		}
		alice = bind(registry.Subject{UserName: "alice"}, "alice~phone")
		if alice.Allowed(policy.ActionReceive, "things/lamp-1/telemetry/temp") {
			t.Error("alice still receives lamp-1 telemetry after her ownership was removed")
		}
		// Operators edit the bootstrap policy like any other.
		if _, err := svc.CreatePolicyVersion(ctx, registry.PeoplePolicyName, 0, []byte(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"*"}]}`), true); err != nil {
			t.Fatal(err)
		}
		bob = bind(registry.Subject{UserName: "bob"}, "bob~phone")
		if bob.Allowed(policy.ActionReceive, "things/lamp-1/telemetry/temp") {
			t.Error("bob still receives after the people policy was replaced")
		}
	})
}

var netipZero netip.Addr
