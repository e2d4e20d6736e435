package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// Batcher records events from hot paths (MQTT connects, token issuance)
// without a database round trip each: Record queues, Run commits queued
// events in batches, one transaction per batch, in order.
type Batcher struct {
	log     *Log
	logger  *slog.Logger
	queue   chan pending
	dropped atomic.Int64
	running atomic.Bool
}

type pending struct {
	ev      store.Event
	details any
}

// NewBatcher returns a Batcher holding at most queue events between
// batches.
func (l *Log) NewBatcher(queue int, logger *slog.Logger) *Batcher {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Batcher{log: l, logger: logger, queue: make(chan pending, queue)}
}

// Record queues an event. When Run is not active it writes the event at
// once; when the queue is full the event is dropped and counted (a flood of
// denials must not stall the broker), see Dropped.
func (b *Batcher) Record(ctx context.Context, typ, subject string, details any) {
	p := pending{ev: store.Event{Type: typ, Subject: subject, Actor: ActorFrom(ctx)}, details: details}
	if !b.running.Load() {
		if err := b.write(ctx, []pending{p}); err != nil {
			b.logger.ErrorContext(ctx, "record event", "type", typ, "err", err)
		}
		return
	}
	select {
	case b.queue <- p:
	default:
		b.dropped.Add(1)
	}
}

// lingerTime is how long a batch waits for more events before it commits.
const lingerTime = 20 * time.Millisecond

// Dropped is how many events were dropped because the queue was full.
func (b *Batcher) Dropped() int64 { return b.dropped.Load() }

// Run writes queued events until ctx ends, then writes what is left.
func (b *Batcher) Run(ctx context.Context) error {
	b.running.Store(true)
	defer b.running.Store(false)
	batch := make([]pending, 0, 256)
	for {
		select {
		case p := <-b.queue:
			// Linger briefly so a burst (a CONNECT storm) commits as one
			// transaction instead of one per event.
			batch = append(batch[:0], p)
			linger := time.NewTimer(lingerTime)
		fill:
			for len(batch) < cap(batch) {
				select {
				case p := <-b.queue:
					batch = append(batch, p)
				case <-linger.C:
					break fill
				case <-ctx.Done():
					break fill
				}
			}
			linger.Stop()
			b.flush(ctx, batch)
		case <-ctx.Done():
			// Drain with a fresh context: the server is stopping, not the
			// database.
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			for {
				select {
				case p := <-b.queue:
					b.flush(dctx, []pending{p})
				default:
					return nil
				}
			}
		}
	}
}

func (b *Batcher) flush(ctx context.Context, batch []pending) {
	if err := b.write(ctx, batch); err != nil && !errors.Is(err, context.Canceled) {
		b.logger.ErrorContext(ctx, "write events", "events", len(batch), "err", err)
	}
}

func (b *Batcher) write(ctx context.Context, batch []pending) error {
	evs := make([]*store.Event, 0, len(batch))
	for _, p := range batch {
		ev := p.ev
		ev.Time = b.log.now().UTC()
		if p.details != nil {
			d, err := json.Marshal(p.details)
			if err != nil {
				return fmt.Errorf("events: encode %s details: %w", ev.Type, err)
			}
			ev.Details = d
		}
		evs = append(evs, &ev)
	}
	if err := b.log.store.InTx(ctx, func(tx *store.Tx) error { return tx.AppendEvents(ctx, evs) }); err != nil {
		return err
	}
	out := make([]store.Event, len(evs))
	for i, ev := range evs {
		out[i] = *ev
	}
	b.log.Notify(out...)
	return nil
}

// Change runs fn in a transaction of s and records one event with it: fn
// returns the event's subject and details (never secrets). Waiters are
// woken after the commit.
func (l *Log) Change(ctx context.Context, typ string, fn func(tx *store.Tx) (subject string, details any, err error)) (store.Event, error) {
	var ev store.Event
	err := l.store.InTx(ctx, func(tx *store.Tx) error {
		subject, details, err := fn(tx)
		if err != nil {
			return err
		}
		ev, err = l.Record(ctx, tx, typ, subject, details)
		return err
	})
	if err != nil {
		return ev, err
	}
	l.Notify(ev)
	return ev, nil
}

// LatestID returns the newest event's ID (0 for an empty log), where a
// follower starts.
func (l *Log) LatestID(ctx context.Context) (int64, error) {
	return l.store.LatestEventID(ctx)
}
