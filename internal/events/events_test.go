package events_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/events"
	"github.com/gatehouse-iot/gatehouse/internal/store"
	"github.com/gatehouse-iot/gatehouse/internal/store/storetest"
)

func newLog(t testing.TB) (*events.Log, *store.Store) {
	t.Helper()
	s, err := store.Open(t.Context(), storetest.SQLiteDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return events.NewLog(s, func() time.Time { return t0 }), s
}

func TestRecordCarriesActorAndDetails(t *testing.T) {
	l, s := newLog(t)
	tests := []struct {
		ctx       context.Context
		wantActor string
	}{
		{context.Background(), "system"},
		{events.WithActor(context.Background(), "user:alice"), "user:alice"},
	}
	for _, tc := range tests {
		ev, err := l.Record(tc.ctx, s, "thing.created", "thing/x", map[string]int{"n": 1})
		if err != nil {
			t.Fatal(err)
		}
		if ev.Actor != tc.wantActor || string(ev.Details) != `{"n":1}` || ev.ID == 0 || ev.Time.Year() != 2026 {
			t.Errorf("Record = %+v, want actor %s", ev, tc.wantActor)
		}
	}
	if _, err := l.Record(context.Background(), s, "x", "y", func() {}); err == nil {
		t.Error("Record with unencodable details succeeded")
	}
}

// TestWaitWakesOnNotify: a Wait blocked on an empty log returns the event
// Notify announces at once, not at its next poll. In a synctest bubble,
// synctest.Wait returns once Wait is blocked (no sleep to guess when), and
// the bubble's clock proves no poll interval passed.
func TestWaitWakesOnNotify(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, s := newLog(t)
		got := make(chan []store.Event, 1)
		go func() {
			evs, err := l.Wait(context.Background(), store.EventFilter{}, 30*time.Second)
			if err != nil {
				t.Error(err)
			}
			got <- evs
		}()
		synctest.Wait()
		start := time.Now()
		ev, err := l.Record(context.Background(), s, "user.created", "user/bob", nil)
		if err != nil {
			t.Fatal(err)
		}
		l.Notify(ev)
		evs := <-got
		if len(evs) != 1 || evs[0].ID != ev.ID {
			t.Errorf("Wait = %+v, want the new event", evs)
		}
		if waited := time.Since(start); waited != 0 {
			t.Errorf("Wait returned after %v, want at once (on Notify, not a poll)", waited)
		}
	})
}

func TestWaitTimesOutAndCancels(t *testing.T) {
	l, _ := newLog(t)
	evs, err := l.Wait(context.Background(), store.EventFilter{}, 10*time.Millisecond)
	if err != nil || len(evs) != 0 {
		t.Errorf("Wait on empty log = %v, %v; want empty, nil", evs, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Wait(ctx, store.EventFilter{}, time.Minute); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait with cancelled ctx err = %v, want Canceled", err)
	}
}

func TestSubscribe(t *testing.T) {
	l, _ := newLog(t)
	ch, stop := l.Subscribe(1)
	l.Notify(store.Event{ID: 1, Type: "a"}, store.Event{ID: 2, Type: "b"})
	if ev := <-ch; ev.ID != 1 {
		t.Errorf("first event = %d, want 1", ev.ID)
	}
	select {
	case ev := <-ch:
		t.Errorf("slow subscriber got %d, want the overflow dropped", ev.ID)
	default:
	}
	stop()
	l.Notify(store.Event{ID: 3})
	select {
	case ev := <-ch:
		t.Errorf("after stop got %d", ev.ID)
	default:
	}
}
