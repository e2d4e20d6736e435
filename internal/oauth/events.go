package oauth

import (
	"context"
	"errors"

	"github.com/gatehouse-iot/gatehouse/internal/events"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// change runs fn in a transaction and records one event with it; fn returns
// the event's subject and details. Details must never hold secrets.
func (s *Server) change(ctx context.Context, typ string, fn func(tx *store.Tx) (subject string, details any, err error)) error {
	_, err := s.events.Change(ctx, typ, fn)
	return err
}

// pendingEvent is an event waiting for the next batch.
type pendingEvent struct {
	actor, typ, subject string
	details             any
}

// recorder writes token.issued events. Issuing a token is the hot path, so
// while Run is active these events are queued and committed in batches (one
// transaction per batch); otherwise each is written at once.
type recorder struct {
	s     *Server
	queue chan pendingEvent
}

// record queues or writes one event.
func (r *recorder) record(ctx context.Context, typ, subject string, details any) error {
	ev := pendingEvent{actor: events.ActorFrom(ctx), typ: typ, subject: subject, details: details}
	if r.s.running.Load() {
		select {
		case r.queue <- ev:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return r.write(ctx, []pendingEvent{ev})
}

func (r *recorder) write(ctx context.Context, batch []pendingEvent) error {
	// events.Log builds each event (time, actor, JSON details) through the
	// collector; the batch is then inserted with one statement.
	var col collector
	for _, p := range batch {
		if _, err := r.s.events.Record(events.WithActor(ctx, p.actor), &col, p.typ, p.subject, p.details); err != nil {
			return err
		}
	}
	err := r.s.store.InTx(ctx, func(tx *store.Tx) error { return tx.AppendEvents(ctx, col.evs) })
	if err != nil {
		return err
	}
	evs := make([]store.Event, len(col.evs))
	for i, ev := range col.evs {
		evs[i] = *ev
	}
	r.s.events.Notify(evs...)
	return nil
}

// collector is an events.Appender that keeps events for a batch insert.
type collector struct{ evs []*store.Event }

func (c *collector) AppendEvent(_ context.Context, ev *store.Event) error {
	e := *ev
	c.evs = append(c.evs, &e)
	return nil
}

// flush writes a batch, logging (not losing silently) a failure.
func (r *recorder) flush(ctx context.Context, batch []pendingEvent) {
	if len(batch) == 0 {
		return
	}
	if err := r.write(ctx, batch); err != nil && !errors.Is(err, context.Canceled) {
		r.s.log.ErrorContext(ctx, "write token events", "events", len(batch), "err", err)
	}
}
