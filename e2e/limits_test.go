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
