package simulate

import (
	"maps"
	"math"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Operations whose latencies and errors are recorded.
const (
	OpRegister = "register"
	OpToken    = "token"
	OpConnect  = "connect"
	OpPublish  = "publish"
)

// Latency summarises the samples of one operation. Percentiles use the
// nearest-rank method: P50 is the smallest sample at least half of the
// samples are <= to.
type Latency struct {
	Count int     `json:"count"`
	P50Ms float64 `json:"p50Ms"`
	P99Ms float64 `json:"p99Ms"`
	MaxMs float64 `json:"maxMs"`
	// MeanMs is the arithmetic mean.
	MeanMs float64 `json:"meanMs"`
}

// Summarize computes the latency summary of samples (which it does not
// modify). An empty slice gives the zero Latency.
func Summarize(samples []time.Duration) Latency {
	if len(samples) == 0 {
		return Latency{}
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	return Latency{
		Count:  len(s),
		P50Ms:  ms(Percentile(s, 50)),
		P99Ms:  ms(Percentile(s, 99)),
		MaxMs:  ms(s[len(s)-1]),
		MeanMs: ms(sum / time.Duration(len(s))),
	}
}

// Percentile returns the nearest-rank p-th percentile (0 < p <= 100) of
// sorted, ascending samples; 0 for none.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/float64(time.Millisecond)*1000) / 1000 }

// stats is what a run has counted so far; safe for concurrent use.
type stats struct {
	started, registered, tokens, connected, disconnected, messages, errors atomic.Int64
	// retries are the SDK's retries of refusals for now (429, 503, CONNACK
	// 0x97/0x9F...): the limits at work, not errors.
	retries atomic.Int64

	mu        sync.Mutex
	retryOps  map[string]int64
	retryWait time.Duration // the sum of the waits before retries
	delayed   int64         // devices that waited at least once
	maxDelay  time.Duration // the longest a device waited in all
	peak      Progress      // highest per-second rates seen by the reporter
	latencies map[string][]time.Duration
	errKinds  map[string]int64
	firstErr  map[string]string
}

func newStats() *stats {
	return &stats{latencies: map[string][]time.Duration{}, errKinds: map[string]int64{}, firstErr: map[string]string{}, retryOps: map[string]int64{}}
}

// retry counts one retry of the SDK's op and its wait.
func (s *stats) retry(op string, wait time.Duration) {
	s.retries.Add(1)
	s.mu.Lock()
	s.retryOps[op]++
	s.retryWait += wait
	s.mu.Unlock()
}

// delay records that a device waited d in all before it was connected.
func (s *stats) delay(d time.Duration) {
	if d <= 0 {
		return
	}
	s.mu.Lock()
	s.delayed++
	s.maxDelay = max(s.maxDelay, d)
	s.mu.Unlock()
}

func (s *stats) observe(op string, d time.Duration) {
	s.mu.Lock()
	s.latencies[op] = append(s.latencies[op], d)
	s.mu.Unlock()
}

func (s *stats) fail(kind string, err error) {
	s.errors.Add(1)
	s.mu.Lock()
	s.errKinds[kind]++
	if _, ok := s.firstErr[kind]; !ok && err != nil {
		s.firstErr[kind] = err.Error()
	}
	s.mu.Unlock()
}

// counters is a snapshot of the counters, for progress rates.
type counters struct {
	started, registered, tokens, connected, disconnected, messages, errors, retries int64
}

func (s *stats) snapshot() counters {
	return counters{s.started.Load(), s.registered.Load(), s.tokens.Load(), s.connected.Load(), s.disconnected.Load(), s.messages.Load(), s.errors.Load(), s.retries.Load()}
}

// notePeak keeps the highest per-second rates of p.
func (s *stats) notePeak(p Progress) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.peak.RegistrationsPerSec = max(s.peak.RegistrationsPerSec, p.RegistrationsPerSec)
	s.peak.TokensPerSec = max(s.peak.TokensPerSec, p.TokensPerSec)
	s.peak.ConnectsPerSec = max(s.peak.ConnectsPerSec, p.ConnectsPerSec)
	s.peak.MessagesPerSec = max(s.peak.MessagesPerSec, p.MessagesPerSec)
}

// Progress is what the run reports every second.
type Progress struct {
	Elapsed time.Duration
	// Up is the number of devices connected right now.
	Up int64
	// Per second since the previous report.
	RegistrationsPerSec, TokensPerSec, ConnectsPerSec, MessagesPerSec float64
	// Errors is the total so far; Retries the SDK's retries of refusals
	// for now (the server's limits), which are not errors.
	Errors, Retries int64
}

// progress computes a Progress from two snapshots dt apart.
func progress(prev, cur counters, dt, elapsed time.Duration) Progress {
	rate := func(a, b int64) float64 {
		if dt <= 0 {
			return 0
		}
		return float64(b-a) / dt.Seconds()
	}
	return Progress{
		Elapsed:             elapsed,
		Up:                  cur.connected - cur.disconnected,
		RegistrationsPerSec: rate(prev.registered, cur.registered),
		TokensPerSec:        rate(prev.tokens, cur.tokens),
		ConnectsPerSec:      rate(prev.connected, cur.connected),
		MessagesPerSec:      rate(prev.messages, cur.messages),
		Errors:              cur.errors,
		Retries:             cur.retries,
	}
}

// Summary is the result of a run.
type Summary struct {
	Server string `json:"server"`
	Auth   string `json:"auth"`
	Prefix string `json:"prefix"`
	// Things is the fleet size asked for; Started how many devices began.
	Things  int   `json:"things"`
	Started int64 `json:"started"`
	// RatePerSec is the device start rate asked for.
	RatePerSec       float64           `json:"ratePerSec"`
	PublishInterval  string            `json:"publishInterval"`
	SetupSeconds     float64           `json:"setupSeconds"`
	ElapsedSeconds   float64           `json:"elapsedSeconds"`
	Registered       int64             `json:"registered"`
	Tokens           int64             `json:"tokens"`
	Connected        int64             `json:"connected"`
	Messages         int64             `json:"messages"`
	Errors           int64             `json:"errors"`
	ErrorsByKind     map[string]int64  `json:"errorsByKind"`
	FirstErrorByKind map[string]string `json:"firstErrorByKind,omitempty"`
	// Retries are the device SDK's retries after a refusal for now (HTTP
	// 429/503, CONNACK 0x97/0x9F...): how often the server's limits held
	// devices back. They are not errors; a device that gave up is.
	Retries int64 `json:"retries"`
	// RetriesByOp counts them by SDK operation ("register", "token",
	// "mqtt connect", ...).
	RetriesByOp map[string]int64 `json:"retriesByOp,omitempty"`
	// RetryWaitSeconds is the sum of the waits before retries over all
	// devices; DelayedDevices how many devices waited at all, and
	// MaxDeviceDelaySeconds the longest one device waited in all before
	// it was connected.
	RetryWaitSeconds      float64 `json:"retryWaitSeconds"`
	DelayedDevices        int64   `json:"delayedDevices"`
	MaxDeviceDelaySeconds float64 `json:"maxDeviceDelaySeconds"`
	// Rates are counts divided by ElapsedSeconds.
	RegistrationsPerSec float64 `json:"registrationsPerSec"`
	TokensPerSec        float64 `json:"tokensPerSec"`
	ConnectsPerSec      float64 `json:"connectsPerSec"`
	MessagesPerSec      float64 `json:"messagesPerSec"`
	// Peaks are the highest rates over one of the run's one-second
	// progress intervals (0 in a run shorter than a second).
	PeakRegistrationsPerSec float64 `json:"peakRegistrationsPerSec"`
	PeakTokensPerSec        float64 `json:"peakTokensPerSec"`
	PeakConnectsPerSec      float64 `json:"peakConnectsPerSec"`
	PeakMessagesPerSec      float64 `json:"peakMessagesPerSec"`
	// Latencies by operation: register, token, connect, publish (QoS 1
	// PUBLISH to PUBACK).
	Latencies map[string]Latency `json:"latencies"`
}

// Ops are the operations in the order summaries list them.
var Ops = []string{OpRegister, OpToken, OpConnect, OpPublish}

// ErrorKinds returns the error kinds of s, sorted.
func (s *Summary) ErrorKinds() []string {
	out := make([]string, 0, len(s.ErrorsByKind))
	for k := range s.ErrorsByKind {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (s *stats) summary(elapsed time.Duration) Summary {
	c := s.snapshot()
	per := func(n int64) float64 {
		if elapsed <= 0 {
			return 0
		}
		return math.Round(float64(n)/elapsed.Seconds()*100) / 100
	}
	out := Summary{
		Started: c.started, Registered: c.registered, Tokens: c.tokens, Connected: c.connected,
		Messages: c.messages, Errors: c.errors, Retries: c.retries,
		ElapsedSeconds:      math.Round(elapsed.Seconds()*1000) / 1000,
		RegistrationsPerSec: per(c.registered), TokensPerSec: per(c.tokens),
		ConnectsPerSec: per(c.connected), MessagesPerSec: per(c.messages),
		ErrorsByKind: map[string]int64{}, Latencies: map[string]Latency{},
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	round := func(f float64) float64 { return math.Round(f*100) / 100 }
	out.PeakRegistrationsPerSec, out.PeakTokensPerSec = round(s.peak.RegistrationsPerSec), round(s.peak.TokensPerSec)
	out.PeakConnectsPerSec, out.PeakMessagesPerSec = round(s.peak.ConnectsPerSec), round(s.peak.MessagesPerSec)
	for k, v := range s.errKinds {
		out.ErrorsByKind[k] = v
	}
	if len(s.retryOps) > 0 {
		out.RetriesByOp = maps.Clone(s.retryOps)
	}
	secs := func(d time.Duration) float64 { return math.Round(d.Seconds()*1000) / 1000 }
	out.RetryWaitSeconds, out.DelayedDevices, out.MaxDeviceDelaySeconds = secs(s.retryWait), s.delayed, secs(s.maxDelay)
	if len(s.firstErr) > 0 {
		out.FirstErrorByKind = map[string]string{}
		for k, v := range s.firstErr {
			out.FirstErrorByKind[k] = v
		}
	}
	for _, op := range Ops {
		if l := s.latencies[op]; len(l) > 0 {
			out.Latencies[op] = Summarize(l)
		}
	}
	return out
}
