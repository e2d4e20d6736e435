package store

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Access request states. A request starts pending and ends in one of the
// others; an approved request becomes expired when its grant ends.
const (
	AccessPending   = "pending"
	AccessApproved  = "approved"
	AccessDenied    = "denied"
	AccessCancelled = "cancelled"
	AccessExpired   = "expired"
)

// AccessRequest is a user's request for a relation to a thing.
type AccessRequest struct {
	ID        string `json:"id"`
	Requester string `json:"requester"`
	Thing     string `json:"thing"`
	Relation  string `json:"relation"`
	Reason    string `json:"reason,omitempty"`
	State     string `json:"state"`
	// DecidedBy is the actor who approved, denied or cancelled.
	DecidedBy    string `json:"decidedBy,omitempty"`
	DecisionNote string `json:"decisionNote,omitempty"`
	// GrantExpiresAt is when an approved grant ends; zero for never.
	GrantExpiresAt time.Time `json:"grantExpiresAt,omitzero"`
	DecidedAt      time.Time `json:"decidedAt,omitzero"`
	Version        int64     `json:"version"`
	CreatedAt      time.Time `json:"createdAt"`
	UpdatedAt      time.Time `json:"updatedAt"`
}

const accessCols = `id, requester, thing, relation, reason, state, decided_by, decision_note, grant_expires_at, decided_at, version, created_at, updated_at`

func scanAccessRequest(row interface{ Scan(...any) error }) (*AccessRequest, error) {
	var (
		a                                AccessRequest
		grant, decided, created, updated int64
	)
	if err := row.Scan(&a.ID, &a.Requester, &a.Thing, &a.Relation, &a.Reason, &a.State, &a.DecidedBy, &a.DecisionNote,
		&grant, &decided, &a.Version, &created, &updated); err != nil {
		return nil, err
	}
	a.GrantExpiresAt, a.DecidedAt = fromMicros(grant), fromMicros(decided)
	a.CreatedAt, a.UpdatedAt = fromMicros(created), fromMicros(updated)
	return &a, nil
}

// CreateAccessRequest inserts a with version 1.
func (c *conn) CreateAccessRequest(ctx context.Context, a *AccessRequest) error {
	a.Version = 1
	_, err := c.exec(ctx, `INSERT INTO access_requests (`+accessCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		a.ID, a.Requester, a.Thing, a.Relation, a.Reason, a.State, a.DecidedBy, a.DecisionNote,
		micros(a.GrantExpiresAt), micros(a.DecidedAt), a.Version, micros(a.CreatedAt), micros(a.UpdatedAt))
	if err != nil {
		return fmt.Errorf("store: create access request: %w", err)
	}
	return nil
}

// GetAccessRequest returns a request by id (locked in a PostgreSQL Tx).
func (c *conn) GetAccessRequest(ctx context.Context, id string) (*AccessRequest, error) {
	a, err := scanAccessRequest(c.queryRow(ctx, `SELECT `+accessCols+` FROM access_requests WHERE id = ?`+c.forUpdate(), id))
	if err != nil {
		return nil, fmt.Errorf("store: access request %q: %w", id, c.mapErr(err))
	}
	return a, nil
}

// UpdateAccessRequest writes a's state and decision if its version is
// current, then increments a.Version (ErrStale otherwise).
func (c *conn) UpdateAccessRequest(ctx context.Context, a *AccessRequest) error {
	res, err := c.exec(ctx, `UPDATE access_requests SET state = ?, decided_by = ?, decision_note = ?, grant_expires_at = ?, decided_at = ?,
		version = version + 1, updated_at = ? WHERE id = ? AND version = ?`,
		a.State, a.DecidedBy, a.DecisionNote, micros(a.GrantExpiresAt), micros(a.DecidedAt), micros(a.UpdatedAt), a.ID, a.Version)
	if err == nil {
		err = c.checkVersioned(ctx, res, "access_requests", "id", a.ID)
	}
	if err != nil {
		return fmt.Errorf("store: update access request %q: %w", a.ID, err)
	}
	a.Version++
	return nil
}

// AccessRequestFilter narrows ListAccessRequests; empty fields match all.
type AccessRequestFilter struct {
	// After and Limit page by id (ids sort by creation time).
	After     string
	Limit     int
	Requester string
	Thing     string
	State     string
	// VisibleTo keeps the requests made by this user or about things the
	// user owns (a relationship not expired at At).
	VisibleTo string
	At        time.Time
	// CreatedBefore keeps requests created before it.
	CreatedBefore time.Time
	// GrantEndedBy keeps requests whose grant expiry is set and at or
	// before it.
	GrantEndedBy time.Time
}

// ListAccessRequests returns the requests matching f ordered by id.
func (c *conn) ListAccessRequests(ctx context.Context, f AccessRequestFilter) ([]AccessRequest, error) {
	where := []string{"id > ?"}
	args := []any{f.After}
	for _, p := range []struct{ col, v string }{{"requester", f.Requester}, {"thing", f.Thing}, {"state", f.State}} {
		if p.v != "" {
			where, args = append(where, p.col+" = ?"), append(args, p.v)
		}
	}
	if f.VisibleTo != "" {
		at := f.At
		if at.IsZero() {
			at = time.Now()
		}
		where = append(where, `(requester = ? OR thing IN (SELECT object FROM relationships WHERE subject_kind = ? AND subject = ? AND relation = ? AND object_kind = ? AND (expires_at = 0 OR expires_at > ?)))`)
		args = append(args, f.VisibleTo, KindUser, f.VisibleTo, "owner", KindThing, micros(at))
	}
	if !f.CreatedBefore.IsZero() {
		where, args = append(where, "created_at < ?"), append(args, micros(f.CreatedBefore))
	}
	if !f.GrantEndedBy.IsZero() {
		where, args = append(where, "grant_expires_at > 0 AND grant_expires_at <= ?"), append(args, micros(f.GrantEndedBy))
	}
	limit := Page{Limit: f.Limit}.limit()
	q := fmt.Sprintf(`SELECT `+accessCols+` FROM access_requests WHERE %s ORDER BY id LIMIT %d`, strings.Join(where, " AND "), limit)
	rows, err := c.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list access requests: %w", err)
	}
	defer rows.Close()
	out := []AccessRequest{}
	for rows.Next() {
		a, err := scanAccessRequest(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list access requests: %w", err)
		}
		out = append(out, *a)
	}
	return out, c.mapErr(rows.Err())
}

// AWSAccessKey is an AWS Signature V4 credential for the AWS-IoT-compatible
// registry API. The secret is stored sealed with the master key.
type AWSAccessKey struct {
	ID           string    `json:"accessKeyId"`
	Name         string    `json:"name"`
	SealedSecret []byte    `json:"-"`
	Roles        []string  `json:"roles"`
	CreatedAt    time.Time `json:"createdAt"`
}

// CreateAWSAccessKey inserts k.
func (c *conn) CreateAWSAccessKey(ctx context.Context, k *AWSAccessKey) error {
	roles, err := jsonText(nonNil(k.Roles))
	if err != nil {
		return err
	}
	if _, err := c.exec(ctx, `INSERT INTO aws_access_keys (id, name, sealed_secret, roles, created_at) VALUES (?, ?, ?, ?, ?)`,
		k.ID, k.Name, string(k.SealedSecret), roles, micros(k.CreatedAt)); err != nil {
		return fmt.Errorf("store: create AWS access key: %w", err)
	}
	return nil
}

func scanAWSKey(row interface{ Scan(...any) error }) (*AWSAccessKey, error) {
	var (
		k             AWSAccessKey
		sealed, roles string
		created       int64
	)
	if err := row.Scan(&k.ID, &k.Name, &sealed, &roles, &created); err != nil {
		return nil, err
	}
	k.SealedSecret = []byte(sealed)
	if err := fromJSONText(roles, &k.Roles); err != nil {
		return nil, err
	}
	k.Roles = nonNil(k.Roles)
	k.CreatedAt = fromMicros(created)
	return &k, nil
}

// GetAWSAccessKey returns the key with access key id id.
func (c *conn) GetAWSAccessKey(ctx context.Context, id string) (*AWSAccessKey, error) {
	k, err := scanAWSKey(c.queryRow(ctx, `SELECT id, name, sealed_secret, roles, created_at FROM aws_access_keys WHERE id = ?`, id))
	if err != nil {
		return nil, fmt.Errorf("store: AWS access key %q: %w", id, c.mapErr(err))
	}
	return k, nil
}

// ListAWSAccessKeys returns every key ordered by id.
func (c *conn) ListAWSAccessKeys(ctx context.Context) ([]AWSAccessKey, error) {
	rows, err := c.query(ctx, `SELECT id, name, sealed_secret, roles, created_at FROM aws_access_keys ORDER BY id LIMIT 10000`)
	if err != nil {
		return nil, fmt.Errorf("store: list AWS access keys: %w", err)
	}
	defer rows.Close()
	out := []AWSAccessKey{}
	for rows.Next() {
		k, err := scanAWSKey(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list AWS access keys: %w", err)
		}
		out = append(out, *k)
	}
	return out, c.mapErr(rows.Err())
}

// DeleteAWSAccessKey removes a key; ErrNotFound if absent.
func (c *conn) DeleteAWSAccessKey(ctx context.Context, id string) error {
	res, err := c.exec(ctx, `DELETE FROM aws_access_keys WHERE id = ?`, id)
	if err == nil {
		err = affected(res)
	}
	if err != nil {
		return fmt.Errorf("store: delete AWS access key %q: %w", id, err)
	}
	return nil
}

// SyncState is what a registry synchronization last agreed on for one item.
type SyncState struct {
	// Source names the remote registry, e.g. "aws-iot:https://...".
	Source        string    `json:"source"`
	Kind          string    `json:"kind"`
	Name          string    `json:"name"`
	RemoteVersion int64     `json:"remoteVersion"`
	LocalVersion  int64     `json:"localVersion"`
	Hash          string    `json:"hash"`
	SyncedAt      time.Time `json:"syncedAt"`
}

// PutSyncState inserts or replaces the state of one item.
func (c *conn) PutSyncState(ctx context.Context, st SyncState) error {
	_, err := c.exec(ctx, `INSERT INTO sync_state (source, kind, name, remote_version, local_version, hash, synced_at) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (source, kind, name) DO UPDATE SET remote_version = excluded.remote_version, local_version = excluded.local_version,
		hash = excluded.hash, synced_at = excluded.synced_at`,
		st.Source, st.Kind, st.Name, st.RemoteVersion, st.LocalVersion, st.Hash, micros(st.SyncedAt))
	if err != nil {
		return fmt.Errorf("store: put sync state: %w", err)
	}
	return nil
}

// DeleteSyncState forgets one item's state (once the item is deleted on
// both sides). Forgetting an unknown item is not an error.
func (c *conn) DeleteSyncState(ctx context.Context, source, kind, name string) error {
	if _, err := c.exec(ctx, `DELETE FROM sync_state WHERE source = ? AND kind = ? AND name = ?`, source, kind, name); err != nil {
		return fmt.Errorf("store: delete sync state: %w", err)
	}
	return nil
}

// ListSyncState returns every item's state for source, keyed by kind/name.
func (c *conn) ListSyncState(ctx context.Context, source string) (map[string]SyncState, error) {
	rows, err := c.query(ctx, `SELECT source, kind, name, remote_version, local_version, hash, synced_at FROM sync_state WHERE source = ?`, source)
	if err != nil {
		return nil, fmt.Errorf("store: list sync state: %w", err)
	}
	defer rows.Close()
	out := map[string]SyncState{}
	for rows.Next() {
		var (
			st     SyncState
			synced int64
		)
		if err := rows.Scan(&st.Source, &st.Kind, &st.Name, &st.RemoteVersion, &st.LocalVersion, &st.Hash, &synced); err != nil {
			return nil, fmt.Errorf("store: list sync state: %w", err)
		}
		st.SyncedAt = fromMicros(synced)
		out[st.Kind+"/"+st.Name] = st
	}
	return out, c.mapErr(rows.Err())
}
