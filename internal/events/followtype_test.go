package events_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/events"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// followType starts l.FollowType for typ ("key." here) and returns what it
// hands over as "type subject", once it is known to be running: it starts
// at the newest event, so probes are recorded until one is followed. Later
// probes may still arrive; callers skip "key.probe probe".
func followType(ctx context.Context, t *testing.T, l *events.Log, s *store.Store) <-chan string {
	t.Helper()
	got := make(chan string, 1000)
	started := make(chan struct{})
	go l.FollowType(ctx, store.EventFilter{Type: "key."}, func(ev store.Event) { got <- ev.Type + " " + ev.Subject })
	go func() {
		for ctx.Err() == nil {
			if _, err := l.Record(ctx, s, "key.probe", "probe", nil); err != nil {
				return
			}
			select {
			case <-started:
				return
			case <-time.After(50 * time.Millisecond): // pacing the probes
			}
		}
	}()
	if ev := <-got; ev != "key.probe probe" {
		t.Fatalf("first event = %q, want the probe", ev)
	}
	close(started)
	return got
}

// expectFollowed reads want from got, in order, skipping probes.
func expectFollowed(t *testing.T, got <-chan string, want []string) {
	t.Helper()
	for _, w := range want {
		select {
		case ev := <-got:
			for ev == "key.probe probe" {
				ev = <-got
			}
			if ev != w {
				t.Fatalf("followed %q, want %q", ev, w)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%q not followed within 10s", w)
		}
	}
}

// TestFollowType: FollowType delivers, in order, the matching events this process
// commits and those another replica (another Log on the same store, whose
// commits this one is never told of) commits, and nothing else; the
// sentinel, recorded last, proves the unrelated event was skipped.
func TestFollowType(t *testing.T) {
	l, s := newLog(t)
	other := events.NewLog(s, time.Now)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	got := followType(ctx, t, l, s)
	record := func(log *events.Log, typ, subject string) {
		if _, err := log.Record(ctx, s, typ, subject, nil); err != nil {
			t.Fatal(err)
		}
	}
	record(l, "key.rotated", "local")
	record(other, "thing.created", "unrelated")
	record(other, "key.rotated", "remote")
	record(other, "key.rotated", "sentinel")
	expectFollowed(t, got, []string{"key.rotated local", "key.rotated remote", "key.rotated sentinel"})
}

// TestFollowTypeAmongOtherEvents: matching events interleaved with many
// others, more of them than one read returns, committed at once by this
// process or by another replica, are all handed over once, in order.
// FollowType moves past the other events as it reads, so this also checks
// that doing so skips no matching event.
func TestFollowTypeAmongOtherEvents(t *testing.T) {
	tests := []struct {
		name   string
		writer func(l, other *events.Log) *events.Log
	}{
		{"local", func(l, _ *events.Log) *events.Log { return l }},
		{"other replica", func(_, other *events.Log) *events.Log { return other }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, s := newLog(t)
			other := events.NewLog(s, time.Now)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			got := followType(ctx, t, l, s)
			var pending []events.Pending
			var want []string
			for i := range 500 {
				if i%2 == 0 {
					pending = append(pending, events.Pending{Type: "broker.connected", Subject: fmt.Sprintf("client/c%d", i)})
					continue
				}
				pending = append(pending, events.Pending{Type: "key.rotated", Subject: fmt.Sprintf("k%d", i)})
				want = append(want, fmt.Sprintf("key.rotated k%d", i))
			}
			w := tt.writer(l, other)
			if _, err := w.ChangeAll(ctx, func(*store.Tx) ([]events.Pending, error) { return pending, nil }); err != nil {
				t.Fatal(err)
			}
			for i := range 300 {
				if _, err := w.Record(ctx, s, "broker.disconnected", fmt.Sprintf("client/c%d", i), nil); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := w.Record(ctx, s, "key.rotated", "sentinel", nil); err != nil {
				t.Fatal(err)
			}
			expectFollowed(t, got, append(want, "key.rotated sentinel"))
		})
	}
}
