package store

import (
	"context"
	"fmt"
)

const authorizerCols = `name, token_key_name, public_keys, signing_disabled, status, is_default, version, created_at, updated_at`

func scanAuthorizer(row interface{ Scan(...any) error }) (*Authorizer, error) {
	var (
		a                Authorizer
		keys             string
		created, updated int64
	)
	if err := row.Scan(&a.Name, &a.TokenKeyName, &keys, &a.SigningDisabled, &a.Status, &a.Default, &a.Version, &created, &updated); err != nil {
		return nil, err
	}
	a.PublicKeys = map[string]string{}
	if err := fromJSONText(keys, &a.PublicKeys); err != nil {
		return nil, err
	}
	a.CreatedAt, a.UpdatedAt = fromMicros(created), fromMicros(updated)
	return &a, nil
}

// CreateAuthorizer inserts a with version 1.
func (c *conn) CreateAuthorizer(ctx context.Context, a *Authorizer) error {
	keys, err := jsonText(a.PublicKeys)
	if err != nil {
		return err
	}
	a.Version = 1
	if _, err := c.exec(ctx, `INSERT INTO authorizers (`+authorizerCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		a.Name, a.TokenKeyName, keys, a.SigningDisabled, a.Status, a.Default, a.Version, micros(a.CreatedAt), micros(a.UpdatedAt)); err != nil {
		return fmt.Errorf("store: create authorizer %q: %w", a.Name, err)
	}
	return nil
}

// GetAuthorizer returns an authorizer by name.
func (c *conn) GetAuthorizer(ctx context.Context, name string) (*Authorizer, error) {
	a, err := scanAuthorizer(c.queryRow(ctx, `SELECT `+authorizerCols+` FROM authorizers WHERE name = ?`+c.forUpdate(), name))
	if err != nil {
		return nil, fmt.Errorf("store: authorizer %q: %w", name, c.mapErr(err))
	}
	return a, nil
}

// DefaultAuthorizer returns the authorizer marked default.
func (c *conn) DefaultAuthorizer(ctx context.Context) (*Authorizer, error) {
	a, err := scanAuthorizer(c.queryRow(ctx, `SELECT `+authorizerCols+` FROM authorizers WHERE is_default = ?`, true))
	if err != nil {
		return nil, fmt.Errorf("store: default authorizer: %w", c.mapErr(err))
	}
	return a, nil
}

// ListAuthorizers returns all authorizers ordered by name.
func (c *conn) ListAuthorizers(ctx context.Context) ([]Authorizer, error) {
	rows, err := c.query(ctx, `SELECT `+authorizerCols+` FROM authorizers ORDER BY name LIMIT 1000`)
	if err != nil {
		return nil, fmt.Errorf("store: list authorizers: %w", err)
	}
	defer rows.Close()
	out := []Authorizer{}
	for rows.Next() {
		a, err := scanAuthorizer(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list authorizers: %w", err)
		}
		out = append(out, *a)
	}
	return out, c.mapErr(rows.Err())
}

// UpdateAuthorizer writes a if its version is current, then increments it.
func (c *conn) UpdateAuthorizer(ctx context.Context, a *Authorizer) error {
	keys, err := jsonText(a.PublicKeys)
	if err != nil {
		return err
	}
	res, err := c.exec(ctx, `UPDATE authorizers SET token_key_name = ?, public_keys = ?, signing_disabled = ?, status = ?, is_default = ?,
		version = version + 1, updated_at = ? WHERE name = ? AND version = ?`,
		a.TokenKeyName, keys, a.SigningDisabled, a.Status, a.Default, micros(a.UpdatedAt), a.Name, a.Version)
	if err == nil {
		err = c.checkVersioned(ctx, res, "authorizers", "name", a.Name)
	}
	if err != nil {
		return fmt.Errorf("store: update authorizer %q: %w", a.Name, err)
	}
	a.Version++
	return nil
}

// ClearDefaultAuthorizer unmarks every default authorizer.
func (c *conn) ClearDefaultAuthorizer(ctx context.Context) error {
	_, err := c.exec(ctx, `UPDATE authorizers SET is_default = ?, version = version + 1 WHERE is_default = ?`, false, true)
	if err != nil {
		return fmt.Errorf("store: clear default authorizer: %w", err)
	}
	return nil
}

// DeleteAuthorizer removes an authorizer.
func (c *conn) DeleteAuthorizer(ctx context.Context, name string) error {
	res, err := c.exec(ctx, `DELETE FROM authorizers WHERE name = ?`, name)
	if err == nil {
		err = affected(res)
	}
	if err != nil {
		return fmt.Errorf("store: delete authorizer %q: %w", name, err)
	}
	return nil
}
