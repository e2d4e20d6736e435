package storetest

import (
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// testEventCountAndPrune: an aggregated event keeps its count through
// both append paths; pruning deletes exactly the events before the cut,
// more than one batch of them, and leaves the IDs of the rest alone.
func testEventCountAndPrune(t *testing.T, s *store.Store) {
	ctx := t.Context()
	old := make([]*store.Event, 5100) // more than one prune batch
	for i := range old {
		old[i] = &store.Event{Time: t0.Add(time.Duration(i) * time.Millisecond), Type: "broker.denied", Subject: "client/x", Actor: "anonymous"}
	}
	old[0].Count = 300
	if err := s.InTx(ctx, func(tx *store.Tx) error { return tx.AppendEvents(ctx, old) }); err != nil {
		t.Fatal(err)
	}
	keep := &store.Event{Time: t0.Add(48 * time.Hour), Type: "broker.denied", Subject: "client/y", Actor: "anonymous", Count: 7}
	if err := s.AppendEvent(ctx, keep); err != nil {
		t.Fatal(err)
	}
	one := &store.Event{Time: t0.Add(49 * time.Hour), Type: "thing.created", Subject: "thing/a", Actor: "admin"}
	if err := s.AppendEvent(ctx, one); err != nil {
		t.Fatal(err)
	}
	first, err := s.ListEvents(ctx, store.EventFilter{Limit: 1})
	if err != nil || len(first) != 1 {
		t.Fatalf("ListEvents = %v, %v", first, err)
	}
	if got := first[0].Count; got != 300 {
		t.Errorf("count of the batch-appended aggregate = %d, want 300", got)
	}

	n, err := s.PruneEventsBefore(ctx, t0.Add(24*time.Hour))
	if err != nil || n != int64(len(old)) {
		t.Fatalf("PruneEventsBefore = %d, %v; want %d", n, err, len(old))
	}
	rest, err := s.ListEvents(ctx, store.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		got, want any
	}{
		{"events left", len(rest), 2},
		{"first left", rest[0].ID, keep.ID},
		{"its count", rest[0].Count, 7},
		{"a plain event's count", rest[1].Count, 0},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	if n, err := s.PruneEventsBefore(ctx, t0.Add(24*time.Hour)); err != nil || n != 0 {
		t.Errorf("pruning again = %d, %v; want 0", n, err)
	}
}
