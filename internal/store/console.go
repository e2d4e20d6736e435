package store

import (
	"context"
	"fmt"
	"time"
)

// ConsoleSession is a web console login. IDHash is the SHA-256 (hex) of
// the session cookie's value; the value itself is never stored.
type ConsoleSession struct {
	IDHash     string
	Username   string
	CSRFToken  string
	CreatedAt  time.Time
	LastSeenAt time.Time
	ExpiresAt  time.Time
}

// CreateConsoleSession stores a new session; ErrExists if the hash is taken.
func (c *conn) CreateConsoleSession(ctx context.Context, s *ConsoleSession) error {
	if _, err := c.exec(ctx, `INSERT INTO console_sessions (id_hash, username, csrf_token, created_at, last_seen_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)`,
		s.IDHash, s.Username, s.CSRFToken, micros(s.CreatedAt), micros(s.LastSeenAt), micros(s.ExpiresAt)); err != nil {
		return fmt.Errorf("store: create console session: %w", err)
	}
	return nil
}

// ConsoleSessionByHash finds a session by the hash of its cookie value.
func (c *conn) ConsoleSessionByHash(ctx context.Context, idHash string) (*ConsoleSession, error) {
	var (
		s                        ConsoleSession
		created, seen, expiresAt int64
	)
	err := c.queryRow(ctx, `SELECT id_hash, username, csrf_token, created_at, last_seen_at, expires_at FROM console_sessions WHERE id_hash = ?`, idHash).
		Scan(&s.IDHash, &s.Username, &s.CSRFToken, &created, &seen, &expiresAt)
	if err != nil {
		return nil, fmt.Errorf("store: console session: %w", c.mapErr(err))
	}
	s.CreatedAt, s.LastSeenAt, s.ExpiresAt = fromMicros(created), fromMicros(seen), fromMicros(expiresAt)
	return &s, nil
}

// ListConsoleSessions lists a user's sessions, newest first.
func (c *conn) ListConsoleSessions(ctx context.Context, username string) ([]ConsoleSession, error) {
	rows, err := c.query(ctx, `SELECT id_hash, username, csrf_token, created_at, last_seen_at, expires_at FROM console_sessions WHERE username = ? ORDER BY created_at DESC, id_hash`, username)
	if err != nil {
		return nil, fmt.Errorf("store: list console sessions: %w", err)
	}
	defer rows.Close()
	out := []ConsoleSession{}
	for rows.Next() {
		var (
			s                        ConsoleSession
			created, seen, expiresAt int64
		)
		if err := rows.Scan(&s.IDHash, &s.Username, &s.CSRFToken, &created, &seen, &expiresAt); err != nil {
			return nil, fmt.Errorf("store: list console sessions: %w", err)
		}
		s.CreatedAt, s.LastSeenAt, s.ExpiresAt = fromMicros(created), fromMicros(seen), fromMicros(expiresAt)
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list console sessions: %w", err)
	}
	return out, nil
}

// TouchConsoleSession records activity on a session; ErrNotFound if it is
// gone.
func (c *conn) TouchConsoleSession(ctx context.Context, idHash string, lastSeen time.Time) error {
	res, err := c.exec(ctx, `UPDATE console_sessions SET last_seen_at = ? WHERE id_hash = ?`, micros(lastSeen), idHash)
	if err == nil {
		err = affected(res)
	}
	if err != nil {
		return fmt.Errorf("store: touch console session: %w", err)
	}
	return nil
}

// DeleteConsoleSession ends a session; ErrNotFound if it is gone.
func (c *conn) DeleteConsoleSession(ctx context.Context, idHash string) error {
	res, err := c.exec(ctx, `DELETE FROM console_sessions WHERE id_hash = ?`, idHash)
	if err == nil {
		err = affected(res)
	}
	if err != nil {
		return fmt.Errorf("store: delete console session: %w", err)
	}
	return nil
}

// PurgeConsoleSessions deletes sessions that expired at or before now or
// were last seen at or before idleSince, and returns how many it deleted.
func (c *conn) PurgeConsoleSessions(ctx context.Context, now, idleSince time.Time) (int64, error) {
	res, err := c.exec(ctx, `DELETE FROM console_sessions WHERE expires_at <= ? OR last_seen_at <= ?`, micros(now), micros(idleSince))
	if err != nil {
		return 0, fmt.Errorf("store: purge console sessions: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("store: purge console sessions: %w", err)
	}
	return n, nil
}
