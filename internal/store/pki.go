package store

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Certificate statuses, as AWS IoT names them.
const (
	CertActive            = "ACTIVE"
	CertInactive          = "INACTIVE"
	CertRevoked           = "REVOKED"
	CertPendingActivation = "PENDING_ACTIVATION"
)

// Manufacturer CA statuses.
const (
	CAActive   = "ACTIVE"
	CAInactive = "INACTIVE"
)

// CARecord is Gatehouse's own certificate authority as stored: the chain in
// PEM, the keys sealed, and the last CRL it published.
type CARecord struct {
	Name     string
	ChainPEM string
	// SealedKey is the issuing key (PKCS#8) sealed; SealedRootKey the
	// root's, or nil when the root key is kept offline or is the issuing key.
	SealedKey     []byte
	SealedRootKey []byte
	// IssuerFingerprint is the fingerprint of the issuing certificate.
	IssuerFingerprint string
	// RegistrationCode is what a manufacturer CA's verification
	// certificate must carry as common name (proof of possession).
	RegistrationCode string
	CRLNumber        int64
	CRL              []byte // DER of the last CRL, or nil
	CRLThisUpdate    time.Time
	CRLNextUpdate    time.Time
	// CRLStale is set by a revocation: the cached CRL must be regenerated.
	CRLStale  bool
	Version   int64
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Certificate is a device certificate known to Gatehouse, issued by its own
// CA or registered from a manufacturer CA. Its id is the SHA-256
// fingerprint of the DER.
type Certificate struct {
	Fingerprint string `json:"certificateId"`
	ThingName   string `json:"thingName,omitempty"`
	// CA is "gatehouse" for certificates Gatehouse issued, else the name of
	// the manufacturer CA that vouches for it.
	CA                string    `json:"ca"`
	IssuerFingerprint string    `json:"issuerFingerprint,omitempty"`
	SerialNumber      string    `json:"serialNumber"`
	Subject           string    `json:"subject"`
	PEM               string    `json:"certificatePem"`
	Status            string    `json:"status"`
	NotBefore         time.Time `json:"notBefore"`
	NotAfter          time.Time `json:"notAfter"`
	RevokedAt         time.Time `json:"revokedAt,omitzero"`
	RevocationReason  int       `json:"revocationReason,omitempty"`
	Version           int64     `json:"version"`
	CreatedAt         time.Time `json:"createdAt"`
	UpdatedAt         time.Time `json:"updatedAt"`
}

// RegistrationToken is a DeviceToken of the registration gateway. Only the
// SHA-256 of its secret is stored.
type RegistrationToken struct {
	ID          string `json:"id"`
	Hash        string `json:"-"`
	Description string `json:"description,omitempty"`
	ThingType   string `json:"thingType"`
	// MaxUses is how many registrations the token allows; 0 is unlimited.
	MaxUses    int64     `json:"maxUses"`
	Uses       int64     `json:"uses"`
	ExpiresAt  time.Time `json:"expiresAt,omitzero"`
	RevokedAt  time.Time `json:"revokedAt,omitzero"`
	CreatedAt  time.Time `json:"createdAt"`
	LastUsedAt time.Time `json:"lastUsedAt,omitzero"`
}

// ManufacturerCA is a device manufacturer's CA whose certificates Gatehouse
// trusts.
type ManufacturerCA struct {
	Name           string `json:"name"`
	Fingerprint    string `json:"fingerprint"`
	CertificatePEM string `json:"certificatePem"`
	Status         string `json:"status"`
	// Verified records that proof of possession of the CA key was given.
	Verified bool `json:"verified"`
	// AutoRegister registers unknown certificates just in time on their
	// first connection, with status JITStatus.
	AutoRegister bool   `json:"autoRegister"`
	JITStatus    string `json:"jitStatus"`
	// ThingType and ThingNameTemplate describe the thing created for a
	// just-in-time registered certificate.
	ThingType         string    `json:"thingType,omitempty"`
	ThingNameTemplate string    `json:"thingNameTemplate,omitempty"`
	AllowMissingEKU   bool      `json:"allowMissingEku"`
	Version           int64     `json:"version"`
	CreatedAt         time.Time `json:"createdAt"`
	UpdatedAt         time.Time `json:"updatedAt"`
}

// ---- own CA ----

const caCols = `name, chain_pem, sealed_key, sealed_root_key, issuer_fingerprint, registration_code, crl_number, crl_der, crl_this_update, crl_next_update, crl_stale, version, created_at, updated_at`

// CreateCA stores a CA with version 1; ErrExists if the name is taken.
func (c *conn) CreateCA(ctx context.Context, ca *CARecord) error {
	ca.Version = 1
	if _, err := c.exec(ctx, `INSERT INTO pki_cas (`+caCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		ca.Name, ca.ChainPEM, ca.SealedKey, nilIfEmpty(ca.SealedRootKey), ca.IssuerFingerprint, ca.RegistrationCode,
		ca.CRLNumber, nilIfEmpty(ca.CRL), micros(ca.CRLThisUpdate), micros(ca.CRLNextUpdate), ca.CRLStale,
		ca.Version, micros(ca.CreatedAt), micros(ca.UpdatedAt)); err != nil {
		return fmt.Errorf("store: create CA %q: %w", ca.Name, err)
	}
	return nil
}

func nilIfEmpty(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// GetCA returns a CA by name. Inside a Tx on PostgreSQL the row stays
// locked until the transaction ends.
func (c *conn) GetCA(ctx context.Context, name string) (*CARecord, error) {
	var (
		ca                            CARecord
		this, next, created, updated  int64
		sealedKey, sealedRootKey, crl []byte
	)
	err := c.queryRow(ctx, `SELECT `+caCols+` FROM pki_cas WHERE name = ?`+c.forUpdate(), name).Scan(
		&ca.Name, &ca.ChainPEM, &sealedKey, &sealedRootKey, &ca.IssuerFingerprint, &ca.RegistrationCode,
		&ca.CRLNumber, &crl, &this, &next, &ca.CRLStale, &ca.Version, &created, &updated)
	if err != nil {
		return nil, fmt.Errorf("store: CA %q: %w", name, c.mapErr(err))
	}
	ca.SealedKey, ca.SealedRootKey, ca.CRL = sealedKey, sealedRootKey, crl
	ca.CRLThisUpdate, ca.CRLNextUpdate = fromMicros(this), fromMicros(next)
	ca.CreatedAt, ca.UpdatedAt = fromMicros(created), fromMicros(updated)
	return &ca, nil
}

// UpdateCA writes every column of ca if its version is current, then
// increments ca.Version.
func (c *conn) UpdateCA(ctx context.Context, ca *CARecord) error {
	res, err := c.exec(ctx, `UPDATE pki_cas SET chain_pem = ?, sealed_key = ?, sealed_root_key = ?, issuer_fingerprint = ?, registration_code = ?,
		crl_number = ?, crl_der = ?, crl_this_update = ?, crl_next_update = ?, crl_stale = ?, version = version + 1, updated_at = ?
		WHERE name = ? AND version = ?`,
		ca.ChainPEM, ca.SealedKey, nilIfEmpty(ca.SealedRootKey), ca.IssuerFingerprint, ca.RegistrationCode,
		ca.CRLNumber, nilIfEmpty(ca.CRL), micros(ca.CRLThisUpdate), micros(ca.CRLNextUpdate), ca.CRLStale, micros(ca.UpdatedAt),
		ca.Name, ca.Version)
	if err == nil {
		err = c.checkVersioned(ctx, res, "pki_cas", "name", ca.Name)
	}
	if err != nil {
		return fmt.Errorf("store: update CA %q: %w", ca.Name, err)
	}
	ca.Version++
	return nil
}

// MarkCRLStale flags a CA's cached CRL for regeneration.
func (c *conn) MarkCRLStale(ctx context.Context, name string) error {
	res, err := c.exec(ctx, `UPDATE pki_cas SET crl_stale = ? WHERE name = ?`, true, name)
	if err == nil {
		err = affected(res)
	}
	if err != nil {
		return fmt.Errorf("store: mark CRL of CA %q stale: %w", name, err)
	}
	return nil
}

// ---- certificates ----

const certCols = `fingerprint, thing_name, ca_name, issuer_fingerprint, serial, subject, pem, status, not_before, not_after, revoked_at, revocation_reason, version, created_at, updated_at`

func scanCertificate(row interface{ Scan(...any) error }) (*Certificate, error) {
	var (
		ct                                Certificate
		nb, na, revoked, created, updated int64
	)
	if err := row.Scan(&ct.Fingerprint, &ct.ThingName, &ct.CA, &ct.IssuerFingerprint, &ct.SerialNumber, &ct.Subject, &ct.PEM, &ct.Status,
		&nb, &na, &revoked, &ct.RevocationReason, &ct.Version, &created, &updated); err != nil {
		return nil, err
	}
	ct.NotBefore, ct.NotAfter, ct.RevokedAt = fromMicros(nb), fromMicros(na), fromMicros(revoked)
	ct.CreatedAt, ct.UpdatedAt = fromMicros(created), fromMicros(updated)
	return &ct, nil
}

// CreateCertificate inserts ct with version 1; ErrExists for a known
// fingerprint.
func (c *conn) CreateCertificate(ctx context.Context, ct *Certificate) error {
	ct.Version = 1
	if _, err := c.exec(ctx, `INSERT INTO certificates (`+certCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		ct.Fingerprint, ct.ThingName, ct.CA, ct.IssuerFingerprint, ct.SerialNumber, ct.Subject, ct.PEM, ct.Status,
		micros(ct.NotBefore), micros(ct.NotAfter), micros(ct.RevokedAt), ct.RevocationReason, ct.Version,
		micros(ct.CreatedAt), micros(ct.UpdatedAt)); err != nil {
		return fmt.Errorf("store: create certificate %s: %w", ct.Fingerprint, err)
	}
	return nil
}

// GetCertificate returns a certificate by fingerprint. Inside a Tx on
// PostgreSQL the row stays locked until the transaction ends.
func (c *conn) GetCertificate(ctx context.Context, fingerprint string) (*Certificate, error) {
	ct, err := scanCertificate(c.queryRow(ctx, `SELECT `+certCols+` FROM certificates WHERE fingerprint = ?`+c.forUpdate(), fingerprint))
	if err != nil {
		return nil, fmt.Errorf("store: certificate %s: %w", fingerprint, c.mapErr(err))
	}
	return ct, nil
}

// CertificateFilter narrows ListCertificates; Page.After is a fingerprint.
type CertificateFilter struct {
	Page
	ThingName string
	CA        string
	Status    string
}

// ListCertificates returns certificates ordered by fingerprint.
func (c *conn) ListCertificates(ctx context.Context, f CertificateFilter) ([]Certificate, error) {
	where, args := []string{"fingerprint > ?"}, []any{f.After}
	for _, p := range []struct{ col, v string }{{"thing_name", f.ThingName}, {"ca_name", f.CA}, {"status", f.Status}} {
		if p.v != "" {
			where, args = append(where, p.col+" = ?"), append(args, p.v)
		}
	}
	rows, err := c.query(ctx, fmt.Sprintf(`SELECT `+certCols+` FROM certificates WHERE %s ORDER BY fingerprint LIMIT %d`,
		strings.Join(where, " AND "), f.limit()), args...)
	if err != nil {
		return nil, fmt.Errorf("store: list certificates: %w", err)
	}
	defer rows.Close()
	out := []Certificate{}
	for rows.Next() {
		ct, err := scanCertificate(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list certificates: %w", err)
		}
		out = append(out, *ct)
	}
	return out, c.mapErr(rows.Err())
}

// UpdateCertificate writes ct's thing, status and revocation if its version
// is current, then increments ct.Version.
func (c *conn) UpdateCertificate(ctx context.Context, ct *Certificate) error {
	res, err := c.exec(ctx, `UPDATE certificates SET thing_name = ?, status = ?, revoked_at = ?, revocation_reason = ?, version = version + 1, updated_at = ?
		WHERE fingerprint = ? AND version = ?`,
		ct.ThingName, ct.Status, micros(ct.RevokedAt), ct.RevocationReason, micros(ct.UpdatedAt), ct.Fingerprint, ct.Version)
	if err == nil {
		err = c.checkVersioned(ctx, res, "certificates", "fingerprint", ct.Fingerprint)
	}
	if err != nil {
		return fmt.Errorf("store: update certificate %s: %w", ct.Fingerprint, err)
	}
	ct.Version++
	return nil
}

// RevokedCertificates returns the revoked certificates a CA issued from the
// issuing certificate issuerFingerprint that have not expired at now: the
// entries of its CRL, ordered by fingerprint.
func (c *conn) RevokedCertificates(ctx context.Context, ca, issuerFingerprint string, now time.Time) ([]Certificate, error) {
	rows, err := c.query(ctx, `SELECT `+certCols+` FROM certificates WHERE ca_name = ? AND status = ? AND issuer_fingerprint = ? AND not_after > ? ORDER BY fingerprint`,
		ca, CertRevoked, issuerFingerprint, micros(now))
	if err != nil {
		return nil, fmt.Errorf("store: revoked certificates: %w", err)
	}
	defer rows.Close()
	out := []Certificate{}
	for rows.Next() {
		ct, err := scanCertificate(rows)
		if err != nil {
			return nil, fmt.Errorf("store: revoked certificates: %w", err)
		}
		out = append(out, *ct)
	}
	return out, c.mapErr(rows.Err())
}

// CountCertificates returns how many certificates exist.
func (c *conn) CountCertificates(ctx context.Context) (int64, error) {
	var n int64
	err := c.queryRow(ctx, `SELECT COUNT(*) FROM certificates`).Scan(&n)
	return n, c.mapErr(err)
}

// ---- registration tokens ----

const regTokenCols = `id, hash, description, thing_type, max_uses, uses, expires_at, revoked_at, created_at, last_used_at`

func scanRegistrationToken(row interface{ Scan(...any) error }) (*RegistrationToken, error) {
	var (
		t                                  RegistrationToken
		expires, revoked, created, lastUse int64
	)
	if err := row.Scan(&t.ID, &t.Hash, &t.Description, &t.ThingType, &t.MaxUses, &t.Uses, &expires, &revoked, &created, &lastUse); err != nil {
		return nil, err
	}
	t.ExpiresAt, t.RevokedAt, t.CreatedAt, t.LastUsedAt = fromMicros(expires), fromMicros(revoked), fromMicros(created), fromMicros(lastUse)
	return &t, nil
}

// CreateRegistrationToken stores a registration token (by hash).
func (c *conn) CreateRegistrationToken(ctx context.Context, t *RegistrationToken) error {
	if _, err := c.exec(ctx, `INSERT INTO registration_tokens (`+regTokenCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		t.ID, t.Hash, t.Description, t.ThingType, t.MaxUses, t.Uses, micros(t.ExpiresAt), micros(t.RevokedAt), micros(t.CreatedAt), micros(t.LastUsedAt)); err != nil {
		return fmt.Errorf("store: create registration token %q: %w", t.ID, err)
	}
	return nil
}

// GetRegistrationToken returns a registration token by id.
func (c *conn) GetRegistrationToken(ctx context.Context, id string) (*RegistrationToken, error) {
	t, err := scanRegistrationToken(c.queryRow(ctx, `SELECT `+regTokenCols+` FROM registration_tokens WHERE id = ?`+c.forUpdate(), id))
	if err != nil {
		return nil, fmt.Errorf("store: registration token %q: %w", id, c.mapErr(err))
	}
	return t, nil
}

// RegistrationTokenByHash finds a registration token by the hash of its
// secret.
func (c *conn) RegistrationTokenByHash(ctx context.Context, hash string) (*RegistrationToken, error) {
	t, err := scanRegistrationToken(c.queryRow(ctx, `SELECT `+regTokenCols+` FROM registration_tokens WHERE hash = ?`, hash))
	if err != nil {
		return nil, fmt.Errorf("store: registration token: %w", c.mapErr(err))
	}
	return t, nil
}

// ListRegistrationTokens returns registration tokens ordered by id.
func (c *conn) ListRegistrationTokens(ctx context.Context, p Page) ([]RegistrationToken, error) {
	rows, err := c.query(ctx, fmt.Sprintf(`SELECT `+regTokenCols+` FROM registration_tokens WHERE id > ? ORDER BY id LIMIT %d`, p.limit()), p.After)
	if err != nil {
		return nil, fmt.Errorf("store: list registration tokens: %w", err)
	}
	defer rows.Close()
	out := []RegistrationToken{}
	for rows.Next() {
		t, err := scanRegistrationToken(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list registration tokens: %w", err)
		}
		out = append(out, *t)
	}
	return out, c.mapErr(rows.Err())
}

// UseRegistrationToken counts one use of a token if, at now, it is not
// revoked, not expired and not used up. It reports whether it did; the
// check and the count are one statement, so concurrent registrations never
// exceed MaxUses.
func (c *conn) UseRegistrationToken(ctx context.Context, id string, now time.Time) (bool, error) {
	res, err := c.exec(ctx, `UPDATE registration_tokens SET uses = uses + 1, last_used_at = ?
		WHERE id = ? AND revoked_at = 0 AND (expires_at = 0 OR expires_at > ?) AND (max_uses = 0 OR uses < max_uses)`,
		micros(now), id, micros(now))
	if err != nil {
		return false, fmt.Errorf("store: use registration token %q: %w", id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("store: use registration token %q: %w", id, err)
	}
	return n == 1, nil
}

// RevokeRegistrationToken marks a token revoked at now; ErrNotFound if it
// does not exist. Revoking twice keeps the first time.
func (c *conn) RevokeRegistrationToken(ctx context.Context, id string, now time.Time) error {
	res, err := c.exec(ctx, `UPDATE registration_tokens SET revoked_at = CASE WHEN revoked_at = 0 THEN ? ELSE revoked_at END WHERE id = ?`, micros(now), id)
	if err == nil {
		err = affected(res)
	}
	if err != nil {
		return fmt.Errorf("store: revoke registration token %q: %w", id, err)
	}
	return nil
}

// ---- manufacturer CAs ----

const mfgCols = `name, fingerprint, certificate_pem, status, verified, auto_register, jit_status, thing_type, thing_name_template, allow_missing_eku, version, created_at, updated_at`

func scanManufacturerCA(row interface{ Scan(...any) error }) (*ManufacturerCA, error) {
	var (
		m                ManufacturerCA
		created, updated int64
	)
	if err := row.Scan(&m.Name, &m.Fingerprint, &m.CertificatePEM, &m.Status, &m.Verified, &m.AutoRegister, &m.JITStatus,
		&m.ThingType, &m.ThingNameTemplate, &m.AllowMissingEKU, &m.Version, &created, &updated); err != nil {
		return nil, err
	}
	m.CreatedAt, m.UpdatedAt = fromMicros(created), fromMicros(updated)
	return &m, nil
}

// CreateManufacturerCA inserts m with version 1; ErrExists for a taken name
// or a CA certificate already registered.
func (c *conn) CreateManufacturerCA(ctx context.Context, m *ManufacturerCA) error {
	m.Version = 1
	if _, err := c.exec(ctx, `INSERT INTO manufacturer_cas (`+mfgCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		m.Name, m.Fingerprint, m.CertificatePEM, m.Status, m.Verified, m.AutoRegister, m.JITStatus, m.ThingType, m.ThingNameTemplate,
		m.AllowMissingEKU, m.Version, micros(m.CreatedAt), micros(m.UpdatedAt)); err != nil {
		return fmt.Errorf("store: create manufacturer CA %q: %w", m.Name, err)
	}
	return nil
}

// GetManufacturerCA returns a manufacturer CA by name.
func (c *conn) GetManufacturerCA(ctx context.Context, name string) (*ManufacturerCA, error) {
	m, err := scanManufacturerCA(c.queryRow(ctx, `SELECT `+mfgCols+` FROM manufacturer_cas WHERE name = ?`+c.forUpdate(), name))
	if err != nil {
		return nil, fmt.Errorf("store: manufacturer CA %q: %w", name, c.mapErr(err))
	}
	return m, nil
}

// ListManufacturerCAs returns every manufacturer CA ordered by name.
func (c *conn) ListManufacturerCAs(ctx context.Context) ([]ManufacturerCA, error) {
	rows, err := c.query(ctx, `SELECT `+mfgCols+` FROM manufacturer_cas ORDER BY name LIMIT 1000`)
	if err != nil {
		return nil, fmt.Errorf("store: list manufacturer CAs: %w", err)
	}
	defer rows.Close()
	out := []ManufacturerCA{}
	for rows.Next() {
		m, err := scanManufacturerCA(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list manufacturer CAs: %w", err)
		}
		out = append(out, *m)
	}
	return out, c.mapErr(rows.Err())
}

// UpdateManufacturerCA writes m's settings if its version is current, then
// increments m.Version. The certificate itself never changes.
func (c *conn) UpdateManufacturerCA(ctx context.Context, m *ManufacturerCA) error {
	res, err := c.exec(ctx, `UPDATE manufacturer_cas SET status = ?, verified = ?, auto_register = ?, jit_status = ?, thing_type = ?, thing_name_template = ?,
		allow_missing_eku = ?, version = version + 1, updated_at = ? WHERE name = ? AND version = ?`,
		m.Status, m.Verified, m.AutoRegister, m.JITStatus, m.ThingType, m.ThingNameTemplate, m.AllowMissingEKU, micros(m.UpdatedAt), m.Name, m.Version)
	if err == nil {
		err = c.checkVersioned(ctx, res, "manufacturer_cas", "name", m.Name)
	}
	if err != nil {
		return fmt.Errorf("store: update manufacturer CA %q: %w", m.Name, err)
	}
	m.Version++
	return nil
}

// DeleteManufacturerCA removes a manufacturer CA. The certificates it
// vouched for stay, and are refused while it is gone.
func (c *conn) DeleteManufacturerCA(ctx context.Context, name string) error {
	res, err := c.exec(ctx, `DELETE FROM manufacturer_cas WHERE name = ?`, name)
	if err == nil {
		err = affected(res)
	}
	if err != nil {
		return fmt.Errorf("store: delete manufacturer CA %q: %w", name, err)
	}
	return nil
}
