package events

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// Prune deletes the events stamped before cut and records, if any went,
// one events.pruned event (under ctx's actor) saying how many and up to
// when. It returns how many it deleted.
func (l *Log) Prune(ctx context.Context, cut time.Time) (int64, error) {
	n, err := l.store.PruneEventsBefore(ctx, cut)
	if err != nil {
		return n, fmt.Errorf("events: prune: %w", err)
	}
	if n == 0 {
		return 0, nil
	}
	ev, err := l.Record(ctx, l.store, "events.pruned", "events", map[string]any{"before": cut.UTC(), "deleted": n})
	if err != nil {
		return n, err
	}
	l.Notify(ev)
	return n, nil
}

// RunRetention prunes events older than retention now and then every
// interval until ctx ends. A retention of 0 keeps everything.
func (l *Log) RunRetention(ctx context.Context, retention, interval time.Duration, logger *slog.Logger) error {
	if retention <= 0 || interval <= 0 {
		return nil
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		cut := l.now().Add(-retention)
		if n, err := l.Prune(WithActor(ctx, "system:retention"), cut); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			logger.Warn("event retention", "err", err)
		} else if n > 0 {
			logger.Info("event retention", "deleted", n, "before", cut.UTC())
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
