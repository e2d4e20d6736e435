package ratelimit

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestParseRate(t *testing.T) {
	tests := []struct {
		in      string
		want    Rate
		wantErr bool
	}{
		{"", Rate{}, false},
		{"off", Rate{}, false},
		{"0", Rate{}, false},
		{"10/s", Rate{10, time.Second}, false},
		{"600/m", Rate{600, time.Minute}, false},
		{"10/5m", Rate{10, 5 * time.Minute}, false},
		{" 3 / 30s ", Rate{3, 30 * time.Second}, false},
		{"10", Rate{}, true},
		{"-1/s", Rate{}, true},
		{"x/s", Rate{}, true},
		{"10/fortnight", Rate{}, true},
		{"10/0s", Rate{}, true},
		{"10/48h", Rate{}, true},
	}
	for _, tt := range tests {
		got, err := ParseRate(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseRate(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseRate(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func TestLimiterAllowRefillAndKeys(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	reg := prometheus.NewRegistry()
	rej, err := NewRejections(reg)
	if err != nil {
		t.Fatal(err)
	}
	l := New("test", Rate{Burst: 3, Per: 3 * time.Second}, Options{Now: c.now, Rejections: rej})
	steps := []struct {
		advance  time.Duration
		key      string
		want     bool
		wantWait time.Duration
	}{
		{0, "a", true, 0},
		{0, "a", true, 0},
		{0, "a", true, 0},
		{0, "a", false, time.Second},
		{0, "b", true, 0}, // keys are independent
		{500 * time.Millisecond, "a", false, 500 * time.Millisecond},
		{500 * time.Millisecond, "a", true, 0},
		{0, "a", false, time.Second},
		{time.Hour, "a", true, 0}, // refilled, never above the burst:
		{0, "a", true, 0},
		{0, "a", true, 0},
		{0, "a", false, time.Second},
	}
	for i, s := range steps {
		c.advance(s.advance)
		got, wait := l.Allow(s.key)
		if got != s.want || wait != s.wantWait {
			t.Errorf("step %d: Allow(%q) = %v, %v; want %v, %v", i, s.key, got, wait, s.want, s.wantWait)
		}
	}
	if got := rejected(t, reg, "test"); got != 4 {
		t.Errorf("rejections = %v, want 4", got)
	}
}

// TestAllowAddrExempt: AllowAddr keys by AddrKey and lets exempt
// addresses through without taking their bucket's tokens or counting a
// rejection; other addresses, inside the same /64 or not, are limited.
func TestAllowAddrExempt(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	reg := prometheus.NewRegistry()
	rej, err := NewRejections(reg)
	if err != nil {
		t.Fatal(err)
	}
	exempt := []netip.Prefix{netip.MustParsePrefix("192.0.2.0/28"), netip.MustParsePrefix("2001:db8:1::5/128")}
	l := New("test", Rate{Burst: 1, Per: time.Hour}, Options{Now: c.now, Rejections: rej, Exempt: exempt})
	steps := []struct {
		addr string
		want bool
	}{
		{"192.0.2.1:4000", true},
		{"192.0.2.1:4001", true}, // exempt: as often as it likes
		{"192.0.2.15", true},
		{"[::ffff:192.0.2.2]:1", true}, // IPv4-mapped is the IPv4 address
		{"192.0.2.16:1", true},         // outside the prefix: its one token
		{"192.0.2.16:2", false},
		{"[2001:db8:1::5]:1", true},
		{"[2001:db8:1::5]:2", true},
		{"[2001:db8:1::6]:1", true}, // same /64, not exempt: the /64's token
		{"[2001:db8:1::7]:1", false},
		{"garbage", true}, // an unparsable address is its own key, never exempt
		{"garbage", false},
	}
	for i, s := range steps {
		if got, _ := l.AllowAddr(s.addr); got != s.want {
			t.Errorf("step %d: AllowAddr(%q) = %v, want %v", i, s.addr, got, s.want)
		}
	}
	if got := rejected(t, reg, "test"); got != 3 {
		t.Errorf("rejections = %v, want 3", got)
	}
	if got := l.Keys(); got != 2+1 {
		t.Errorf("keys = %d, want 3 (exempt addresses take no bucket)", got)
	}
	var none *Limiter
	if ok, _ := none.AllowAddr("192.0.2.16:1"); !ok {
		t.Error("a nil limiter refused")
	}
}

func TestLimiterCheckAndCharge(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	l := New("test", Rate{Burst: 2, Per: 2 * time.Second}, Options{Now: c.now})
	// Failed attempts only Check: they never use up the key.
	for range 10 {
		if ok, _ := l.Check("client"); !ok {
			t.Fatal("Check refused a key that was never charged")
		}
	}
	l.Charge("client")
	l.Charge("client")
	l.Charge("client") // a concurrent third success: one token of debt
	if ok, wait := l.Check("client"); ok || wait != 2*time.Second {
		t.Errorf("after 3 charges Check = %v, %v; want false, 2s", ok, wait)
	}
	c.advance(2 * time.Second)
	if ok, _ := l.Check("client"); !ok {
		t.Error("after the debt is repaid Check refused")
	}
}

func TestLimiterBoundedMemory(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	l := New("test", Rate{Burst: 1, Per: time.Hour}, Options{Now: c.now, MaxKeys: 100})
	for i := range 1000 {
		l.Allow(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}).String())
		if got := l.Keys(); got > 100 {
			t.Fatalf("after %d keys the limiter remembers %d, want at most 100", i+1, got)
		}
	}
	// Refilled buckets are forgotten by the periodic sweep.
	c.advance(3 * time.Hour)
	l.Allow("fresh")
	if got := l.Keys(); got != 1 {
		t.Errorf("after every bucket refilled the limiter remembers %d keys, want 1", got)
	}
}

func TestNilLimiterAllows(t *testing.T) {
	var l *Limiter
	if l = New("off", Rate{}, Options{}); l != nil {
		t.Fatal("New with a zero rate returned a limiter")
	}
	if ok, _ := l.Allow("x"); !ok {
		t.Error("a nil limiter refused")
	}
	l.Charge("x")
}

func TestForwardedFor(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	tests := []struct {
		name    string
		remote  string
		headers []string
		want    string
	}{
		{"untrusted peer keeps its address", "203.0.113.9:4000", []string{"198.51.100.1"}, ""},
		{"trusted peer, one hop", "10.1.2.3:4000", []string{"198.51.100.1"}, "198.51.100.1"},
		{"client-supplied hops left of the real one are ignored", "10.1.2.3:4000", []string{"1.2.3.4, 198.51.100.1"}, "198.51.100.1"},
		{"chained trusted proxies are skipped", "10.1.2.3:4000", []string{"198.51.100.1, 10.9.9.9"}, "198.51.100.1"},
		{"several header lines", "[::1]:4000", []string{"1.2.3.4", "198.51.100.7"}, "198.51.100.7"},
		{"garbled hop", "10.1.2.3:4000", []string{"nonsense"}, ""},
		{"no header", "10.1.2.3:4000", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ForwardedFor(trusted, tt.remote, tt.headers)
			gotS := ""
			if ok {
				gotS = got.String()
			}
			if gotS != tt.want {
				t.Errorf("ForwardedFor(%q, %q) = %q, want %q", tt.remote, tt.headers, gotS, tt.want)
			}
		})
	}
}

func TestTrustProxiesOverHTTP(t *testing.T) {
	srv := httptest.NewServer(TrustProxies([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(r.RemoteAddr)) })))
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL, nil)
	req.Header.Set("X-Forwarded-For", "192.0.2.44")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	_, _ = io.Copy(&b, resp.Body)
	if got, want := b.String(), "192.0.2.44:0"; got != want {
		t.Errorf("RemoteAddr behind a trusted proxy = %q, want %q", got, want)
	}
}

// rejected reads gatehouse_limit_rejections_total{limit=name} from reg.
func rejected(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "gatehouse_limit_rejections_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "limit" && lp.GetValue() == name {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no rejections counter for %q", name)
	return 0
}

func TestAddrKey(t *testing.T) {
	tests := []struct{ in, want string }{
		{"192.0.2.7:5000", "192.0.2.7"},
		{"192.0.2.7", "192.0.2.7"},
		{"[::ffff:192.0.2.7]:1", "192.0.2.7"},
		{"[2001:db8:1:2:3:4:5:6]:443", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:ffff::1]:443", "2001:db8:1:2::/64"},
		{"garbage", "garbage"},
	}
	for _, tt := range tests {
		if got := AddrKey(tt.in); got != tt.want {
			t.Errorf("AddrKey(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
