package store

import (
	"context"
	"database/sql"
	"encoding/base64"
	"fmt"
	"net/url"
	"os"
	"strings"
)

// SealedValue is one value stored sealed by package seal: the table and
// column it lives in, the row's key and the sealed bytes.
type SealedValue struct {
	Table, Column, ID string
	Value             []byte
}

// sealedColumn is a column holding sealed values, with the column that
// names the row; base64 marks a TEXT column holding the sealed bytes in
// standard base64 (aws_access_keys).
type sealedColumn struct {
	table, id, column string
	base64            bool
}

// sealedColumns lists every column holding sealed values. A new sealed
// column must be added here, or a master key rotation leaves it
// unreadable (TestSealedColumnsCoverSchema checks the list against the
// migrations: columns whose name holds "sealed", and assignment_secret).
func sealedColumns() []sealedColumn {
	return []sealedColumn{
		{table: "oauth_signing_keys", id: "kid", column: "sealed_private"},
		{table: "pki_cas", id: "name", column: "sealed_key"},
		{table: "pki_cas", id: "name", column: "sealed_root_key"},
		{table: "aws_access_keys", id: "id", column: "sealed_secret", base64: true},
		{table: "lobby_targets", id: "name", column: "api_token_sealed"},
		{table: "lobby_devices", id: "fingerprint", column: "assignment_secret"},
	}
}

// SealedColumns names every table.column holding sealed values.
func SealedColumns() []string {
	var out []string
	for _, c := range sealedColumns() {
		out = append(out, c.table+"."+c.column)
	}
	return out
}

// ListSealedValues returns every sealed value in the database (NULLs
// skipped); in a Tx the rows are locked against concurrent change.
func (c *conn) ListSealedValues(ctx context.Context) ([]SealedValue, error) {
	var out []SealedValue
	for _, sc := range sealedColumns() {
		rows, err := c.query(ctx, `SELECT `+sc.id+`, `+sc.column+` FROM `+sc.table+` WHERE `+sc.column+` IS NOT NULL ORDER BY `+sc.id+c.forUpdate())
		if err != nil {
			return nil, fmt.Errorf("store: list sealed %s.%s: %w", sc.table, sc.column, err)
		}
		for rows.Next() {
			v := SealedValue{Table: sc.table, Column: sc.column}
			if err := rows.Scan(&v.ID, &v.Value); err != nil {
				rows.Close()
				return nil, fmt.Errorf("store: list sealed %s.%s: %w", sc.table, sc.column, err)
			}
			if len(v.Value) == 0 {
				continue // an optional secret not set (lobby targets and devices)
			}
			if sc.base64 {
				raw, err := base64.StdEncoding.DecodeString(string(v.Value))
				if err != nil {
					rows.Close()
					return nil, fmt.Errorf("store: sealed %s.%s %q is not base64: %w", sc.table, sc.column, v.ID, err)
				}
				v.Value = raw
			}
			out = append(out, v)
		}
		err = c.mapErr(rows.Err())
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("store: list sealed %s.%s: %w", sc.table, sc.column, err)
		}
	}
	return out, nil
}

// UpdateSealedValue replaces one sealed value found by ListSealedValues;
// ErrNotFound if the row is gone.
func (c *conn) UpdateSealedValue(ctx context.Context, v SealedValue) error {
	for _, sc := range sealedColumns() {
		if sc.table != v.Table || sc.column != v.Column {
			continue
		}
		var value any = v.Value
		if sc.base64 {
			value = base64.StdEncoding.EncodeToString(v.Value)
		}
		res, err := c.exec(ctx, `UPDATE `+sc.table+` SET `+sc.column+` = ? WHERE `+sc.id+` = ?`, value, v.ID)
		if err == nil {
			err = affected(res)
		}
		if err != nil {
			return fmt.Errorf("store: update sealed %s.%s %q: %w", v.Table, v.Column, v.ID, err)
		}
		return nil
	}
	return fmt.Errorf("store: %s.%s is not a sealed column", v.Table, v.Column)
}

// CheckUnused fails with ErrLocked when another process has the database
// open: for SQLite, a running server (see takeOver); for PostgreSQL, any
// other session of a Gatehouse (application_name gatehouse, see Open) on
// the same database; servers on other schemas of that database count too.
func CheckUnused(ctx context.Context, dsn string) error {
	if path, ok := strings.CutPrefix(dsn, "sqlite:"); ok {
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("store: %s: %w", path, err)
		}
		return takeOver(ctx, path)
	}
	u := dsn
	if strings.HasPrefix(u, "postgres:") && !strings.HasPrefix(u, "postgres://") {
		u = strings.TrimPrefix(u, "postgres:")
	}
	db, err := sql.Open("pgx", u)
	if err != nil {
		return fmt.Errorf("store: open postgres: %w", err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name = $1`, ApplicationName).Scan(&n); err != nil {
		return fmt.Errorf("store: check sessions: %w", err)
	}
	if n > 0 {
		return fmt.Errorf("store: %d gatehouse sessions on the database: %w", n, ErrLocked)
	}
	return nil
}

// ApplicationName is the PostgreSQL application_name of Gatehouse's
// sessions, unless the DSN sets another: CheckUnused looks for it.
const ApplicationName = "gatehouse"

// withApplicationName adds application_name to a PostgreSQL URL that has
// none.
func withApplicationName(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme == "" {
		return dsn
	}
	q := u.Query()
	if q.Get("application_name") != "" {
		return dsn
	}
	q.Set("application_name", ApplicationName)
	u.RawQuery = q.Encode()
	return u.String()
}
