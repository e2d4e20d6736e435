package store

import (
	"context"
	"fmt"
	"strings"
)

// CreatePolicy inserts p with its first document as version 1, the default.
func (c *conn) CreatePolicy(ctx context.Context, p *Policy, document []byte) error {
	p.Version, p.DefaultVersion, p.NextVersion = 1, 1, 2
	if _, err := c.exec(ctx, `INSERT INTO policies (name, description, default_version, next_version, version, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		p.Name, p.Description, p.DefaultVersion, p.NextVersion, p.Version, micros(p.CreatedAt), micros(p.UpdatedAt)); err != nil {
		return fmt.Errorf("store: create policy %q: %w", p.Name, err)
	}
	if _, err := c.exec(ctx, `INSERT INTO policy_versions (policy_name, version_id, document, created_at) VALUES (?, ?, ?, ?)`,
		p.Name, 1, string(document), micros(p.CreatedAt)); err != nil {
		return fmt.Errorf("store: create policy %q: %w", p.Name, err)
	}
	return nil
}

const policyCols = `name, description, default_version, next_version, version, created_at, updated_at`

func scanPolicy(row interface{ Scan(...any) error }) (*Policy, error) {
	var (
		p                Policy
		created, updated int64
	)
	if err := row.Scan(&p.Name, &p.Description, &p.DefaultVersion, &p.NextVersion, &p.Version, &created, &updated); err != nil {
		return nil, err
	}
	p.CreatedAt, p.UpdatedAt = fromMicros(created), fromMicros(updated)
	return &p, nil
}

// GetPolicy returns a policy (without documents).
func (c *conn) GetPolicy(ctx context.Context, name string) (*Policy, error) {
	p, err := scanPolicy(c.queryRow(ctx, `SELECT `+policyCols+` FROM policies WHERE name = ?`+c.forUpdate(), name))
	if err != nil {
		return nil, fmt.Errorf("store: policy %q: %w", name, c.mapErr(err))
	}
	return p, nil
}

// ListPolicies returns policies ordered by name.
func (c *conn) ListPolicies(ctx context.Context, pg Page) ([]Policy, error) {
	rows, err := c.query(ctx, fmt.Sprintf(`SELECT `+policyCols+` FROM policies WHERE name > ? ORDER BY name LIMIT %d`, pg.limit()), pg.After)
	if err != nil {
		return nil, fmt.Errorf("store: list policies: %w", err)
	}
	defer rows.Close()
	out := []Policy{}
	for rows.Next() {
		p, err := scanPolicy(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list policies: %w", err)
		}
		out = append(out, *p)
	}
	return out, c.mapErr(rows.Err())
}

// UpdatePolicy writes p's description, default and next version if its
// version is current, then increments p.Version.
func (c *conn) UpdatePolicy(ctx context.Context, p *Policy) error {
	res, err := c.exec(ctx, `UPDATE policies SET description = ?, default_version = ?, next_version = ?, version = version + 1, updated_at = ? WHERE name = ? AND version = ?`,
		p.Description, p.DefaultVersion, p.NextVersion, micros(p.UpdatedAt), p.Name, p.Version)
	if err == nil {
		err = c.checkVersioned(ctx, res, "policies", "name", p.Name)
	}
	if err != nil {
		return fmt.Errorf("store: update policy %q: %w", p.Name, err)
	}
	p.Version++
	return nil
}

// DeletePolicy removes a policy with its versions and attachments.
func (c *conn) DeletePolicy(ctx context.Context, name string) error {
	for _, q := range []string{`DELETE FROM policy_attachments WHERE policy_name = ?`, `DELETE FROM policy_versions WHERE policy_name = ?`} {
		if _, err := c.exec(ctx, q, name); err != nil {
			return fmt.Errorf("store: delete policy %q: %w", name, err)
		}
	}
	res, err := c.exec(ctx, `DELETE FROM policies WHERE name = ?`, name)
	if err == nil {
		err = affected(res)
	}
	if err != nil {
		return fmt.Errorf("store: delete policy %q: %w", name, err)
	}
	return nil
}

// AddPolicyVersion stores a document as version id.
func (c *conn) AddPolicyVersion(ctx context.Context, v *PolicyVersion) error {
	if _, err := c.exec(ctx, `INSERT INTO policy_versions (policy_name, version_id, document, created_at) VALUES (?, ?, ?, ?)`,
		v.Policy, v.VersionID, string(v.Document), micros(v.CreatedAt)); err != nil {
		return fmt.Errorf("store: add version %d of policy %q: %w", v.VersionID, v.Policy, err)
	}
	return nil
}

// DeletePolicyVersion removes one version.
func (c *conn) DeletePolicyVersion(ctx context.Context, policy string, id int64) error {
	res, err := c.exec(ctx, `DELETE FROM policy_versions WHERE policy_name = ? AND version_id = ?`, policy, id)
	if err == nil {
		err = affected(res)
	}
	if err != nil {
		return fmt.Errorf("store: delete version %d of policy %q: %w", id, policy, err)
	}
	return nil
}

// ListPolicyVersions returns a policy's versions, newest first.
func (c *conn) ListPolicyVersions(ctx context.Context, policy string) ([]PolicyVersion, error) {
	rows, err := c.query(ctx, `SELECT v.policy_name, v.version_id, v.document, v.created_at, p.default_version
		FROM policy_versions v JOIN policies p ON p.name = v.policy_name WHERE v.policy_name = ? ORDER BY v.version_id DESC`, policy)
	if err != nil {
		return nil, fmt.Errorf("store: list versions of policy %q: %w", policy, err)
	}
	defer rows.Close()
	out := []PolicyVersion{}
	for rows.Next() {
		var (
			v          PolicyVersion
			doc        string
			created, d int64
		)
		if err := rows.Scan(&v.Policy, &v.VersionID, &doc, &created, &d); err != nil {
			return nil, fmt.Errorf("store: list versions of policy %q: %w", policy, err)
		}
		v.Document, v.CreatedAt, v.IsDefault = []byte(doc), fromMicros(created), d == v.VersionID
		out = append(out, v)
	}
	return out, c.mapErr(rows.Err())
}

// DefaultPolicyDocuments returns the default-version documents of the named
// policies that exist, keyed by name. Missing names are left out.
func (c *conn) DefaultPolicyDocuments(ctx context.Context, names []string) (map[string][]byte, error) {
	out := map[string][]byte{}
	if len(names) == 0 {
		return out, nil
	}
	args := make([]any, len(names))
	for i, n := range names {
		args[i] = n
	}
	rows, err := c.query(ctx, `SELECT p.name, v.document FROM policies p JOIN policy_versions v
		ON v.policy_name = p.name AND v.version_id = p.default_version
		WHERE p.name IN (?`+strings.Repeat(", ?", len(names)-1)+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("store: policy documents: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var name, doc string
		if err := rows.Scan(&name, &doc); err != nil {
			return nil, fmt.Errorf("store: policy documents: %w", err)
		}
		out[name] = []byte(doc)
	}
	return out, c.mapErr(rows.Err())
}

// AttachPolicy records an attachment; ErrExists if already attached.
func (c *conn) AttachPolicy(ctx context.Context, a *PolicyAttachment) error {
	if _, err := c.exec(ctx, `INSERT INTO policy_attachments (policy_name, target_kind, target, created_at) VALUES (?, ?, ?, ?)`,
		a.Policy, a.TargetKind, a.Target, micros(a.CreatedAt)); err != nil {
		return fmt.Errorf("store: attach policy %q to %s %q: %w", a.Policy, a.TargetKind, a.Target, err)
	}
	return nil
}

// DetachPolicy removes an attachment.
func (c *conn) DetachPolicy(ctx context.Context, a PolicyAttachment) error {
	res, err := c.exec(ctx, `DELETE FROM policy_attachments WHERE policy_name = ? AND target_kind = ? AND target = ?`, a.Policy, a.TargetKind, a.Target)
	if err == nil {
		err = affected(res)
	}
	if err != nil {
		return fmt.Errorf("store: detach policy %q from %s %q: %w", a.Policy, a.TargetKind, a.Target, err)
	}
	return nil
}

// AttachmentFilter selects attachments; empty fields match anything.
type AttachmentFilter struct {
	Policy     string
	TargetKind string
	Target     string
}

// ListPolicyAttachments returns the attachments matching f.
func (c *conn) ListPolicyAttachments(ctx context.Context, f AttachmentFilter) ([]PolicyAttachment, error) {
	var (
		where []string
		args  []any
	)
	for _, p := range []struct{ col, v string }{{"policy_name", f.Policy}, {"target_kind", f.TargetKind}, {"target", f.Target}} {
		if p.v != "" {
			where, args = append(where, p.col+" = ?"), append(args, p.v)
		}
	}
	q := `SELECT policy_name, target_kind, target, created_at FROM policy_attachments`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	rows, err := c.query(ctx, q+` ORDER BY policy_name, target_kind, target LIMIT 10000`, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list policy attachments: %w", err)
	}
	defer rows.Close()
	out := []PolicyAttachment{}
	for rows.Next() {
		var (
			a       PolicyAttachment
			created int64
		)
		if err := rows.Scan(&a.Policy, &a.TargetKind, &a.Target, &created); err != nil {
			return nil, fmt.Errorf("store: list policy attachments: %w", err)
		}
		a.CreatedAt = fromMicros(created)
		out = append(out, a)
	}
	return out, c.mapErr(rows.Err())
}

// PoliciesAttachedTo returns the names of policies attached to any of the
// given targets (kind -> targets), without duplicates.
func (c *conn) PoliciesAttachedTo(ctx context.Context, targets map[string][]string) ([]string, error) {
	var (
		or   []string
		args []any
	)
	for kind, ts := range targets {
		for _, t := range ts {
			or = append(or, "(target_kind = ? AND target = ?)")
			args = append(args, kind, t)
		}
	}
	if len(or) == 0 {
		return nil, nil
	}
	rows, err := c.query(ctx, `SELECT DISTINCT policy_name FROM policy_attachments WHERE `+strings.Join(or, " OR ")+` ORDER BY policy_name`, args...)
	if err != nil {
		return nil, fmt.Errorf("store: attached policies: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("store: attached policies: %w", err)
		}
		out = append(out, n)
	}
	return out, c.mapErr(rows.Err())
}
