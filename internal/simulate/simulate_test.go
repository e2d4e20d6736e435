package simulate

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

func TestPercentileNearestRank(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one", ms(7), 50, 7 * time.Millisecond},
		{"one p99", ms(7), 99, 7 * time.Millisecond},
		{"two p50 is the lower", ms(1, 9), 50, time.Millisecond},
		{"two p99 is the upper", ms(1, 9), 99, 9 * time.Millisecond},
		{"five p50 is the middle", ms(1, 2, 3, 4, 5), 50, 3 * time.Millisecond},
		{"hundred p50", ms(hundred...), 50, 50 * time.Millisecond},
		{"hundred p99", ms(hundred...), 99, 99 * time.Millisecond},
		{"hundred p100", ms(hundred...), 100, 100 * time.Millisecond},
	}
	for _, tc := range tests {
		if got := Percentile(tc.sorted, tc.p); got != tc.want {
			t.Errorf("%s: Percentile(p%v) = %v, want %v", tc.name, tc.p, got, tc.want)
		}
	}
}

func TestSummarize(t *testing.T) {
	if got := Summarize(nil); got != (Latency{}) {
		t.Errorf("Summarize(nil) = %+v, want zero", got)
	}
	// Unsorted input, 1..200 ms in reverse: p50 = 100, p99 = 198.
	var s []time.Duration
	for i := 200; i >= 1; i-- {
		s = append(s, time.Duration(i)*time.Millisecond)
	}
	got := Summarize(s)
	want := Latency{Count: 200, P50Ms: 100, P99Ms: 198, MaxMs: 200, MeanMs: 100.5}
	if got != want {
		t.Errorf("Summarize = %+v, want %+v", got, want)
	}
	if s[0] != 200*time.Millisecond {
		t.Error("Summarize sorted its input in place")
	}
	// Sub-millisecond values keep microsecond precision.
	if got := Summarize([]time.Duration{1500 * time.Microsecond}); got.P50Ms != 1.5 {
		t.Errorf("P50Ms of 1.5ms = %v", got.P50Ms)
	}
}

// fakeClock advances only when a waiter asks it to: After(d) moves the
// time forward by d and fires at once.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	ch := make(chan time.Time, 1)
	ch <- c.now
	return ch
}

func TestPaceStartsDevicesAtTheRate(t *testing.T) {
	for _, tc := range []struct {
		n    int
		rate float64
		step time.Duration
	}{
		{5, 1, time.Second},
		{10, 4, 250 * time.Millisecond},
		{7, 1000, time.Millisecond},
		{3, 0.5, 2 * time.Second},
	} {
		clk := &fakeClock{now: time.Unix(1000, 0)}
		t0 := clk.Now()
		var at []time.Duration
		got := pace(context.Background(), clk, tc.n, tc.rate, func(i int) { at = append(at, clk.Now().Sub(t0)) })
		if got != tc.n || len(at) != tc.n {
			t.Fatalf("rate %v: started %d (%d calls), want %d", tc.rate, got, len(at), tc.n)
		}
		for i, d := range at {
			if want := time.Duration(i) * tc.step; d != want {
				t.Errorf("rate %v: device %d started at +%v, want +%v", tc.rate, i, d, want)
			}
		}
	}
}

// A slow starter (the clock moved past several due times) catches up
// without waiting, and never starts a device early.
func TestPaceCatchesUp(t *testing.T) {
	clk := &fakeClock{now: time.Unix(0, 0)}
	t0 := clk.Now()
	var at []time.Duration
	pace(context.Background(), clk, 6, 2, func(i int) {
		at = append(at, clk.Now().Sub(t0))
		if i == 1 {
			clk.mu.Lock()
			clk.now = clk.now.Add(1700 * time.Millisecond) // device 1 took 1.7s to start
			clk.mu.Unlock()
		}
	})
	want := []time.Duration{0, 500 * time.Millisecond, 2200 * time.Millisecond, 2200 * time.Millisecond, 2200 * time.Millisecond, 2500 * time.Millisecond}
	if len(at) != len(want) {
		t.Fatalf("started %v, want %v", at, want)
	}
	for i := range want {
		if at[i] != want[i] {
			t.Errorf("device %d at +%v, want +%v", i, at[i], want[i])
		}
		if at[i] < Offset(i, 2) {
			t.Errorf("device %d started early", i)
		}
	}
}

func TestPaceStopsWithContext(t *testing.T) {
	clk := &fakeClock{now: time.Unix(0, 0)}
	ctx, cancel := context.WithCancel(context.Background())
	n := pace(ctx, clk, 100, 10, func(i int) {
		if i == 4 {
			cancel()
		}
	})
	if n != 5 {
		t.Errorf("started %d after cancel at the 5th, want 5", n)
	}
}

func TestProgressRates(t *testing.T) {
	prev := counters{registered: 10, tokens: 0, connected: 8, messages: 100, errors: 1}
	cur := counters{registered: 30, tokens: 0, connected: 28, disconnected: 3, messages: 400, errors: 2}
	p := progress(prev, cur, 2*time.Second, 7*time.Second)
	want := Progress{Elapsed: 7 * time.Second, Up: 25, RegistrationsPerSec: 10, ConnectsPerSec: 10, MessagesPerSec: 150, Errors: 2}
	if p != want {
		t.Errorf("progress = %+v, want %+v", p, want)
	}
	if p := progress(prev, cur, 0, 0); p.MessagesPerSec != 0 {
		t.Errorf("zero interval gives rate %v", p.MessagesPerSec)
	}
}

func TestStatsSummary(t *testing.T) {
	s := newStats()
	s.started.Add(4)
	s.tokens.Add(4)
	s.connected.Add(3)
	s.messages.Add(30)
	s.fail(OpConnect, errors.New("refused"))
	s.fail(OpConnect, errors.New("second"))
	s.observe(OpPublish, 2*time.Millisecond)
	sum := s.summary(10 * time.Second)
	if sum.Errors != 2 || sum.ErrorsByKind[OpConnect] != 2 || sum.FirstErrorByKind[OpConnect] != "refused" {
		t.Errorf("errors = %d %v %v", sum.Errors, sum.ErrorsByKind, sum.FirstErrorByKind)
	}
	if sum.MessagesPerSec != 3 || sum.TokensPerSec != 0.4 || sum.ConnectsPerSec != 0.3 {
		t.Errorf("rates = %v msg/s, %v tokens/s, %v connects/s", sum.MessagesPerSec, sum.TokensPerSec, sum.ConnectsPerSec)
	}
	if l, ok := sum.Latencies[OpPublish]; !ok || l.Count != 1 || l.P99Ms != 2 {
		t.Errorf("publish latency = %+v", sum.Latencies)
	}
	if _, ok := sum.Latencies[OpRegister]; ok {
		t.Error("a latency without samples is listed")
	}
}

func TestConfigChecks(t *testing.T) {
	good := Config{Server: "http://127.0.0.1:1", AdminToken: "x", Things: 1, Rate: 1, Duration: time.Second, PublishInterval: time.Second, Auth: AuthToken, StateDir: t.TempDir()}
	for name, mod := range map[string]func(*Config){
		"no server":   func(c *Config) { c.Server = "" },
		"no token":    func(c *Config) { c.AdminToken = "" },
		"no things":   func(c *Config) { c.Things = 0 },
		"no rate":     func(c *Config) { c.Rate = 0 },
		"bad auth":    func(c *Config) { c.Auth = "psk" },
		"no dir":      func(c *Config) { c.StateDir = "" },
		"bad prefix":  func(c *Config) { c.Prefix = "a/b" },
		"other host":  func(c *Config) { c.MQTTURL = "mqtt://example.com:1883" },
		"bad server":  func(c *Config) { c.Server = "ftp://x" },
		"no interval": func(c *Config) { c.PublishInterval = 0 },
	} {
		c := good
		mod(&c)
		if _, err := Run(context.Background(), c); err == nil {
			t.Errorf("%s: Run succeeded", name)
		}
	}
}

// Only the given server is ever contacted, even when it points elsewhere.
func TestHostGuard(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("the other server was contacted")
	}))
	defer other.Close()
	host := srv.Listener.Addr().String()
	c := &http.Client{Transport: hostGuard{host: host, next: http.DefaultTransport}}
	if resp, err := c.Get(srv.URL); err != nil {
		t.Fatalf("request to the server: %v", err)
	} else {
		resp.Body.Close()
	}
	if _, err := c.Get(other.URL); err == nil {
		t.Error("request to another host succeeded")
	}
	r := &runner{host: "127.0.0.1"}
	for raw, ok := range map[string]bool{"mqtt://127.0.0.1:1884": true, "mqtts://localhost:8883": true, "mqtt://[::1]:1": true, "mqtt://10.0.0.1:1884": false, "mqtt://": false} {
		if err := r.sameHost(raw); (err == nil) != ok {
			t.Errorf("sameHost(%s) = %v, want ok=%v", raw, err, ok)
		}
	}
}

func TestStatsPeaks(t *testing.T) {
	s := newStats()
	s.notePeak(Progress{ConnectsPerSec: 20, MessagesPerSec: 5})
	s.notePeak(Progress{ConnectsPerSec: 3, MessagesPerSec: 200, TokensPerSec: 1.234})
	sum := s.summary(time.Second)
	if sum.PeakConnectsPerSec != 20 || sum.PeakMessagesPerSec != 200 || sum.PeakTokensPerSec != 1.23 || sum.PeakRegistrationsPerSec != 0 {
		t.Errorf("peaks = %v connects/s, %v msg/s, %v tokens/s, %v registrations/s", sum.PeakConnectsPerSec, sum.PeakMessagesPerSec, sum.PeakTokensPerSec, sum.PeakRegistrationsPerSec)
	}
}
