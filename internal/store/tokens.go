package store

import (
	"context"
	"fmt"
)

// CreateAPIToken stores an admin API token (by hash).
func (c *conn) CreateAPIToken(ctx context.Context, t *APIToken) error {
	roles, err := jsonText(nonNil(t.Roles))
	if err != nil {
		return err
	}
	if _, err := c.exec(ctx, `INSERT INTO api_tokens (id, name, hash, username, roles, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		t.ID, t.Name, t.Hash, t.Username, roles, micros(t.CreatedAt), micros(t.ExpiresAt)); err != nil {
		return fmt.Errorf("store: create api token %q: %w", t.Name, err)
	}
	return nil
}

const apiTokenCols = `id, name, hash, username, roles, created_at, expires_at`

func scanAPIToken(row interface{ Scan(...any) error }) (*APIToken, error) {
	var (
		t                APIToken
		roles            string
		created, expires int64
	)
	if err := row.Scan(&t.ID, &t.Name, &t.Hash, &t.Username, &roles, &created, &expires); err != nil {
		return nil, err
	}
	if err := fromJSONText(roles, &t.Roles); err != nil {
		return nil, err
	}
	t.Roles = nonNil(t.Roles)
	t.CreatedAt, t.ExpiresAt = fromMicros(created), fromMicros(expires)
	return &t, nil
}

// APITokenByHash finds a token by the hash of its secret.
func (c *conn) APITokenByHash(ctx context.Context, hash string) (*APIToken, error) {
	t, err := scanAPIToken(c.queryRow(ctx, `SELECT `+apiTokenCols+` FROM api_tokens WHERE hash = ?`, hash))
	if err != nil {
		return nil, fmt.Errorf("store: api token: %w", c.mapErr(err))
	}
	return t, nil
}

// ListAPITokens returns all API tokens (without secrets).
func (c *conn) ListAPITokens(ctx context.Context) ([]APIToken, error) {
	rows, err := c.query(ctx, `SELECT `+apiTokenCols+` FROM api_tokens ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("store: list api tokens: %w", err)
	}
	defer rows.Close()
	out := []APIToken{}
	for rows.Next() {
		t, err := scanAPIToken(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list api tokens: %w", err)
		}
		out = append(out, *t)
	}
	return out, c.mapErr(rows.Err())
}

// DeleteAPIToken revokes a token by id.
func (c *conn) DeleteAPIToken(ctx context.Context, id string) error {
	res, err := c.exec(ctx, `DELETE FROM api_tokens WHERE id = ?`, id)
	if err == nil {
		err = affected(res)
	}
	if err != nil {
		return fmt.Errorf("store: delete api token %q: %w", id, err)
	}
	return nil
}
