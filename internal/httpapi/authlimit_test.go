package httpapi_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/httpapi"
	"github.com/gatehouse-iot/gatehouse/internal/ratelimit"
	"github.com/gatehouse-iot/gatehouse/internal/testenv"
)

// TestAuthFailureLimit: failed authentications are counted per client
// address; over the limit the address is answered 429 with Retry-After,
// even with a good token (so guessing tokens stops paying), until the
// bucket refills. Successful requests cost nothing.
func TestAuthFailureLimit(t *testing.T) {
	clk := testenv.NewClock(time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC))
	env := testenv.Core(t)
	boot, err := env.Registry.EnsureBootstrap(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	lim := ratelimit.New("apiAuthFailuresPerIP", ratelimit.Rate{Burst: 3, Per: 30 * time.Second}, ratelimit.Options{Now: clk.Now})
	srv := httptest.NewServer(httpapi.New(httpapi.Config{Registry: env.Registry, Events: env.Events, AuthFailures: lim}))
	t.Cleanup(srv.Close)
	f := &fixture{srv: srv, store: env.Store, admin: boot.Token}

	steps := []struct {
		name      string
		token     string
		advance   time.Duration
		want      int
		wantRetry bool
	}{
		{"good tokens cost nothing", boot.Token, 0, http.StatusOK, false},
		{"good tokens cost nothing, again", boot.Token, 0, http.StatusOK, false},
		{"wrong token 1", "ghat_wrong", 0, http.StatusUnauthorized, false},
		{"no token", "", 0, http.StatusUnauthorized, false},
		{"wrong token 3", "ghat_wrong", 0, http.StatusUnauthorized, false},
		{"over the limit: refused before checking", "ghat_wrong", 0, http.StatusTooManyRequests, true},
		{"over the limit: even a good token", boot.Token, 0, http.StatusTooManyRequests, true},
		{"one failure's worth later", boot.Token, 10 * time.Second, http.StatusOK, false},
	}
	for _, st := range steps {
		clk.Advance(st.advance)
		r := f.do(t, st.token, "GET", "/api/v1/things", "")
		if r.status != st.want {
			t.Fatalf("%s: status %d %s, want %d", st.name, r.status, r.raw, st.want)
		}
		if got := r.header.Get("Retry-After") != ""; got != st.wantRetry {
			t.Errorf("%s: Retry-After %q, want present %v", st.name, r.header.Get("Retry-After"), st.wantRetry)
		}
	}
}
