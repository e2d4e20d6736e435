package e2e

import (
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLimitsBehindTrustedProxy runs the binary with a tight token limit
// and a trusted proxy range: the limit follows the X-Forwarded-For address
// the (loopback) proxy reports, refusals are 429 with Retry-After and an
// RFC 6749 body, and /metrics shows every limit's rejection counter.
func TestLimitsBehindTrustedProxy(t *testing.T) {
	t.Parallel()
	cfg := filepath.Join(t.TempDir(), "gatehouse.yaml")
	if err := os.WriteFile(cfg, []byte("limits:\n  tokenPerIP: 3/h\nhttp:\n  trustedProxies: [127.0.0.0/8]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, "--config", cfg, "--data-dir", t.TempDir())
	token := func(forwardedFor string) (int, string, string) {
		req, _ := http.NewRequestWithContext(t.Context(), "POST", s.URL+"/oauth2/token",
			strings.NewReader(url.Values{"grant_type": {"client_credentials"}, "client_id": {"nobody"}, "client_secret": {"x"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Forwarded-For", forwardedFor)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Retry-After"), string(b)
	}
	for i := range 3 {
		if got, _, body := token("198.51.100.7"); got == http.StatusTooManyRequests {
			t.Fatalf("request %d from 198.51.100.7 limited already: %s", i+1, body)
		}
	}
	got, retry, body := token("198.51.100.7")
	if got != http.StatusTooManyRequests || retry != "1200" || !strings.Contains(body, `"error":"temporarily_unavailable"`) {
		t.Errorf("fourth request = %d Retry-After %q %s; want 429, 1200 and an RFC 6749 error", got, retry, body)
	}
	// Another client behind the same proxy has its own budget; a spoofed
	// left-most hop does not help the limited one.
	if got, _, body := token("198.51.100.8"); got == http.StatusTooManyRequests {
		t.Errorf("a different forwarded address was limited: %s", body)
	}
	if got, _, _ := token("203.0.113.1, 198.51.100.7"); got != http.StatusTooManyRequests {
		t.Errorf("a spoofed left-most X-Forwarded-For hop escaped the limit: %d", got)
	}
	_, metrics := curl(t, "GET", s.URL+"/metrics", "", "")
	for _, want := range []string{
		`gatehouse_limit_rejections_total{limit="tokenPerIP"} 2`,
		`gatehouse_limit_rejections_total{limit="tokenPerClient"} 0`,
		`gatehouse_limit_rejections_total{limit="registerPerIP"} 0`,
		`gatehouse_limit_rejections_total{limit="connectPerIP"} 0`,
		`gatehouse_limit_rejections_total{limit="connectionsPerThing"} 0`,
		`gatehouse_limit_rejections_total{limit="deviceUserCodePerIP"} 0`,
		`gatehouse_limit_rejections_total{limit="mqtt.maxPacketSize"} 0`,
		`gatehouse_limit_rejections_total{limit="mqtt.maxMessageSize"} 0`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestExemptSourcesFollowTrustedProxies: limits.exemptSources spares a
// provisioning station's range from registerPerIP, with the client address
// decided as everywhere else: behind a trusted proxy the right-most
// untrusted X-Forwarded-For hop, so a client cannot claim to be inside the
// exempt range by adding a hop of its own.
func TestExemptSourcesFollowTrustedProxies(t *testing.T) {
	t.Parallel()
	cfg := filepath.Join(t.TempDir(), "gatehouse.yaml")
	yaml := "limits:\n  registerPerIP: 1/h\n  exemptSources: [203.0.113.0/24]\nhttp:\n  trustedProxies: [127.0.0.0/8]\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, "--config", cfg, "--data-dir", t.TempDir())
	register := func(forwardedFor string) int {
		req, _ := http.NewRequestWithContext(t.Context(), "POST", s.URL+"/register", strings.NewReader(`{"thingName":"x","csr":"x"}`))
		req.Header.Set("Authorization", "DeviceToken ghrt_wrong")
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Forwarded-For", forwardedFor)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	steps := []struct {
		forwardedFor string
		limited      bool
	}{
		{"203.0.113.5", false},
		{"203.0.113.5", false}, // the station: as often as it likes
		{"203.0.113.77", false},
		{"198.51.100.7", false}, // anyone else: one an hour
		{"198.51.100.7", true},
		{"203.0.113.5, 198.51.100.7", true}, // a hop of its own does not exempt it
		{"203.0.113.5", false},
	}
	for i, st := range steps {
		if got := register(st.forwardedFor); (got == http.StatusTooManyRequests) != st.limited {
			t.Errorf("step %d: POST /register from %q = %d, want limited %v", i, st.forwardedFor, got, st.limited)
		}
	}
}
