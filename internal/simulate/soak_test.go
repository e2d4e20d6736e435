package simulate

import (
	"strings"
	"testing"
	"time"
)

func TestParseMetrics(t *testing.T) {
	in := `# HELP go_goroutines Number of goroutines.
# TYPE go_goroutines gauge
go_goroutines 42
go_memstats_heap_alloc_bytes 1.2345e+07
gatehouse_mqtt_connects_total{result="accepted"} 17
garbage line
`
	got, err := ParseMetrics(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]float64{"go_goroutines": 42, "go_memstats_heap_alloc_bytes": 12345000, `gatehouse_mqtt_connects_total{result="accepted"}`: 17} {
		if got[name] != want {
			t.Errorf("%s = %v, want %v", name, got[name], want)
		}
	}
	if len(got) != 3 {
		t.Errorf("parsed %d series, want 3: %v", len(got), got)
	}
}

func TestTrendsVerdict(t *testing.T) {
	series := func(f func(i int) float64) []Sample {
		var s []Sample
		for i := range 20 {
			v := f(i)
			s = append(s, Sample{At: time.Duration(i) * time.Minute, HeapBytes: v, RSSBytes: 50e6, Goroutines: 100})
		}
		return s
	}
	tests := []struct {
		name    string
		samples []Sample
		want    string
	}{
		{"flat", series(func(int) float64 { return 10e6 }), "flat"},
		{"noisy but flat", series(func(i int) float64 { return 10e6 + float64(i%2)*0.5e6 }), "flat"},
		{"warm-up growth in the first half only", series(func(i int) float64 { return 10e6 + float64(min(i, 9))*1e6 }), "flat"},
		{"leak", series(func(i int) float64 { return 10e6 + float64(i)*1e6 }), "growing (heap +37%)"},
		{"too few samples", series(func(i int) float64 { return float64(i) })[:5], "too short to judge (the second half must span at least 5m0s with 4 samples or more)"},
		{"too short", shortSeries(), "too short to judge (the second half must span at least 5m0s with 4 samples or more)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Verdict(Trends(tt.samples)); got != tt.want {
				t.Errorf("Verdict = %q, want %q", got, tt.want)
			}
		})
	}
}

// shortSeries is 20 samples a second apart with a steep heap rise, as a
// 20-second run between two garbage collections looks.
func shortSeries() []Sample {
	var s []Sample
	for i := range 20 {
		s = append(s, Sample{At: time.Duration(i) * time.Second, HeapBytes: 4e6 + float64(i)*2e5, RSSBytes: 30e6, Goroutines: 40})
	}
	return s
}
