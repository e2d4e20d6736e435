package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// This file holds the OAuth authorization server's records (internal/oauth):
// signing keys, thing credentials, device authorizations, refresh tokens,
// revoked access tokens and used assertion IDs. Secrets never reach these
// tables in the clear: client secrets, device codes and refresh tokens are
// stored as hashes, private keys sealed.

// SigningKey is one of the authorization server's token signing keys.
type SigningKey struct {
	KID       string
	Algorithm string
	// PublicJWK is the public key as a JSON Web Key.
	PublicJWK []byte
	// SealedPrivate is the private key sealed by internal/seal.
	SealedPrivate []byte
	CreatedAt     time.Time
	// RetiredAt is zero while the key is published in the JWKS.
	RetiredAt time.Time
}

// ThingClient is what the authorization server needs to know about a thing
// acting as an OAuth client: its state, its type's rules and its secret.
type ThingClient struct {
	Name             string
	State            string
	ThingType        string
	AuthMethods      []string
	Scopes           []string
	ApproverRelation string
	// SecretHash is "" when the thing has no client secret.
	SecretHash      string
	SecretCreatedAt time.Time
}

// ThingKey is a public key a thing signs client assertions with.
type ThingKey struct {
	Thing     string    `json:"thing"`
	KID       string    `json:"kid"`
	Algorithm string    `json:"alg"`
	JWK       []byte    `json:"-"`
	CreatedAt time.Time `json:"createdAt"`
}

// Device authorization states.
const (
	DeviceStatePending  = "pending"
	DeviceStateApproved = "approved"
	DeviceStateDenied   = "denied"
	// DeviceStateIssued means tokens were handed out; the code is spent.
	DeviceStateIssued = "issued"
)

// DeviceAuthorization is one RFC 8628 device authorization request.
type DeviceAuthorization struct {
	CodeHash string
	// UserCode is normalised: upper case, without separators.
	UserCode string
	ClientID string
	Scopes   []string
	State    string
	// Subject is the username that approved or denied the request.
	Subject string
	// ConsentHash is the hash of the one-time value that the consent form
	// carries after the user logged in.
	ConsentHash string
	Interval    time.Duration
	LastPollAt  time.Time
	CreatedAt   time.Time
	ExpiresAt   time.Time
	// DecidedAt is when the person approved or denied (after signing in
	// on the device page); zero while pending.
	DecidedAt time.Time
}

// RefreshToken is a refresh token of a user-delegated grant.
type RefreshToken struct {
	Hash     string
	FamilyID string
	ClientID string
	Subject  string
	Scopes   []string
	// AccessJTI and AccessExpiresAt name the access token issued with this
	// refresh token, so revoking the family can revoke it too.
	AccessJTI       string
	AccessExpiresAt time.Time
	CreatedAt       time.Time
	ExpiresAt       time.Time
	// UsedAt is set when the token was exchanged (rotated).
	UsedAt time.Time
	// RevokedAt is set when the token or its family was revoked.
	RevokedAt time.Time
	// AuthTime is when the person signed in for the grant (an ID token's
	// auth_time); zero if unknown.
	AuthTime time.Time
}

// LockOAuthKeys serialises signing key rotation between replicas for the
// rest of the transaction. On SQLite a transaction already holds the write
// lock.
func (c *conn) LockOAuthKeys(ctx context.Context) error {
	if c.dialect == dialectPostgres {
		if _, err := c.exec(ctx, `SELECT pg_advisory_xact_lock(7263540)`); err != nil {
			return fmt.Errorf("store: lock signing keys: %w", err)
		}
	}
	return nil
}

// CreateSigningKey stores a new signing key.
func (c *conn) CreateSigningKey(ctx context.Context, k *SigningKey) error {
	if _, err := c.exec(ctx, `INSERT INTO oauth_signing_keys (kid, algorithm, public_jwk, sealed_private, created_at, retired_at) VALUES (?, ?, ?, ?, ?, ?)`,
		k.KID, k.Algorithm, string(k.PublicJWK), k.SealedPrivate, micros(k.CreatedAt), micros(k.RetiredAt)); err != nil {
		return fmt.Errorf("store: create signing key %q: %w", k.KID, err)
	}
	return nil
}

// ListSigningKeys returns the keys not yet retired, newest first.
func (c *conn) ListSigningKeys(ctx context.Context) ([]SigningKey, error) {
	rows, err := c.query(ctx, `SELECT kid, algorithm, public_jwk, sealed_private, created_at, retired_at FROM oauth_signing_keys WHERE retired_at = 0 ORDER BY created_at DESC, kid`)
	if err != nil {
		return nil, fmt.Errorf("store: list signing keys: %w", err)
	}
	defer rows.Close()
	out := []SigningKey{}
	for rows.Next() {
		var (
			k                SigningKey
			pub              string
			created, retired int64
		)
		if err := rows.Scan(&k.KID, &k.Algorithm, &pub, &k.SealedPrivate, &created, &retired); err != nil {
			return nil, fmt.Errorf("store: list signing keys: %w", err)
		}
		k.PublicJWK, k.CreatedAt, k.RetiredAt = []byte(pub), fromMicros(created), fromMicros(retired)
		out = append(out, k)
	}
	return out, c.mapErr(rows.Err())
}

// RetireSigningKey takes a key out of the JWKS; ErrNotFound if it is unknown
// or already retired.
func (c *conn) RetireSigningKey(ctx context.Context, kid string, at time.Time) error {
	res, err := c.exec(ctx, `UPDATE oauth_signing_keys SET retired_at = ? WHERE kid = ? AND retired_at = 0`, micros(at), kid)
	if err == nil {
		err = affected(res)
	}
	if err != nil {
		return fmt.Errorf("store: retire signing key %q: %w", kid, err)
	}
	return nil
}

// GetThingClient returns the thing named name with its type's OAuth rules
// and its client secret hash, in one query.
func (c *conn) GetThingClient(ctx context.Context, name string) (*ThingClient, error) {
	var (
		tc              ThingClient
		auth, scopes    string
		secretCreatedAt int64
	)
	err := c.queryRow(ctx, `SELECT t.name, t.state, COALESCE(t.thing_type, ''), COALESCE(tt.auth_methods, '[]'), COALESCE(tt.scopes, '[]'),
		COALESCE(tt.approver_relation, ''), COALESCE(s.hash, ''), COALESCE(s.created_at, 0)
		FROM things t LEFT JOIN thing_types tt ON tt.name = t.thing_type LEFT JOIN oauth_client_secrets s ON s.thing = t.name
		WHERE t.name = ?`, name).Scan(&tc.Name, &tc.State, &tc.ThingType, &auth, &scopes, &tc.ApproverRelation, &tc.SecretHash, &secretCreatedAt)
	if err != nil {
		return nil, fmt.Errorf("store: thing client %q: %w", name, c.mapErr(err))
	}
	if err := fromJSONText(auth, &tc.AuthMethods); err != nil {
		return nil, err
	}
	if err := fromJSONText(scopes, &tc.Scopes); err != nil {
		return nil, err
	}
	tc.AuthMethods, tc.Scopes = nonNil(tc.AuthMethods), nonNil(tc.Scopes)
	tc.SecretCreatedAt = fromMicros(secretCreatedAt)
	return &tc, nil
}

// SetThingSecret stores (or replaces) the hash of a thing's client secret.
// ErrNotFound if the thing does not exist.
func (c *conn) SetThingSecret(ctx context.Context, thing, hash string, at time.Time) error {
	if _, err := c.exec(ctx, `INSERT INTO oauth_client_secrets (thing, hash, created_at) VALUES (?, ?, ?)
		ON CONFLICT (thing) DO UPDATE SET hash = excluded.hash, created_at = excluded.created_at`, thing, hash, micros(at)); err != nil {
		return fmt.Errorf("store: set secret of thing %q: %w", thing, err)
	}
	return nil
}

// DeleteThingSecret removes a thing's client secret; ErrNotFound if it has none.
func (c *conn) DeleteThingSecret(ctx context.Context, thing string) error {
	res, err := c.exec(ctx, `DELETE FROM oauth_client_secrets WHERE thing = ?`, thing)
	if err == nil {
		err = affected(res)
	}
	if err != nil {
		return fmt.Errorf("store: delete secret of thing %q: %w", thing, err)
	}
	return nil
}

// AddThingKey registers a public key for a thing. ErrExists if the thing
// already has a key with that kid, ErrNotFound if the thing does not exist.
func (c *conn) AddThingKey(ctx context.Context, k *ThingKey) error {
	if _, err := c.exec(ctx, `INSERT INTO oauth_client_keys (thing, kid, algorithm, jwk, created_at) VALUES (?, ?, ?, ?, ?)`,
		k.Thing, k.KID, k.Algorithm, string(k.JWK), micros(k.CreatedAt)); err != nil {
		return fmt.Errorf("store: add key %q of thing %q: %w", k.KID, k.Thing, err)
	}
	return nil
}

// RemoveThingKey deletes a thing's key; ErrNotFound if absent.
func (c *conn) RemoveThingKey(ctx context.Context, thing, kid string) error {
	res, err := c.exec(ctx, `DELETE FROM oauth_client_keys WHERE thing = ? AND kid = ?`, thing, kid)
	if err == nil {
		err = affected(res)
	}
	if err != nil {
		return fmt.Errorf("store: remove key %q of thing %q: %w", kid, thing, err)
	}
	return nil
}

// ListThingKeys returns a thing's keys ordered by kid.
func (c *conn) ListThingKeys(ctx context.Context, thing string) ([]ThingKey, error) {
	rows, err := c.query(ctx, `SELECT thing, kid, algorithm, jwk, created_at FROM oauth_client_keys WHERE thing = ? ORDER BY kid`, thing)
	if err != nil {
		return nil, fmt.Errorf("store: list keys of thing %q: %w", thing, err)
	}
	defer rows.Close()
	out := []ThingKey{}
	for rows.Next() {
		var (
			k       ThingKey
			jwk     string
			created int64
		)
		if err := rows.Scan(&k.Thing, &k.KID, &k.Algorithm, &jwk, &created); err != nil {
			return nil, fmt.Errorf("store: list keys of thing %q: %w", thing, err)
		}
		k.JWK, k.CreatedAt = []byte(jwk), fromMicros(created)
		out = append(out, k)
	}
	return out, c.mapErr(rows.Err())
}

// UseAssertionID records that a client assertion with this issuer and JWT
// ID was accepted, until expiresAt. A second use before then fails with
// ErrExists (a replay); an ID whose record expired before now may be reused.
func (c *conn) UseAssertionID(ctx context.Context, issuer, jti string, expiresAt, now time.Time) error {
	res, err := c.exec(ctx, `INSERT INTO oauth_used_jtis (issuer, jti, expires_at) VALUES (?, ?, ?)
		ON CONFLICT (issuer, jti) DO UPDATE SET expires_at = excluded.expires_at WHERE oauth_used_jtis.expires_at < ?`,
		issuer, jti, micros(expiresAt), micros(now))
	if err == nil {
		if affected(res) != nil {
			err = ErrExists
		}
	}
	if err != nil {
		return fmt.Errorf("store: assertion id of %q: %w", issuer, err)
	}
	return nil
}

const deviceCols = `code_hash, user_code, client_id, scopes, state, subject, consent_hash, interval_secs, last_poll_at, created_at, expires_at, decided_at`

func scanDevice(row interface{ Scan(...any) error }) (*DeviceAuthorization, error) {
	var (
		d                            DeviceAuthorization
		scopes                       string
		interval                     int64
		lastPoll, created, expiresAt int64
		decided                      int64
	)
	if err := row.Scan(&d.CodeHash, &d.UserCode, &d.ClientID, &scopes, &d.State, &d.Subject, &d.ConsentHash, &interval, &lastPoll, &created, &expiresAt, &decided); err != nil {
		return nil, err
	}
	if err := fromJSONText(scopes, &d.Scopes); err != nil {
		return nil, err
	}
	d.Scopes = nonNil(d.Scopes)
	d.Interval = time.Duration(interval) * time.Second
	d.LastPollAt, d.CreatedAt, d.ExpiresAt, d.DecidedAt = fromMicros(lastPoll), fromMicros(created), fromMicros(expiresAt), fromMicros(decided)
	return &d, nil
}

// CreateDeviceAuthorization stores a new request. ErrExists if the user
// code (or device code) is taken.
func (c *conn) CreateDeviceAuthorization(ctx context.Context, d *DeviceAuthorization) error {
	scopes, err := jsonText(nonNil(d.Scopes))
	if err != nil {
		return err
	}
	if _, err := c.exec(ctx, `INSERT INTO oauth_device_codes (`+deviceCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		d.CodeHash, d.UserCode, d.ClientID, scopes, d.State, d.Subject, d.ConsentHash, int64(d.Interval/time.Second),
		micros(d.LastPollAt), micros(d.CreatedAt), micros(d.ExpiresAt), micros(d.DecidedAt)); err != nil {
		return fmt.Errorf("store: create device authorization: %w", err)
	}
	return nil
}

// GetDeviceAuthorization returns the request whose device code hashes to
// codeHash. Inside a Tx on PostgreSQL the row stays locked.
func (c *conn) GetDeviceAuthorization(ctx context.Context, codeHash string) (*DeviceAuthorization, error) {
	d, err := scanDevice(c.queryRow(ctx, `SELECT `+deviceCols+` FROM oauth_device_codes WHERE code_hash = ?`+c.forUpdate(), codeHash))
	if err != nil {
		return nil, fmt.Errorf("store: device authorization: %w", c.mapErr(err))
	}
	return d, nil
}

// GetDeviceAuthorizationByUserCode returns the request with the
// (normalised) user code. Inside a Tx on PostgreSQL the row stays locked.
func (c *conn) GetDeviceAuthorizationByUserCode(ctx context.Context, userCode string) (*DeviceAuthorization, error) {
	d, err := scanDevice(c.queryRow(ctx, `SELECT `+deviceCols+` FROM oauth_device_codes WHERE user_code = ?`+c.forUpdate(), userCode))
	if err != nil {
		return nil, fmt.Errorf("store: device authorization: %w", c.mapErr(err))
	}
	return d, nil
}

// UpdateDeviceAuthorization writes the mutable fields of d: state, subject,
// consent hash, interval, last poll time and decision time.
func (c *conn) UpdateDeviceAuthorization(ctx context.Context, d *DeviceAuthorization) error {
	res, err := c.exec(ctx, `UPDATE oauth_device_codes SET state = ?, subject = ?, consent_hash = ?, interval_secs = ?, last_poll_at = ?, decided_at = ? WHERE code_hash = ?`,
		d.State, d.Subject, d.ConsentHash, int64(d.Interval/time.Second), micros(d.LastPollAt), micros(d.DecidedAt), d.CodeHash)
	if err == nil {
		err = affected(res)
	}
	if err != nil {
		return fmt.Errorf("store: update device authorization: %w", err)
	}
	return nil
}

const refreshCols = `token_hash, family_id, client_id, subject, scopes, access_jti, access_exp, created_at, expires_at, used_at, revoked_at, auth_time`

func scanRefresh(row interface{ Scan(...any) error }) (*RefreshToken, error) {
	var (
		r                                          RefreshToken
		scopes                                     string
		accessExp, created, expires, used, revoked int64
		authTime                                   int64
	)
	if err := row.Scan(&r.Hash, &r.FamilyID, &r.ClientID, &r.Subject, &scopes, &r.AccessJTI, &accessExp, &created, &expires, &used, &revoked, &authTime); err != nil {
		return nil, err
	}
	if err := fromJSONText(scopes, &r.Scopes); err != nil {
		return nil, err
	}
	r.Scopes = nonNil(r.Scopes)
	r.AccessExpiresAt, r.CreatedAt, r.ExpiresAt = fromMicros(accessExp), fromMicros(created), fromMicros(expires)
	r.UsedAt, r.RevokedAt, r.AuthTime = fromMicros(used), fromMicros(revoked), fromMicros(authTime)
	return &r, nil
}

// CreateRefreshToken stores a refresh token.
func (c *conn) CreateRefreshToken(ctx context.Context, r *RefreshToken) error {
	scopes, err := jsonText(nonNil(r.Scopes))
	if err != nil {
		return err
	}
	if _, err := c.exec(ctx, `INSERT INTO oauth_refresh_tokens (`+refreshCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.Hash, r.FamilyID, r.ClientID, r.Subject, scopes, r.AccessJTI, micros(r.AccessExpiresAt), micros(r.CreatedAt),
		micros(r.ExpiresAt), micros(r.UsedAt), micros(r.RevokedAt), micros(r.AuthTime)); err != nil {
		return fmt.Errorf("store: create refresh token: %w", err)
	}
	return nil
}

// GetRefreshToken returns the refresh token with this hash. Inside a Tx on
// PostgreSQL the row stays locked.
func (c *conn) GetRefreshToken(ctx context.Context, hash string) (*RefreshToken, error) {
	r, err := scanRefresh(c.queryRow(ctx, `SELECT `+refreshCols+` FROM oauth_refresh_tokens WHERE token_hash = ?`+c.forUpdate(), hash))
	if err != nil {
		return nil, fmt.Errorf("store: refresh token: %w", c.mapErr(err))
	}
	return r, nil
}

// MarkRefreshTokenUsed records that a refresh token was rotated. It fails
// with ErrStale if the token was already used or revoked, so two concurrent
// exchanges cannot both succeed.
func (c *conn) MarkRefreshTokenUsed(ctx context.Context, hash string, at time.Time) error {
	res, err := c.exec(ctx, `UPDATE oauth_refresh_tokens SET used_at = ? WHERE token_hash = ? AND used_at = 0 AND revoked_at = 0`, micros(at), hash)
	if err == nil && affected(res) != nil {
		err = ErrStale
	}
	if err != nil {
		return fmt.Errorf("store: use refresh token: %w", err)
	}
	return nil
}

// RefreshFamilies lists the families of clientID's refresh tokens for
// subject that still have a token not revoked.
func (c *conn) RefreshFamilies(ctx context.Context, clientID, subject string) ([]string, error) {
	rows, err := c.query(ctx, `SELECT DISTINCT family_id FROM oauth_refresh_tokens WHERE client_id = ? AND subject = ? AND revoked_at = 0 ORDER BY family_id`, clientID, subject)
	if err != nil {
		return nil, fmt.Errorf("store: refresh families: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var f string
		if err := rows.Scan(&f); err != nil {
			return nil, fmt.Errorf("store: refresh families: %w", err)
		}
		out = append(out, f)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: refresh families: %w", c.mapErr(err))
	}
	return out, nil
}

// RevokeRefreshFamily revokes every token of a family that is not revoked
// yet and returns them as they were before (with their access token IDs).
func (c *conn) RevokeRefreshFamily(ctx context.Context, familyID string, at time.Time) ([]RefreshToken, error) {
	rows, err := c.query(ctx, `SELECT `+refreshCols+` FROM oauth_refresh_tokens WHERE family_id = ? AND revoked_at = 0 ORDER BY created_at`, familyID)
	if err != nil {
		return nil, fmt.Errorf("store: revoke refresh family: %w", err)
	}
	var out []RefreshToken
	for rows.Next() {
		r, err := scanRefresh(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: revoke refresh family: %w", err)
		}
		out = append(out, *r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: revoke refresh family: %w", c.mapErr(err))
	}
	if _, err := c.exec(ctx, `UPDATE oauth_refresh_tokens SET revoked_at = ? WHERE family_id = ? AND revoked_at = 0`, micros(at), familyID); err != nil {
		return nil, fmt.Errorf("store: revoke refresh family: %w", err)
	}
	return nonNil(out), nil
}

// RevokeAccessToken records that the access token with this JWT ID is
// revoked until it expires. Revoking twice is not an error.
func (c *conn) RevokeAccessToken(ctx context.Context, jti string, expiresAt, at time.Time) error {
	if _, err := c.exec(ctx, `INSERT INTO oauth_revoked_tokens (jti, expires_at, revoked_at) VALUES (?, ?, ?) ON CONFLICT (jti) DO NOTHING`,
		jti, micros(expiresAt), micros(at)); err != nil {
		return fmt.Errorf("store: revoke access token: %w", err)
	}
	return nil
}

// ListRevokedAccessTokens returns the JWT IDs of revoked access tokens that
// expire after now, with their expiry.
func (c *conn) ListRevokedAccessTokens(ctx context.Context, now time.Time) (map[string]time.Time, error) {
	rows, err := c.query(ctx, `SELECT jti, expires_at FROM oauth_revoked_tokens WHERE expires_at > ?`, micros(now))
	if err != nil {
		return nil, fmt.Errorf("store: list revoked tokens: %w", err)
	}
	defer rows.Close()
	out := map[string]time.Time{}
	for rows.Next() {
		var (
			jti string
			exp int64
		)
		if err := rows.Scan(&jti, &exp); err != nil {
			return nil, fmt.Errorf("store: list revoked tokens: %w", err)
		}
		out[jti] = fromMicros(exp)
	}
	return out, c.mapErr(rows.Err())
}

// PurgeExpiredOAuth deletes device authorizations, refresh tokens,
// revocations and used assertion IDs that expired before now, and returns
// how many rows went.
func (c *conn) PurgeExpiredOAuth(ctx context.Context, now time.Time) (int64, error) {
	var total int64
	for _, q := range []string{
		`DELETE FROM oauth_device_codes WHERE expires_at < ?`,
		`DELETE FROM oauth_refresh_tokens WHERE expires_at < ?`,
		`DELETE FROM oauth_revoked_tokens WHERE expires_at < ?`,
		`DELETE FROM oauth_used_jtis WHERE expires_at < ?`,
		`DELETE FROM oauth_auth_requests WHERE expires_at < ?`,
	} {
		res, err := c.exec(ctx, q, micros(now))
		if err != nil {
			return total, fmt.Errorf("store: purge expired oauth records: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, fmt.Errorf("store: purge expired oauth records: %w", err)
		}
		total += n
	}
	return total, nil
}

// AppendEvents adds several events with one statement and sets their IDs,
// in order. The authorization server writes its token.issued events this
// way, batched.
func (c *conn) AppendEvents(ctx context.Context, evs []*Event) error {
	if c.dialect == dialectSQLite && c.tx != nil {
		return c.appendEventsEach(ctx, evs)
	}
	const maxRows = 500 // stays far below both drivers' parameter limits
	for len(evs) > 0 {
		n := min(len(evs), maxRows)
		if err := c.appendEvents(ctx, evs[:n]); err != nil {
			return err
		}
		evs = evs[n:]
	}
	return nil
}

func (c *conn) appendEvents(ctx context.Context, evs []*Event) error {
	if err := c.beforeEventIDs(ctx); err != nil {
		return fmt.Errorf("store: append events: %w", err)
	}
	var b strings.Builder
	b.WriteString(`INSERT INTO events (time, type, subject, actor, details, count) VALUES `)
	args := make([]any, 0, len(evs)*6)
	for i, ev := range evs {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, ?, ?, ?, ?, ?)")
		details := string(ev.Details)
		if details == "" {
			details = "{}"
		}
		args = append(args, micros(ev.Time), ev.Type, ev.Subject, ev.Actor, details, ev.count())
	}
	b.WriteString(` RETURNING id`)
	rows, err := c.query(ctx, b.String(), args...)
	if err != nil {
		return fmt.Errorf("store: append events: %w", err)
	}
	defer rows.Close()
	ids := make([]int64, 0, len(evs))
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return fmt.Errorf("store: append events: %w", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("store: append events: %w", c.mapErr(err))
	}
	if len(ids) != len(evs) {
		return fmt.Errorf("store: append events: %d ids for %d events", len(ids), len(evs))
	}
	// One INSERT assigns increasing IDs in VALUES order; RETURNING need
	// not list them in that order.
	slices.Sort(ids)
	for i, ev := range evs {
		ev.ID = ids[i]
	}
	return nil
}
