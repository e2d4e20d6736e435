package oauth_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse-iot/gatehouse/internal/oauth"
	"github.com/gatehouse-iot/gatehouse/internal/ratelimit"
	"github.com/gatehouse-iot/gatehouse/internal/testenv"
)

// TestTokenEndpointLimits drives the token endpoints over real HTTP with
// per-address and per-client limits on an injected clock.
func TestTokenEndpointLimits(t *testing.T) {
	lclk := testenv.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	reg := prometheus.NewRegistry()
	rej, err := ratelimit.NewRejections(reg)
	if err != nil {
		t.Fatal(err)
	}
	opts := ratelimit.Options{Now: lclk.Now, Rejections: rej}
	e := newEnv(t, "sqlite:"+t.TempDir()+"/oauth.db", func(c *oauth.Config) {
		c.Limits = oauth.Limits{
			TokenPerIP:     ratelimit.New("tokenPerIP", ratelimit.Rate{Burst: 8, Per: 80 * time.Second}, opts),
			TokenPerClient: ratelimit.New("tokenPerClient", ratelimit.Rate{Burst: 2, Per: 60 * time.Second}, opts),
		}
	})
	cc := url.Values{"grant_type": {"client_credentials"}}
	thingToken := func(name, secret string) (int, http.Header, map[string]any) {
		req, _ := http.NewRequest("POST", e.url("/things/"+name+"?_action=get_access_token"), strings.NewReader(`{}`))
		req.Header.Set("Content-Type", "application/json")
		req.SetBasicAuth(name, secret)
		resp, err := e.http.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header, nil
	}
	steps := []struct {
		name       string
		do         func() (int, map[string]any)
		wantStatus int
		wantError  string
	}{
		{"sensor-1 first token", func() (int, map[string]any) {
			return e.postForm(oauth.PathToken, cc, "sensor-1", e.secrets["sensor-1"])
		}, 200, ""},
		// Failed attempts in sensor-2's name do not use up its budget.
		{"wrong secret for sensor-2", func() (int, map[string]any) { return e.postForm(oauth.PathToken, cc, "sensor-2", "guess") }, 401, "invalid_client"},
		{"wrong secret for sensor-2 again", func() (int, map[string]any) { return e.postForm(oauth.PathToken, cc, "sensor-2", "guess") }, 401, "invalid_client"},
		{"wrong secret for sensor-2 a third time", func() (int, map[string]any) {
			return e.postForm(oauth.PathToken, cc, "sensor-2", "guess")
		}, 401, "invalid_client"},
		{"sensor-1 second token (thing token endpoint)", func() (int, map[string]any) {
			st, _, _ := thingToken("sensor-1", e.secrets["sensor-1"])
			return st, nil
		}, 200, ""},
		{"sensor-1 over its per-client limit", func() (int, map[string]any) {
			return e.postForm(oauth.PathToken, cc, "sensor-1", e.secrets["sensor-1"])
		}, 429, "temporarily_unavailable"},
		{"sensor-2 still has its budget", func() (int, map[string]any) {
			return e.postForm(oauth.PathToken, cc, "sensor-2", e.secrets["sensor-2"])
		}, 200, ""},
		{"eighth request from this address", func() (int, map[string]any) {
			return e.postForm(oauth.PathToken, cc, "sensor-2", e.secrets["sensor-2"])
		}, 200, ""},
		{"ninth request from this address", func() (int, map[string]any) {
			return e.postForm(oauth.PathToken, cc, "sensor-2", e.secrets["sensor-2"])
		}, 429, "temporarily_unavailable"},
	}
	for _, s := range steps {
		gotStatus, body := s.do()
		gotError, _ := body["error"].(string)
		if gotStatus != s.wantStatus || gotError != s.wantError {
			t.Fatalf("%s: got %d %q, want %d %q (%v)", s.name, gotStatus, gotError, s.wantStatus, s.wantError, body)
		}
	}
	// The answer carries Retry-After: the address bucket refills one
	// request every 10s.
	req, _ := http.NewRequest("POST", e.url(oauth.PathToken), strings.NewReader(cc.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := e.http.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got, want := resp.Header.Get("Retry-After"), "10"; resp.StatusCode != 429 || got != want {
		t.Errorf("limited answer: status %d Retry-After %q, want 429 %q", resp.StatusCode, got, want)
	}
	// Once the clock moves on, both limits let requests through again.
	lclk.Advance(time.Minute)
	if got, body := e.postForm(oauth.PathToken, cc, "sensor-1", e.secrets["sensor-1"]); got != 200 {
		t.Errorf("after a minute sensor-1 got %d %v, want 200", got, body)
	}
	if got := counterValue(t, reg, "tokenPerIP"); got != 2 {
		t.Errorf("tokenPerIP rejections = %v, want 2", got)
	}
	if got := counterValue(t, reg, "tokenPerClient"); got != 1 {
		t.Errorf("tokenPerClient rejections = %v, want 1", got)
	}
}

// counterValue reads gatehouse_limit_rejections_total{limit=name}.
func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if mf.GetName() == "gatehouse_limit_rejections_total" && lp.GetName() == "limit" && lp.GetValue() == name {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no rejection counter for %s", name)
	return 0
}
