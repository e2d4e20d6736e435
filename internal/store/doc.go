// Package store persists Gatehouse's state: things, thing types, users,
// groups, relationships, API tokens and the append-only event log, and later
// the OAuth, PKI, policy and lobby records built on them.
//
// It exists so that every other package sees one small set of record types
// and one error vocabulary (ErrNotFound, ErrExists, ErrStale) no matter which
// database sits underneath. Open picks the driver from the DSN: "sqlite:PATH"
// (modernc.org/sqlite, pure Go, the embedded default) or "postgres://..."
// (pgx/v5, for production and for several replicas). Both run the same SQL,
// written with "?" placeholders and rebound for PostgreSQL, and the same
// versioned migrations, each written once and rendered per dialect
// (dialect.render). The conformance suite in storetest is run against both.
//
// Mutations that must be recorded in the event log run inside InTx together
// with AppendEvent, so a change and its event commit or roll back together.
package store
