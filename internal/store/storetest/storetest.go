// Package storetest is the conformance suite every store driver passes. It
// exists so that SQLite (the embedded default) and PostgreSQL (production)
// are held to one behaviour: the same errors, ordering, optimistic
// concurrency and cascading deletes.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// Run runs the suite. newDSN returns the DSN of a fresh, empty database each
// time it is called.
func Run(t *testing.T, newDSN func(t *testing.T) string) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s *store.Store)
	}{
		{"Things", testThings},
		{"ThingErrors", testThingErrors},
		{"ThingPagination", testThingPagination},
		{"ConcurrentUpdatesLoseNothing", testConcurrentUpdates},
		{"ThingTypes", testThingTypes},
		{"Users", testUsers},
		{"Groups", testGroups},
		{"Relationships", testRelationships},
		{"RelationshipExpiry", testRelationshipExpiry}, {"AccessRequests", testAccessRequests}, {"AWSAccessKeys", testAWSAccessKeys}, {"SyncState", testSyncState},
		{"DeleteCascades", testDeleteCascades},
		{"APITokens", testAPITokens},
		{"Events", testEvents}, {"EventCountAndPrune", testEventCountAndPrune},
		{"TxRollback", testTxRollback},
		{"Policies", testPolicies},
		{"Authorizers", testAuthorizers},
		{"ProvisioningTemplates", testProvisioningTemplates},
		{"PKI", testPKI},
		{"Lobby", testLobby},
		{"ConsoleSessions", testConsoleSessions},
		{"AdapterSessions", testAdapterSessions},
		{"LobbyRemote", testLobbyRemote},
		{"SealedValues", testSealedValues},
		{"OAuthSigningKeys", testOAuthSigningKeys}, {"OAuthThingCredentials", testOAuthThingCredentials}, {"OAuthAssertionIDs", testOAuthAssertionIDs}, {"OAuthDeviceAuthorizations", testOAuthDeviceAuthorizations}, {"OAuthRefreshTokens", testOAuthRefreshTokens}, {"OAuthRevocationAndPurge", testOAuthRevocationAndPurge}, {"OAuthAppendEvents", testOAuthAppendEvents},
		{"OAuthApps", testOAuthApps},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := store.Open(t.Context(), newDSN(t))
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			t.Cleanup(func() { s.Close() })
			tc.fn(t, s)
		})
	}
	t.Run("Migrations", func(t *testing.T) { testMigrations(t, newDSN(t)) })
}

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func newThing(name string) *store.Thing {
	return &store.Thing{ID: "id-" + name, Name: name, Attributes: map[string]string{}, State: store.StateEnabled, CreatedAt: t0, UpdatedAt: t0}
}

func mustThingType(t *testing.T, s *store.Store, name string) {
	t.Helper()
	if err := s.CreateThingType(t.Context(), &store.ThingType{Name: name, CreatedAt: t0, UpdatedAt: t0}); err != nil {
		t.Fatalf("CreateThingType(%q): %v", name, err)
	}
}

func testThings(t *testing.T, s *store.Store) {
	ctx := t.Context()
	mustThingType(t, s, "pump")
	th := newThing("pump-1")
	th.ThingType = "pump"
	th.Attributes = map[string]string{"site": "north", "fw": "1.2"}
	if err := s.CreateThing(ctx, th); err != nil {
		t.Fatalf("CreateThing: %v", err)
	}
	if th.Version != 1 {
		t.Errorf("Version after create = %d, want 1", th.Version)
	}
	got, err := s.GetThing(ctx, "pump-1")
	if err != nil {
		t.Fatalf("GetThing: %v", err)
	}
	if got.ID != th.ID || got.ThingType != "pump" || got.Attributes["site"] != "north" || got.State != store.StateEnabled || !got.CreatedAt.Equal(t0) {
		t.Errorf("GetThing = %+v, want %+v", got, th)
	}
	got.State = store.StateDisabled
	got.Attributes["site"] = "south"
	got.UpdatedAt = t0.Add(time.Minute)
	if err := s.UpdateThing(ctx, got); err != nil {
		t.Fatalf("UpdateThing: %v", err)
	}
	if got.Version != 2 {
		t.Errorf("Version after update = %d, want 2", got.Version)
	}
	again, err := s.GetThing(ctx, "pump-1")
	if err != nil {
		t.Fatalf("GetThing: %v", err)
	}
	if again.State != store.StateDisabled || again.Attributes["site"] != "south" || again.Version != 2 || !again.UpdatedAt.Equal(t0.Add(time.Minute)) {
		t.Errorf("after update GetThing = %+v", again)
	}
	if err := s.DeleteThing(ctx, "pump-1"); err != nil {
		t.Fatalf("DeleteThing: %v", err)
	}
	if _, err := s.GetThing(ctx, "pump-1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetThing after delete: err = %v, want ErrNotFound", err)
	}
}

func testThingErrors(t *testing.T, s *store.Store) {
	ctx := t.Context()
	if err := s.CreateThing(ctx, newThing("a")); err != nil {
		t.Fatal(err)
	}
	dup := newThing("a")
	dup.ID = "other-id"
	bogusType := newThing("b")
	bogusType.ThingType = "no-such-type"
	stale := newThing("a")
	stale.Version = 7
	missing := newThing("ghost")
	missing.Version = 1
	tests := []struct {
		name string
		err  error
		want error
	}{
		{"duplicate name", s.CreateThing(ctx, dup), store.ErrExists},
		{"unknown thing type", s.CreateThing(ctx, bogusType), store.ErrNotFound},
		{"stale version", s.UpdateThing(ctx, stale), store.ErrStale},
		{"update missing", s.UpdateThing(ctx, missing), store.ErrNotFound},
		{"delete missing", s.DeleteThing(ctx, "ghost"), store.ErrNotFound},
	}
	for _, tc := range tests {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, tc.err, tc.want)
		}
	}
	things, err := s.ListThings(ctx, store.ThingFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(things) != 1 || things[0].ID != "id-a" || things[0].Version != 1 {
		t.Errorf("after failed writes ListThings = %+v, want only thing a at version 1", things)
	}
}

func testThingPagination(t *testing.T, s *store.Store) {
	ctx := t.Context()
	mustThingType(t, s, "lamp")
	for i := range 25 {
		th := newThing(fmt.Sprintf("dev-%02d", i))
		if i%5 == 0 {
			th.ThingType = "lamp"
			th.Attributes["color"] = "red"
		}
		if err := s.CreateThing(ctx, th); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateThing(ctx, newThing("other")); err != nil {
		t.Fatal(err)
	}
	var names []string
	after := ""
	for {
		page, err := s.ListThings(ctx, store.ThingFilter{Page: store.Page{After: after, Limit: 10}, Prefix: "dev-"})
		if err != nil {
			t.Fatal(err)
		}
		for _, th := range page {
			names = append(names, th.Name)
		}
		if len(page) < 10 {
			break
		}
		after = page[len(page)-1].Name
	}
	if len(names) != 25 || names[0] != "dev-00" || names[24] != "dev-24" {
		t.Errorf("paged names = %v, want dev-00..dev-24", names)
	}
	typed, err := s.ListThings(ctx, store.ThingFilter{ThingType: "lamp"})
	if err != nil {
		t.Fatal(err)
	}
	byAttr, err := s.ListThings(ctx, store.ThingFilter{AttributeName: "color", AttributeValue: "red", Page: store.Page{Limit: 3}})
	if err != nil {
		t.Fatal(err)
	}
	if len(typed) != 5 || len(byAttr) != 3 || byAttr[0].Name != "dev-00" {
		t.Errorf("filters: by type %d things, by attribute %d (first %v), want 5 and 3 (first dev-00)", len(typed), len(byAttr), byAttr)
	}
	n, err := s.CountThings(ctx)
	if err != nil || n != 26 {
		t.Errorf("CountThings = %d, %v, want 26", n, err)
	}
}

// testConcurrentUpdates runs read-modify-write transactions from many
// goroutines; every increment must survive.
func testConcurrentUpdates(t *testing.T, s *store.Store) {
	ctx := t.Context()
	th := newThing("counter")
	th.Attributes["n"] = "0"
	if err := s.CreateThing(ctx, th); err != nil {
		t.Fatal(err)
	}
	const workers, each = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for range workers {
		wg.Go(func() {
			for range each {
				errs <- s.InTx(ctx, func(tx *store.Tx) error {
					cur, err := tx.GetThing(ctx, "counter")
					if err != nil {
						return err
					}
					n, _ := strconv.Atoi(cur.Attributes["n"])
					cur.Attributes["n"] = strconv.Itoa(n + 1)
					return tx.UpdateThing(ctx, cur)
				})
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("InTx: %v", err)
		}
	}
	got, err := s.GetThing(ctx, "counter")
	if err != nil {
		t.Fatal(err)
	}
	if want := strconv.Itoa(workers * each); got.Attributes["n"] != want || got.Version != workers*each+1 {
		t.Errorf("counter = %s at version %d, want %s at version %d", got.Attributes["n"], got.Version, want, workers*each+1)
	}
}

func testThingTypes(t *testing.T, s *store.Store) {
	ctx := t.Context()
	tt := &store.ThingType{
		Name: "sensor", Description: "temperature sensor",
		AttributeSchema: []store.AttributeSpec{{Name: "site", Required: true, Pattern: "^[a-z]+$"}},
		DefaultPolicies: []string{"sensor-telemetry"}, AuthMethods: []string{"client_secret", "certificate"},
		Scopes: []string{"publish"}, ScopeDescriptions: map[string]string{"publish": "Send its readings"}, CreatedAt: t0, UpdatedAt: t0,
	}
	if err := s.CreateThingType(ctx, tt); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateThingType(ctx, &store.ThingType{Name: "sensor"}); !errors.Is(err, store.ErrExists) {
		t.Errorf("duplicate CreateThingType: err = %v, want ErrExists", err)
	}
	got, err := s.GetThingType(ctx, "sensor")
	if err != nil {
		t.Fatal(err)
	}
	if len(got.AttributeSchema) != 1 || !got.AttributeSchema[0].Required || got.DefaultPolicies[0] != "sensor-telemetry" || len(got.AuthMethods) != 2 || got.Scopes[0] != "publish" {
		t.Errorf("GetThingType = %+v, want %+v", got, tt)
	}
	if got.ScopeDescriptions["publish"] != "Send its readings" {
		t.Errorf("GetThingType scope descriptions = %v, want publish described", got.ScopeDescriptions)
	}
	got.Scopes = append(got.Scopes, "subscribe")
	got.ScopeDescriptions = map[string]string{"subscribe": "Hear its commands"}
	if err := s.UpdateThingType(ctx, got); err != nil {
		t.Fatal(err)
	}
	if again, err := s.GetThingType(ctx, "sensor"); err != nil || fmt.Sprint(again.ScopeDescriptions) != "map[subscribe:Hear its commands]" {
		t.Errorf("after UpdateThingType: scope descriptions = %v, %v", again, err)
	}
	th := newThing("s1")
	th.ThingType = "sensor"
	if err := s.CreateThing(ctx, th); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteThingType(ctx, "sensor"); !errors.Is(err, store.ErrInUse) {
		t.Errorf("DeleteThingType in use: err = %v, want ErrInUse", err)
	}
	if err := s.DeleteThing(ctx, "s1"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteThingType(ctx, "sensor"); err != nil {
		t.Errorf("DeleteThingType: %v", err)
	}
	list, err := s.ListThingTypes(ctx, store.Page{})
	if err != nil || len(list) != 0 {
		t.Errorf("ListThingTypes = %v, %v, want empty", list, err)
	}
}

func testUsers(t *testing.T, s *store.Store) {
	ctx := t.Context()
	u := &store.User{ID: "u1", Username: "alice", Email: "alice@example.com", PasswordHash: "$argon2id$x", Roles: []string{"admin"}, CreatedAt: t0, UpdatedAt: t0}
	if err := s.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateUser(ctx, &store.User{ID: "u2", Username: "alice"}); !errors.Is(err, store.ErrExists) {
		t.Errorf("duplicate username: err = %v, want ErrExists", err)
	}
	got, err := s.GetUser(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if got.PasswordHash != "$argon2id$x" || got.Roles[0] != "admin" || got.Disabled {
		t.Errorf("GetUser = %+v", got)
	}
	got.Disabled = true
	if err := s.UpdateUser(ctx, got); err != nil {
		t.Fatal(err)
	}
	got.Version = 1
	if err := s.UpdateUser(ctx, got); !errors.Is(err, store.ErrStale) {
		t.Errorf("stale UpdateUser: err = %v, want ErrStale", err)
	}
	list, err := s.ListUsers(ctx, store.Page{})
	if err != nil || len(list) != 1 || !list[0].Disabled {
		t.Errorf("ListUsers = %+v, %v", list, err)
	}
}

func testGroups(t *testing.T, s *store.Store) {
	ctx := t.Context()
	if err := s.CreateGroup(ctx, &store.Group{Name: "ops", Description: "operators", CreatedAt: t0, UpdatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	for _, m := range []store.GroupMember{{Group: "ops", Kind: store.KindUser, Member: "bob"}, {Group: "ops", Kind: store.KindThing, Member: "t1"}} {
		if err := s.AddGroupMember(ctx, &m); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AddGroupMember(ctx, &store.GroupMember{Group: "ops", Kind: store.KindUser, Member: "bob"}); !errors.Is(err, store.ErrExists) {
		t.Errorf("duplicate member: err = %v, want ErrExists", err)
	}
	if err := s.AddGroupMember(ctx, &store.GroupMember{Group: "nope", Kind: store.KindUser, Member: "bob"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("member of missing group: err = %v, want ErrNotFound", err)
	}
	members, err := s.ListGroupMembers(ctx, "ops")
	if err != nil || len(members) != 2 || members[0].Kind != store.KindThing {
		t.Errorf("ListGroupMembers = %+v, %v", members, err)
	}
	of, err := s.GroupsOf(ctx, store.KindUser, "bob")
	if err != nil || len(of) != 1 || of[0].Group != "ops" {
		t.Errorf("GroupsOf = %+v, %v", of, err)
	}
	if err := s.RemoveGroupMember(ctx, "ops", store.KindUser, "bob"); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveGroupMember(ctx, "ops", store.KindUser, "bob"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("remove twice: err = %v, want ErrNotFound", err)
	}
	if err := s.DeleteGroup(ctx, "ops"); err != nil {
		t.Fatal(err)
	}
	if members, _ := s.GroupsOf(ctx, store.KindThing, "t1"); len(members) != 0 {
		t.Errorf("memberships after DeleteGroup = %v, want none", members)
	}
}

func testRelationships(t *testing.T, s *store.Store) {
	ctx := t.Context()
	edges := []store.Relationship{
		{SubjectKind: store.KindUser, Subject: "alice", Relation: "owner", ObjectKind: store.KindThing, Object: "pump-1"},
		{SubjectKind: store.KindUser, Subject: "alice", Relation: "viewer", ObjectKind: store.KindThing, Object: "pump-2"},
		{SubjectKind: store.KindThing, Subject: "gw-1", Relation: "gateway", ObjectKind: store.KindThing, Object: "pump-1"},
	}
	for _, r := range edges {
		if err := s.AddRelationship(ctx, &r); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AddRelationship(ctx, &edges[0]); !errors.Is(err, store.ErrExists) {
		t.Errorf("duplicate edge: err = %v, want ErrExists", err)
	}
	tests := []struct {
		f    store.RelationshipFilter
		want int
	}{
		{store.RelationshipFilter{}, 3},
		{store.RelationshipFilter{Subject: "alice"}, 2},
		{store.RelationshipFilter{ObjectKind: store.KindThing, Object: "pump-1"}, 2},
		{store.RelationshipFilter{Relation: "gateway"}, 1},
	}
	for _, tc := range tests {
		got, err := s.ListRelationships(ctx, tc.f)
		if err != nil || len(got) != tc.want {
			t.Errorf("ListRelationships(%+v) = %d edges, %v; want %d", tc.f, len(got), err, tc.want)
		}
	}
	if err := s.RemoveRelationship(ctx, edges[1]); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveRelationship(ctx, edges[1]); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("remove twice: err = %v, want ErrNotFound", err)
	}
}

func testDeleteCascades(t *testing.T, s *store.Store) {
	ctx := t.Context()
	if err := s.CreateThing(ctx, newThing("pump-1")); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateUser(ctx, &store.User{ID: "u1", Username: "alice", CreatedAt: t0, UpdatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateGroup(ctx, &store.Group{Name: "g"}); err != nil {
		t.Fatal(err)
	}
	for _, m := range []store.GroupMember{{Group: "g", Kind: store.KindThing, Member: "pump-1"}, {Group: "g", Kind: store.KindUser, Member: "alice"}} {
		if err := s.AddGroupMember(ctx, &m); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AddRelationship(ctx, &store.Relationship{SubjectKind: store.KindUser, Subject: "alice", Relation: "owner", ObjectKind: store.KindThing, Object: "pump-1"}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateAPIToken(ctx, &store.APIToken{ID: "tok", Name: "alice cli", Hash: "h1", Username: "alice"}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteThing(ctx, "pump-1"); err != nil {
		t.Fatal(err)
	}
	if rels, _ := s.ListRelationships(ctx, store.RelationshipFilter{}); len(rels) != 0 {
		t.Errorf("relationships after DeleteThing = %v, want none", rels)
	}
	if err := s.DeleteUser(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if m, _ := s.ListGroupMembers(ctx, "g"); len(m) != 0 {
		t.Errorf("members after deletes = %v, want none", m)
	}
	if _, err := s.APITokenByHash(ctx, "h1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("token of deleted user: err = %v, want ErrNotFound", err)
	}
}

func testAPITokens(t *testing.T, s *store.Store) {
	ctx := t.Context()
	tok := &store.APIToken{ID: "t1", Name: "bootstrap", Hash: "abc", Roles: []string{"admin"}, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	if err := s.CreateAPIToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	got, err := s.APITokenByHash(ctx, "abc")
	if err != nil || got.ID != "t1" || got.Roles[0] != "admin" || !got.ExpiresAt.Equal(t0.Add(time.Hour)) {
		t.Errorf("APITokenByHash = %+v, %v", got, err)
	}
	if err := s.CreateAPIToken(ctx, &store.APIToken{ID: "t2", Name: "x", Hash: "abc"}); !errors.Is(err, store.ErrExists) {
		t.Errorf("duplicate hash: err = %v, want ErrExists", err)
	}
	if err := s.DeleteAPIToken(ctx, "t1"); err != nil {
		t.Fatal(err)
	}
	if list, _ := s.ListAPITokens(ctx); len(list) != 0 {
		t.Errorf("ListAPITokens after delete = %v", list)
	}
}

func testEvents(t *testing.T, s *store.Store) {
	ctx := t.Context()
	types := []string{"thing.created", "thing.updated", "user.created", "thing.deleted"}
	var last int64
	for i, typ := range types {
		ev := &store.Event{Time: t0.Add(time.Duration(i) * time.Second), Type: typ, Subject: "thing/pump-1", Actor: "admin", Details: json.RawMessage(`{"i":` + strconv.Itoa(i) + `}`)}
		if err := s.AppendEvent(ctx, ev); err != nil {
			t.Fatal(err)
		}
		if ev.ID <= last {
			t.Errorf("event %d: ID %d not above previous %d", i, ev.ID, last)
		}
		last = ev.ID
	}
	all, err := s.ListEvents(ctx, store.EventFilter{})
	if err != nil || len(all) != 4 {
		t.Fatalf("ListEvents = %v, %v", all, err)
	}
	tests := []struct {
		f    store.EventFilter
		want []string
	}{
		{store.EventFilter{Type: "thing."}, []string{"thing.created", "thing.updated", "thing.deleted"}},
		{store.EventFilter{Type: "user.created"}, []string{"user.created"}},
		{store.EventFilter{AfterID: all[1].ID}, []string{"user.created", "thing.deleted"}},
		{store.EventFilter{Limit: 1}, []string{"thing.created"}},
		{store.EventFilter{Actor: "nobody"}, nil},
		{store.EventFilter{Newest: true}, []string{"thing.deleted", "user.created", "thing.updated", "thing.created"}},
		{store.EventFilter{Newest: true, Limit: 2}, []string{"thing.deleted", "user.created"}},
		{store.EventFilter{Newest: true, BeforeID: all[2].ID}, []string{"thing.updated", "thing.created"}},
		{store.EventFilter{Newest: true, BeforeID: all[2].ID, Type: "thing."}, []string{"thing.updated", "thing.created"}},
		{store.EventFilter{Since: t0.Add(time.Second), Until: t0.Add(3 * time.Second)}, []string{"thing.updated", "user.created"}},
		{store.EventFilter{Since: t0.Add(time.Hour)}, nil},
	}
	checkEventTypes(t, s, tests)
	var d map[string]int
	if err := json.Unmarshal(all[2].Details, &d); err != nil || d["i"] != 2 || !all[2].Time.Equal(t0.Add(2*time.Second)) {
		t.Errorf("event details = %s (%v), time %v", all[2].Details, err, all[2].Time)
	}

	// RareType (read through the type index on SQLite) selects the same
	// events, including at the edges of a prefix's byte range ('-' is
	// just below '.', '/' just above).
	for _, typ := range []string{"thing-x.created", "thing/x", "thing.zz"} {
		if err := s.AppendEvent(ctx, &store.Event{Time: t0, Type: typ, Subject: "thing/pump-1", Actor: "admin"}); err != nil {
			t.Fatal(err)
		}
	}
	rare := []struct {
		f    store.EventFilter
		want []string
	}{
		{store.EventFilter{Type: "thing.", RareType: true}, []string{"thing.created", "thing.updated", "thing.deleted", "thing.zz"}},
		{store.EventFilter{Type: "thing.", RareType: true, AfterID: all[0].ID, BeforeID: all[3].ID}, []string{"thing.updated"}},
		{store.EventFilter{Type: "thing.", RareType: true, Newest: true, Limit: 2}, []string{"thing.zz", "thing.deleted"}},
		{store.EventFilter{Type: "thing.", RareType: true, Limit: 2}, []string{"thing.created", "thing.updated"}},
		{store.EventFilter{Type: "user.created", RareType: true}, []string{"user.created"}},
	}
	checkEventTypes(t, s, rare)
}

// checkEventTypes lists the events of each filter and compares their types.
func checkEventTypes(t *testing.T, s *store.Store, tests []struct {
	f    store.EventFilter
	want []string
}) {
	t.Helper()
	for _, tc := range tests {
		got, err := s.ListEvents(t.Context(), tc.f)
		if err != nil {
			t.Fatal(err)
		}
		var gotTypes []string
		for _, ev := range got {
			gotTypes = append(gotTypes, ev.Type)
		}
		if fmt.Sprint(gotTypes) != fmt.Sprint(tc.want) {
			t.Errorf("ListEvents(%+v) = %v, want %v", tc.f, gotTypes, tc.want)
		}
	}
}

func testTxRollback(t *testing.T, s *store.Store) {
	ctx := t.Context()
	boom := errors.New("boom")
	err := s.InTx(ctx, func(tx *store.Tx) error {
		if err := tx.CreateThing(ctx, newThing("ghost")); err != nil {
			return err
		}
		if err := tx.AppendEvent(ctx, &store.Event{Time: t0, Type: "thing.created", Subject: "thing/ghost", Actor: "x"}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("InTx = %v, want boom", err)
	}
	if _, err := s.GetThing(ctx, "ghost"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("thing after rollback: err = %v, want ErrNotFound", err)
	}
	if evs, _ := s.ListEvents(ctx, store.EventFilter{}); len(evs) != 0 {
		t.Errorf("events after rollback = %v, want none", evs)
	}
}

func testMigrations(t *testing.T, dsn string) {
	ctx := context.Background()
	s, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	db, bin, err := s.SchemaVersion(ctx)
	if err != nil || db != bin || bin < 1 {
		t.Errorf("SchemaVersion = %d, %d, %v; want equal and >= 1", db, bin, err)
	}
	s.Close()
	// Opening twice applies nothing new.
	s, err = store.Open(ctx, dsn)
	if err != nil {
		t.Fatalf("second Open: %v", err)
	}
	s.Close()
	// Pretend a newer binary migrated the database.
	MarkMigrated(t, dsn, bin+100)
	if _, err := store.Open(ctx, dsn); !errors.Is(err, store.ErrTooNew) {
		t.Errorf("Open of newer schema: err = %v, want ErrTooNew", err)
	}
}
