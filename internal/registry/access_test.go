package registry_test

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/events"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/store"
	"github.com/gatehouse-iot/gatehouse/internal/store/storetest"
	"github.com/gatehouse-iot/gatehouse/internal/testenv"
)

func TestAccessExpiry(t *testing.T) {
	for _, d := range storetest.Drivers() {
		t.Run(d.Name, func(t *testing.T) {
			ctx := t.Context()
			s, err := store.Open(ctx, d.DSN(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			clk := testenv.NewClock(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC))
			svc, err := registry.New(registry.Config{Store: s, Events: events.NewLog(s, clk.Now), Now: clk.Now,
				Rand: &lockedReader{r: seeded{rand.NewChaCha8([32]byte{2})}}, Hash: registry.HashParams{Memory: 64, Time: 1, Threads: 1}})
			if err != nil {
				t.Fatal(err)
			}
			for _, u := range []string{"alice", "bob"} {
				if _, err := svc.CreateUser(ctx, registry.NewUser{Username: u, Password: "password-" + u}); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := svc.CreateThing(ctx, registry.NewThing{Name: "pump-1"}); err != nil {
				t.Fatal(err)
			}
			if _, err := svc.AddRelationship(ctx, store.Relationship{SubjectKind: "user", Subject: "alice", Relation: "owner", ObjectKind: "thing", Object: "pump-1"}); err != nil {
				t.Fatal(err)
			}
			bob := registry.Caller{Username: "bob", Roles: []string{registry.RoleUser}}
			alice := registry.Caller{Username: "alice", Roles: []string{registry.RoleUser}}
			granted, err := svc.RequestAccess(ctx, bob, registry.NewAccessRequest{Thing: "pump-1", Relation: "viewer", Reason: "inspection"})
			if err != nil {
				t.Fatal(err)
			}
			stale, err := svc.RequestAccess(ctx, bob, registry.NewAccessRequest{Thing: "pump-1", Relation: "operator", Reason: "repair"})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := svc.ApproveAccessRequest(ctx, alice, granted.ID, 0, registry.Decision{TTL: "1h"}); err != nil {
				t.Fatal(err)
			}
			viewers := func() int {
				rels, err := svc.Relationships(ctx, store.RelationshipFilter{Relation: "viewer", Object: "pump-1"})
				if err != nil {
					t.Fatal(err)
				}
				return len(rels)
			}
			if got := viewers(); got != 1 {
				t.Fatalf("viewers after approval = %d, want 1", got)
			}

			clk.Advance(time.Hour)
			// Ignored from the moment it expires, before any purge.
			if got := viewers(); got != 0 {
				t.Errorf("viewers at expiry, before the purge = %d, want 0", got)
			}
			rep, err := svc.ExpireAccess(ctx, 2*time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			if want := (registry.ExpiryReport{Relationships: 1, Grants: 1}); rep != want {
				t.Errorf("ExpireAccess = %+v, want %+v", rep, want)
			}
			clk.Advance(90 * time.Minute)
			rep, err = svc.ExpireAccess(ctx, 2*time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			if want := (registry.ExpiryReport{PendingRequests: 1}); rep != want {
				t.Errorf("second ExpireAccess = %+v, want %+v", rep, want)
			}
			for id, want := range map[string]string{granted.ID: store.AccessExpired, stale.ID: store.AccessExpired} {
				a, err := svc.AccessRequest(ctx, bob, id)
				if err != nil || a.State != want {
					t.Errorf("request %s = %+v, %v; want state %s", id, a, err, want)
				}
			}
			if _, err := svc.CancelAccessRequest(ctx, bob, stale.ID, 0); !errors.Is(err, registry.ErrNotPending) {
				t.Errorf("cancel an expired request: err = %v, want ErrNotPending", err)
			}
			evs, err := s.ListEvents(ctx, store.EventFilter{Limit: 1000})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, ev := range evs {
				if ev.Type == "relationship.expired" || ev.Type == "access_request.expired" {
					got = append(got, ev.Type+" "+ev.Subject+" "+ev.Actor)
				}
			}
			want := []string{
				"relationship.expired thing/pump-1 system:expiry",
				"access_request.expired access_request/" + granted.ID + " system:expiry",
				"access_request.expired access_request/" + stale.ID + " system:expiry",
			}
			if !slices.Equal(got, want) {
				t.Errorf("expiry events = %q, want %q", got, want)
			}
		})
	}
}
