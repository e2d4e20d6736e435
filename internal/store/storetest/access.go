package storetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/store"
)

func testRelationshipExpiry(t *testing.T, s *store.Store) {
	ctx := t.Context()
	edge := func(subject, object string, exp time.Time) store.Relationship {
		return store.Relationship{SubjectKind: store.KindUser, Subject: subject, Relation: "viewer", ObjectKind: store.KindThing, Object: object, CreatedAt: t0, ExpiresAt: exp}
	}
	for _, r := range []store.Relationship{
		edge("alice", "pump-1", time.Time{}),
		edge("bob", "pump-1", t0.Add(time.Hour)),
		edge("carol", "pump-1", t0.Add(2*time.Hour)),
	} {
		if err := s.AddRelationship(ctx, &r); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		at   time.Time
		want []string
	}{
		{t0, []string{"alice", "bob", "carol"}},
		{t0.Add(time.Hour - time.Microsecond), []string{"alice", "bob", "carol"}},
		{t0.Add(time.Hour), []string{"alice", "carol"}},
		{t0.Add(3 * time.Hour), []string{"alice"}},
	}
	for _, tc := range tests {
		rels, err := s.ListRelationships(ctx, store.RelationshipFilter{Object: "pump-1", At: tc.at})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range rels {
			got = append(got, r.Subject)
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("ListRelationships at %s = %v, want %v", tc.at.Sub(t0), got, tc.want)
		}
	}
	rels, _ := s.ListRelationships(ctx, store.RelationshipFilter{Subject: "bob", At: t0})
	if len(rels) != 1 || !rels[0].ExpiresAt.Equal(t0.Add(time.Hour)) {
		t.Errorf("bob's edge = %+v, want expiry %s", rels, t0.Add(time.Hour))
	}

	// A grant extends a timed edge, never shortens it, and leaves a
	// permanent edge permanent.
	grants := []struct {
		subject string
		exp     time.Time
		want    time.Time
	}{
		{"bob", t0.Add(5 * time.Hour), t0.Add(5 * time.Hour)},
		{"bob", t0.Add(90 * time.Minute), t0.Add(5 * time.Hour)},
		{"alice", t0.Add(time.Hour), time.Time{}},
		{"dave", t0.Add(time.Hour), t0.Add(time.Hour)},
	}
	for _, g := range grants {
		r := edge(g.subject, "pump-1", g.exp)
		got, err := s.GrantRelationship(ctx, &r)
		if err != nil {
			t.Fatalf("GrantRelationship(%s): %v", g.subject, err)
		}
		if !got.ExpiresAt.Equal(g.want) {
			t.Errorf("GrantRelationship(%s, %s) expires %v, want %v", g.subject, g.exp, got.ExpiresAt, g.want)
		}
	}

	purged, err := s.PurgeExpiredRelationships(ctx, t0.Add(2*time.Hour), 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range purged {
		got = append(got, r.Subject)
	}
	if fmt.Sprint(got) != "[dave carol]" {
		t.Errorf("purged %v, want [dave carol]", got)
	}
	if again, _ := s.PurgeExpiredRelationships(ctx, t0.Add(2*time.Hour), 0); len(again) != 0 {
		t.Errorf("second purge removed %v, want nothing", again)
	}
	// An expired edge not yet purged does not block a new one.
	r := edge("bob", "pump-1", t0.Add(6*time.Hour))
	r.CreatedAt = t0.Add(5 * time.Hour)
	if err := s.AddRelationship(ctx, &r); err != nil {
		t.Errorf("AddRelationship over an expired edge: %v", err)
	}
	r = edge("alice", "pump-1", time.Time{})
	if err := s.AddRelationship(ctx, &r); !errors.Is(err, store.ErrExists) {
		t.Errorf("AddRelationship over a live edge: err = %v, want ErrExists", err)
	}
}

func testAccessRequests(t *testing.T, s *store.Store) {
	ctx := t.Context()
	mk := func(id, requester, thing, state string, created time.Time) *store.AccessRequest {
		return &store.AccessRequest{ID: id, Requester: requester, Thing: thing, Relation: "viewer", Reason: "maintenance", State: state, CreatedAt: created, UpdatedAt: created}
	}
	reqs := []*store.AccessRequest{
		mk("a1", "bob", "pump-1", store.AccessPending, t0),
		mk("a2", "carol", "pump-2", store.AccessPending, t0.Add(time.Minute)),
		mk("a3", "bob", "pump-2", store.AccessDenied, t0.Add(2*time.Minute)),
	}
	for _, a := range reqs {
		if err := s.CreateAccessRequest(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateAccessRequest(ctx, mk("a1", "x", "y", store.AccessPending, t0)); !errors.Is(err, store.ErrExists) {
		t.Errorf("duplicate id: err = %v, want ErrExists", err)
	}
	owner := store.Relationship{SubjectKind: store.KindUser, Subject: "alice", Relation: "owner", ObjectKind: store.KindThing, Object: "pump-2", CreatedAt: t0}
	if err := s.AddRelationship(ctx, &owner); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		f    store.AccessRequestFilter
		want string
	}{
		{"all", store.AccessRequestFilter{}, "[a1 a2 a3]"},
		{"requester", store.AccessRequestFilter{Requester: "bob"}, "[a1 a3]"},
		{"thing and state", store.AccessRequestFilter{Thing: "pump-2", State: store.AccessPending}, "[a2]"},
		{"visible to owner", store.AccessRequestFilter{VisibleTo: "alice", At: t0}, "[a2 a3]"},
		{"visible to requester", store.AccessRequestFilter{VisibleTo: "carol", At: t0}, "[a2]"},
		{"created before", store.AccessRequestFilter{CreatedBefore: t0.Add(time.Minute)}, "[a1]"},
		{"page", store.AccessRequestFilter{After: "a1", Limit: 1}, "[a2]"},
	}
	for _, tc := range tests {
		got, err := s.ListAccessRequests(ctx, tc.f)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var ids []string
		for _, a := range got {
			ids = append(ids, a.ID)
		}
		if fmt.Sprint(ids) != tc.want {
			t.Errorf("%s: ListAccessRequests = %v, want %s", tc.name, ids, tc.want)
		}
	}

	a, err := s.GetAccessRequest(ctx, "a1")
	if err != nil {
		t.Fatal(err)
	}
	if a.Reason != "maintenance" || a.Version != 1 || !a.CreatedAt.Equal(t0) {
		t.Errorf("GetAccessRequest = %+v", a)
	}
	stale := *a
	a.State, a.DecidedBy, a.GrantExpiresAt, a.DecidedAt, a.UpdatedAt = store.AccessApproved, "user:alice", t0.Add(time.Hour), t0, t0
	if err := s.UpdateAccessRequest(ctx, a); err != nil || a.Version != 2 {
		t.Fatalf("UpdateAccessRequest: %v, version %d", err, a.Version)
	}
	if err := s.UpdateAccessRequest(ctx, &stale); !errors.Is(err, store.ErrStale) {
		t.Errorf("stale update: err = %v, want ErrStale", err)
	}
	got, _ := s.GetAccessRequest(ctx, "a1")
	if got.State != store.AccessApproved || got.DecidedBy != "user:alice" || !got.GrantExpiresAt.Equal(t0.Add(time.Hour)) {
		t.Errorf("after update = %+v", got)
	}
	ended, _ := s.ListAccessRequests(ctx, store.AccessRequestFilter{State: store.AccessApproved, GrantEndedBy: t0.Add(time.Hour)})
	if len(ended) != 1 || ended[0].ID != "a1" {
		t.Errorf("grants ended = %+v, want a1", ended)
	}
	if ended, _ := s.ListAccessRequests(ctx, store.AccessRequestFilter{GrantEndedBy: t0.Add(time.Minute)}); len(ended) != 0 {
		t.Errorf("grants ended early = %+v, want none", ended)
	}
	if _, err := s.GetAccessRequest(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("missing: err = %v, want ErrNotFound", err)
	}
	missing := mk("nope", "x", "y", store.AccessDenied, t0)
	if err := s.UpdateAccessRequest(ctx, missing); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("update missing: err = %v, want ErrNotFound", err)
	}
}

func testAWSAccessKeys(t *testing.T, s *store.Store) {
	ctx := t.Context()
	k := &store.AWSAccessKey{ID: "GHAKEXAMPLE1", Name: "sync", SealedSecret: []byte("sealed-bytes"), Roles: []string{"admin"}, CreatedAt: t0}
	if err := s.CreateAWSAccessKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateAWSAccessKey(ctx, k); !errors.Is(err, store.ErrExists) {
		t.Errorf("duplicate: err = %v, want ErrExists", err)
	}
	got, err := s.GetAWSAccessKey(ctx, k.ID)
	if err != nil || string(got.SealedSecret) != "sealed-bytes" || got.Name != "sync" || fmt.Sprint(got.Roles) != "[admin]" || !got.CreatedAt.Equal(t0) {
		t.Errorf("GetAWSAccessKey = %+v, %v", got, err)
	}
	if list, _ := s.ListAWSAccessKeys(ctx); len(list) != 1 {
		t.Errorf("ListAWSAccessKeys = %d keys, want 1", len(list))
	}
	if err := s.DeleteAWSAccessKey(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetAWSAccessKey(ctx, k.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("after delete: err = %v, want ErrNotFound", err)
	}
	if err := s.DeleteAWSAccessKey(ctx, k.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("delete twice: err = %v, want ErrNotFound", err)
	}
}

func testSyncState(t *testing.T, s *store.Store) {
	ctx := t.Context()
	st := store.SyncState{Source: "aws-iot:x", Kind: "thing", Name: "pump-1", RemoteVersion: 3, LocalVersion: 2, Hash: "h1", SyncedAt: t0}
	if err := s.PutSyncState(ctx, st); err != nil {
		t.Fatal(err)
	}
	st.RemoteVersion, st.Hash = 4, "h2"
	if err := s.PutSyncState(ctx, st); err != nil {
		t.Fatal(err)
	}
	other := store.SyncState{Source: "aws-iot:y", Kind: "thing", Name: "pump-1", RemoteVersion: 1, LocalVersion: 1, Hash: "h", SyncedAt: t0}
	if err := s.PutSyncState(ctx, other); err != nil {
		t.Fatal(err)
	}
	got, err := s.ListSyncState(ctx, "aws-iot:x")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got["thing/pump-1"] != st {
		t.Errorf("ListSyncState = %+v, want %+v", got, st)
	}
	for range 2 { // forgetting twice is not an error
		if err := s.DeleteSyncState(ctx, "aws-iot:x", "thing", "pump-1"); err != nil {
			t.Fatalf("DeleteSyncState: %v", err)
		}
	}
	if got, _ := s.ListSyncState(ctx, "aws-iot:x"); len(got) != 0 {
		t.Errorf("after DeleteSyncState: %+v, want none", got)
	}
	if got, _ := s.ListSyncState(ctx, "aws-iot:y"); len(got) != 1 {
		t.Errorf("DeleteSyncState of source x touched source y: %+v", got)
	}
}
