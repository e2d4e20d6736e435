package registry_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/events"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/store"
	"github.com/gatehouse-iot/gatehouse/internal/store/storetest"
)

// seeded is a deterministic randomness source for tests.
type seeded struct{ r *rand.ChaCha8 }

func (s seeded) Read(p []byte) (int, error) { return s.r.Read(p) }

type lockedReader struct {
	mu sync.Mutex
	r  seeded
}

func (l *lockedReader) Read(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Read(p)
}

// newService returns a registry over a fresh database of each driver.
func forEachDriver(t *testing.T, fn func(t *testing.T, svc *registry.Service, s *store.Store)) {
	for _, d := range storetest.Drivers() {
		t.Run(d.Name, func(t *testing.T) {
			s, err := store.Open(t.Context(), d.DSN(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
			clock := func() time.Time { return now }
			svc, err := registry.New(registry.Config{
				Store: s, Events: events.NewLog(s, clock), Now: clock,
				Rand: &lockedReader{r: seeded{rand.NewChaCha8([32]byte{1})}},
				Hash: registry.HashParams{Memory: 64, Time: 1, Threads: 1},
			})
			if err != nil {
				t.Fatal(err)
			}
			fn(t, svc, s)
		})
	}
}

func eventTypes(t *testing.T, s *store.Store) []string {
	t.Helper()
	evs, err := s.ListEvents(context.Background(), store.EventFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, ev := range evs {
		types = append(types, ev.Type)
	}
	return types
}

func ptr[T any](v T) *T { return &v }

func TestCreateThingValidation(t *testing.T) {
	forEachDriver(t, func(t *testing.T, svc *registry.Service, s *store.Store) {
		ctx := events.WithActor(t.Context(), "user:test")
		if _, err := svc.CreateThingType(ctx, registry.ThingTypeSpec{Name: "meter",
			AttributeSchema: []store.AttributeSpec{{Name: "site", Required: true, Pattern: "[a-z]+"}}}); err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name   string
			in     registry.NewThing
			fields []string // problem fields expected; nil means success
			is     error
		}{
			{name: "ok", in: registry.NewThing{Name: "m-1", ThingType: "meter", Attributes: map[string]string{"site": "north"}}},
			{name: "ok no type", in: registry.NewThing{Name: "plain:thing_2"}},
			{name: "empty name", in: registry.NewThing{Name: ""}, fields: []string{"name"}},
			{name: "illegal char", in: registry.NewThing{Name: "bad name"}, fields: []string{"name"}},
			{name: "too long", in: registry.NewThing{Name: strings.Repeat("a", 129)}, fields: []string{"name"}},
			{name: "unknown type", in: registry.NewThing{Name: "m-2", ThingType: "nope"}, fields: []string{"thingType"}},
			{name: "missing required attr", in: registry.NewThing{Name: "m-3", ThingType: "meter"}, fields: []string{"attributes.site"}},
			{name: "pattern mismatch", in: registry.NewThing{Name: "m-4", ThingType: "meter", Attributes: map[string]string{"site": "North1"}}, fields: []string{"attributes.site"}},
			{name: "bad attr name", in: registry.NewThing{Name: "m-5", Attributes: map[string]string{"a b": "x"}}, fields: []string{"attributes"}},
			{name: "attr value too long", in: registry.NewThing{Name: "m-6", Attributes: map[string]string{"a": strings.Repeat("x", 801)}}, fields: []string{"attributes.a"}},
			{name: "bad state", in: registry.NewThing{Name: "m-7", State: "on"}, fields: []string{"state"}},
			{name: "several problems at once", in: registry.NewThing{Name: "", State: "on"}, fields: []string{"name", "state"}},
			{name: "duplicate", in: registry.NewThing{Name: "m-1", ThingType: "meter", Attributes: map[string]string{"site": "x"}}, is: store.ErrExists},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				before := eventTypes(t, s)
				th, err := svc.CreateThing(ctx, tc.in)
				var inv *registry.InvalidError
				switch {
				case tc.is != nil:
					if !errors.Is(err, tc.is) {
						t.Fatalf("CreateThing err = %v, want %v", err, tc.is)
					}
				case tc.fields != nil:
					if !errors.As(err, &inv) {
						t.Fatalf("CreateThing err = %v, want InvalidError on %v", err, tc.fields)
					}
					var got []string
					for _, p := range inv.Problems {
						got = append(got, p.Field)
					}
					if strings.Join(got, ",") != strings.Join(tc.fields, ",") {
						t.Errorf("problem fields = %v, want %v", got, tc.fields)
					}
				default:
					if err != nil {
						t.Fatalf("CreateThing: %v", err)
					}
					if th.Version != 1 || th.State != store.StateEnabled || len(th.ID) != 32 {
						t.Errorf("CreateThing = %+v", th)
					}
				}
				after := eventTypes(t, s)
				wantEvents := len(before)
				if err == nil {
					wantEvents++
				}
				if len(after) != wantEvents {
					t.Errorf("events = %d, want %d (a failed create must record nothing)", len(after), wantEvents)
				}
			})
		}
		evs, _ := s.ListEvents(ctx, store.EventFilter{Type: "thing.created"})
		if len(evs) != 2 || evs[0].Actor != "user:test" || evs[0].Subject != "thing/m-1" {
			t.Errorf("thing.created events = %+v", evs)
		}
	})
}

func TestUpdateThing(t *testing.T) {
	forEachDriver(t, func(t *testing.T, svc *registry.Service, s *store.Store) {
		ctx := t.Context()
		if _, err := svc.CreateThing(ctx, registry.NewThing{Name: "lamp", Attributes: map[string]string{"a": "1", "b": "2"}}); err != nil {
			t.Fatal(err)
		}
		th, err := svc.UpdateThing(ctx, "lamp", 1, registry.ThingPatch{Attributes: map[string]*string{"a": nil, "c": ptr("3")}, State: ptr(store.StateDisabled)})
		if err != nil {
			t.Fatal(err)
		}
		if th.Version != 2 || th.State != store.StateDisabled || th.Attributes["c"] != "3" || len(th.Attributes) != 2 {
			t.Errorf("UpdateThing = %+v", th)
		}
		if _, err := svc.UpdateThing(ctx, "lamp", 1, registry.ThingPatch{State: ptr(store.StateEnabled)}); !errors.Is(err, store.ErrStale) {
			t.Errorf("stale update: err = %v, want ErrStale", err)
		}
		if _, err := svc.UpdateThing(ctx, "lamp", 0, registry.ThingPatch{ThingType: ptr("ghost")}); !errors.Is(err, registry.ErrInvalid) {
			t.Errorf("unknown type: err = %v, want ErrInvalid", err)
		}
		if _, err := svc.UpdateThing(ctx, "nope", 0, registry.ThingPatch{}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("missing thing: err = %v, want ErrNotFound", err)
		}
		got, _ := svc.Thing(ctx, "lamp")
		if got.Version != 2 || got.State != store.StateDisabled {
			t.Errorf("failed updates changed the thing: %+v", got)
		}
		if err := svc.DeleteThing(ctx, "lamp", 1); !errors.Is(err, store.ErrStale) {
			t.Errorf("stale delete: err = %v, want ErrStale", err)
		}
		if err := svc.DeleteThing(ctx, "lamp", 2); err != nil {
			t.Errorf("delete: %v", err)
		}
		if got, want := strings.Join(eventTypes(t, s), " "), "thing.created thing.updated thing.deleted"; got != want {
			t.Errorf("events = %s, want %s", got, want)
		}
	})
}

// TestConcurrentPatchesLoseNothing has many writers patch distinct
// attributes of one thing without If-Match; every patch must survive.
func TestConcurrentPatchesLoseNothing(t *testing.T) {
	forEachDriver(t, func(t *testing.T, svc *registry.Service, s *store.Store) {
		ctx := t.Context()
		if _, err := svc.CreateThing(ctx, registry.NewThing{Name: "shared"}); err != nil {
			t.Fatal(err)
		}
		const n = 20
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				k := "k" + string(rune('a'+i))
				if _, err := svc.UpdateThing(ctx, "shared", 0, registry.ThingPatch{Attributes: map[string]*string{k: ptr("v")}}); err != nil {
					t.Errorf("UpdateThing(%s): %v", k, err)
				}
			})
		}
		wg.Wait()
		th, err := svc.Thing(ctx, "shared")
		if err != nil {
			t.Fatal(err)
		}
		if len(th.Attributes) != n || th.Version != n+1 {
			t.Errorf("after %d concurrent patches: %d attributes at version %d, want %d at %d", n, len(th.Attributes), th.Version, n, n+1)
		}
	})
}

func TestUsersAndAuthenticate(t *testing.T) {
	forEachDriver(t, func(t *testing.T, svc *registry.Service, s *store.Store) {
		ctx := t.Context()
		u, err := svc.CreateUser(ctx, registry.NewUser{Username: "alice", Password: "correct horse", Email: "alice@example.com"})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(u.PasswordHash, "$argon2id$") || strings.Contains(u.PasswordHash, "correct horse") {
			t.Errorf("password stored as %q, want an argon2id hash", u.PasswordHash)
		}
		if u.Roles[0] != registry.RoleUser {
			t.Errorf("default roles = %v, want [user]", u.Roles)
		}
		tests := []struct {
			user, pw string
			ok       bool
		}{
			{"alice", "correct horse", true},
			{"alice", "wrong horse", false},
			{"bob", "correct horse", false},
			{"alice", "", false},
		}
		for _, tc := range tests {
			_, err := svc.Authenticate(ctx, tc.user, tc.pw)
			if got := err == nil; got != tc.ok {
				t.Errorf("Authenticate(%q, %q) ok = %v (%v), want %v", tc.user, tc.pw, got, err, tc.ok)
			}
			if err != nil && !errors.Is(err, registry.ErrBadCredentials) {
				t.Errorf("Authenticate(%q) err = %v, want ErrBadCredentials", tc.user, err)
			}
		}
		if _, err := svc.UpdateUser(ctx, "alice", 0, registry.UserPatch{Disabled: ptr(true)}); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Authenticate(ctx, "alice", "correct horse"); !errors.Is(err, registry.ErrBadCredentials) {
			t.Errorf("disabled user authenticates: err = %v", err)
		}
		invalid := []registry.NewUser{
			{Username: "bad user"},
			{Username: "carol", Password: "short"},
			{Username: "dave", Roles: []string{"root"}},
			{Username: "erin", Email: "not-an-email"},
		}
		for _, in := range invalid {
			if _, err := svc.CreateUser(ctx, in); !errors.Is(err, registry.ErrInvalid) {
				t.Errorf("CreateUser(%+v) err = %v, want ErrInvalid", in, err)
			}
		}
		evs, _ := s.ListEvents(ctx, store.EventFilter{})
		for _, ev := range evs {
			if strings.Contains(string(ev.Details), "horse") || strings.Contains(string(ev.Details), "argon2") {
				t.Errorf("event %s leaks a password: %s", ev.Type, ev.Details)
			}
		}
	})
}

func TestRelationshipsAndGroups(t *testing.T) {
	forEachDriver(t, func(t *testing.T, svc *registry.Service, s *store.Store) {
		ctx := t.Context()
		for _, n := range []string{"gw-1", "sensor-1"} {
			if _, err := svc.CreateThing(ctx, registry.NewThing{Name: n}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := svc.CreateUser(ctx, registry.NewUser{Username: "alice"}); err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name string
			r    store.Relationship
			ok   bool
		}{
			{"owner", store.Relationship{SubjectKind: "user", Subject: "alice", Relation: "owner", ObjectKind: "thing", Object: "sensor-1"}, true},
			{"gateway", store.Relationship{SubjectKind: "thing", Subject: "gw-1", Relation: "gateway", ObjectKind: "thing", Object: "sensor-1"}, true},
			{"owner of user", store.Relationship{SubjectKind: "user", Subject: "alice", Relation: "owner", ObjectKind: "user", Object: "alice"}, false},
			{"self gateway", store.Relationship{SubjectKind: "thing", Subject: "gw-1", Relation: "gateway", ObjectKind: "thing", Object: "gw-1"}, false},
			{"unknown relation", store.Relationship{SubjectKind: "user", Subject: "alice", Relation: "likes", ObjectKind: "thing", Object: "gw-1"}, false},
			{"missing user", store.Relationship{SubjectKind: "user", Subject: "bob", Relation: "viewer", ObjectKind: "thing", Object: "gw-1"}, false},
			{"missing thing", store.Relationship{SubjectKind: "user", Subject: "alice", Relation: "viewer", ObjectKind: "thing", Object: "nope"}, false},
		}
		for _, tc := range tests {
			_, err := svc.AddRelationship(ctx, tc.r)
			if got := err == nil; got != tc.ok {
				t.Errorf("%s: AddRelationship ok = %v (%v), want %v", tc.name, got, err, tc.ok)
			}
		}
		if _, err := svc.CreateGroup(ctx, registry.NewGroup{Name: "ops"}); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.AddGroupMember(ctx, "ops", "user", "alice"); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.AddGroupMember(ctx, "ops", "user", "nobody"); !errors.Is(err, registry.ErrInvalid) {
			t.Errorf("add missing user: err = %v, want ErrInvalid", err)
		}
		if _, err := svc.AddGroupMember(ctx, "nogroup", "user", "alice"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("add to missing group: err = %v, want ErrNotFound", err)
		}
		if err := svc.DeleteUser(ctx, "alice", 0); err != nil {
			t.Fatal(err)
		}
		rels, _ := svc.Relationships(ctx, store.RelationshipFilter{})
		if len(rels) != 1 || rels[0].Relation != "gateway" {
			t.Errorf("relationships after deleting alice = %+v, want only the gateway edge", rels)
		}
	})
}

func TestAPITokensAndBootstrap(t *testing.T) {
	forEachDriver(t, func(t *testing.T, svc *registry.Service, s *store.Store) {
		ctx := t.Context()
		boot, err := svc.EnsureBootstrap(ctx)
		if err != nil || boot == nil {
			t.Fatalf("EnsureBootstrap = %v, %v", boot, err)
		}
		again, err := svc.EnsureBootstrap(ctx)
		if err != nil || again != nil {
			t.Errorf("second EnsureBootstrap = %v, %v; want nothing created", again, err)
		}
		tok, err := svc.AuthenticateAPIToken(ctx, boot.Token)
		if err != nil || tok.Roles[0] != registry.RoleAdmin {
			t.Fatalf("AuthenticateAPIToken(bootstrap) = %+v, %v", tok, err)
		}
		if _, err := svc.Authenticate(ctx, "admin", boot.Password); err != nil {
			t.Errorf("bootstrap password: %v", err)
		}
		stored, _ := s.ListAPITokens(ctx)
		if len(stored) != 1 || stored[0].Hash == boot.Token || stored[0].Hash != registry.HashAPIToken(boot.Token) {
			t.Errorf("stored token = %+v, want only the hash", stored)
		}
		bad := []string{"", "ghat_", "ghat_nope", boot.Token + "x", "Bearer " + boot.Token, strings.Repeat("ghat_a", 100)}
		for _, b := range bad {
			if _, err := svc.AuthenticateAPIToken(ctx, b); !errors.Is(err, registry.ErrBadToken) {
				t.Errorf("AuthenticateAPIToken(%.20q) err = %v, want ErrBadToken", b, err)
			}
		}
		short, _, err := svc.CreateAPIToken(ctx, "short", "", []string{"operator"}, time.Nanosecond)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := svc.AuthenticateAPIToken(ctx, short); !errors.Is(err, registry.ErrBadToken) {
			t.Errorf("expired token err = %v, want ErrBadToken", err)
		}
		if err := svc.RevokeAPIToken(ctx, tok.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.AuthenticateAPIToken(ctx, boot.Token); !errors.Is(err, registry.ErrBadToken) {
			t.Errorf("revoked token err = %v, want ErrBadToken", err)
		}
	})
}

func TestPasswordHash(t *testing.T) {
	p := registry.HashParams{Memory: 64, Time: 1, Threads: 1}
	h, err := registry.HashPassword("s3cret-pass", p, seeded{rand.NewChaCha8([32]byte{})})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		hash, pw string
		ok       bool
		err      bool
	}{
		{h, "s3cret-pass", true, false},
		{h, "s3cret-pasS", false, false},
		{"$argon2id$v=19$m=64,t=1,p=1$AAAA", "x", false, true},
		{"plain", "plain", false, true},
		{strings.Replace(h, "m=64", "m=99999999", 1), "s3cret-pass", false, true},
	}
	for _, tc := range tests {
		ok, err := registry.CheckPassword(tc.hash, tc.pw)
		if ok != tc.ok || (err != nil) != tc.err {
			t.Errorf("CheckPassword(%.30q, %q) = %v, %v; want %v, err %v", tc.hash, tc.pw, ok, err, tc.ok, tc.err)
		}
	}
}

// TestScopeDescriptionsValidated: a thing type describes only its own
// scopes, each in 1 to 200 characters; a patch replaces the descriptions.
func TestScopeDescriptionsValidated(t *testing.T) {
	forEachDriver(t, func(t *testing.T, svc *registry.Service, _ *store.Store) {
		ctx := t.Context()
		tests := []struct {
			name string
			d    map[string]string
			ok   bool
		}{
			{"described", map[string]string{"publish": "Send its readings"}, true},
			{"not a scope of the type", map[string]string{"admin": "Everything"}, false},
			{"blank", map[string]string{"publish": "  "}, false},
			{"too long", map[string]string{"publish": strings.Repeat("x", 201)}, false},
		}
		for i, tc := range tests {
			_, err := svc.CreateThingType(ctx, registry.ThingTypeSpec{Name: fmt.Sprintf("t%d", i), Scopes: []string{"publish"}, ScopeDescriptions: tc.d})
			var invalid *registry.InvalidError
			if tc.ok != (err == nil) || (!tc.ok && !errors.As(err, &invalid)) {
				t.Errorf("%s: err = %v, want ok=%v", tc.name, err, tc.ok)
			}
		}
		none := map[string]string{}
		tt, err := svc.UpdateThingType(ctx, "t0", 0, registry.ThingTypePatch{ScopeDescriptions: &none})
		if err != nil || len(tt.ScopeDescriptions) != 0 {
			t.Errorf("clearing the descriptions = %+v, %v", tt, err)
		}
	})
}
