package events_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/events"
	"github.com/gatehouse-iot/gatehouse/internal/store"
	"github.com/gatehouse-iot/gatehouse/internal/store/storetest"
	"github.com/gatehouse-iot/gatehouse/internal/testenv"
)

func newClockedLog(t *testing.T) (*events.Log, *store.Store, *testenv.Clock) {
	t.Helper()
	s, err := store.Open(t.Context(), storetest.SQLiteDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	clk := testenv.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	return events.NewLog(s, clk.Now), s, clk
}

// TestAggregatorCountsRepeats: 300 denials of one key in a window are two
// rows (the first at once, the rest with their count when the window
// ends); another key has its own window; a window of 0 writes each.
func TestAggregatorCountsRepeats(t *testing.T) {
	l, s, clk := newClockedLog(t)
	a := l.NewAggregator(l.NewBatcher(16, nil), time.Minute)
	ctx := events.WithActor(t.Context(), "anonymous")
	for i := range 300 {
		a.Record(ctx, "1.2.3.4|iot:Connect|bad password", "broker.denied", fmt.Sprintf("client/c%d", i), map[string]any{"n": i})
		clk.Advance(100 * time.Millisecond) // 30 s in all
	}
	a.Record(ctx, "5.6.7.8|iot:Connect|bad password", "broker.denied", "client/other", nil)
	a.Flush(false) // no window has ended
	rows := func() []store.Event {
		t.Helper()
		evs, err := s.ListEvents(t.Context(), store.EventFilter{Type: "broker.denied"})
		if err != nil {
			t.Fatal(err)
		}
		return evs
	}
	if got := len(rows()); got != 2 {
		t.Fatalf("rows inside the window = %d, want 2 (the first of each key)", got)
	}
	clk.Advance(time.Minute)
	a.Flush(false)
	evs := rows()
	tests := []struct {
		name      string
		got, want any
	}{
		{"rows", len(evs), 3},
		{"first row's count", evs[0].Count, 0},
		{"aggregate's count", evs[2].Count, 299},
		{"aggregate's subject (the last)", evs[2].Subject, "client/c299"},
		{"aggregate's actor", evs[2].Actor, "anonymous"},
		{"aggregate's details (the last)", string(evs[2].Details), `{"n":299}`},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	// After the window the next denial is written at once again.
	a.Record(ctx, "1.2.3.4|iot:Connect|bad password", "broker.denied", "client/again", nil)
	if got := len(rows()); got != 4 {
		t.Errorf("rows after a new window opened = %d, want 4", got)
	}
	// No aggregation: every event is a row.
	plain := l.NewAggregator(l.NewBatcher(16, nil), 0)
	for range 3 {
		plain.Record(ctx, "k", "broker.denied", "client/p", nil)
	}
	if got := len(rows()); got != 7 {
		t.Errorf("rows without aggregation = %d, want 7", got)
	}
}

// TestPruneRecordsWhatItDeleted: pruning deletes events before the cut
// and records one events.pruned event; with nothing to delete it records
// nothing.
func TestPruneRecordsWhatItDeleted(t *testing.T) {
	l, s, clk := newClockedLog(t)
	ctx := events.WithActor(t.Context(), "user:admin")
	for range 3 {
		if _, err := l.Record(ctx, s, "thing.created", "thing/a", nil); err != nil {
			t.Fatal(err)
		}
	}
	clk.Advance(91 * 24 * time.Hour)
	if _, err := l.Record(ctx, s, "thing.updated", "thing/a", nil); err != nil {
		t.Fatal(err)
	}
	n, err := l.Prune(ctx, clk.Now().Add(-90*24*time.Hour))
	if err != nil || n != 3 {
		t.Fatalf("Prune = %d, %v; want 3", n, err)
	}
	evs, err := s.ListEvents(t.Context(), store.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, ev := range evs {
		types = append(types, ev.Type+" by "+ev.Actor)
	}
	if got, want := fmt.Sprint(types), "[thing.updated by user:admin events.pruned by user:admin]"; got != want {
		t.Errorf("events after pruning = %s, want %s", got, want)
	}
	if n, err := l.Prune(ctx, clk.Now().Add(-90*24*time.Hour)); err != nil || n != 0 {
		t.Errorf("second Prune = %d, %v; want 0", n, err)
	}
	if evs2, _ := s.ListEvents(t.Context(), store.EventFilter{}); len(evs2) != len(evs) {
		t.Errorf("a prune that deleted nothing recorded an event")
	}
}
