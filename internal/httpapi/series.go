package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// The metrics the console charts, by series name. Counters become
// per-second rates; gauges are charted as they are. A metric that is not
// registered (the token counter lives on another branch of the code) reads
// as zero.
var seriesMetrics = []struct {
	series, metric string
	counter        bool
}{
	{"connections", "gatehouse_mqtt_clients_connected", false},
	{"messagesReceived", "gatehouse_mqtt_messages_received_total", true},
	{"messagesSent", "gatehouse_mqtt_messages_sent_total", true},
	{"tokensIssued", "gatehouse_oauth_tokens_issued_total", true},
	{"denials", "gatehouse_mqtt_denied_total", true},
}

// Sampler reads a few metrics from a Prometheus registry every Step into a
// ring buffer holding the last hour, for the console's charts. Counters are
// stored as per-second rates between consecutive samples.
type Sampler struct {
	gather prometheus.Gatherer
	now    func() time.Time
	step   time.Duration

	mu     sync.Mutex
	points []seriesPoint // ring buffer
	next   int           // where the next point goes
	full   bool
	prev   *rawSample // the previous sample, for rates
}

// seriesPoint is one sample: a Unix time and a value per series (in
// seriesMetrics order).
type seriesPoint struct {
	t      int64
	values [5]float64
	// counted is what each counter counted since the previous sample.
	counted [5]float64
}

type rawSample struct {
	at     time.Time
	values [5]float64
}

// NewSampler returns a sampler of g every step (10s if zero), holding
// window (an hour if zero) of points, with clock now.
func NewSampler(g prometheus.Gatherer, now func() time.Time, step, window time.Duration) *Sampler {
	if step <= 0 {
		step = 10 * time.Second
	}
	if window <= 0 {
		window = time.Hour
	}
	if now == nil {
		now = time.Now
	}
	return &Sampler{gather: g, now: now, step: step, points: make([]seriesPoint, max(int(window/step), 1))}
}

// Run samples every step until ctx ends. A failed sample is reported to
// onError (if set) and skipped.
func (s *Sampler) Run(ctx context.Context, onError func(error)) error {
	sample := func() {
		if err := s.Sample(); err != nil && onError != nil {
			onError(err)
		}
	}
	sample()
	t := time.NewTicker(s.step)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			sample()
		}
	}
}

// Sample takes one sample now. The first sample only sets the baseline the
// next one's rates are computed from.
func (s *Sampler) Sample() error {
	families, err := s.gather.Gather()
	if err != nil && len(families) == 0 {
		return fmt.Errorf("httpapi: gather metrics: %w", err)
	}
	byName := make(map[string]*dto.MetricFamily, len(families))
	for _, f := range families {
		byName[f.GetName()] = f
	}
	cur := rawSample{at: s.now()}
	for i, m := range seriesMetrics {
		cur.values[i] = sum(byName[m.metric])
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	prev := s.prev
	s.prev = &cur
	if prev == nil {
		return nil
	}
	dt := cur.at.Sub(prev.at).Seconds()
	if dt <= 0 {
		return nil // the clock went backwards: wait for the next sample
	}
	p := seriesPoint{t: cur.at.Unix()}
	for i, m := range seriesMetrics {
		v := cur.values[i]
		if m.counter {
			d := v - prev.values[i]
			if d < 0 {
				d = v // the counter was reset (a restart): it counted v since
			}
			p.counted[i] = d
			v = d / dt
		}
		p.values[i] = v
	}
	s.points[s.next] = p
	s.next = (s.next + 1) % len(s.points)
	if s.next == 0 {
		s.full = true
	}
	return nil
}

// sum adds a family's counter, gauge or untyped values over all labels.
func sum(f *dto.MetricFamily) float64 {
	if f == nil {
		return 0
	}
	var total float64
	for _, m := range f.GetMetric() {
		switch {
		case m.Counter != nil:
			total += m.Counter.GetValue()
		case m.Gauge != nil:
			total += m.Gauge.GetValue()
		case m.Untyped != nil:
			total += m.Untyped.GetValue()
		}
	}
	return total
}

// SeriesResponse is GET /api/v1/metrics/series.
type SeriesResponse struct {
	// Step is the seconds between points.
	Step int `json:"step"`
	// Series maps each series to its [unixSeconds, value] points, oldest
	// first.
	Series map[string][][2]float64 `json:"series"`
	// Totals maps each counter series to what it counted over the points
	// held (the last hour): tokens issued, denials.
	Totals map[string]float64 `json:"totals"`
}

// Series returns the points held, oldest first.
func (s *Sampler) Series() SeriesResponse {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ordered []seriesPoint
	if s.full {
		ordered = append(ordered, s.points[s.next:]...)
	}
	ordered = append(ordered, s.points[:s.next]...)
	out := SeriesResponse{Step: int(s.step / time.Second), Series: map[string][][2]float64{}, Totals: map[string]float64{}}
	for i, m := range seriesMetrics {
		pts := make([][2]float64, 0, len(ordered))
		var total float64
		for _, p := range ordered {
			pts = append(pts, [2]float64{float64(p.t), p.values[i]})
			total += p.counted[i]
		}
		out.Series[m.series] = pts
		if m.counter {
			out.Totals[m.series] = total
		}
	}
	return out
}

func (a *API) metricsSeries(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, http.StatusOK, a.series.Series())
}
