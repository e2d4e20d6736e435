package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// Page selects a window of a list ordered by name: the items after After,
// at most Limit of them (default 100, at most 1000).
type Page struct {
	After string
	Limit int
}

func (p Page) limit() int {
	switch {
	case p.Limit <= 0:
		return 100
	case p.Limit > 1000:
		return 1000
	}
	return p.Limit
}

// ThingFilter narrows ListThings.
type ThingFilter struct {
	Page
	ThingType string
	// Prefix keeps things whose name starts with it.
	Prefix string
	// AttributeName and AttributeValue keep things with that attribute value.
	AttributeName  string
	AttributeValue string
}

const thingCols = `id, name, thing_type, attributes, state, version, created_at, updated_at`

func scanThing(row interface{ Scan(...any) error }) (*Thing, error) {
	var (
		t                Thing
		thingType        sql.NullString
		attrs            string
		created, updated int64
	)
	if err := row.Scan(&t.ID, &t.Name, &thingType, &attrs, &t.State, &t.Version, &created, &updated); err != nil {
		return nil, err
	}
	t.ThingType = thingType.String
	t.Attributes = map[string]string{}
	if err := fromJSONText(attrs, &t.Attributes); err != nil {
		return nil, err
	}
	t.CreatedAt, t.UpdatedAt = fromMicros(created), fromMicros(updated)
	return &t, nil
}

func nullString(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

// CreateThing inserts t with version 1. It fails with ErrExists for a taken
// name and ErrNotFound for an unknown thing type.
func (c *conn) CreateThing(ctx context.Context, t *Thing) error {
	attrs, err := jsonText(t.Attributes)
	if err != nil {
		return err
	}
	t.Version = 1
	_, err = c.exec(ctx, `INSERT INTO things (`+thingCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		t.ID, t.Name, nullString(t.ThingType), attrs, t.State, t.Version, micros(t.CreatedAt), micros(t.UpdatedAt))
	if err != nil {
		return fmt.Errorf("store: create thing %q: %w", t.Name, err)
	}
	return nil
}

// GetThing returns the thing named name. Inside a Tx on PostgreSQL the row
// stays locked until the transaction ends.
func (c *conn) GetThing(ctx context.Context, name string) (*Thing, error) {
	t, err := scanThing(c.queryRow(ctx, `SELECT `+thingCols+` FROM things WHERE name = ?`+c.forUpdate(), name))
	if err != nil {
		return nil, fmt.Errorf("store: thing %q: %w", name, c.mapErr(err))
	}
	return t, nil
}

// ListThings returns things ordered by name.
func (c *conn) ListThings(ctx context.Context, f ThingFilter) ([]Thing, error) {
	var (
		where []string
		args  []any
	)
	if f.After != "" {
		where, args = append(where, "name > ?"), append(args, f.After)
	}
	if f.ThingType != "" {
		where, args = append(where, "thing_type = ?"), append(args, f.ThingType)
	}
	if f.Prefix != "" {
		where, args = append(where, "substr(name, 1, ?) = ?"), append(args, len(f.Prefix), f.Prefix)
	}
	q := `SELECT ` + thingCols + ` FROM things`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY name"
	// Attribute filters are applied after decoding, so the limit is applied
	// here only without one.
	if f.AttributeName == "" {
		q += fmt.Sprintf(" LIMIT %d", f.limit())
	}
	rows, err := c.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list things: %w", err)
	}
	defer rows.Close()
	out := []Thing{}
	for rows.Next() {
		t, err := scanThing(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list things: %w", err)
		}
		if f.AttributeName != "" && t.Attributes[f.AttributeName] != f.AttributeValue {
			continue
		}
		out = append(out, *t)
		if len(out) == f.limit() {
			break
		}
	}
	return out, c.mapErr(rows.Err())
}

// UpdateThing writes t if its stored version still equals t.Version and
// then increments t.Version. A changed row gives ErrStale, a missing one
// ErrNotFound.
func (c *conn) UpdateThing(ctx context.Context, t *Thing) error {
	attrs, err := jsonText(t.Attributes)
	if err != nil {
		return err
	}
	res, err := c.exec(ctx, `UPDATE things SET thing_type = ?, attributes = ?, state = ?, version = version + 1, updated_at = ?
		WHERE name = ? AND version = ?`,
		nullString(t.ThingType), attrs, t.State, micros(t.UpdatedAt), t.Name, t.Version)
	if err != nil {
		return fmt.Errorf("store: update thing %q: %w", t.Name, err)
	}
	if err := c.checkVersioned(ctx, res, "things", "name", t.Name); err != nil {
		return fmt.Errorf("store: update thing %q: %w", t.Name, err)
	}
	t.Version++
	return nil
}

// DeleteThing removes a thing with its relationships and group memberships.
func (c *conn) DeleteThing(ctx context.Context, name string) error {
	if _, err := c.exec(ctx, `DELETE FROM relationships WHERE (subject_kind = ? AND subject = ?) OR (object_kind = ? AND object = ?)`, KindThing, name, KindThing, name); err != nil {
		return fmt.Errorf("store: delete thing %q: %w", name, err)
	}
	if _, err := c.exec(ctx, `DELETE FROM group_members WHERE member_kind = ? AND member = ?`, KindThing, name); err != nil {
		return fmt.Errorf("store: delete thing %q: %w", name, err)
	}
	res, err := c.exec(ctx, `DELETE FROM things WHERE name = ?`, name)
	if err == nil {
		err = affected(res)
	}
	if err != nil {
		return fmt.Errorf("store: delete thing %q: %w", name, err)
	}
	return nil
}

// checkVersioned tells a stale version from a missing row after an
// optimistic update touched nothing.
func (c *conn) checkVersioned(ctx context.Context, res sql.Result, table, keyCol, key string) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	var one int
	err = c.queryRow(ctx, `SELECT 1 FROM `+table+` WHERE `+keyCol+` = ?`, key).Scan(&one)
	if err != nil {
		return c.mapErr(err)
	}
	return ErrStale
}

// CountThings returns how many things exist; it feeds metrics.
func (c *conn) CountThings(ctx context.Context) (int64, error) {
	var n int64
	err := c.queryRow(ctx, `SELECT COUNT(*) FROM things`).Scan(&n)
	return n, c.mapErr(err)
}
