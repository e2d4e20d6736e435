// Package httpapi is Gatehouse's REST admin API under /api/v1 and its
// operational endpoints (/healthz, /readyz, /metrics).
//
// It exists to keep HTTP concerns at the edge: decoding JSON strictly
// (bounded size, unknown fields rejected), authenticating admin API tokens
// or web console sessions (whose changes must carry their CSRF token),
// optimistic concurrency through ETag and If-Match, pagination, and - in one
// function, statusOf - deciding which status code and problem+json document
// (RFC 9457) every error becomes. Handlers return errors; they never write
// error responses themselves.
package httpapi
