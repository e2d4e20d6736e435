package events

import (
	"context"
	"sync"
	"time"
)

// Aggregator writes repeated events of one key (a denial's source,
// action and reason) as few rows: the first of a window at once, the
// others of that window as one event with their count when the window
// ends. A flood of failed CONNECTs from one address then costs two rows a
// window instead of one per attempt. It is for the broker's denial events
// only: audit events of changes are never aggregated.
type Aggregator struct {
	batch  *Batcher
	window time.Duration
	now    func() time.Time

	mu   sync.Mutex
	open map[string]*window
}

// window is one key's current window.
type window struct {
	start time.Time
	// The last occurrence after the first, written with the count n when
	// the window ends.
	n                   int
	actor, typ, subject string
	details             any
}

// maxWindows bounds the keys tracked at once; past it events are written
// as they come (the Batcher's queue still bounds them).
const maxWindows = 10000

// NewAggregator aggregates over windows of span through b; a span of 0 writes
// every event.
func (l *Log) NewAggregator(b *Batcher, span time.Duration) *Aggregator {
	return &Aggregator{batch: b, window: span, now: l.now, open: map[string]*window{}}
}

// Record records an event (lossy, as Batcher.Record) under key.
func (a *Aggregator) Record(ctx context.Context, key, typ, subject string, details any) {
	if a.window <= 0 {
		a.batch.Record(ctx, typ, subject, details)
		return
	}
	now := a.now()
	a.mu.Lock()
	w, ok := a.open[key]
	if ok && now.Sub(w.start) < a.window {
		w.n++
		w.actor, w.typ, w.subject, w.details = ActorFrom(ctx), typ, subject, details
		a.mu.Unlock()
		return
	}
	if ok || len(a.open) < maxWindows {
		a.open[key] = &window{start: now}
	}
	a.mu.Unlock()
	if ok {
		a.write(w)
	}
	a.batch.Record(ctx, typ, subject, details)
}

// Flush writes the windows that ended by now, or all of them if all is
// set, and forgets them.
func (a *Aggregator) Flush(all bool) {
	now := a.now()
	var ended []*window
	a.mu.Lock()
	for k, w := range a.open {
		if all || now.Sub(w.start) >= a.window {
			ended = append(ended, w)
			delete(a.open, k)
		}
	}
	a.mu.Unlock()
	for _, w := range ended {
		a.write(w)
	}
}

func (a *Aggregator) write(w *window) {
	if w.n > 0 {
		a.batch.record(WithActor(context.Background(), w.actor), w.typ, w.subject, w.details, w.n)
	}
}

// Run flushes ended windows until ctx ends, then flushes every window.
func (a *Aggregator) Run(ctx context.Context) error {
	if a.window <= 0 {
		return nil
	}
	t := time.NewTicker(max(a.window/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			a.Flush(true)
			return nil
		case <-t.C:
			a.Flush(false)
		}
	}
}
