package simulate

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Sample is one reading of a server's /metrics during a soak run.
type Sample struct {
	At         time.Duration // since the start of the run
	HeapBytes  float64       // go_memstats_heap_alloc_bytes
	RSSBytes   float64       // process_resident_memory_bytes
	Goroutines float64       // go_goroutines
	Clients    float64       // gatehouse_mqtt_clients_connected
	Accepted   float64       // gatehouse_mqtt_connects_total{result="accepted"}
	Kicked     float64       // gatehouse_mqtt_kicked_total
	Messages   float64       // gatehouse_mqtt_messages_received_total
}

// ParseMetrics reads the Prometheus text format into series name (with
// its labels as written, e.g. `x{a="b"}`) -> value. Comments and lines
// it cannot read are skipped.
func ParseMetrics(r io.Reader) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[strings.TrimSpace(line[:i])] = v
	}
	return out, sc.Err()
}

// ReadSample fetches url (a /metrics endpoint) once.
func ReadSample(ctx context.Context, c *http.Client, url string, at time.Duration) (Sample, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return Sample{}, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return Sample{}, fmt.Errorf("soak: read metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Sample{}, fmt.Errorf("soak: read metrics: status %d", resp.StatusCode)
	}
	m, err := ParseMetrics(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return Sample{}, fmt.Errorf("soak: read metrics: %w", err)
	}
	return Sample{At: at, HeapBytes: m["go_memstats_heap_alloc_bytes"], RSSBytes: m["process_resident_memory_bytes"],
		Goroutines: m["go_goroutines"], Clients: m["gatehouse_mqtt_clients_connected"],
		Accepted: m[`gatehouse_mqtt_connects_total{result="accepted"}`], Kicked: m["gatehouse_mqtt_kicked_total"],
		Messages: m["gatehouse_mqtt_messages_received_total"]}, nil
}

// Trend is the least-squares line through the second half of a series.
type Trend struct {
	Name string
	// Mean over the second half.
	Mean float64
	// PerHour is the slope, in the series' unit per hour.
	PerHour float64
	// Change is the growth the slope predicts over the second half,
	// relative to Mean (0.05 is 5%).
	Change float64
	// Growing is the verdict: Change above the threshold.
	Growing bool
	// Span is the time the second half covers.
	Span time.Duration
}

// GrowthThreshold is the relative growth over the second half of a soak
// above which a series counts as growing. Heap readings swing with the
// garbage collector by more than a few per cent between samples, so the
// threshold sits above that noise.
const GrowthThreshold = 0.10

// MinSpan is the shortest second half a verdict is given for: over less,
// the heap is dominated by the garbage collector's cycle (it grows until
// the next collection), not by any trend.
const MinSpan = 5 * time.Minute

// Trends fits the second half of samples for heap, RSS and goroutines.
// With fewer than four samples in the second half nothing is fitted.
func Trends(samples []Sample) []Trend {
	half := samples[len(samples)/2:]
	pick := []struct {
		name string
		get  func(Sample) float64
	}{
		{"heap", func(s Sample) float64 { return s.HeapBytes }},
		{"rss", func(s Sample) float64 { return s.RSSBytes }},
		{"goroutines", func(s Sample) float64 { return s.Goroutines }},
	}
	var out []Trend
	for _, p := range pick {
		t := Trend{Name: p.name}
		if len(half) >= 4 {
			var xs, ys []float64
			for _, s := range half {
				xs = append(xs, s.At.Hours())
				ys = append(ys, p.get(s))
			}
			slope, mean := fit(xs, ys)
			span := xs[len(xs)-1] - xs[0]
			t.Mean, t.PerHour, t.Span = mean, slope, half[len(half)-1].At-half[0].At
			if mean > 0 {
				t.Change = slope * span / mean
			}
			t.Growing = t.Change > GrowthThreshold
		}
		out = append(out, t)
	}
	return out
}

// fit is the least-squares slope of ys over xs, and the mean of ys.
func fit(xs, ys []float64) (slope, mean float64) {
	n := float64(len(xs))
	var sx, sy float64
	for i := range xs {
		sx += xs[i]
		sy += ys[i]
	}
	mx, my := sx/n, sy/n
	var num, den float64
	for i := range xs {
		num += (xs[i] - mx) * (ys[i] - my)
		den += (xs[i] - mx) * (xs[i] - mx)
	}
	if den == 0 {
		return 0, my
	}
	return num / den, my
}

// Verdict is "flat" or "growing (…)" naming the growing series, or
// "too short to judge" when the second half spans less than MinSpan or
// holds fewer than four samples.
func Verdict(trends []Trend) string {
	if len(trends) == 0 || trends[0].Span < MinSpan {
		return fmt.Sprintf("too short to judge (the second half must span at least %s with 4 samples or more)", MinSpan)
	}
	var growing []string
	for _, t := range trends {
		if t.Growing {
			growing = append(growing, fmt.Sprintf("%s +%.0f%%", t.Name, math.Round(t.Change*100)))
		}
	}
	if len(growing) == 0 {
		return "flat"
	}
	return "growing (" + strings.Join(growing, ", ") + ")"
}
