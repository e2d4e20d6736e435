package store

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// AdapterSession is a connection an external broker (EMQX, RabbitMQ)
// authenticated through Gatehouse's adapters, kept so that any replica can
// answer the broker's later authorization calls. Identity is the
// authenticated identity as JSON, never a secret.
type AdapterSession struct {
	Broker       string
	ClientID     string
	Username     string
	CredentialID string
	ThingName    string
	UserName     string
	Identity     []byte
	SourceIP     string
	CreatedAt    time.Time
	ExpiresAt    time.Time
}

const adapterSessionCols = `broker, client_id, username, credential_id, thing_name, user_name, identity, source_ip, created_at, expires_at`

// PutAdapterSession stores s, replacing the session of the same broker,
// client id and username.
func (c *conn) PutAdapterSession(ctx context.Context, s *AdapterSession) error {
	if _, err := c.exec(ctx, `INSERT INTO adapter_sessions (`+adapterSessionCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (broker, client_id, username) DO UPDATE SET credential_id = excluded.credential_id, thing_name = excluded.thing_name,
		user_name = excluded.user_name, identity = excluded.identity, source_ip = excluded.source_ip, created_at = excluded.created_at, expires_at = excluded.expires_at`,
		s.Broker, s.ClientID, s.Username, s.CredentialID, s.ThingName, s.UserName, string(s.Identity), s.SourceIP, micros(s.CreatedAt), micros(s.ExpiresAt)); err != nil {
		return fmt.Errorf("store: put adapter session: %w", err)
	}
	return nil
}

func scanAdapterSession(r interface{ Scan(...any) error }) (*AdapterSession, error) {
	var (
		s                  AdapterSession
		identity           string
		created, expiresAt int64
	)
	if err := r.Scan(&s.Broker, &s.ClientID, &s.Username, &s.CredentialID, &s.ThingName, &s.UserName, &identity, &s.SourceIP, &created, &expiresAt); err != nil {
		return nil, err
	}
	s.Identity, s.CreatedAt, s.ExpiresAt = []byte(identity), fromMicros(created), fromMicros(expiresAt)
	return &s, nil
}

// AdapterSession finds a session, expired or not; ErrNotFound if there is
// none.
func (c *conn) AdapterSession(ctx context.Context, broker, clientID, username string) (*AdapterSession, error) {
	s, err := scanAdapterSession(c.queryRow(ctx, `SELECT `+adapterSessionCols+` FROM adapter_sessions WHERE broker = ? AND client_id = ? AND username = ?`, broker, clientID, username))
	if err != nil {
		return nil, fmt.Errorf("store: adapter session: %w", c.mapErr(err))
	}
	return s, nil
}

// DeleteAdapterSession deletes one session; ErrNotFound if it is gone
// (another replica deleted it first).
func (c *conn) DeleteAdapterSession(ctx context.Context, broker, clientID, username string) error {
	res, err := c.exec(ctx, `DELETE FROM adapter_sessions WHERE broker = ? AND client_id = ? AND username = ?`, broker, clientID, username)
	if err == nil {
		err = affected(res)
	}
	if err != nil {
		return fmt.Errorf("store: delete adapter session: %w", err)
	}
	return nil
}

// AdapterSessionFilter selects sessions of one broker: those expired at
// ExpiredBy (when set), or those of any of the credential ids, things or
// users listed.
type AdapterSessionFilter struct {
	Broker        string
	ExpiredBy     time.Time
	CredentialIDs []string
	ThingNames    []string
	UserNames     []string
	// Limit bounds the answer (default 1000).
	Limit int
}

// AdapterSessions lists the sessions f selects, soonest expiry first.
func (c *conn) AdapterSessions(ctx context.Context, f AdapterSessionFilter) ([]AdapterSession, error) {
	var (
		or   []string
		args = []any{f.Broker}
	)
	if !f.ExpiredBy.IsZero() {
		or = append(or, "expires_at <= ?")
		args = append(args, micros(f.ExpiredBy))
	}
	in := func(col string, vals []string) {
		if len(vals) == 0 {
			return
		}
		or = append(or, col+" IN (?"+strings.Repeat(", ?", len(vals)-1)+")")
		for _, v := range vals {
			args = append(args, v)
		}
	}
	in("credential_id", f.CredentialIDs)
	in("thing_name", f.ThingNames)
	in("user_name", f.UserNames)
	if len(or) == 0 {
		return nil, nil
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 1000
	}
	args = append(args, limit)
	rows, err := c.query(ctx, `SELECT `+adapterSessionCols+` FROM adapter_sessions WHERE broker = ? AND (`+strings.Join(or, " OR ")+`) ORDER BY expires_at LIMIT ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list adapter sessions: %w", err)
	}
	defer rows.Close()
	var out []AdapterSession
	for rows.Next() {
		s, err := scanAdapterSession(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list adapter sessions: %w", c.mapErr(err))
		}
		out = append(out, *s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list adapter sessions: %w", c.mapErr(err))
	}
	return out, nil
}

// CountAdapterSessions counts the sessions of every broker unexpired at now.
func (c *conn) CountAdapterSessions(ctx context.Context, now time.Time) (int, error) {
	var n int
	if err := c.queryRow(ctx, `SELECT COUNT(*) FROM adapter_sessions WHERE expires_at > ?`, micros(now)).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: count adapter sessions: %w", c.mapErr(err))
	}
	return n, nil
}

// PurgeAdapterSessions deletes the sessions of broker that expired at or
// before now and returns how many it deleted.
func (c *conn) PurgeAdapterSessions(ctx context.Context, broker string, now time.Time) (int64, error) {
	res, err := c.exec(ctx, `DELETE FROM adapter_sessions WHERE broker = ? AND expires_at <= ?`, broker, micros(now))
	if err != nil {
		return 0, fmt.Errorf("store: purge adapter sessions: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("store: purge adapter sessions: %w", err)
	}
	return n, nil
}
