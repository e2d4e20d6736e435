package store

import (
	"context"
	"fmt"
)

// CreateGroup inserts g with version 1.
func (c *conn) CreateGroup(ctx context.Context, g *Group) error {
	g.Version = 1
	if _, err := c.exec(ctx, `INSERT INTO groups (name, description, version, created_at, updated_at) VALUES (?, ?, ?, ?, ?)`,
		g.Name, g.Description, g.Version, micros(g.CreatedAt), micros(g.UpdatedAt)); err != nil {
		return fmt.Errorf("store: create group %q: %w", g.Name, err)
	}
	return nil
}

func scanGroup(row interface{ Scan(...any) error }) (*Group, error) {
	var (
		g                Group
		created, updated int64
	)
	if err := row.Scan(&g.Name, &g.Description, &g.Version, &created, &updated); err != nil {
		return nil, err
	}
	g.CreatedAt, g.UpdatedAt = fromMicros(created), fromMicros(updated)
	return &g, nil
}

// GetGroup returns the group named name.
func (c *conn) GetGroup(ctx context.Context, name string) (*Group, error) {
	g, err := scanGroup(c.queryRow(ctx, `SELECT name, description, version, created_at, updated_at FROM groups WHERE name = ?`+c.forUpdate(), name))
	if err != nil {
		return nil, fmt.Errorf("store: group %q: %w", name, c.mapErr(err))
	}
	return g, nil
}

// ListGroups returns groups ordered by name.
func (c *conn) ListGroups(ctx context.Context, p Page) ([]Group, error) {
	rows, err := c.query(ctx, fmt.Sprintf(`SELECT name, description, version, created_at, updated_at FROM groups WHERE name > ? ORDER BY name LIMIT %d`, p.limit()), p.After)
	if err != nil {
		return nil, fmt.Errorf("store: list groups: %w", err)
	}
	defer rows.Close()
	out := []Group{}
	for rows.Next() {
		g, err := scanGroup(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list groups: %w", err)
		}
		out = append(out, *g)
	}
	return out, c.mapErr(rows.Err())
}

// UpdateGroup writes g if its version is current, then increments it.
func (c *conn) UpdateGroup(ctx context.Context, g *Group) error {
	res, err := c.exec(ctx, `UPDATE groups SET description = ?, version = version + 1, updated_at = ? WHERE name = ? AND version = ?`,
		g.Description, micros(g.UpdatedAt), g.Name, g.Version)
	if err == nil {
		err = c.checkVersioned(ctx, res, "groups", "name", g.Name)
	}
	if err != nil {
		return fmt.Errorf("store: update group %q: %w", g.Name, err)
	}
	g.Version++
	return nil
}

// DeleteGroup removes a group and its memberships.
func (c *conn) DeleteGroup(ctx context.Context, name string) error {
	if _, err := c.exec(ctx, `DELETE FROM group_members WHERE group_name = ?`, name); err != nil {
		return fmt.Errorf("store: delete group %q: %w", name, err)
	}
	res, err := c.exec(ctx, `DELETE FROM groups WHERE name = ?`, name)
	if err == nil {
		err = affected(res)
	}
	if err != nil {
		return fmt.Errorf("store: delete group %q: %w", name, err)
	}
	return nil
}

// AddGroupMember adds m to its group; ErrExists if already a member.
func (c *conn) AddGroupMember(ctx context.Context, m *GroupMember) error {
	if _, err := c.exec(ctx, `INSERT INTO group_members (group_name, member_kind, member, created_at) VALUES (?, ?, ?, ?)`,
		m.Group, m.Kind, m.Member, micros(m.CreatedAt)); err != nil {
		return fmt.Errorf("store: add %s %q to group %q: %w", m.Kind, m.Member, m.Group, err)
	}
	return nil
}

// RemoveGroupMember removes a member; ErrNotFound if it was not one.
func (c *conn) RemoveGroupMember(ctx context.Context, group, kind, member string) error {
	res, err := c.exec(ctx, `DELETE FROM group_members WHERE group_name = ? AND member_kind = ? AND member = ?`, group, kind, member)
	if err == nil {
		err = affected(res)
	}
	if err != nil {
		return fmt.Errorf("store: remove %s %q from group %q: %w", kind, member, group, err)
	}
	return nil
}

// ListGroupMembers returns a group's members ordered by kind and name.
func (c *conn) ListGroupMembers(ctx context.Context, group string) ([]GroupMember, error) {
	return c.listMembers(ctx, `WHERE group_name = ? ORDER BY member_kind, member`, group)
}

// GroupsOf returns the memberships of one user or thing.
func (c *conn) GroupsOf(ctx context.Context, kind, member string) ([]GroupMember, error) {
	return c.listMembers(ctx, `WHERE member_kind = ? AND member = ? ORDER BY group_name`, kind, member)
}

func (c *conn) listMembers(ctx context.Context, where string, args ...any) ([]GroupMember, error) {
	rows, err := c.query(ctx, `SELECT group_name, member_kind, member, created_at FROM group_members `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list group members: %w", err)
	}
	defer rows.Close()
	out := []GroupMember{}
	for rows.Next() {
		var (
			m       GroupMember
			created int64
		)
		if err := rows.Scan(&m.Group, &m.Kind, &m.Member, &created); err != nil {
			return nil, fmt.Errorf("store: list group members: %w", err)
		}
		m.CreatedAt = fromMicros(created)
		out = append(out, m)
	}
	return out, c.mapErr(rows.Err())
}
