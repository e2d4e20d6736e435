package store

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// AppendEvent adds ev to the log and sets ev.ID. Appends from concurrent
// transactions do not wait for each other: on PostgreSQL IDs may become
// visible out of order, and readers that tail the log by ID stop at
// SettleEvents' horizon rather than skip an event that commits late.
func (c *conn) AppendEvent(ctx context.Context, ev *Event) error {
	details := string(ev.Details)
	if details == "" {
		details = "{}"
	}
	if err := c.beforeEventIDs(ctx); err != nil {
		return fmt.Errorf("store: append event: %w", err)
	}
	err := c.queryRow(ctx, `INSERT INTO events (time, type, subject, actor, details, count) VALUES (?, ?, ?, ?, ?, ?) RETURNING id`,
		micros(ev.Time), ev.Type, ev.Subject, ev.Actor, details, ev.count()).Scan(&ev.ID)
	if err != nil {
		return fmt.Errorf("store: append event %s: %w", ev.Type, c.mapErr(err))
	}
	return nil
}

// eventAppendLock is the advisory lock key every transaction that draws
// event IDs holds, shared (appends never wait for each other), until it
// ends: SettleEvents finds the appends in flight by it.
const eventAppendLock = 7263532

// beforeEventIDs runs before a transaction draws event IDs. On PostgreSQL
// it takes the append lock (shared) and makes sure the transaction has its
// transaction ID (an INSERT that is a transaction's first write draws the
// ID from the sequence before it gets one): SettleEvents relies on every
// event ID being drawn by a transaction that holds the lock and has its
// transaction ID already.
func (c *conn) beforeEventIDs(ctx context.Context) error {
	if c.dialect != dialectPostgres {
		return nil
	}
	_, err := c.exec(ctx, fmt.Sprintf(`SELECT pg_advisory_xact_lock_shared(%d), pg_current_xact_id()`, eventAppendLock))
	return err
}

// EventHorizon is how far a reader tailing the log by ID can trust it:
// every event with an ID at or below Settled is committed, or never will be.
// Its zero value knows nothing; SettleEvents moves it on.
type EventHorizon struct {
	Settled int64
	// A fence: the highest ID seen beyond a gap, and a transaction ID
	// assigned after it was seen. Once every transaction older than
	// fenceXID has ended, the gaps below fenceID are final.
	fenceID  int64
	fenceXID int64
}

// Unsettled reports whether IDs above Settled were seen behind a gap that a
// transaction still in flight may fill: asking again soon moves Settled on.
func (h EventHorizon) Unsettled() bool { return h.fenceXID != 0 }

// Bound returns f limited to the settled part of the log, and false if
// nothing after f.AfterID is settled yet.
func (h EventHorizon) Bound(f EventFilter) (EventFilter, bool) {
	if f.AfterID >= h.Settled {
		return f, false
	}
	if h.Settled < math.MaxInt64 && (f.BeforeID == 0 || f.BeforeID > h.Settled+1) {
		f.BeforeID = h.Settled + 1
	}
	return f, true
}

// SettleEvents returns h moved on to the newest ID below which no event can
// appear any more.
//
// SQLite commits one writer at a time, in ID order: all of the log is
// settled. PostgreSQL appends without waiting, so event 7 can commit after
// event 8 has been read: IDs up to the first gap are settled; for a gap, the
// highest ID seen and a transaction ID drawn after that read are kept as a
// fence. An event in the gap was drawn before the fence was read, by a
// transaction that held the append lock and had its transaction ID from
// before it drew (beforeEventIDs). So once no holder of the append lock has
// a transaction ID older than the fence's, every event in the gap has
// committed or never will. Unrelated transactions, however long, do not
// hold a gap back. One statement per call: the IDs' count and maximum after
// h.Settled (an index range) and, with a fence, the append lock's holders
// (pg_locks, pg_stat_activity).
func (s *Store) SettleEvents(ctx context.Context, h EventHorizon) (EventHorizon, error) {
	if s.dialect != dialectPostgres {
		return EventHorizon{Settled: math.MaxInt64}, nil
	}
	q := `SELECT pg_current_xact_id()::text::bigint, COALESCE(MAX(id), ?), COUNT(*), `
	if h.fenceXID != 0 {
		q += fmt.Sprintf(`(SELECT COALESCE(string_agg(a.backend_xid::text, ','), '') FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
			WHERE l.locktype = 'advisory' AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
			AND l.classid = 0 AND l.objid = %d AND l.objsubid = 1 AND l.granted AND a.backend_xid IS NOT NULL)`, eventAppendLock)
	} else {
		q += `''`
	}
	q += ` FROM events WHERE id > ?`
	var (
		xid, maxID, n int64
		holders       string
	)
	if err := s.queryRow(ctx, q, h.Settled, h.Settled).Scan(&xid, &maxID, &n, &holders); err != nil {
		return h, fmt.Errorf("store: settle events: %w", s.mapErr(err))
	}
	return h.next(xid, h.fenceXID != 0 && !olderHolder(holders, h.fenceXID), maxID, n), nil
}

// olderHolder reports whether one of the append lock's holders (their
// 32-bit transaction IDs, comma-separated) began before fence (a 64-bit
// transaction ID): compared modulo 2^32, as PostgreSQL compares them.
func olderHolder(holders string, fence int64) bool {
	for h := range strings.SplitSeq(holders, ",") {
		x, err := strconv.ParseUint(h, 10, 32)
		if err != nil {
			continue
		}
		if int32(uint32(x)-uint32(fence)) < 0 {
			return true
		}
	}
	return false
}

// next is SettleEvents' step: after h.Settled the log held n IDs up to
// maxID (h.Settled if none), xid was assigned after that read, and passed
// reports that no append older than the fence is still in flight.
func (h EventHorizon) next(xid int64, passed bool, maxID, n int64) EventHorizon {
	from := h.Settled
	if h.fenceXID != 0 && passed {
		h.Settled = max(h.Settled, h.fenceID)
		h.fenceID, h.fenceXID = 0, 0
	}
	if n == maxID-from {
		// No gap after from when read.
		h.Settled = max(h.Settled, maxID)
		if h.fenceID <= h.Settled {
			h.fenceID, h.fenceXID = 0, 0
		}
		return h
	}
	if h.fenceXID == 0 && maxID > h.Settled {
		h.fenceID, h.fenceXID = maxID, xid
	}
	return h
}

// EventFilter selects events. Type matches exactly or, ending in ".", as a
// prefix ("thing." gives every thing event).
type EventFilter struct {
	AfterID int64
	// BeforeID, when set, keeps only events with a lower ID.
	BeforeID int64
	Type     string
	Subject  string
	Actor    string
	// Since and Until, when set, keep events stamped at or after Since and
	// before Until.
	Since, Until time.Time
	// Newest lists the newest events first (ID descending): with BeforeID
	// it pages backwards through the log.
	Newest bool
	Limit  int
	// RareType reads the events of Type through the type index, for a type
	// few events have (a follower of key or CA events): on SQLite, whose
	// planner would otherwise range over the IDs and look at every event
	// between the bounds, the ID bounds are then checked on each event of
	// the type instead. Never for a frequent type: every event of it is
	// read and sorted.
	RareType bool
}

// prefixEnd is the smallest string above every string starting with
// prefix (in byte order), for a range over an index; "" when there is
// none (prefix all 0xFF bytes).
func prefixEnd(prefix string) string {
	b := []byte(prefix)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xFF {
			b[i]++
			return string(b[:i+1])
		}
	}
	return ""
}

// ListEvents returns events in ID order (newest first with f.Newest).
func (c *conn) ListEvents(ctx context.Context, f EventFilter) ([]Event, error) {
	q, args := c.listEventsQuery(f)
	rows, err := c.query(ctx, q, args...)
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

// listEventsQuery is ListEvents' query for f and its arguments.
func (c *conn) listEventsQuery(f EventFilter) (string, []any) {
	// Through the type index on SQLite (BINARY collation: a prefix is a
	// byte range there, unlike PostgreSQL's collations): "+id" keeps the
	// ID bounds off the rowid, so the planner takes the type's range.
	byType := f.RareType && f.Type != "" && c.dialect == dialectSQLite
	id := "id"
	if byType {
		id = "+id"
	}
	where, args := []string{id + " > ?"}, []any{f.AfterID}
	if f.BeforeID > 0 {
		where, args = append(where, id+" < ?"), append(args, f.BeforeID)
	}
	if !f.Since.IsZero() {
		where, args = append(where, "time >= ?"), append(args, micros(f.Since))
	}
	if !f.Until.IsZero() {
		where, args = append(where, "time < ?"), append(args, micros(f.Until))
	}
	if f.Type != "" {
		if strings.HasSuffix(f.Type, ".") {
			where, args = append(where, "substr(type, 1, ?) = ?"), append(args, len(f.Type), f.Type)
			if end := prefixEnd(f.Type); byType && end != "" {
				where, args = append(where, "type >= ?", "type < ?"), append(args, f.Type, end)
			}
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
	order := "id"
	if f.Newest {
		order = "id DESC"
	}
	return fmt.Sprintf(`SELECT id, time, type, subject, actor, details, count FROM events WHERE %s ORDER BY %s LIMIT %d`,
		strings.Join(where, " AND "), order, limit), args
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
