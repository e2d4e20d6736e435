package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib" // also registers the "pgx" database/sql driver
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Errors every driver returns, so callers can decide (in one place) what
// status to answer with.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	// ErrStale means an update named a version that is no longer current.
	ErrStale = errors.New("version is stale")
	// ErrInUse means a record cannot be deleted while others refer to it.
	ErrInUse = errors.New("still in use")
	// ErrTooNew means the database was migrated by a newer Gatehouse.
	ErrTooNew = errors.New("database schema is newer than this binary")
	// ErrUnavailable means the database connection was lost or refused
	// (a failover, a restart, an administrator ending the session): the
	// request may be retried shortly. Errors matching it carry
	// RetryAfter.
	ErrUnavailable = errors.New("database unavailable")
)

// pingAfterLoss is how long after a lost connection every pooled
// connection is pinged before use.
const pingAfterLoss = 10 * time.Second

// unavailableRetryAfter is how long a client is asked to wait after
// ErrUnavailable: the pool opens a new connection on the next request.
const unavailableRetryAfter = time.Second

// unavailableError is a lost-connection error: errors.Is(ErrUnavailable),
// the driver's error behind it, and when to retry.
type unavailableError struct{ err error }

func (e *unavailableError) Error() string             { return ErrUnavailable.Error() + ": " + e.err.Error() }
func (e *unavailableError) Unwrap() []error           { return []error{ErrUnavailable, e.err} }
func (e *unavailableError) RetryAfter() time.Duration { return unavailableRetryAfter }

// IsUnavailable reports whether err means the database connection was
// lost or could not be made, whether or not a store method mapped it to
// ErrUnavailable yet: PostgreSQL's connection exceptions (class 08) and
// shutdowns (57P01 administrator command, 57P02 crash, 57P03 cannot
// connect now), a connection the driver found broken, or one that failed
// to open.
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrUnavailable) || errors.Is(err, driver.ErrBadConn) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return strings.HasPrefix(pgErr.Code, "08") || pgErr.Code == "57P01" || pgErr.Code == "57P02" || pgErr.Code == "57P03"
	}
	var connectErr *pgconn.ConnectError
	return errors.As(err, &connectErr)
}

// unavailable wraps err as ErrUnavailable when it is a lost connection.
func unavailable(err error) error {
	if IsUnavailable(err) && !errors.Is(err, ErrUnavailable) {
		return &unavailableError{err: err}
	}
	return err
}

//go:embed migrations
var migrationFS embed.FS

type dialect int

const (
	dialectSQLite dialect = iota
	dialectPostgres
)

func (d dialect) String() string {
	if d == dialectPostgres {
		return "postgres"
	}
	return "sqlite"
}

// execer is what *sql.DB and *sql.Tx have in common.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// conn carries the query methods shared by Store and Tx.
type conn struct {
	ex      execer
	dialect dialect
	inTx    bool
	tx      *sql.Tx
	stmts   *stmtCache
	// lostAt is when (Unix nanoseconds) a connection was last found lost;
	// for a while after, pooled connections are pinged before use, so the
	// others the same failover broke are replaced rather than failing
	// requests one by one. Nil for SQLite.
	lostAt *atomic.Int64
}

// stmtCache keeps prepared statements by query text: parsing SQL costs more
// than running most of Gatehouse's queries. database/sql prepares each
// statement once per connection and reuses it inside transactions.
type stmtCache struct {
	db       *sql.DB
	mu       sync.RWMutex
	m        map[string]*sql.Stmt
	inflight sync.Map // query -> struct{}: being prepared in the background
	// background counts those preparations, and closed (under mu) stops
	// new ones: close waits for them, so that no connection of the store
	// is open once Close returns.
	background sync.WaitGroup
	closed     bool
}

// maxCachedStmts bounds the cache; queries past it run unprepared.
const maxCachedStmts = 1024

// get returns the prepared statement for q, preparing it when prepare is
// set. It never holds its lock while preparing: preparing takes a pooled
// connection, and a transaction asking for a statement already holds one.
func (sc *stmtCache) get(ctx context.Context, q string, prepare bool) *sql.Stmt {
	sc.mu.RLock()
	st, full := sc.m[q], len(sc.m) >= maxCachedStmts
	sc.mu.RUnlock()
	if st != nil || !prepare || full {
		return st
	}
	st, err := sc.db.PrepareContext(ctx, q)
	if err != nil {
		return nil // the unprepared path reports the error
	}
	sc.mu.Lock()
	if old := sc.m[q]; old != nil {
		sc.mu.Unlock()
		// Prepared twice at once: close ours, outside the lock. Closing
		// waits for the connection it was prepared on, which may be busy
		// in a transaction waiting (in the database) for another that
		// needs this lock to go on.
		st.Close()
		return old
	}
	sc.m[q] = st
	sc.mu.Unlock()
	return st
}

// prepareLater prepares q in the background, outside any transaction, so
// the next transaction running it finds it cached.
func (sc *stmtCache) prepareLater(q string) {
	if _, busy := sc.inflight.LoadOrStore(q, struct{}{}); busy {
		return
	}
	sc.mu.Lock()
	if sc.closed {
		sc.mu.Unlock()
		sc.inflight.Delete(q)
		return
	}
	sc.background.Add(1)
	sc.mu.Unlock()
	go func() {
		defer sc.background.Done()
		defer sc.inflight.Delete(q)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		sc.get(ctx, q, true)
	}()
}

func (sc *stmtCache) close() {
	sc.mu.Lock()
	sc.closed = true
	sc.mu.Unlock()
	sc.background.Wait()
	sc.mu.Lock()
	m := sc.m
	sc.m = map[string]*sql.Stmt{}
	sc.mu.Unlock()
	for _, st := range m {
		st.Close() // outside the lock, as in get
	}
}

// Store is an open database. It is safe for concurrent use.
type Store struct {
	conn
	db *sql.DB
}

// Tx is a transaction opened by Store.InTx. It has every method Store has.
type Tx struct {
	conn
	after []func()
}

// AfterCommit arranges for fn to run once the transaction has committed,
// after InTx's function returned, in the order the calls were made. If the
// transaction rolls back (or is retried), fn never runs for it. It is how
// a change announces itself (events.Log.Record uses it) and updates
// in-memory state only once the change is durable.
func (t *Tx) AfterCommit(fn func()) { t.after = append(t.after, fn) }

// Open connects to the database named by dsn and migrates it to the newest
// schema this binary knows. dsn is "sqlite:PATH" (PATH may be ":memory:" only
// for throwaway use) or a PostgreSQL URL "postgres://..." / "postgresql://...".
func Open(ctx context.Context, dsn string) (*Store, error) {
	return open(ctx, dsn, false)
}

// OpenReadOnly connects to an existing database for reading only, for a
// process that follows a Gatehouse server without being one (the Mosquitto
// plugin): it never creates the database nor migrates it, refuses a schema
// other than the newest this binary knows (ErrTooNew when newer, an error
// naming the version when older: start the server first), and every write
// fails (SQLite opened with mode=ro, PostgreSQL sessions with
// default_transaction_read_only).
func OpenReadOnly(ctx context.Context, dsn string) (*Store, error) {
	return open(ctx, dsn, true)
}

func open(ctx context.Context, dsn string, readOnly bool) (*Store, error) {
	var (
		db     *sql.DB
		d      dialect
		lostAt *atomic.Int64
	)
	switch {
	case strings.HasPrefix(dsn, "sqlite:"):
		p := strings.TrimPrefix(dsn, "sqlite:")
		p = strings.TrimPrefix(p, "//")
		if p == "" {
			return nil, errors.New("store: sqlite DSN has no path")
		}
		q := "?_pragma=foreign_keys(1)&_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate"
		if readOnly {
			if _, err := os.Stat(p); err != nil {
				return nil, fmt.Errorf("store: sqlite database: %w", err)
			}
			q = "?mode=ro&_pragma=busy_timeout(10000)&_pragma=query_only(1)"
		} else if err := createPrivate(p); err != nil {
			return nil, err
		}
		var err error
		db, err = sql.Open("sqlite", "file:"+p+q)
		if err != nil {
			return nil, fmt.Errorf("store: open sqlite: %w", err)
		}
		if p == ":memory:" {
			db.SetMaxOpenConns(1)
		}
		d = dialectSQLite
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"), strings.HasPrefix(dsn, "postgres:"):
		u := dsn
		if strings.HasPrefix(u, "postgres:") && !strings.HasPrefix(u, "postgres://") {
			u = strings.TrimPrefix(u, "postgres:")
		}
		u = withApplicationName(u)
		var err error

		pgCfg, err := pgx.ParseConfig(u)
		if err != nil {
			return nil, fmt.Errorf("store: open postgres: %w", err)
		}
		if readOnly {
			pgCfg.RuntimeParams["default_transaction_read_only"] = "on"
		}
		lostAt = new(atomic.Int64)
		db = stdlib.OpenDB(*pgCfg, stdlib.OptionShouldPing(func(_ context.Context, p stdlib.ShouldPingParams) bool {
			// pgx's default (idle over a second), and every use for a
			// while after a lost connection.
			return p.IdleDuration > time.Second || time.Since(time.Unix(0, lostAt.Load())) < pingAfterLoss
		}))
		db.SetMaxOpenConns(20)
		d = dialectPostgres
	default:
		return nil, fmt.Errorf("store: unsupported DSN %q: want sqlite:PATH or postgres://", redactDSN(dsn))
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: connect %s: %w", d, err)
	}
	s := &Store{conn: conn{ex: db, dialect: d, stmts: &stmtCache{db: db, m: map[string]*sql.Stmt{}}, lostAt: lostAt}, db: db}
	migrate := s.migrate
	if readOnly {
		migrate = s.checkSchema
	}
	if err := migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// createPrivate creates the SQLite database file at path with mode 0600,
// whatever the umask and the directory's mode, unless it exists or is
// ":memory:". SQLite creates the -wal and -shm files with the database
// file's mode, so they are 0600 too. An existing file keeps its mode.
func createPrivate(path string) error {
	if path == ":memory:" || strings.HasPrefix(path, "file:") {
		return nil
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("store: create sqlite database: %w", err)
	}
	// The umask can only remove bits; Chmod makes the mode exact.
	err = f.Chmod(0o600)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("store: create sqlite database: %w", err)
	}
	return nil
}

// redactDSN drops a password from a URL-style DSN so it can be logged.
func redactDSN(dsn string) string {
	at := strings.LastIndex(dsn, "@")
	scheme := strings.Index(dsn, "://")
	if at < 0 || scheme < 0 || at < scheme {
		return dsn
	}
	userinfo := dsn[scheme+3 : at]
	if i := strings.Index(userinfo, ":"); i >= 0 {
		return dsn[:scheme+3] + userinfo[:i] + ":xxxxx" + dsn[at:]
	}
	return dsn
}

// Dialect names the driver in use: "sqlite" or "postgres".
func (s *Store) Dialect() string { return s.dialect.String() }

// Close closes the database. Statements being prepared in the background
// are waited for first, so that once Close returns the store holds no
// connection: another process (a backup, a newer binary) finds the
// SQLite file free.
func (s *Store) Close() error {
	s.stmts.close()
	return s.db.Close()
}

// Ping checks that the database answers; it backs /readyz.
func (s *Store) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

// InTx runs fn in a transaction, committing if fn returns nil. On SQLite the
// transaction takes the write lock at BEGIN; on PostgreSQL rows read for an
// update are locked with FOR UPDATE, so read-modify-write never loses a write.
//
// A transaction that loses its connection before it commits (ErrUnavailable)
// is run again once on a new connection: nothing of it was committed. A
// connection lost during the commit is not retried, since the commit may
// have happened; that error, like a second loss, is returned.
func (s *Store) InTx(ctx context.Context, fn func(tx *Tx) error) error {
	err := s.inTx(ctx, fn)
	var lost *beforeCommit
	if errors.As(err, &lost) && ctx.Err() == nil {
		err = s.inTx(ctx, fn)
	}
	if errors.As(err, &lost) {
		return lost.err
	}
	return err
}

// beforeCommit marks a lost connection in a transaction that did not reach
// its commit, so InTx may run it again.
type beforeCommit struct{ err error }

func (e *beforeCommit) Error() string { return e.err.Error() }
func (e *beforeCommit) Unwrap() error { return e.err }

func (s *Store) inTx(ctx context.Context, fn func(tx *Tx) error) error {
	sqlTx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		err = fmt.Errorf("store: begin: %w", s.mapErr(err))
		if IsUnavailable(err) {
			return &beforeCommit{err: err}
		}
		return err
	}
	tx := &Tx{conn: conn{ex: sqlTx, dialect: s.dialect, inTx: true, tx: sqlTx, stmts: s.stmts, lostAt: s.lostAt}}
	if err := fn(tx); err != nil {
		_ = sqlTx.Rollback()
		if IsUnavailable(err) {
			return &beforeCommit{err: unavailable(err)}
		}
		return err
	}
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", s.mapErr(err))
	}
	for _, fn := range tx.after {
		fn()
	}
	return nil
}

// rebind turns "?" placeholders into "$1".."$n" for PostgreSQL.
func (c *conn) rebind(q string) string {
	if c.dialect != dialectPostgres {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 8)
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}

// forUpdate is appended to single-row reads that precede a write in a Tx.
func (c *conn) forUpdate() string {
	if c.inTx && c.dialect == dialectPostgres {
		return " FOR UPDATE"
	}
	return ""
}

// stmt returns a prepared statement for q (already rebound), bound to the
// transaction when in one, or nil to run q unprepared.
func (c *conn) stmt(ctx context.Context, q string) *sql.Stmt {
	if c.stmts == nil {
		return nil
	}
	// Inside a transaction only statements prepared earlier are used: a
	// transaction holds a connection and must not wait for another.
	st := c.stmts.get(ctx, q, c.tx == nil)
	if c.tx == nil {
		return st
	}
	if st == nil {
		c.stmts.prepareLater(q)
		return nil
	}
	return c.tx.StmtContext(ctx, st)
}

func (c *conn) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	q = c.rebind(q)
	if st := c.stmt(ctx, q); st != nil {
		r, err := st.ExecContext(ctx, args...)
		return r, c.mapErr(err)
	}
	r, err := c.ex.ExecContext(ctx, q, args...)
	return r, c.mapErr(err)
}

func (c *conn) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	q = c.rebind(q)
	if st := c.stmt(ctx, q); st != nil {
		r, err := st.QueryContext(ctx, args...)
		return r, c.mapErr(err)
	}
	r, err := c.ex.QueryContext(ctx, q, args...)
	return r, c.mapErr(err)
}

func (c *conn) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	q = c.rebind(q)
	if st := c.stmt(ctx, q); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return c.ex.QueryRowContext(ctx, q, args...)
}

// mapErr translates driver errors into the package's sentinels.
func (c *conn) mapErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	if IsUnavailable(err) {
		if c.lostAt != nil {
			c.lostAt.Store(time.Now().UnixNano())
		}
		return unavailable(err)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "23505": // unique_violation
			return fmt.Errorf("%w: %s", ErrExists, pgErr.ConstraintName)
		case "23503": // foreign_key_violation
			return fmt.Errorf("%w: %s", ErrNotFound, pgErr.Detail)
		}
		return err
	}
	var sqErr *sqlite.Error
	if errors.As(err, &sqErr) {
		switch sqErr.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return fmt.Errorf("%w: %s", ErrExists, sqErr.Error())
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			return fmt.Errorf("%w: referenced record", ErrNotFound)
		}
	}
	return err
}

// affected returns ErrNotFound when an update or delete touched no row.
func affected(r sql.Result) error {
	n, err := r.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

type migration struct {
	version int
	name    string
	sql     string
}

// Each migration is written once, migrations/NNNN_what.sql, in SQLite's
// and PostgreSQL's common SQL, with placeholders for the three things the
// dialects spell differently; render fills them in for a dialect.
var dialectSQL = map[dialect]*strings.Replacer{
	dialectSQLite: strings.NewReplacer(
		"{{BYTES}}", "BLOB",
		"{{SERIAL_KEY}}", "INTEGER PRIMARY KEY AUTOINCREMENT",
		"{{EMPTY_BYTES}}", "x''"),
	dialectPostgres: strings.NewReplacer(
		"{{BYTES}}", "BYTEA",
		"{{SERIAL_KEY}}", "BIGSERIAL PRIMARY KEY",
		"{{EMPTY_BYTES}}", "''::bytea"),
}

// render is a migration's SQL for dialect d.
func (d dialect) render(name, src string) (string, error) {
	out := dialectSQL[d].Replace(src)
	if i := strings.Index(out, "{{"); i >= 0 {
		end, _, _ := strings.Cut(out[i:], "\n")
		return "", fmt.Errorf("store: migration %s: unknown placeholder in %q", name, end)
	}
	return out, nil
}

func (d dialect) migrations() ([]migration, error) {
	const dir = "migrations"
	entries, err := fs.ReadDir(migrationFS, dir)
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() {
			return nil, fmt.Errorf("store: migrations/%s: a migration is one file rendered per dialect, not a directory per dialect", name)
		}
		if !strings.HasSuffix(name, ".sql") {
			continue
		}
		num, _, ok := strings.Cut(name, "_")
		if !ok {
			return nil, fmt.Errorf("store: migration %s: name must be NNNN_what.sql", name)
		}
		v, err := strconv.Atoi(num)
		if err != nil {
			return nil, fmt.Errorf("store: migration %s: %w", name, err)
		}
		b, err := fs.ReadFile(migrationFS, path.Join(dir, name))
		if err != nil {
			return nil, err
		}
		sql, err := d.render(name, string(b))
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: name, sql: sql})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	return ms, nil
}

// SchemaVersion reports the newest migration applied to the database and the
// newest this binary knows.
func (s *Store) SchemaVersion(ctx context.Context) (db, binary int, err error) {
	ms, err := s.dialect.migrations()
	if err != nil {
		return 0, 0, err
	}
	if len(ms) > 0 {
		binary = ms[len(ms)-1].version
	}
	err = s.queryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&db)
	return db, binary, s.mapErr(err)
}

func (s *Store) migrate(ctx context.Context) error {
	ms, err := s.dialect.migrations()
	if err != nil {
		return fmt.Errorf("store: read migrations: %w", err)
	}
	if _, err := s.exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("store: create schema_migrations: %w", err)
	}
	return s.InTx(ctx, func(tx *Tx) error {
		if tx.dialect == dialectPostgres {
			// Serialize replicas migrating the same database at start-up.
			if _, err := tx.exec(ctx, `SELECT pg_advisory_xact_lock(7263531)`); err != nil {
				return fmt.Errorf("store: migration lock: %w", err)
			}
		}
		applied := map[int]bool{}
		rows, err := tx.query(ctx, `SELECT version FROM schema_migrations`)
		if err != nil {
			return fmt.Errorf("store: read schema version: %w", err)
		}
		current := 0
		for rows.Next() {
			var v int
			if err := rows.Scan(&v); err != nil {
				rows.Close()
				return fmt.Errorf("store: read schema version: %w", err)
			}
			applied[v] = true
			current = max(current, v)
		}
		rows.Close()
		latest := 0
		if len(ms) > 0 {
			latest = ms[len(ms)-1].version
		}
		if current > latest {
			return fmt.Errorf("store: database is at schema version %d, this binary knows up to %d: %w", current, latest, ErrTooNew)
		}
		// Apply every migration not yet recorded, in order, so one added
		// below the newest (from a parallel branch) still runs.
		for _, m := range ms {
			if applied[m.version] {
				continue
			}
			if _, err := tx.ex.ExecContext(ctx, m.sql); err != nil {
				return fmt.Errorf("store: migration %s: %w", m.name, err)
			}
			if _, err := tx.exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`, m.version, m.name, time.Now().Unix()); err != nil {
				return fmt.Errorf("store: record migration %s: %w", m.name, err)
			}
		}
		return nil
	})
}

// checkSchema refuses a database whose schema is not the newest this
// binary knows, without changing it.
func (s *Store) checkSchema(ctx context.Context) error {
	ms, err := s.dialect.migrations()
	if err != nil {
		return fmt.Errorf("store: read migrations: %w", err)
	}
	latest := 0
	if len(ms) > 0 {
		latest = ms[len(ms)-1].version
	}
	var current int
	if err := s.ex.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("store: not a Gatehouse database (no schema version; start gatehouse serve on it first): %w", err)
	}
	switch {
	case current > latest:
		return fmt.Errorf("store: database is at schema version %d, this binary knows up to %d: %w", current, latest, ErrTooNew)
	case current < latest:
		return fmt.Errorf("store: database is at schema version %d, this binary needs %d: start gatehouse serve of this version on it first to migrate it", current, latest)
	}
	return nil
}

// micros and fromMicros convert times for storage as BIGINT microseconds,
// which both dialects sort and compare the same way.
func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromMicros(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMicro(v).UTC()
}
