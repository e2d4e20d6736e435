package store

import (
	"context"
	"fmt"
)

const thingTypeCols = `name, description, attribute_schema, default_policies, auth_methods, scopes, approver_relation, key_algorithm, version, created_at, updated_at, scope_descriptions`

func scanThingType(row interface{ Scan(...any) error }) (*ThingType, error) {
	var (
		tt                            ThingType
		schema, policies, auth, scope string
		created, updated              int64
		scopeDescriptions             string
	)
	if err := row.Scan(&tt.Name, &tt.Description, &schema, &policies, &auth, &scope, &tt.ApproverRelation, &tt.KeyAlgorithm, &tt.Version, &created, &updated, &scopeDescriptions); err != nil {
		return nil, err
	}
	for _, p := range []struct {
		s string
		v any
	}{{schema, &tt.AttributeSchema}, {policies, &tt.DefaultPolicies}, {auth, &tt.AuthMethods}, {scope, &tt.Scopes}, {scopeDescriptions, &tt.ScopeDescriptions}} {
		if err := fromJSONText(p.s, p.v); err != nil {
			return nil, err
		}
	}
	tt.AttributeSchema = nonNil(tt.AttributeSchema)
	tt.DefaultPolicies = nonNil(tt.DefaultPolicies)
	tt.AuthMethods = nonNil(tt.AuthMethods)
	tt.Scopes = nonNil(tt.Scopes)
	if len(tt.ScopeDescriptions) == 0 {
		tt.ScopeDescriptions = nil
	}
	tt.CreatedAt, tt.UpdatedAt = fromMicros(created), fromMicros(updated)
	return &tt, nil
}

func thingTypeArgs(tt *ThingType) ([]any, error) {
	var out []any
	for _, v := range []any{nonNil(tt.AttributeSchema), nonNil(tt.DefaultPolicies), nonNil(tt.AuthMethods), nonNil(tt.Scopes)} {
		s, err := jsonText(v)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// scopeDescriptionsText is tt's scope descriptions as stored ("{}" for none).
func scopeDescriptionsText(tt *ThingType) (string, error) {
	if len(tt.ScopeDescriptions) == 0 {
		return "{}", nil
	}
	return jsonText(tt.ScopeDescriptions)
}

// CreateThingType inserts tt with version 1.
func (c *conn) CreateThingType(ctx context.Context, tt *ThingType) error {
	cols, err := thingTypeArgs(tt)
	if err != nil {
		return err
	}
	tt.Version = 1
	args := append([]any{tt.Name, tt.Description}, cols...)
	descriptions, err := scopeDescriptionsText(tt)
	if err != nil {
		return err
	}
	args = append(args, tt.ApproverRelation, tt.KeyAlgorithm, tt.Version, micros(tt.CreatedAt), micros(tt.UpdatedAt), descriptions)
	if _, err := c.exec(ctx, `INSERT INTO thing_types (`+thingTypeCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, args...); err != nil {
		return fmt.Errorf("store: create thing type %q: %w", tt.Name, err)
	}
	return nil
}

// GetThingType returns the thing type named name.
func (c *conn) GetThingType(ctx context.Context, name string) (*ThingType, error) {
	tt, err := scanThingType(c.queryRow(ctx, `SELECT `+thingTypeCols+` FROM thing_types WHERE name = ?`+c.forUpdate(), name))
	if err != nil {
		return nil, fmt.Errorf("store: thing type %q: %w", name, c.mapErr(err))
	}
	return tt, nil
}

// ListThingTypes returns thing types ordered by name.
func (c *conn) ListThingTypes(ctx context.Context, p Page) ([]ThingType, error) {
	rows, err := c.query(ctx, fmt.Sprintf(`SELECT `+thingTypeCols+` FROM thing_types WHERE name > ? ORDER BY name LIMIT %d`, p.limit()), p.After)
	if err != nil {
		return nil, fmt.Errorf("store: list thing types: %w", err)
	}
	defer rows.Close()
	out := []ThingType{}
	for rows.Next() {
		tt, err := scanThingType(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list thing types: %w", err)
		}
		out = append(out, *tt)
	}
	return out, c.mapErr(rows.Err())
}

// UpdateThingType writes tt if its version is current, then increments it.
func (c *conn) UpdateThingType(ctx context.Context, tt *ThingType) error {
	cols, err := thingTypeArgs(tt)
	if err != nil {
		return err
	}
	descriptions, err := scopeDescriptionsText(tt)
	if err != nil {
		return err
	}
	args := append([]any{tt.Description}, cols...)
	args = append(args, tt.ApproverRelation, tt.KeyAlgorithm, descriptions, micros(tt.UpdatedAt), tt.Name, tt.Version)
	res, err := c.exec(ctx, `UPDATE thing_types SET description = ?, attribute_schema = ?, default_policies = ?, auth_methods = ?, scopes = ?, approver_relation = ?, key_algorithm = ?,
		scope_descriptions = ?, version = version + 1, updated_at = ? WHERE name = ? AND version = ?`, args...)
	if err == nil {
		err = c.checkVersioned(ctx, res, "thing_types", "name", tt.Name)
	}
	if err != nil {
		return fmt.Errorf("store: update thing type %q: %w", tt.Name, err)
	}
	tt.Version++
	return nil
}

// DeleteThingType removes a thing type. Things still of that type make it
// fail with ErrInUse.
func (c *conn) DeleteThingType(ctx context.Context, name string) error {
	var n int
	if err := c.queryRow(ctx, `SELECT COUNT(*) FROM things WHERE thing_type = ?`, name).Scan(&n); err != nil {
		return fmt.Errorf("store: delete thing type %q: %w", name, c.mapErr(err))
	}
	if n > 0 {
		return fmt.Errorf("store: delete thing type %q: %d things still have it: %w", name, n, ErrInUse)
	}
	res, err := c.exec(ctx, `DELETE FROM thing_types WHERE name = ?`, name)
	if err == nil {
		err = affected(res)
	}
	if err != nil {
		return fmt.Errorf("store: delete thing type %q: %w", name, err)
	}
	return nil
}
