package cluster

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"
)

// TestSessions: a session written on one node is read on another; writes
// and deletes conditional on a revision fail once another replica wrote
// (a takeover), and an expired session reads as none.
func TestSessions(t *testing.T) {
	nodes, _ := startCluster(t, 2)
	waitReady(t, nodes...)
	a, b := nodes[0], nodes[1]
	ctx := context.Background()
	subs := []Subscription{{Filter: "sensors/+", QoS: 1, NoLocal: true}, {Filter: "$share/g/jobs/#", QoS: 0, Identifier: 7}}

	r1, err := a.SaveSession(ctx, "dev/1 ü", Session{Subscriptions: subs, Expiry: 300}, 0)
	if err != nil {
		t.Fatal(err)
	}
	got, rev, ok, err := b.LoadSession(ctx, "dev/1 ü")
	if want := (Session{Replica: "r0", Subscriptions: subs, Expiry: 300}); err != nil || !ok || rev != r1 || !reflect.DeepEqual(got, want) {
		t.Fatalf("LoadSession on the other node = %+v, %d, %v, %v; want %+v, %d", got, rev, ok, err, want, r1)
	}
	r2, err := a.SaveSession(ctx, "dev/1 ü", Session{Expiry: 300}, r1)
	if err != nil {
		t.Fatalf("SaveSession over its own revision: %v", err)
	}
	// b takes the client over: it replaces whatever is stored.
	r3, err := b.SaveSession(ctx, "dev/1 ü", Session{Subscriptions: subs[:1], Expiry: 60}, 0)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		got  error
	}{
		{"a's write over its last revision, after b's", func() error { _, err := a.SaveSession(ctx, "dev/1 ü", Session{}, r2); return err }()},
		{"a's delete over its last revision, after b's", a.DeleteSession(ctx, "dev/1 ü", r2)},
	}
	for _, tc := range tests {
		if !errors.Is(tc.got, ErrSessionMoved) {
			t.Errorf("%s = %v, want ErrSessionMoved", tc.name, tc.got)
		}
	}
	if got, rev, ok, err := a.LoadSession(ctx, "dev/1 ü"); err != nil || !ok || rev != r3 || got.Replica != "r1" || len(got.Subscriptions) != 1 {
		t.Fatalf("after the takeover LoadSession = %+v, %d, %v, %v; want b's (revision %d)", got, rev, ok, err, r3)
	}
	if err := b.DeleteSession(ctx, "dev/1 ü", r3); err != nil {
		t.Fatalf("DeleteSession over its own revision: %v", err)
	}
	if _, _, ok, err := a.LoadSession(ctx, "dev/1 ü"); err != nil || ok {
		t.Fatalf("LoadSession after the delete = %v, %v; want none", ok, err)
	}

	// Disconnected longer ago than its expiry: none, and removed.
	long := time.Now().Add(-time.Hour).Unix()
	if _, err := a.SaveSession(ctx, "dev-2", Session{Subscriptions: subs, Expiry: 60, Disconnected: long}, 0); err != nil {
		t.Fatal(err)
	}
	if _, _, ok, err := b.LoadSession(ctx, "dev-2"); err != nil || ok {
		t.Fatalf("LoadSession of an expired session = %v, %v; want none", ok, err)
	}
}

// TestAnnouncementsOrdered: a connection announced after its replica
// received another's announcement is stamped later even when its clock is
// behind; stamps at the same instant are ordered by replica, the same way
// everywhere.
func TestAnnouncementsOrdered(t *testing.T) {
	nodes, boxes := startCluster(t, 2)
	waitReady(t, nodes...)
	ahead := time.Now().Add(time.Hour)
	nodes[0].cfg.Now = func() time.Time { return ahead } // a fast clock
	first, err := nodes[0].AnnounceClient("dev-9")
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-boxes[1].connected:
	case <-time.After(30 * time.Second):
		t.Fatal("announcement not received")
	}
	second, err := nodes[1].AnnounceClient("dev-9") // its clock an hour behind
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		got, want bool
	}{
		{"the later announcement is After the earlier", second.After(first), true},
		{"and not the other way", first.After(second), false},
		{"same instant: by replica", Stamp{5, "r1"}.After(Stamp{5, "r0"}), true},
		{"a stamp is not After itself", first.After(first), false},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("%s: got %v, want %v (%+v, %+v)", tc.name, tc.got, tc.want, first, second)
		}
	}
}
