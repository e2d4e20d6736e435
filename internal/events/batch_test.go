package events_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gatehouse-iot/gatehouse/internal/events"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

func TestBatcherEnqueueWithoutRunWritesAtOnce(t *testing.T) {
	l, s := newLog(t)
	b := l.NewBatcher(4, nil)
	ctx := events.WithActor(t.Context(), "thing:sensor-1")
	if err := b.Enqueue(ctx, "token.issued", "thing/sensor-1", map[string]string{"grant": "client_credentials"}); err != nil {
		t.Fatal(err)
	}
	evs, err := s.ListEvents(t.Context(), store.EventFilter{Type: "token.issued"})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Actor != "thing:sensor-1" || evs[0].Subject != "thing/sensor-1" || string(evs[0].Details) != `{"grant":"client_credentials"}` {
		t.Errorf("events = %+v, want the one enqueued", evs)
	}
	if err := b.Enqueue(ctx, "token.issued", "thing/x", func() {}); err == nil {
		t.Error("Enqueue with unencodable details succeeded without Run")
	}
}

// TestBatcherEnqueueNeverDrops enqueues from several goroutines through a
// tiny queue while Run is stopped midway: every event Enqueue accepted is
// in the store once Run returned, and none was dropped.
func TestBatcherEnqueueNeverDrops(t *testing.T) {
	tests := []struct {
		name    string
		queue   int
		writers int
		each    int
	}{
		{"queue of one", 1, 4, 50},
		{"queue of 64", 64, 8, 100},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, s := newLog(t)
			b := l.NewBatcher(tc.queue, nil)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- b.Run(ctx) }()
			var accepted atomic.Int64
			var wg sync.WaitGroup
			for w := range tc.writers {
				wg.Go(func() {
					for i := range tc.each {
						if w == 0 && i == tc.each/2 {
							cancel() // stop Run while the others keep enqueueing
						}
						if err := b.Enqueue(context.Background(), "token.issued", fmt.Sprintf("thing/%d-%d", w, i), nil); err != nil {
							t.Errorf("Enqueue: %v", err)
							continue
						}
						accepted.Add(1)
					}
				})
			}
			wg.Wait()
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			evs, err := s.ListEvents(t.Context(), store.EventFilter{Type: "token.issued", Limit: 10_000})
			if err != nil {
				t.Fatal(err)
			}
			if got, want := int64(len(evs)), accepted.Load(); got != want || want != int64(tc.writers*tc.each) {
				t.Errorf("stored %d events, accepted %d, want %d", got, want, tc.writers*tc.each)
			}
			if b.Dropped() != 0 {
				t.Errorf("Dropped = %d, want 0", b.Dropped())
			}
		})
	}
}

// TestBatcherWritesInOrderAndAnnouncesAsStored records more events than
// one batch holds while Run is active: the store has them all in the
// order recorded, and what the batcher announced is what was stored (IDs,
// types, subjects, actors, details).
func TestBatcherWritesInOrderAndAnnouncesAsStored(t *testing.T) {
	l, s := newLog(t)
	announced, stop := l.Subscribe(1000)
	defer stop()
	b := l.NewBatcher(1000, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	const n = 600 // more than one batch (256)
	var want []string
	for i := range n {
		typ, details := "broker.connected", any(map[string]int{"n": i})
		if i%3 == 2 {
			typ, details = "broker.disconnected", nil
		}
		b.Record(events.WithActor(ctx, fmt.Sprintf("thing:t%d", i%7)), typ, fmt.Sprintf("client/c%d", i), details)
		d := "{}"
		if details != nil {
			d = fmt.Sprintf(`{"n":%d}`, i)
		}
		want = append(want, fmt.Sprintf("%s client/c%d thing:t%d %s", typ, i, i%7, d))
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	stored, err := s.ListEvents(t.Context(), store.EventFilter{Limit: 10_000})
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != n {
		t.Fatalf("stored %d events, want %d (dropped %d)", len(stored), n, b.Dropped())
	}
	for i, ev := range stored {
		if got := fmt.Sprintf("%s %s %s %s", ev.Type, ev.Subject, ev.Actor, ev.Details); got != want[i] {
			t.Fatalf("stored event %d = %q, want %q", i, got, want[i])
		}
		a := <-announced
		details := string(a.Details)
		if details == "" {
			details = "{}"
		}
		if a.ID != ev.ID || a.Type != ev.Type || a.Subject != ev.Subject || a.Actor != ev.Actor || details != string(ev.Details) {
			t.Fatalf("announced %+v (details %s), want %+v (details %s)", a, a.Details, ev, ev.Details)
		}
	}
}
