// Package events is Gatehouse's audit trail: every change to the registry,
// every issued credential and every broker decision worth keeping is
// appended to one log, read back with filters and followed live.
//
// It exists so that recording an event is one call made inside the same
// store transaction as the change it describes (an event is never written
// for a change that rolled back), and so that readers - the REST API, the
// CLI's `events tail`, the broker's $gatehouse/events topics - share one
// way to wait for what is new.
package events

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/store"
)

type actorKey struct{}

// WithActor returns a context naming who acts in it, e.g. "token:3f9c" or
// "user:alice". Events recorded under that context carry it.
func WithActor(ctx context.Context, actor string) context.Context {
	return context.WithValue(ctx, actorKey{}, actor)
}

// ActorFrom returns the actor set by WithActor, or "system".
func ActorFrom(ctx context.Context) string {
	if a, ok := ctx.Value(actorKey{}).(string); ok && a != "" {
		return a
	}
	return "system"
}

// Appender is the part of a store transaction the log writes through.
type Appender interface {
	AppendEvent(ctx context.Context, ev *store.Event) error
}

// Log appends events and wakes readers waiting for new ones.
type Log struct {
	store *store.Store
	now   func() time.Time
	// poll bounds how long a waiter sleeps without a local wake-up, so
	// events appended by other replicas are seen too.
	poll time.Duration

	mu      sync.Mutex
	changed chan struct{}
	subs    map[chan store.Event]struct{}
}

// NewLog returns a Log over s. now is the clock events are stamped with.
func NewLog(s *store.Store, now func() time.Time) *Log {
	return &Log{store: s, now: now, poll: time.Second, changed: make(chan struct{}), subs: map[chan store.Event]struct{}{}}
}

// Record appends an event through a: a Tx, so the event commits with the
// change and is announced to waiters and subscribers (Notify) once the
// transaction has committed; or the Store itself, where the caller
// announces it. details is marshalled to JSON; it must never hold secrets.
// This is the one way a change is committed with its events.
func (l *Log) Record(ctx context.Context, a Appender, typ, subject string, details any) (store.Event, error) {
	ev := store.Event{Time: l.now().UTC(), Type: typ, Subject: subject, Actor: ActorFrom(ctx)}
	if details != nil {
		b, err := json.Marshal(details)
		if err != nil {
			return ev, fmt.Errorf("events: encode %s details: %w", typ, err)
		}
		ev.Details = b
	}
	if err := a.AppendEvent(ctx, &ev); err != nil {
		return ev, err
	}
	if tx, ok := a.(*store.Tx); ok {
		// Announced once durable, never for a rolled-back change.
		tx.AfterCommit(func() { l.Notify(ev) })
	}
	return ev, nil
}

// Notify tells waiters and subscribers about committed events.
func (l *Log) Notify(evs ...store.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	close(l.changed)
	l.changed = make(chan struct{})
	for _, ev := range evs {
		for ch := range l.subs {
			select {
			case ch <- ev:
			default: // a slow subscriber misses events rather than blocking writers
			}
		}
	}
}

// Subscribe returns a channel of events committed by this process from now
// on, and a function that ends the subscription. Events are dropped for a
// subscriber that does not keep up.
func (l *Log) Subscribe(buffer int) (<-chan store.Event, func()) {
	ch := make(chan store.Event, buffer)
	l.mu.Lock()
	l.subs[ch] = struct{}{}
	l.mu.Unlock()
	return ch, func() {
		l.mu.Lock()
		delete(l.subs, ch)
		l.mu.Unlock()
	}
}

// List returns events matching f.
func (l *Log) List(ctx context.Context, f store.EventFilter) ([]store.Event, error) {
	return l.store.ListEvents(ctx, f)
}

// Wait returns the events matching f (after f.AfterID), waiting up to
// timeout for at least one to appear. It returns an empty list on timeout.
func (l *Log) Wait(ctx context.Context, f store.EventFilter, timeout time.Duration) ([]store.Event, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		l.mu.Lock()
		changed := l.changed
		l.mu.Unlock()
		evs, err := l.store.ListEvents(ctx, f)
		if err != nil || len(evs) > 0 {
			return evs, err
		}
		poll := time.NewTimer(l.poll)
		select {
		case <-ctx.Done():
			poll.Stop()
			return nil, ctx.Err()
		case <-deadline.C:
			poll.Stop()
			return []store.Event{}, nil
		case <-changed:
		case <-poll.C:
		}
		poll.Stop()
	}
}
