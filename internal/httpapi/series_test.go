package httpapi_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse-iot/gatehouse/internal/httpapi"
)

// broker registers the metrics the sampler reads, as the broker does
// (without the token counter, which another package adds).
type brokerMetrics struct {
	connected prometheus.Gauge
	received  prometheus.Counter
	sent      prometheus.Counter
	denied    *prometheus.CounterVec
}

func newBrokerMetrics(reg *prometheus.Registry) *brokerMetrics {
	m := &brokerMetrics{
		connected: prometheus.NewGauge(prometheus.GaugeOpts{Name: "gatehouse_mqtt_clients_connected"}),
		received:  prometheus.NewCounter(prometheus.CounterOpts{Name: "gatehouse_mqtt_messages_received_total"}),
		sent:      prometheus.NewCounter(prometheus.CounterOpts{Name: "gatehouse_mqtt_messages_sent_total"}),
		denied:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gatehouse_mqtt_denied_total"}, []string{"action"}),
	}
	reg.MustRegister(m.connected, m.received, m.sent, m.denied)
	return m
}

func TestSamplerRates(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newBrokerMetrics(reg)
	t0 := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	now := t0
	s := httpapi.NewSampler(reg, func() time.Time { return now }, 10*time.Second, time.Hour)

	m.received.Add(1000) // counted before the baseline: not a rate
	if err := s.Sample(); err != nil {
		t.Fatal(err)
	}
	if got := s.Series(); len(got.Series["connections"]) != 0 {
		t.Fatalf("after the baseline sample: %v, want no points", got.Series)
	}

	steps := []struct {
		advance                 time.Duration
		connected               float64
		received, sent          float64
		denyPublish, denySub    float64
		wantReceived, wantSent  float64
		wantDenials, wantTokens float64
	}{
		{10 * time.Second, 3, 50, 20, 1, 1, 5, 2, 0.2, 0},
		{10 * time.Second, 4, 0, 0, 0, 0, 0, 0, 0, 0},
		{20 * time.Second, 2, 100, 10, 4, 0, 5, 0.5, 0.2, 0},
	}
	for i, st := range steps {
		now = now.Add(st.advance)
		m.connected.Set(st.connected)
		m.received.Add(st.received)
		m.sent.Add(st.sent)
		m.denied.WithLabelValues("iot:Publish").Add(st.denyPublish)
		m.denied.WithLabelValues("iot:Subscribe").Add(st.denySub)
		if err := s.Sample(); err != nil {
			t.Fatal(err)
		}
		got := s.Series()
		want := map[string]float64{"connections": st.connected, "messagesReceived": st.wantReceived, "messagesSent": st.wantSent,
			"denials": st.wantDenials, "tokensIssued": st.wantTokens}
		for name, w := range want {
			pts := got.Series[name]
			if len(pts) != i+1 {
				t.Fatalf("step %d: %s has %d points, want %d", i, name, len(pts), i+1)
			}
			last := pts[len(pts)-1]
			if last[0] != float64(now.Unix()) || last[1] != w {
				t.Errorf("step %d: %s = %v, want [%d %v]", i, name, last, now.Unix(), w)
			}
		}
	}
	// Over the hour held: 2+0+4 denials and 50+0+100 messages received (the
	// 1000 before the baseline not among them); gauges have no total.
	totals := s.Series().Totals
	if totals["denials"] != 6 || totals["messagesReceived"] != 150 || totals["tokensIssued"] != 0 {
		t.Errorf("totals = %v, want 6 denials, 150 received, 0 tokens", totals)
	}
	if _, ok := totals["connections"]; ok {
		t.Errorf("totals = %v: a gauge has no total", totals)
	}
}

func TestSamplerCounterReset(t *testing.T) {
	reg := prometheus.NewRegistry()
	now := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	value := 500.0
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "gatehouse_oauth_tokens_issued_total"}, func() float64 { return value }))
	s := httpapi.NewSampler(reg, func() time.Time { return now }, 10*time.Second, time.Hour)
	if err := s.Sample(); err != nil {
		t.Fatal(err)
	}
	value = 30 // restarted and counted 30 since
	now = now.Add(10 * time.Second)
	if err := s.Sample(); err != nil {
		t.Fatal(err)
	}
	// The clock going backwards adds no point (and no division by zero).
	now = now.Add(-5 * time.Second)
	if err := s.Sample(); err != nil {
		t.Fatal(err)
	}
	pts := s.Series().Series["tokensIssued"]
	if len(pts) != 1 || pts[0][1] != 3 {
		t.Errorf("tokensIssued = %v, want one point of 3/s", pts)
	}
}

func TestSamplerRingBuffer(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newBrokerMetrics(reg)
	t0 := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	now := t0
	// A 30 s window of 10 s steps holds three points.
	s := httpapi.NewSampler(reg, func() time.Time { return now }, 10*time.Second, 30*time.Second)
	for i := range 6 {
		m.connected.Set(float64(i))
		if err := s.Sample(); err != nil {
			t.Fatal(err)
		}
		now = now.Add(10 * time.Second)
	}
	got := s.Series()
	b, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	var decoded struct {
		Step   int                     `json:"step"`
		Series map[string][][2]float64 `json:"series"`
	}
	if err := json.Unmarshal(b, &decoded); err != nil {
		t.Fatal(err)
	}
	if decoded.Step != 10 || len(decoded.Series) != 5 {
		t.Fatalf("series JSON = %s", b)
	}
	want := [][2]float64{{float64(t0.Unix() + 30), 3}, {float64(t0.Unix() + 40), 4}, {float64(t0.Unix() + 50), 5}}
	conn := decoded.Series["connections"]
	if len(conn) != len(want) {
		t.Fatalf("connections = %v, want %v", conn, want)
	}
	for i := range want {
		if conn[i] != want[i] {
			t.Errorf("connections[%d] = %v, want %v", i, conn[i], want[i])
		}
	}
}
