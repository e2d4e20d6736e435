package certs_test

import (
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/certs"
	"github.com/gatehouse-iot/gatehouse/internal/ratelimit"
	"github.com/gatehouse-iot/gatehouse/internal/testenv"
)

// TestRegisterPerIPLimit: POST /register over real HTTP is limited per
// client address with 429 and Retry-After in the seed's error shape, the
// refusal creates nothing, and the limit lifts as the injected clock moves.
func TestRegisterPerIPLimit(t *testing.T) {
	lclk := testenv.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	f := newFixture(t, "sqlite:"+t.TempDir()+"/certs.db", func(c *certs.Config) {
		c.RegisterPerIP = ratelimit.New("registerPerIP", ratelimit.Rate{Burst: 2, Per: time.Minute}, ratelimit.Options{Now: lclk.Now})
	})
	srv := f.server()
	secret, _ := f.token(10, 0)
	register := func(name string) httpResult {
		return post(t, srv.URL+"/register", "DeviceToken "+secret, "application/json", jsonBody(map[string]string{"thingName": name, "version": "1"}))
	}
	for i, name := range []string{"lim-1", "lim-2"} {
		if got := register(name); got.status != 200 {
			t.Fatalf("registration %d = %d %s, want 200", i+1, got.status, got.body)
		}
	}
	before := f.snapshot()
	got := register("lim-3")
	if got.status != 429 || got.header.Get("Retry-After") != "30" || string(got.body) != `{"status":false,"error":"too many registrations from this address; retry later"}`+"\n" {
		t.Errorf("third registration = %d Retry-After %q %s, want 429, 30 and the seed's error body", got.status, got.header.Get("Retry-After"), got.body)
	}
	f.assertUnchanged(before)
	lclk.Advance(30 * time.Second)
	if got := register("lim-3"); got.status != 200 {
		t.Errorf("after 30s registration = %d %s, want 200", got.status, got.body)
	}
}
