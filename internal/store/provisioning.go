package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// ProvisioningTemplate is an AWS IoT fleet provisioning template: what
// RegisterThing makes of a device that presents a claim. Its bodies are
// versioned (ProvisioningTemplateVersion); DefaultVersion is the one in
// force.
type ProvisioningTemplate struct {
	Name        string `json:"templateName"`
	Description string `json:"description,omitempty"`
	Enabled     bool   `json:"enabled"`
	// DefaultVersion is the version RegisterThing evaluates.
	DefaultVersion int64 `json:"defaultVersionId"`
	NextVersion    int64 `json:"-"`
	// PreProvisioningHook is an HTTPS URL asked before provisioning
	// (where AWS IoT calls a Lambda); "" for none.
	PreProvisioningHook string    `json:"preProvisioningHook,omitempty"`
	Version             int64     `json:"version"`
	CreatedAt           time.Time `json:"createdAt"`
	UpdatedAt           time.Time `json:"updatedAt"`
}

// ProvisioningTemplateVersion is one body of a template.
type ProvisioningTemplateVersion struct {
	Template  string          `json:"templateName"`
	VersionID int64           `json:"versionId"`
	Body      json.RawMessage `json:"templateBody"`
	IsDefault bool            `json:"isDefaultVersion"`
	CreatedAt time.Time       `json:"createdAt"`
}

const templateCols = `name, description, enabled, default_version, next_version, pre_provisioning_hook, version, created_at, updated_at`

func scanTemplate(row interface{ Scan(...any) error }) (*ProvisioningTemplate, error) {
	var (
		t                ProvisioningTemplate
		created, updated int64
	)
	if err := row.Scan(&t.Name, &t.Description, &t.Enabled, &t.DefaultVersion, &t.NextVersion, &t.PreProvisioningHook, &t.Version, &created, &updated); err != nil {
		return nil, err
	}
	t.CreatedAt, t.UpdatedAt = fromMicros(created), fromMicros(updated)
	return &t, nil
}

// CreateProvisioningTemplate inserts t with body as its version 1, the
// default; t.Version becomes 1.
func (c *conn) CreateProvisioningTemplate(ctx context.Context, t *ProvisioningTemplate, body []byte) error {
	t.Version, t.DefaultVersion, t.NextVersion = 1, 1, 2
	if _, err := c.exec(ctx, `INSERT INTO provisioning_templates (`+templateCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		t.Name, t.Description, t.Enabled, t.DefaultVersion, t.NextVersion, t.PreProvisioningHook, t.Version, micros(t.CreatedAt), micros(t.UpdatedAt)); err != nil {
		return fmt.Errorf("store: create provisioning template %q: %w", t.Name, err)
	}
	return c.AddProvisioningTemplateVersion(ctx, &ProvisioningTemplateVersion{Template: t.Name, VersionID: 1, Body: body, CreatedAt: t.CreatedAt})
}

// GetProvisioningTemplate returns a template (without bodies).
func (c *conn) GetProvisioningTemplate(ctx context.Context, name string) (*ProvisioningTemplate, error) {
	t, err := scanTemplate(c.queryRow(ctx, `SELECT `+templateCols+` FROM provisioning_templates WHERE name = ?`+c.forUpdate(), name))
	if err != nil {
		return nil, fmt.Errorf("store: provisioning template %q: %w", name, c.mapErr(err))
	}
	return t, nil
}

// ListProvisioningTemplates returns templates ordered by name.
func (c *conn) ListProvisioningTemplates(ctx context.Context, pg Page) ([]ProvisioningTemplate, error) {
	rows, err := c.query(ctx, fmt.Sprintf(`SELECT `+templateCols+` FROM provisioning_templates WHERE name > ? ORDER BY name LIMIT %d`, pg.limit()), pg.After)
	if err != nil {
		return nil, fmt.Errorf("store: list provisioning templates: %w", err)
	}
	defer rows.Close()
	out := []ProvisioningTemplate{}
	for rows.Next() {
		t, err := scanTemplate(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list provisioning templates: %w", err)
		}
		out = append(out, *t)
	}
	return out, c.mapErr(rows.Err())
}

// UpdateProvisioningTemplate writes t's settings if its version is
// current, then increments t.Version.
func (c *conn) UpdateProvisioningTemplate(ctx context.Context, t *ProvisioningTemplate) error {
	res, err := c.exec(ctx, `UPDATE provisioning_templates SET description = ?, enabled = ?, default_version = ?, next_version = ?,
		pre_provisioning_hook = ?, version = version + 1, updated_at = ? WHERE name = ? AND version = ?`,
		t.Description, t.Enabled, t.DefaultVersion, t.NextVersion, t.PreProvisioningHook, micros(t.UpdatedAt), t.Name, t.Version)
	if err == nil {
		err = c.checkVersioned(ctx, res, "provisioning_templates", "name", t.Name)
	}
	if err != nil {
		return fmt.Errorf("store: update provisioning template %q: %w", t.Name, err)
	}
	t.Version++
	return nil
}

// DeleteProvisioningTemplate removes a template with its versions.
func (c *conn) DeleteProvisioningTemplate(ctx context.Context, name string) error {
	if _, err := c.exec(ctx, `DELETE FROM provisioning_template_versions WHERE template_name = ?`, name); err != nil {
		return fmt.Errorf("store: delete provisioning template %q: %w", name, err)
	}
	res, err := c.exec(ctx, `DELETE FROM provisioning_templates WHERE name = ?`, name)
	if err == nil {
		err = affected(res)
	}
	if err != nil {
		return fmt.Errorf("store: delete provisioning template %q: %w", name, err)
	}
	return nil
}

// AddProvisioningTemplateVersion stores a body as version v.VersionID.
func (c *conn) AddProvisioningTemplateVersion(ctx context.Context, v *ProvisioningTemplateVersion) error {
	if _, err := c.exec(ctx, `INSERT INTO provisioning_template_versions (template_name, version_id, body, created_at) VALUES (?, ?, ?, ?)`,
		v.Template, v.VersionID, string(v.Body), micros(v.CreatedAt)); err != nil {
		return fmt.Errorf("store: add version %d of provisioning template %q: %w", v.VersionID, v.Template, c.mapErr(err))
	}
	return nil
}

// DeleteProvisioningTemplateVersion removes one version.
func (c *conn) DeleteProvisioningTemplateVersion(ctx context.Context, template string, id int64) error {
	res, err := c.exec(ctx, `DELETE FROM provisioning_template_versions WHERE template_name = ? AND version_id = ?`, template, id)
	if err == nil {
		err = affected(res)
	}
	if err != nil {
		return fmt.Errorf("store: delete version %d of provisioning template %q: %w", id, template, err)
	}
	return nil
}

// ListProvisioningTemplateVersions returns a template's versions, newest
// first.
func (c *conn) ListProvisioningTemplateVersions(ctx context.Context, template string) ([]ProvisioningTemplateVersion, error) {
	return c.templateVersions(ctx, `WHERE v.template_name = ? ORDER BY v.version_id DESC`, template)
}

// GetProvisioningTemplateVersion returns one version; id 0 is the default.
func (c *conn) GetProvisioningTemplateVersion(ctx context.Context, template string, id int64) (*ProvisioningTemplateVersion, error) {
	var (
		vs  []ProvisioningTemplateVersion
		err error
	)
	if id == 0 {
		vs, err = c.templateVersions(ctx, `WHERE v.template_name = ? AND v.version_id = t.default_version`, template)
	} else {
		vs, err = c.templateVersions(ctx, `WHERE v.template_name = ? AND v.version_id = ?`, template, id)
	}
	if err != nil {
		return nil, err
	}
	if len(vs) == 0 {
		return nil, fmt.Errorf("store: version %d of provisioning template %q: %w", id, template, ErrNotFound)
	}
	return &vs[0], nil
}

func (c *conn) templateVersions(ctx context.Context, where string, args ...any) ([]ProvisioningTemplateVersion, error) {
	rows, err := c.query(ctx, `SELECT v.template_name, v.version_id, v.body, v.created_at, t.default_version
		FROM provisioning_template_versions v JOIN provisioning_templates t ON t.name = v.template_name `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("store: provisioning template versions: %w", err)
	}
	defer rows.Close()
	out := []ProvisioningTemplateVersion{}
	for rows.Next() {
		var (
			v          ProvisioningTemplateVersion
			body       string
			created, d int64
		)
		if err := rows.Scan(&v.Template, &v.VersionID, &body, &created, &d); err != nil {
			return nil, fmt.Errorf("store: provisioning template versions: %w", err)
		}
		v.Body, v.CreatedAt, v.IsDefault = []byte(body), fromMicros(created), d == v.VersionID
		out = append(out, v)
	}
	return out, c.mapErr(rows.Err())
}
