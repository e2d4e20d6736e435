package store

import (
	"context"
	"fmt"
	"time"
)

// App is a registered OAuth client that is not a thing: the console, a
// mobile or web app. Public apps (no SecretHash) must use PKCE.
type App struct {
	ClientID    string `json:"clientId"`
	Description string `json:"description,omitempty"`
	// SecretHash is the hex SHA-256 of the client secret; "" for a public
	// app.
	SecretHash   string    `json:"-"`
	RedirectURIs []string  `json:"redirectUris"`
	Scopes       []string  `json:"scopes"`
	GrantTypes   []string  `json:"grantTypes"`
	CreatedAt    time.Time `json:"createdAt"`
}

// Public reports whether the app has no secret.
func (a *App) Public() bool { return a.SecretHash == "" }

const appCols = `client_id, description, secret_hash, redirect_uris, scopes, grant_types, created_at`

func scanApp(row interface{ Scan(...any) error }) (*App, error) {
	var (
		a                    App
		uris, scopes, grants string
		created              int64
	)
	if err := row.Scan(&a.ClientID, &a.Description, &a.SecretHash, &uris, &scopes, &grants, &created); err != nil {
		return nil, err
	}
	for _, f := range []struct {
		s string
		v *[]string
	}{{uris, &a.RedirectURIs}, {scopes, &a.Scopes}, {grants, &a.GrantTypes}} {
		if err := fromJSONText(f.s, f.v); err != nil {
			return nil, err
		}
		*f.v = nonNil(*f.v)
	}
	a.CreatedAt = fromMicros(created)
	return &a, nil
}

// CreateApp stores a new app; ErrExists if the client id is taken.
func (c *conn) CreateApp(ctx context.Context, a *App) error {
	var lists [3]string
	for i, l := range [][]string{a.RedirectURIs, a.Scopes, a.GrantTypes} {
		s, err := jsonText(nonNil(l))
		if err != nil {
			return err
		}
		lists[i] = s
	}
	if _, err := c.exec(ctx, `INSERT INTO oauth_apps (`+appCols+`) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		a.ClientID, a.Description, a.SecretHash, lists[0], lists[1], lists[2], micros(a.CreatedAt)); err != nil {
		return fmt.Errorf("store: create app %q: %w", a.ClientID, err)
	}
	return nil
}

// GetApp returns an app; ErrNotFound if there is none.
func (c *conn) GetApp(ctx context.Context, clientID string) (*App, error) {
	a, err := scanApp(c.queryRow(ctx, `SELECT `+appCols+` FROM oauth_apps WHERE client_id = ?`, clientID))
	if err != nil {
		return nil, fmt.Errorf("store: app %q: %w", clientID, c.mapErr(err))
	}
	return a, nil
}

// ListApps returns every app by client id.
func (c *conn) ListApps(ctx context.Context) ([]App, error) {
	rows, err := c.query(ctx, `SELECT `+appCols+` FROM oauth_apps ORDER BY client_id LIMIT 10000`)
	if err != nil {
		return nil, fmt.Errorf("store: list apps: %w", err)
	}
	defer rows.Close()
	out := []App{}
	for rows.Next() {
		a, err := scanApp(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list apps: %w", err)
		}
		out = append(out, *a)
	}
	return out, c.mapErr(rows.Err())
}

// DeleteApp deletes an app and its pending authorization requests;
// ErrNotFound if there is none.
func (c *conn) DeleteApp(ctx context.Context, clientID string) error {
	res, err := c.exec(ctx, `DELETE FROM oauth_apps WHERE client_id = ?`, clientID)
	if err == nil {
		err = affected(res)
	}
	if err == nil {
		_, err = c.exec(ctx, `DELETE FROM oauth_auth_requests WHERE client_id = ?`, clientID)
	}
	if err != nil {
		return fmt.Errorf("store: delete app %q: %w", clientID, err)
	}
	return nil
}

// AuthRequest is an authorization request (RFC 6749 section 4.1) from its
// start at the authorization endpoint to the code exchange.
type AuthRequest struct {
	// IDHash is the hash of the request id the login page carries.
	IDHash              string
	ClientID            string
	RedirectURI         string
	Scopes              []string
	State               string
	Nonce               string
	CodeChallenge       string
	CodeChallengeMethod string
	// Subject is the user who signed in; "" until then.
	Subject string
	// CodeHash is the hash of the authorization code; "" until issued.
	CodeHash  string
	CreatedAt time.Time
	ExpiresAt time.Time
}

const authRequestCols = `id_hash, client_id, redirect_uri, scopes, state, nonce, code_challenge, challenge_method, subject, code_hash, created_at, expires_at`

func scanAuthRequest(row interface{ Scan(...any) error }) (*AuthRequest, error) {
	var (
		r                AuthRequest
		scopes           string
		created, expires int64
	)
	if err := row.Scan(&r.IDHash, &r.ClientID, &r.RedirectURI, &scopes, &r.State, &r.Nonce, &r.CodeChallenge, &r.CodeChallengeMethod,
		&r.Subject, &r.CodeHash, &created, &expires); err != nil {
		return nil, err
	}
	if err := fromJSONText(scopes, &r.Scopes); err != nil {
		return nil, err
	}
	r.Scopes = nonNil(r.Scopes)
	r.CreatedAt, r.ExpiresAt = fromMicros(created), fromMicros(expires)
	return &r, nil
}

// CreateAuthRequest stores a new authorization request.
func (c *conn) CreateAuthRequest(ctx context.Context, r *AuthRequest) error {
	scopes, err := jsonText(nonNil(r.Scopes))
	if err != nil {
		return err
	}
	if _, err := c.exec(ctx, `INSERT INTO oauth_auth_requests (`+authRequestCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.IDHash, r.ClientID, r.RedirectURI, scopes, r.State, r.Nonce, r.CodeChallenge, r.CodeChallengeMethod,
		r.Subject, r.CodeHash, micros(r.CreatedAt), micros(r.ExpiresAt)); err != nil {
		return fmt.Errorf("store: create authorization request: %w", err)
	}
	return nil
}

// GetAuthRequest returns the request whose id hashes to idHash. Inside a Tx
// on PostgreSQL the row stays locked.
func (c *conn) GetAuthRequest(ctx context.Context, idHash string) (*AuthRequest, error) {
	r, err := scanAuthRequest(c.queryRow(ctx, `SELECT `+authRequestCols+` FROM oauth_auth_requests WHERE id_hash = ?`+c.forUpdate(), idHash))
	if err != nil {
		return nil, fmt.Errorf("store: authorization request: %w", c.mapErr(err))
	}
	return r, nil
}

// GetAuthRequestByCode returns the request whose authorization code hashes
// to codeHash. Inside a Tx on PostgreSQL the row stays locked.
func (c *conn) GetAuthRequestByCode(ctx context.Context, codeHash string) (*AuthRequest, error) {
	if codeHash == "" {
		return nil, fmt.Errorf("store: authorization request: %w", ErrNotFound)
	}
	r, err := scanAuthRequest(c.queryRow(ctx, `SELECT `+authRequestCols+` FROM oauth_auth_requests WHERE code_hash = ?`+c.forUpdate(), codeHash))
	if err != nil {
		return nil, fmt.Errorf("store: authorization request: %w", c.mapErr(err))
	}
	return r, nil
}

// SaveAuthCode records who signed in for a request and the hash of the
// code issued for it, with the code's expiry.
func (c *conn) SaveAuthCode(ctx context.Context, idHash, subject, codeHash string, expiresAt time.Time) error {
	res, err := c.exec(ctx, `UPDATE oauth_auth_requests SET subject = ?, code_hash = ?, expires_at = ? WHERE id_hash = ?`, subject, codeHash, micros(expiresAt), idHash)
	if err == nil {
		err = affected(res)
	}
	if err != nil {
		return fmt.Errorf("store: save authorization code: %w", err)
	}
	return nil
}

// DeleteAuthRequest deletes a request; ErrNotFound if it is gone.
func (c *conn) DeleteAuthRequest(ctx context.Context, idHash string) error {
	res, err := c.exec(ctx, `DELETE FROM oauth_auth_requests WHERE id_hash = ?`, idHash)
	if err == nil {
		err = affected(res)
	}
	if err != nil {
		return fmt.Errorf("store: delete authorization request: %w", err)
	}
	return nil
}
