package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// AddRelationship records r; ErrExists if the same edge exists (an expired
// edge not yet purged is replaced).
func (c *conn) AddRelationship(ctx context.Context, r *Relationship) error {
	now := r.CreatedAt
	if now.IsZero() {
		now = time.Now()
	}
	// An expired edge awaiting the purge must not block a new grant.
	if _, err := c.exec(ctx, `DELETE FROM relationships WHERE subject_kind = ? AND subject = ? AND relation = ? AND object_kind = ? AND object = ? AND expires_at > 0 AND expires_at <= ?`,
		r.SubjectKind, r.Subject, r.Relation, r.ObjectKind, r.Object, micros(now)); err != nil {
		return fmt.Errorf("store: add relationship: %w", err)
	}
	if _, err := c.exec(ctx, `INSERT INTO relationships (subject_kind, subject, relation, object_kind, object, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		r.SubjectKind, r.Subject, r.Relation, r.ObjectKind, r.Object, micros(r.CreatedAt), micros(r.ExpiresAt)); err != nil {
		return fmt.Errorf("store: add relationship: %w", err)
	}
	return nil
}

// GrantRelationship records r, or extends an existing edge to r.ExpiresAt:
// the grant lasting longer wins, and an edge without expiry stays so. It
// returns the edge as stored.
func (c *conn) GrantRelationship(ctx context.Context, r *Relationship) (*Relationship, error) {
	var exp int64
	err := c.queryRow(ctx, `SELECT expires_at FROM relationships WHERE subject_kind = ? AND subject = ? AND relation = ? AND object_kind = ? AND object = ?`+c.forUpdate(),
		r.SubjectKind, r.Subject, r.Relation, r.ObjectKind, r.Object).Scan(&exp)
	switch err = c.mapErr(err); {
	case errors.Is(err, ErrNotFound):
		return r, c.AddRelationship(ctx, r)
	case err != nil:
		return nil, fmt.Errorf("store: grant relationship: %w", err)
	}
	out := *r
	stillValid := exp == 0 || exp > micros(r.CreatedAt)
	switch {
	case stillValid && exp == 0:
		out.ExpiresAt = time.Time{}
	case stillValid && !r.ExpiresAt.IsZero() && exp > micros(r.ExpiresAt):
		out.ExpiresAt = fromMicros(exp)
	}
	if _, err := c.exec(ctx, `UPDATE relationships SET expires_at = ? WHERE subject_kind = ? AND subject = ? AND relation = ? AND object_kind = ? AND object = ?`,
		micros(out.ExpiresAt), r.SubjectKind, r.Subject, r.Relation, r.ObjectKind, r.Object); err != nil {
		return nil, fmt.Errorf("store: grant relationship: %w", err)
	}
	return &out, nil
}

// RemoveRelationship deletes the edge r names; ErrNotFound if absent.
func (c *conn) RemoveRelationship(ctx context.Context, r Relationship) error {
	res, err := c.exec(ctx, `DELETE FROM relationships WHERE subject_kind = ? AND subject = ? AND relation = ? AND object_kind = ? AND object = ?`,
		r.SubjectKind, r.Subject, r.Relation, r.ObjectKind, r.Object)
	if err == nil {
		err = affected(res)
	}
	if err != nil {
		return fmt.Errorf("store: remove relationship: %w", err)
	}
	return nil
}

// RelationshipFilter selects edges; empty fields match anything.
type RelationshipFilter struct {
	SubjectKind, Subject, Relation, ObjectKind, Object string
	// At is the time expiry is judged at: edges with an expiry at or before
	// it are left out. Zero means the wall clock now.
	At time.Time
}

// ListRelationships returns the edges matching f that have not expired.
func (c *conn) ListRelationships(ctx context.Context, f RelationshipFilter) ([]Relationship, error) {
	var (
		where []string
		args  []any
	)
	for _, p := range []struct{ col, v string }{
		{"subject_kind", f.SubjectKind}, {"subject", f.Subject}, {"relation", f.Relation},
		{"object_kind", f.ObjectKind}, {"object", f.Object},
	} {
		if p.v != "" {
			where, args = append(where, p.col+" = ?"), append(args, p.v)
		}
	}
	at := f.At
	if at.IsZero() {
		at = time.Now()
	}
	where, args = append(where, "(expires_at = 0 OR expires_at > ?)"), append(args, micros(at))
	q := `SELECT subject_kind, subject, relation, object_kind, object, created_at, expires_at FROM relationships WHERE ` + strings.Join(where, " AND ")
	q += " ORDER BY subject_kind, subject, relation, object_kind, object LIMIT 10000"
	rows, err := c.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list relationships: %w", err)
	}
	defer rows.Close()
	out := []Relationship{}
	for rows.Next() {
		r, err := scanRelationship(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list relationships: %w", err)
		}
		out = append(out, r)
	}
	return out, c.mapErr(rows.Err())
}

func scanRelationship(row interface{ Scan(...any) error }) (Relationship, error) {
	var (
		r                Relationship
		created, expires int64
	)
	if err := row.Scan(&r.SubjectKind, &r.Subject, &r.Relation, &r.ObjectKind, &r.Object, &created, &expires); err != nil {
		return r, err
	}
	r.CreatedAt, r.ExpiresAt = fromMicros(created), fromMicros(expires)
	return r, nil
}

// PurgeExpiredRelationships deletes up to limit edges that expired at or
// before now and returns them, so the caller can record what went away.
func (c *conn) PurgeExpiredRelationships(ctx context.Context, now time.Time, limit int) ([]Relationship, error) {
	if limit <= 0 {
		limit = 1000
	}
	rows, err := c.query(ctx, fmt.Sprintf(`SELECT subject_kind, subject, relation, object_kind, object, created_at, expires_at FROM relationships
		WHERE expires_at > 0 AND expires_at <= ? ORDER BY expires_at LIMIT %d`, limit), micros(now))
	if err != nil {
		return nil, fmt.Errorf("store: purge relationships: %w", err)
	}
	var out []Relationship
	for rows.Next() {
		r, err := scanRelationship(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: purge relationships: %w", err)
		}
		out = append(out, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: purge relationships: %w", c.mapErr(err))
	}
	// Only the edges this call deleted are returned: another replica
	// purging at the same time reports the others.
	deleted := out[:0]
	for _, r := range out {
		res, err := c.exec(ctx, `DELETE FROM relationships WHERE subject_kind = ? AND subject = ? AND relation = ? AND object_kind = ? AND object = ? AND expires_at = ?`,
			r.SubjectKind, r.Subject, r.Relation, r.ObjectKind, r.Object, micros(r.ExpiresAt))
		if err != nil {
			return nil, fmt.Errorf("store: purge relationships: %w", err)
		}
		if n, err := res.RowsAffected(); err == nil && n > 0 {
			deleted = append(deleted, r)
		}
	}
	return deleted, nil
}
