package store

import (
	"context"
	"fmt"
	"time"
)

// Lobby ledger states. A device goes knocking (first seen) -> inlobby
// (knocked on its lobby topic) -> claimed (an operator chose a target) ->
// commissioned (the target knows it; its assignment is ready) -> arrived
// (it connected to the target). rejected and decommissioned are ends an
// operator chooses; a factory reset returns a device to inlobby.
const (
	LobbyKnocking       = "knocking"
	LobbyInLobby        = "inlobby"
	LobbyClaimed        = "claimed"
	LobbyCommissioned   = "commissioned"
	LobbyArrived        = "arrived"
	LobbyRejected       = "rejected"
	LobbyDecommissioned = "decommissioned"
)

// Lobby target kinds.
const (
	LobbyTargetLocal = "local" // this Gatehouse
	LobbyTargetMQTT  = "mqtt"  // an MQTT endpoint URL and its CA
	// LobbyTargetGatehouse is another Gatehouse, reached through its admin
	// API (APIURL, APIToken).
	LobbyTargetGatehouse = "gatehouse"
)

// LobbyTarget is a named destination for lobby devices.
type LobbyTarget struct {
	Name        string `json:"name"`
	Kind        string `json:"kind"`
	Description string `json:"description,omitempty"`
	// Endpoint is the MQTT URL handed to devices (mqtts://host:8883).
	Endpoint string `json:"endpoint,omitempty"`
	// CAPEM is the CA chain devices trust the endpoint by.
	CAPEM string `json:"caPem,omitempty"`
	// ThingType is the type of things a local target registers.
	ThingType string `json:"thingType,omitempty"`
	// Config is handed to devices unless a claim sets its own.
	Config string `json:"config,omitempty"`
	// APIURL is a gatehouse target's base URL (https://gatehouse.example.com).
	APIURL string `json:"apiUrl,omitempty"`
	// APIToken is an admin API token of a gatehouse target. It is only
	// accepted, never stored or shown: the store keeps APITokenSealed.
	APIToken       string    `json:"apiToken,omitempty"`
	APITokenSealed []byte    `json:"-"`
	Version        int64     `json:"version"`
	CreatedAt      time.Time `json:"createdAt"`
	UpdatedAt      time.Time `json:"updatedAt"`
}

// LobbyDevice is one entry of the lobby ledger, keyed by the SHA-256
// fingerprint of the device certificate.
type LobbyDevice struct {
	Fingerprint string `json:"certificateId"`
	State       string `json:"state"`
	// ThingName is the thing the device is (or will be) registered as.
	ThingName      string `json:"thingName,omitempty"`
	CommonName     string `json:"commonName,omitempty"`
	CA             string `json:"ca,omitempty"`
	CertificatePEM string `json:"certificatePem,omitempty"`
	// DeviceState and DeviceConfig are what the device said in its last
	// knock.
	DeviceState  string `json:"deviceState,omitempty"`
	DeviceConfig string `json:"deviceConfig,omitempty"`
	Target       string `json:"target,omitempty"`
	// ClaimConfig is the configuration the claim hands the device.
	ClaimConfig string `json:"claimConfig,omitempty"`
	// Assignment is the JSON delivered to the device once commissioned.
	Assignment string `json:"assignment,omitempty"`
	// AssignmentSecret is the sealed secret part of the assignment (the
	// registration token of a gatehouse target); never shown.
	AssignmentSecret  []byte    `json:"-"`
	Claims            int64     `json:"claims"`
	CommissionedClaim int64     `json:"commissionedClaim"`
	FirstSeenAt       time.Time `json:"firstSeenAt,omitzero"`
	LastSeenAt        time.Time `json:"lastSeenAt,omitzero"`
	Version           int64     `json:"version"`
	CreatedAt         time.Time `json:"createdAt"`
	UpdatedAt         time.Time `json:"updatedAt"`
}

// LobbyTransition is one state change in a device's history.
type LobbyTransition struct {
	ID          int64     `json:"id"`
	Fingerprint string    `json:"certificateId"`
	From        string    `json:"from"`
	To          string    `json:"to"`
	Actor       string    `json:"actor"`
	Reason      string    `json:"reason,omitempty"`
	Target      string    `json:"target,omitempty"`
	At          time.Time `json:"at"`
}

// LobbyFilter narrows ListLobbyDevices; Page.After is a fingerprint.
type LobbyFilter struct {
	Page
	State  string
	Target string
}

// ---- targets ----

const lobbyTargetCols = `name, kind, description, endpoint, ca_pem, thing_type, config, version, created_at, updated_at, api_url, api_token_sealed`

func scanLobbyTarget(row interface{ Scan(...any) error }) (*LobbyTarget, error) {
	var (
		t                LobbyTarget
		created, updated int64
	)
	if err := row.Scan(&t.Name, &t.Kind, &t.Description, &t.Endpoint, &t.CAPEM, &t.ThingType, &t.Config, &t.Version, &created, &updated,
		&t.APIURL, &t.APITokenSealed); err != nil {
		return nil, err
	}
	t.CreatedAt, t.UpdatedAt = fromMicros(created), fromMicros(updated)
	return &t, nil
}

// CreateLobbyTarget inserts t with version 1; ErrExists for a taken name.
func (c *conn) CreateLobbyTarget(ctx context.Context, t *LobbyTarget) error {
	t.Version = 1
	if _, err := c.exec(ctx, `INSERT INTO lobby_targets (`+lobbyTargetCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		t.Name, t.Kind, t.Description, t.Endpoint, t.CAPEM, t.ThingType, t.Config, t.Version, micros(t.CreatedAt), micros(t.UpdatedAt),
		t.APIURL, nonNil(t.APITokenSealed)); err != nil {
		return fmt.Errorf("store: create lobby target %q: %w", t.Name, err)
	}
	return nil
}

// GetLobbyTarget returns a target by name.
func (c *conn) GetLobbyTarget(ctx context.Context, name string) (*LobbyTarget, error) {
	t, err := scanLobbyTarget(c.queryRow(ctx, `SELECT `+lobbyTargetCols+` FROM lobby_targets WHERE name = ?`+c.forUpdate(), name))
	if err != nil {
		return nil, fmt.Errorf("store: lobby target %q: %w", name, c.mapErr(err))
	}
	return t, nil
}

// ListLobbyTargets returns targets ordered by name.
func (c *conn) ListLobbyTargets(ctx context.Context, p Page) ([]LobbyTarget, error) {
	rows, err := c.query(ctx, fmt.Sprintf(`SELECT `+lobbyTargetCols+` FROM lobby_targets WHERE name > ? ORDER BY name LIMIT %d`, p.limit()), p.After)
	if err != nil {
		return nil, fmt.Errorf("store: list lobby targets: %w", err)
	}
	defer rows.Close()
	out := []LobbyTarget{}
	for rows.Next() {
		t, err := scanLobbyTarget(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list lobby targets: %w", err)
		}
		out = append(out, *t)
	}
	return out, c.mapErr(rows.Err())
}

// UpdateLobbyTarget writes t if its version is current, then increments
// t.Version. The kind never changes.
func (c *conn) UpdateLobbyTarget(ctx context.Context, t *LobbyTarget) error {
	res, err := c.exec(ctx, `UPDATE lobby_targets SET description = ?, endpoint = ?, ca_pem = ?, thing_type = ?, config = ?, api_url = ?, api_token_sealed = ?,
		version = version + 1, updated_at = ? WHERE name = ? AND version = ?`, t.Description, t.Endpoint, t.CAPEM, t.ThingType, t.Config,
		t.APIURL, nonNil(t.APITokenSealed), micros(t.UpdatedAt), t.Name, t.Version)
	if err == nil {
		err = c.checkVersioned(ctx, res, "lobby_targets", "name", t.Name)
	}
	if err != nil {
		return fmt.Errorf("store: update lobby target %q: %w", t.Name, err)
	}
	t.Version++
	return nil
}

// DeleteLobbyTarget removes a target; ErrInUse while a device that is
// claimed or commissioned is routed to it.
func (c *conn) DeleteLobbyTarget(ctx context.Context, name string) error {
	var n int
	if err := c.queryRow(ctx, `SELECT COUNT(*) FROM lobby_devices WHERE target = ? AND state IN (?, ?)`, name, LobbyClaimed, LobbyCommissioned).Scan(&n); err != nil {
		return fmt.Errorf("store: delete lobby target %q: %w", name, c.mapErr(err))
	}
	if n > 0 {
		return fmt.Errorf("store: delete lobby target %q: %w: %d devices are routed to it", name, ErrInUse, n)
	}
	res, err := c.exec(ctx, `DELETE FROM lobby_targets WHERE name = ?`, name)
	if err == nil {
		err = affected(res)
	}
	if err != nil {
		return fmt.Errorf("store: delete lobby target %q: %w", name, err)
	}
	return nil
}

// ---- devices ----

const lobbyDeviceCols = `fingerprint, state, thing_name, common_name, ca_name, certificate_pem, device_state, device_config, target, claim_config,
	assignment, claims, commissioned_claim, first_seen_at, last_seen_at, version, created_at, updated_at, assignment_secret`

func scanLobbyDevice(row interface{ Scan(...any) error }) (*LobbyDevice, error) {
	var (
		d                             LobbyDevice
		first, last, created, updated int64
	)
	if err := row.Scan(&d.Fingerprint, &d.State, &d.ThingName, &d.CommonName, &d.CA, &d.CertificatePEM, &d.DeviceState, &d.DeviceConfig,
		&d.Target, &d.ClaimConfig, &d.Assignment, &d.Claims, &d.CommissionedClaim, &first, &last, &d.Version, &created, &updated,
		&d.AssignmentSecret); err != nil {
		return nil, err
	}
	d.FirstSeenAt, d.LastSeenAt = fromMicros(first), fromMicros(last)
	d.CreatedAt, d.UpdatedAt = fromMicros(created), fromMicros(updated)
	return &d, nil
}

// CreateLobbyDevice inserts d with version 1; ErrExists for a known
// fingerprint.
func (c *conn) CreateLobbyDevice(ctx context.Context, d *LobbyDevice) error {
	d.Version = 1
	if _, err := c.exec(ctx, `INSERT INTO lobby_devices (`+lobbyDeviceCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		d.Fingerprint, d.State, d.ThingName, d.CommonName, d.CA, d.CertificatePEM, d.DeviceState, d.DeviceConfig, d.Target, d.ClaimConfig,
		d.Assignment, d.Claims, d.CommissionedClaim, micros(d.FirstSeenAt), micros(d.LastSeenAt), d.Version, micros(d.CreatedAt), micros(d.UpdatedAt),
		nonNil(d.AssignmentSecret)); err != nil {
		return fmt.Errorf("store: create lobby device %s: %w", d.Fingerprint, err)
	}
	return nil
}

// GetLobbyDevice returns a ledger entry by fingerprint. Inside a Tx on
// PostgreSQL the row stays locked until the transaction ends.
func (c *conn) GetLobbyDevice(ctx context.Context, fingerprint string) (*LobbyDevice, error) {
	d, err := scanLobbyDevice(c.queryRow(ctx, `SELECT `+lobbyDeviceCols+` FROM lobby_devices WHERE fingerprint = ?`+c.forUpdate(), fingerprint))
	if err != nil {
		return nil, fmt.Errorf("store: lobby device %s: %w", fingerprint, c.mapErr(err))
	}
	return d, nil
}

// ListLobbyDevices returns ledger entries ordered by fingerprint.
func (c *conn) ListLobbyDevices(ctx context.Context, f LobbyFilter) ([]LobbyDevice, error) {
	q, args := `SELECT `+lobbyDeviceCols+` FROM lobby_devices WHERE fingerprint > ?`, []any{f.After}
	if f.State != "" {
		q, args = q+` AND state = ?`, append(args, f.State)
	}
	if f.Target != "" {
		q, args = q+` AND target = ?`, append(args, f.Target)
	}
	rows, err := c.query(ctx, fmt.Sprintf(`%s ORDER BY fingerprint LIMIT %d`, q, f.limit()), args...)
	if err != nil {
		return nil, fmt.Errorf("store: list lobby devices: %w", err)
	}
	defer rows.Close()
	out := []LobbyDevice{}
	for rows.Next() {
		d, err := scanLobbyDevice(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list lobby devices: %w", err)
		}
		out = append(out, *d)
	}
	return out, c.mapErr(rows.Err())
}

// UpdateLobbyDevice writes every mutable column of d if its version is
// current, then increments d.Version.
func (c *conn) UpdateLobbyDevice(ctx context.Context, d *LobbyDevice) error {
	res, err := c.exec(ctx, `UPDATE lobby_devices SET state = ?, thing_name = ?, common_name = ?, ca_name = ?, certificate_pem = ?, device_state = ?,
		device_config = ?, target = ?, claim_config = ?, assignment = ?, claims = ?, commissioned_claim = ?, first_seen_at = ?, last_seen_at = ?,
		assignment_secret = ?, version = version + 1, updated_at = ? WHERE fingerprint = ? AND version = ?`,
		d.State, d.ThingName, d.CommonName, d.CA, d.CertificatePEM, d.DeviceState, d.DeviceConfig, d.Target, d.ClaimConfig, d.Assignment,
		d.Claims, d.CommissionedClaim, micros(d.FirstSeenAt), micros(d.LastSeenAt), nonNil(d.AssignmentSecret), micros(d.UpdatedAt), d.Fingerprint, d.Version)
	if err == nil {
		err = c.checkVersioned(ctx, res, "lobby_devices", "fingerprint", d.Fingerprint)
	}
	if err != nil {
		return fmt.Errorf("store: update lobby device %s: %w", d.Fingerprint, err)
	}
	d.Version++
	return nil
}

// AddLobbyTransition appends to a device's history and sets tr.ID;
// ErrNotFound if the device is not in the ledger.
func (c *conn) AddLobbyTransition(ctx context.Context, tr *LobbyTransition) error {
	err := c.queryRow(ctx, `INSERT INTO lobby_transitions (fingerprint, from_state, to_state, actor, reason, target, at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		tr.Fingerprint, tr.From, tr.To, tr.Actor, tr.Reason, tr.Target, micros(tr.At)).Scan(&tr.ID)
	if err != nil {
		return fmt.Errorf("store: lobby transition of %s: %w", tr.Fingerprint, c.mapErr(err))
	}
	return nil
}

// ListLobbyTransitions returns a device's history, oldest first (at most
// 1000 entries).
func (c *conn) ListLobbyTransitions(ctx context.Context, fingerprint string) ([]LobbyTransition, error) {
	rows, err := c.query(ctx, `SELECT id, fingerprint, from_state, to_state, actor, reason, target, at FROM lobby_transitions WHERE fingerprint = ? ORDER BY id LIMIT 1000`, fingerprint)
	if err != nil {
		return nil, fmt.Errorf("store: lobby history of %s: %w", fingerprint, err)
	}
	defer rows.Close()
	out := []LobbyTransition{}
	for rows.Next() {
		var (
			tr LobbyTransition
			at int64
		)
		if err := rows.Scan(&tr.ID, &tr.Fingerprint, &tr.From, &tr.To, &tr.Actor, &tr.Reason, &tr.Target, &at); err != nil {
			return nil, fmt.Errorf("store: lobby history of %s: %w", fingerprint, err)
		}
		tr.At = fromMicros(at)
		out = append(out, tr)
	}
	return out, c.mapErr(rows.Err())
}
