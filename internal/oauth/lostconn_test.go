package oauth_test

import (
	"net/url"
	"testing"

	"github.com/gatehouse-iot/gatehouse/internal/oauth"
	"github.com/gatehouse-iot/gatehouse/internal/store/storetest"
)

// TestTokenEndpointLostPostgresConnection: a token request that meets a
// PostgreSQL connection ended under it (a failover) is answered 503
// temporarily_unavailable, which clients retry, never 500 server_error;
// and the retry gets its token.
func TestTokenEndpointLostPostgresConnection(t *testing.T) {
	dsn, terminate := storetest.LosablePostgresDSN(t)
	e := newEnv(t, dsn)
	cc := url.Values{"grant_type": {"client_credentials"}}
	if status, body := e.postForm(oauth.PathToken, cc, "sensor-1", e.secrets["sensor-1"]); status != 200 {
		t.Fatalf("first token: %d %v", status, body)
	}
	terminate(t)
	status, body := e.postForm(oauth.PathToken, cc, "sensor-1", e.secrets["sensor-1"])
	switch {
	case status == 200:
	case status == 503 && body["error"] == "temporarily_unavailable":
		if status, body := e.postForm(oauth.PathToken, cc, "sensor-1", e.secrets["sensor-1"]); status != 200 {
			t.Errorf("retry after 503: %d %v, want 200", status, body)
		}
	default:
		t.Errorf("token request after the connections were lost: %d %v, want 200 or 503 temporarily_unavailable", status, body)
	}
}
