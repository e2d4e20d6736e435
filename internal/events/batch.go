package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// Batcher records events from hot paths (MQTT connects, token issuance)
// without a database round trip each: Record and Enqueue queue, Run commits
// queued events in batches, one transaction per batch, in order.
//
// Record is the lossy mode (a full queue drops the event and counts it),
// for events whose flood must not stall the caller; Enqueue is the blocking
// mode (a full queue makes the caller wait), for audit events that must
// never be lost, such as an issued credential.
type Batcher struct {
	log    *Log
	logger *slog.Logger
	queue  chan pending
	// full is signalled when maxBatch events are waiting, so that a
	// lingering batch commits at once (see Run).
	full    chan struct{}
	dropped atomic.Int64
	running atomic.Bool
	// entering counts Enqueue calls between their check of running and
	// their send, so that Run, stopping, drains until none is left.
	entering atomic.Int64
}

type pending struct {
	ev      store.Event
	details any
}

// record is Record for an event standing for count occurrences.
func (b *Batcher) record(ctx context.Context, typ, subject string, details any, count int) {
	p := pending{ev: store.Event{Type: typ, Subject: subject, Actor: ActorFrom(ctx), Count: count}, details: details}
	if !b.running.Load() {
		if err := b.write(ctx, []pending{p}); err != nil {
			b.logger.ErrorContext(ctx, "record event", "type", typ, "err", err)
		}
		return
	}
	select {
	case b.queue <- p:
		b.queued()
	default:
		b.dropped.Add(1)
	}
}

// queued tells a lingering Run when a whole batch is waiting. The queue's
// length is read without waking Run: during the linger Run sleeps instead
// of being woken by every event.
func (b *Batcher) queued() {
	if len(b.queue)+1 >= maxBatch {
		select {
		case b.full <- struct{}{}:
		default:
		}
	}
}

// NewBatcher returns a Batcher holding at most queue events between
// batches.
func (l *Log) NewBatcher(queue int, logger *slog.Logger) *Batcher {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Batcher{log: l, logger: logger, queue: make(chan pending, queue), full: make(chan struct{}, 1)}
}

// Record queues an event. When Run is not active it writes the event at
// once; when the queue is full the event is dropped and counted (a flood of
// denials must not stall the broker), see Dropped.
func (b *Batcher) Record(ctx context.Context, typ, subject string, details any) {
	b.record(ctx, typ, subject, details, 1)
}

// Enqueue queues an event, waiting for room while the queue is full: it
// never drops. When Run is not active it writes the event at once. It
// returns ctx's error if ctx ends while waiting, or the write's error; an
// event it accepted is written by Run before Run returns.
func (b *Batcher) Enqueue(ctx context.Context, typ, subject string, details any) error {
	p := pending{ev: store.Event{Type: typ, Subject: subject, Actor: ActorFrom(ctx)}, details: details}
	b.entering.Add(1)
	if !b.running.Load() {
		b.entering.Add(-1)
		return b.write(ctx, []pending{p})
	}
	defer b.entering.Add(-1)
	select {
	case b.queue <- p:
		b.queued()
		return nil
	default:
	}
	select {
	case b.queue <- p:
		b.queued()
		return nil
	case <-ctx.Done():
		return fmt.Errorf("events: queue %s: %w", typ, ctx.Err())
	}
}

// lingerTime is how long a batch waits for more events before it commits,
// and stormLinger how long while events keep coming: after a batch of at
// least stormBatch events (so the first batch after a storm may wait
// stormLinger once). A quiet log shows an event within lingerTime; under a
// CONNECT storm a commit (its WAL frames, on SQLite) is shared by five
// times as many events: about 6% more CONNECTs per core-second on the
// embedded broker (docs/benchmarks.md). What a crash can lose grows to
// that window (docs/architecture.md, "Durability of the batched events").
const (
	lingerTime  = 20 * time.Millisecond
	stormLinger = 100 * time.Millisecond
	stormBatch  = 32
)

// maxBatch is the most events one transaction writes; a batch commits
// before lingerTime is over once that many are waiting.
const maxBatch = 256

// Dropped is how many events were dropped because the queue was full.
func (b *Batcher) Dropped() int64 { return b.dropped.Load() }

// Run writes queued events until ctx ends, then writes what is left.
func (b *Batcher) Run(ctx context.Context) error {
	b.running.Store(true)
	defer b.running.Store(false)
	// A batch taken from the queue is written even if ctx ends meanwhile.
	wctx := context.WithoutCancel(ctx)
	batch := make([]pending, 0, maxBatch)
	wait := lingerTime
	for {
		select {
		case p := <-b.queue:
			// Linger briefly so a burst (a CONNECT storm) commits as one
			// transaction instead of one per event. Run sleeps meanwhile
			// rather than take each event as it comes (a goroutine wake-up
			// per event), unless a whole batch is waiting (full), then
			// takes what is queued.
			batch = append(batch[:0], p)
			stopping := !b.linger(ctx, wait)
		fill:
			for len(batch) < cap(batch) {
				select {
				case p := <-b.queue:
					batch = append(batch, p)
				default:
					break fill
				}
			}
			if stopping {
				b.drain(ctx, batch)
				return nil
			}
			b.flush(wctx, batch)
			wait = lingerTime
			if len(batch) >= stormBatch {
				wait = stormLinger
			}
		case <-ctx.Done():
			b.drain(ctx, batch[:0])
			return nil
		}
	}
}

// linger waits d, or until a whole batch is waiting, and reports false if
// ctx ended meanwhile.
func (b *Batcher) linger(ctx context.Context, d time.Duration) bool {
	select {
	case <-b.full: // left by an earlier batch
	default:
	}
	if len(b.queue)+1 >= maxBatch {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-b.full:
	case <-ctx.Done():
		return false
	}
	return true
}

// drain writes what is queued once Run's context ended, in batches, with a
// fresh context: the server is stopping, not the database. Enqueue calls
// that saw Run active are waited for, so none of their events is lost.
func (b *Batcher) drain(ctx context.Context, batch []pending) {
	b.running.Store(false)
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	for {
		select {
		case p := <-b.queue:
			batch = append(batch, p)
			if len(batch) < cap(batch) {
				continue
			}
		default:
			if len(batch) == 0 {
				if b.entering.Load() == 0 && len(b.queue) == 0 {
					return
				}
				runtime.Gosched()
				continue
			}
		}
		b.flush(dctx, batch)
		batch = batch[:0]
	}
}

func (b *Batcher) flush(ctx context.Context, batch []pending) {
	if err := b.write(ctx, batch); err != nil && !errors.Is(err, context.Canceled) {
		b.logger.ErrorContext(ctx, "write events", "events", len(batch), "err", err)
	}
}

func (b *Batcher) write(ctx context.Context, batch []pending) error {
	// The events are written through pointers into out, which is then
	// announced as stored (IDs set): no allocation per event.
	out := make([]store.Event, len(batch))
	evs := make([]*store.Event, len(batch))
	for i, p := range batch {
		ev := &out[i]
		*ev = p.ev
		ev.Time = b.log.now().UTC()
		if p.details != nil {
			d, err := json.Marshal(p.details)
			if err != nil {
				return fmt.Errorf("events: encode %s details: %w", ev.Type, err)
			}
			ev.Details = d
		}
		evs[i] = ev
	}
	if err := b.log.store.InTx(ctx, func(tx *store.Tx) error { return tx.AppendEvents(ctx, evs) }); err != nil {
		return err
	}
	b.log.Notify(out...)
	return nil
}

// Change runs fn in a transaction of s and records one event with it: fn
// returns the event's subject and details (never secrets). Waiters are
// woken after the commit.
func (l *Log) Change(ctx context.Context, typ string, fn func(tx *store.Tx) (subject string, details any, err error)) (store.Event, error) {
	evs, err := l.ChangeAll(ctx, func(tx *store.Tx) ([]Pending, error) {
		subject, details, err := fn(tx)
		return []Pending{{Type: typ, Subject: subject, Details: details}}, err
	})
	if err != nil {
		return store.Event{}, err
	}
	return evs[0], nil
}

// Pending is an event a change records (see ChangeAll).
type Pending struct {
	Type, Subject string
	// Details must never hold secrets.
	Details any
}

// ChangeAll runs fn in a transaction and records the events it returns
// with the change, in order; they are announced (Notify) once the
// transaction commits. It returns the recorded events.
func (l *Log) ChangeAll(ctx context.Context, fn func(tx *store.Tx) ([]Pending, error)) ([]store.Event, error) {
	var recorded []store.Event
	err := l.store.InTx(ctx, func(tx *store.Tx) error {
		recorded = recorded[:0]
		pending, err := fn(tx)
		if err != nil {
			return err
		}
		for _, p := range pending {
			ev, err := l.Record(ctx, tx, p.Type, p.Subject, p.Details)
			if err != nil {
				return err
			}
			recorded = append(recorded, ev)
		}
		return nil
	})
	return recorded, err
}

// LatestID returns the newest settled event's ID (0 for an empty log),
// where a follower starts: one after it never misses an event that commits
// from the call on.
func (l *Log) LatestID(ctx context.Context) (int64, error) {
	id, _, err := l.latest(ctx)
	return id, err
}

// latest is LatestID, and whether events seen behind a gap may settle
// soon.
func (l *Log) latest(ctx context.Context) (id int64, unsettled bool, err error) {
	id, err = l.store.LatestEventID(ctx)
	if err != nil {
		return 0, false, err
	}
	h, err := l.settle(ctx)
	if err != nil {
		return 0, false, err
	}
	return min(id, h.Settled), h.Unsettled(), nil
}
