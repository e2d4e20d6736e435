package store

import (
	"context"
	"fmt"
	"strings"
)

// AddRelationship records r; ErrExists if the same edge exists.
func (c *conn) AddRelationship(ctx context.Context, r *Relationship) error {
	if _, err := c.exec(ctx, `INSERT INTO relationships (subject_kind, subject, relation, object_kind, object, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
		r.SubjectKind, r.Subject, r.Relation, r.ObjectKind, r.Object, micros(r.CreatedAt)); err != nil {
		return fmt.Errorf("store: add relationship: %w", err)
	}
	return nil
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
}

// ListRelationships returns the edges matching f.
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
	q := `SELECT subject_kind, subject, relation, object_kind, object, created_at FROM relationships`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY subject_kind, subject, relation, object_kind, object LIMIT 10000"
	rows, err := c.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list relationships: %w", err)
	}
	defer rows.Close()
	out := []Relationship{}
	for rows.Next() {
		var (
			r       Relationship
			created int64
		)
		if err := rows.Scan(&r.SubjectKind, &r.Subject, &r.Relation, &r.ObjectKind, &r.Object, &created); err != nil {
			return nil, fmt.Errorf("store: list relationships: %w", err)
		}
		r.CreatedAt = fromMicros(created)
		out = append(out, r)
	}
	return out, c.mapErr(rows.Err())
}
