package events_test

import (
	"context"
	"reflect"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/events"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// TestFollowHandsOverEveryEventOnce: a follower gets the events this
// process commits (announced, handed over from memory), another replica's
// (only in the store, found by a gap or the poll) and those from before it
// started, each once, in ID order, exactly as ListEvents returns them. In a
// synctest bubble, synctest.Wait returns once the follower is idle; the
// one sleep advances the bubble's clock past a poll interval, for the
// other replica's last event, which nothing announces here.
func TestFollowHandsOverEveryEventOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s := newLog(t)
		// Nanoseconds and a zone: the store keeps UTC microseconds.
		clock := func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.FixedZone("x", 3600)) }
		l := events.NewLog(s, clock)
		other := events.NewLog(s, clock) // another replica on the same store
		ctx := events.WithActor(t.Context(), "user:alice")
		if _, err := l.Record(ctx, s, "thing.created", "thing/before", nil); err != nil {
			t.Fatal(err) // before the follower starts, never announced
		}

		var (
			mu  sync.Mutex
			got []store.Event
		)
		fctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			_, err := l.Follow(fctx, 0, func(evs []store.Event) {
				mu.Lock()
				got = append(got, evs...)
				mu.Unlock()
			})
			done <- err
		}()
		synctest.Wait()

		local := l.NewBatcher(16, nil) // Run not active: written and announced at once
		steps := []func() error{
			func() error { // announced, from a transaction
				_, err := l.Change(ctx, "thing.updated", func(*store.Tx) (string, any, error) {
					return "thing/a", map[string]int{"n": 1}, nil
				})
				return err
			},
			func() error { local.Record(ctx, "broker.connected", "client/a", nil); return nil },
			func() error { _, err := other.Record(ctx, s, "policy.updated", "policy/p", nil); return err },
			func() error {
				local.Record(ctx, "broker.disconnected", "client/a", map[string]bool{"sessionKept": false})
				return nil
			},
			func() error { _, err := other.Record(ctx, s, "thing.deleted", "thing/a", nil); return err },
		}
		for _, step := range steps {
			if err := step(); err != nil {
				t.Fatal(err)
			}
			synctest.Wait()
		}
		time.Sleep(time.Second)
		synctest.Wait()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Follow = %v, want nil once ctx ended", err)
		}

		want, err := s.ListEvents(t.Context(), store.EventFilter{})
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(want) != 6 || !reflect.DeepEqual(got, want) {
			t.Errorf("followed:\n%+v\nwant what the store holds:\n%+v", got, want)
		}
	})
}

// TestFollowReturnsWhereItStopped: a caller resuming from the returned ID
// gets nothing twice.
func TestFollowReturnsWhereItStopped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, s := newLog(t)
		for _, subject := range []string{"thing/a", "thing/b"} {
			if _, err := l.Record(t.Context(), s, "thing.created", subject, nil); err != nil {
				t.Fatal(err)
			}
		}
		ctx, cancel := context.WithCancel(t.Context())
		var got []int64
		go func() {
			synctest.Wait()
			cancel()
		}()
		last, err := l.Follow(ctx, 1, func(evs []store.Event) {
			for _, ev := range evs {
				got = append(got, ev.ID)
			}
		})
		if err != nil || last != 2 || !reflect.DeepEqual(got, []int64{2}) {
			t.Errorf("Follow from 1 = %d, %v, handed %v; want 2, nil, [2]", last, err, got)
		}
	})
}
