package store

import (
	"context"
	"fmt"
)

const userCols = `id, username, display_name, email, password_hash, roles, disabled, version, created_at, updated_at`

func scanUser(row interface{ Scan(...any) error }) (*User, error) {
	var (
		u                User
		roles            string
		created, updated int64
	)
	if err := row.Scan(&u.ID, &u.Username, &u.DisplayName, &u.Email, &u.PasswordHash, &roles, &u.Disabled, &u.Version, &created, &updated); err != nil {
		return nil, err
	}
	if err := fromJSONText(roles, &u.Roles); err != nil {
		return nil, err
	}
	u.Roles = nonNil(u.Roles)
	u.CreatedAt, u.UpdatedAt = fromMicros(created), fromMicros(updated)
	return &u, nil
}

// CreateUser inserts u with version 1.
func (c *conn) CreateUser(ctx context.Context, u *User) error {
	roles, err := jsonText(nonNil(u.Roles))
	if err != nil {
		return err
	}
	u.Version = 1
	if _, err := c.exec(ctx, `INSERT INTO users (`+userCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		u.ID, u.Username, u.DisplayName, u.Email, u.PasswordHash, roles, u.Disabled, u.Version, micros(u.CreatedAt), micros(u.UpdatedAt)); err != nil {
		return fmt.Errorf("store: create user %q: %w", u.Username, err)
	}
	return nil
}

// GetUser returns the user with that username.
func (c *conn) GetUser(ctx context.Context, username string) (*User, error) {
	u, err := scanUser(c.queryRow(ctx, `SELECT `+userCols+` FROM users WHERE username = ?`+c.forUpdate(), username))
	if err != nil {
		return nil, fmt.Errorf("store: user %q: %w", username, c.mapErr(err))
	}
	return u, nil
}

// GetUserByID returns the user with that ID (an OpenID Connect subject).
func (c *conn) GetUserByID(ctx context.Context, id string) (*User, error) {
	u, err := scanUser(c.queryRow(ctx, `SELECT `+userCols+` FROM users WHERE id = ?`, id))
	if err != nil {
		return nil, fmt.Errorf("store: user with id %q: %w", id, c.mapErr(err))
	}
	return u, nil
}

// ListUsers returns users ordered by username.
func (c *conn) ListUsers(ctx context.Context, p Page) ([]User, error) {
	rows, err := c.query(ctx, fmt.Sprintf(`SELECT `+userCols+` FROM users WHERE username > ? ORDER BY username LIMIT %d`, p.limit()), p.After)
	if err != nil {
		return nil, fmt.Errorf("store: list users: %w", err)
	}
	defer rows.Close()
	out := []User{}
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list users: %w", err)
		}
		out = append(out, *u)
	}
	return out, c.mapErr(rows.Err())
}

// UpdateUser writes u if its version is current, then increments it.
func (c *conn) UpdateUser(ctx context.Context, u *User) error {
	roles, err := jsonText(nonNil(u.Roles))
	if err != nil {
		return err
	}
	res, err := c.exec(ctx, `UPDATE users SET display_name = ?, email = ?, password_hash = ?, roles = ?, disabled = ?,
		version = version + 1, updated_at = ? WHERE username = ? AND version = ?`,
		u.DisplayName, u.Email, u.PasswordHash, roles, u.Disabled, micros(u.UpdatedAt), u.Username, u.Version)
	if err == nil {
		err = c.checkVersioned(ctx, res, "users", "username", u.Username)
	}
	if err != nil {
		return fmt.Errorf("store: update user %q: %w", u.Username, err)
	}
	u.Version++
	return nil
}

// DeleteUser removes a user with their relationships, group memberships and
// API tokens.
func (c *conn) DeleteUser(ctx context.Context, username string) error {
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`DELETE FROM relationships WHERE (subject_kind = ? AND subject = ?) OR (object_kind = ? AND object = ?)`, []any{KindUser, username, KindUser, username}},
		{`DELETE FROM group_members WHERE member_kind = ? AND member = ?`, []any{KindUser, username}},
		{`DELETE FROM api_tokens WHERE username = ?`, []any{username}},
	} {
		if _, err := c.exec(ctx, q.sql, q.args...); err != nil {
			return fmt.Errorf("store: delete user %q: %w", username, err)
		}
	}
	res, err := c.exec(ctx, `DELETE FROM users WHERE username = ?`, username)
	if err == nil {
		err = affected(res)
	}
	if err != nil {
		return fmt.Errorf("store: delete user %q: %w", username, err)
	}
	return nil
}
