package store

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// AppendEvent adds ev to the log and sets ev.ID. On PostgreSQL it takes a
// transaction-scoped lock first, so event IDs become visible in increasing
// order and a reader that tails "after ID n" never skips an event that
// commits late.
func (c *conn) AppendEvent(ctx context.Context, ev *Event) error {
	details := string(ev.Details)
	if details == "" {
		details = "{}"
	}
	if c.dialect == dialectPostgres {
		if _, err := c.exec(ctx, `SELECT pg_advisory_xact_lock(7263532)`); err != nil {
			return fmt.Errorf("store: append event: %w", err)
		}
	}
	err := c.queryRow(ctx, `INSERT INTO events (time, type, subject, actor, details, count) VALUES (?, ?, ?, ?, ?, ?) RETURNING id`,
		micros(ev.Time), ev.Type, ev.Subject, ev.Actor, details, ev.count()).Scan(&ev.ID)
	if err != nil {
		return fmt.Errorf("store: append event %s: %w", ev.Type, c.mapErr(err))
	}
	return nil
}

// EventFilter selects events. Type matches exactly or, ending in ".", as a
// prefix ("thing." gives every thing event).
type EventFilter struct {
	AfterID int64
	Type    string
	Subject string
	Actor   string
	Limit   int
}

// ListEvents returns events in ID order.
func (c *conn) ListEvents(ctx context.Context, f EventFilter) ([]Event, error) {
	where, args := []string{"id > ?"}, []any{f.AfterID}
	if f.Type != "" {
		if strings.HasSuffix(f.Type, ".") {
			where, args = append(where, "substr(type, 1, ?) = ?"), append(args, len(f.Type), f.Type)
		} else {
			where, args = append(where, "type = ?"), append(args, f.Type)
		}
	}
	if f.Subject != "" {
		where, args = append(where, "subject = ?"), append(args, f.Subject)
	}
	if f.Actor != "" {
		where, args = append(where, "actor = ?"), append(args, f.Actor)
	}
	limit := Page{Limit: f.Limit}.limit()
	rows, err := c.query(ctx, fmt.Sprintf(`SELECT id, time, type, subject, actor, details, count FROM events WHERE %s ORDER BY id LIMIT %d`,
		strings.Join(where, " AND "), limit), args...)
	if err != nil {
		return nil, fmt.Errorf("store: list events: %w", err)
	}
	defer rows.Close()
	out := []Event{}
	for rows.Next() {
		var (
			ev      Event
			t       int64
			details string
			count   int
		)
		if err := rows.Scan(&ev.ID, &t, &ev.Type, &ev.Subject, &ev.Actor, &details, &count); err != nil {
			return nil, fmt.Errorf("store: list events: %w", err)
		}
		ev.Time = fromMicros(t)
		ev.Details = []byte(details)
		if count > 1 {
			ev.Count = count
		}
		out = append(out, ev)
	}
	return out, c.mapErr(rows.Err())
}

// LatestEventID returns the highest event ID, or 0.
func (c *conn) LatestEventID(ctx context.Context) (int64, error) {
	var id int64
	err := c.queryRow(ctx, `SELECT COALESCE(MAX(id), 0) FROM events`).Scan(&id)
	return id, c.mapErr(err)
}

// pruneBatch bounds the rows one DELETE of PruneEventsBefore removes, so
// pruning a large backlog never holds a long lock.
const pruneBatch = 5000

// PruneEventsBefore deletes the events stamped before t, in batches, and
// returns how many it deleted. Followers reading "after ID n" are not
// disturbed: only the oldest events go.
func (s *Store) PruneEventsBefore(ctx context.Context, t time.Time) (int64, error) {
	var total int64
	for {
		res, err := s.exec(ctx, fmt.Sprintf(`DELETE FROM events WHERE id IN (SELECT id FROM events WHERE time < ? ORDER BY id LIMIT %d)`, pruneBatch), micros(t))
		if err != nil {
			return total, fmt.Errorf("store: prune events: %w", s.mapErr(err))
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, fmt.Errorf("store: prune events: %w", err)
		}
		total += n
		if n < pruneBatch {
			return total, nil
		}
		if err := ctx.Err(); err != nil {
			return total, err
		}
	}
}
