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
	"sync/atomic"
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
	// subs are the subscribers' channels and the event type each wants
	// ("" for all; see typeMatches).
	subs map[chan store.Event]string

	// horizon is how far readers tailing the log by ID may read
	// (store.SettleEvents), shared by every reader of this Log.
	// Readers asking at once share one query: asks numbers the questions,
	// answered is the last question asked before the newest horizon's
	// query began.
	hmu      sync.Mutex
	horizon  store.EventHorizon
	asks     atomic.Int64
	answered int64
}

// settleRetry is how soon a reader that found events behind a gap asks
// again whether the gap is final: about one transaction's time.
const settleRetry = 10 * time.Millisecond

// settle returns the settled horizon as of a query begun after the call.
func (l *Log) settle(ctx context.Context) (store.EventHorizon, error) {
	ask := l.asks.Add(1)
	l.hmu.Lock()
	defer l.hmu.Unlock()
	if l.answered >= ask {
		return l.horizon, nil // a query begun after this question answered it
	}
	covered := l.asks.Load()
	h, err := l.store.SettleEvents(ctx, l.horizon)
	if err != nil {
		return l.horizon, fmt.Errorf("events: %w", err)
	}
	l.horizon, l.answered = h, covered
	return h, nil
}

// tail returns the events matching f (oldest first, after f.AfterID) that
// are settled: no event with a lower ID can still commit. unsettled reports
// more seen behind a gap; asking again after settleRetry moves on.
func (l *Log) tail(ctx context.Context, f store.EventFilter) (evs []store.Event, unsettled bool, err error) {
	h, err := l.settle(ctx)
	if err != nil {
		return nil, false, err
	}
	f, ok := h.Bound(f)
	if !ok {
		return []store.Event{}, h.Unsettled(), nil
	}
	evs, err = l.store.ListEvents(ctx, f)
	return evs, h.Unsettled(), err
}

// NewLog returns a Log over s. now is the clock events are stamped with.
func NewLog(s *store.Store, now func() time.Time) *Log {
	return &Log{store: s, now: now, poll: time.Second, changed: make(chan struct{}), subs: map[chan store.Event]string{}}
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
		for ch, typ := range l.subs {
			if !typeMatches(typ, ev.Type) {
				continue
			}
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
	return l.subscribe(buffer, "")
}

// subscribe is Subscribe for the events of type typ only (exact, or a
// prefix ending in "."; "" for all): others are not sent, so they neither
// wake the subscriber nor fill its buffer.
func (l *Log) subscribe(buffer int, typ string) (<-chan store.Event, func()) {
	ch := make(chan store.Event, buffer)
	l.mu.Lock()
	l.subs[ch] = typ
	l.mu.Unlock()
	return ch, func() {
		l.mu.Lock()
		delete(l.subs, ch)
		l.mu.Unlock()
	}
}

// List returns events matching f. Oldest first, it stops where the log is
// not settled yet (an event with a lower ID may still commit on another
// connection), so a reader keeping "after ID n" as its cursor never skips
// one.
func (l *Log) List(ctx context.Context, f store.EventFilter) ([]store.Event, error) {
	if f.Newest {
		return l.store.ListEvents(ctx, f)
	}
	evs, _, err := l.tail(ctx, f)
	return evs, err
}

// Wait returns the events matching f (after f.AfterID, settled as for
// List), waiting up to
// timeout for at least one to appear. It returns an empty list on timeout.
func (l *Log) Wait(ctx context.Context, f store.EventFilter, timeout time.Duration) ([]store.Event, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		l.mu.Lock()
		changed := l.changed
		l.mu.Unlock()
		evs, unsettled, err := l.tail(ctx, f)
		if err != nil || len(evs) > 0 {
			return evs, err
		}
		wait := l.poll
		if unsettled {
			wait = settleRetry
		}
		poll := time.NewTimer(wait)
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
