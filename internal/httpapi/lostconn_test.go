package httpapi_test

import (
	"net/http"
	"testing"

	"github.com/gatehouse-iot/gatehouse/internal/store/storetest"
)

// TestLostPostgresConnection: when PostgreSQL ends the server's
// connections (a failover, a restart, pg_terminate_backend) a request is
// retried on a new connection (reads always, writes whose transaction had
// not reached its commit) or answered 503 with Retry-After, never 500
// "internal error"; and the next request works.
func TestLostPostgresConnection(t *testing.T) {
	dsn, terminate := storetest.LosablePostgresDSN(t)
	f := newFixture(t, dsn)
	if r := f.do(t, f.admin, "POST", "/api/v1/things", `{"name":"lamp"}`); r.status != http.StatusCreated {
		t.Fatalf("seed: %d %s", r.status, r.raw)
	}
	// Reads are retried transparently; a write may be answered 503.
	steps := []struct {
		name, method, path, body string
		want                     int
		transparent              bool
	}{
		{"patch", "PATCH", "/api/v1/things/lamp", `{"attributes":{"a":"1"}}`, http.StatusOK, false},
		{"get", "GET", "/api/v1/things/lamp", "", http.StatusOK, true},
		{"list", "GET", "/api/v1/things", "", http.StatusOK, true},
		{"create", "POST", "/api/v1/things", `{"name":"lamp-2"}`, http.StatusCreated, false},
		{"events", "GET", "/api/v1/events", "", http.StatusOK, true},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			terminate(t)
			r := f.do(t, f.admin, st.method, st.path, st.body)
			switch {
			case r.status == st.want:
			case r.status == http.StatusServiceUnavailable && r.header.Get("Retry-After") != "" && !st.transparent:
				// Answered honestly; the next attempt must work.
				t.Logf("503 with Retry-After %s", r.header.Get("Retry-After"))
				if r2 := f.do(t, f.admin, st.method, st.path, st.body); r2.status != st.want {
					t.Errorf("retry after 503: %d %s, want %d", r2.status, r2.raw, st.want)
				}
			default:
				t.Errorf("after the connection was lost: %d %s (Retry-After %q), want %d or 503 with Retry-After",
					r.status, r.raw, r.header.Get("Retry-After"), st.want)
			}
		})
	}
}
