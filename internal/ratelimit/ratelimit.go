package ratelimit

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Rate allows Burst events at once, refilled at Burst per Per. The zero
// Rate is no limit.
type Rate struct {
	Burst int
	Per   time.Duration
}

// ParseRate reads "N/PERIOD": N events at once and N per PERIOD, where
// PERIOD is a Go duration ("30s", "5m") or a bare unit ("s", "m", "h").
// "" , "0" and "off" are no limit.
func ParseRate(s string) (Rate, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "0" || s == "off" {
		return Rate{}, nil
	}
	n, per, ok := strings.Cut(s, "/")
	if !ok {
		return Rate{}, fmt.Errorf("rate %q: want N/PERIOD, e.g. 10/s or 100/5m, or off", s)
	}
	burst, err := strconv.Atoi(strings.TrimSpace(n))
	if err != nil || burst < 1 || burst > 1_000_000 {
		return Rate{}, fmt.Errorf("rate %q: N must be a whole number from 1 to 1000000", s)
	}
	per = strings.TrimSpace(per)
	if per != "" && (per[0] < '0' || per[0] > '9') {
		per = "1" + per
	}
	d, err := time.ParseDuration(per)
	if err != nil || d < time.Millisecond || d > 24*time.Hour {
		return Rate{}, fmt.Errorf("rate %q: PERIOD must be a duration from 1ms to 24h", s)
	}
	return Rate{Burst: burst, Per: d}, nil
}

// Enabled reports whether r limits anything.
func (r Rate) Enabled() bool { return r.Burst > 0 && r.Per > 0 }

func (r Rate) String() string {
	if !r.Enabled() {
		return "off"
	}
	return fmt.Sprintf("%d/%s", r.Burst, r.Per)
}

// Options are a Limiter's dependencies.
type Options struct {
	// Now is the clock (default time.Now).
	Now func() time.Time
	// MaxKeys bounds the keys remembered (default 100000). When full,
	// refilled buckets are forgotten first, then arbitrary ones: a
	// forgotten key starts again with a full burst, memory never grows.
	MaxKeys int
	// Rejections counts refusals under the limiter's name (may be nil).
	Rejections *Rejections
	// Exempt are the client address prefixes AllowAddr lets through
	// without counting (a trusted provisioning station, say).
	Exempt []netip.Prefix
}

// Limiter is a token bucket per key. A nil *Limiter allows everything.
type Limiter struct {
	name       string
	rate       Rate
	every      time.Duration // one token per every
	now        func() time.Time
	maxKeys    int
	rejections *Rejections
	exempt     []netip.Prefix

	mu        sync.Mutex
	buckets   map[string]*bucket
	lastSweep time.Time
}

type bucket struct {
	tokens float64
	at     time.Time
}

// ErrLimited is what callers wrap when they refuse because of a limit.
var ErrLimited = errors.New("rate limit exceeded")

// New returns a limiter named name (the label of its rejections), or nil
// when rate is not enabled.
func New(name string, rate Rate, o Options) *Limiter {
	if !rate.Enabled() {
		return nil
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxKeys <= 0 {
		o.MaxKeys = 100_000
	}
	o.Rejections.declare(name)
	return &Limiter{name: name, rate: rate, every: rate.Per / time.Duration(rate.Burst), now: o.Now, maxKeys: o.MaxKeys,
		rejections: o.Rejections, exempt: slices.Clone(o.Exempt), buckets: map[string]*bucket{}}
}

// Name is the limit's name.
func (l *Limiter) Name() string {
	if l == nil {
		return ""
	}
	return l.name
}

// Allow takes one token from key's bucket. If there is none it counts a
// rejection and returns false with how long until one is back.
func (l *Limiter) Allow(key string) (bool, time.Duration) {
	if l == nil {
		return true, 0
	}
	l.mu.Lock()
	b := l.bucket(key)
	ok, wait := b.tokens >= 1, l.wait(b)
	if ok {
		b.tokens--
	}
	l.mu.Unlock()
	if !ok {
		l.rejections.Inc(l.name)
	}
	return ok, wait
}

// AllowAddr is Allow for the client at hostport ("host:port" or a bare
// host), keyed by AddrKey; an address inside one of Options.Exempt is
// allowed without taking a token.
func (l *Limiter) AllowAddr(hostport string) (bool, time.Duration) {
	if l == nil {
		return true, 0
	}
	if len(l.exempt) > 0 && inAny(l.exempt, AddrOf(hostport)) {
		return true, 0
	}
	return l.Allow(AddrKey(hostport))
}

// Check is Allow without taking a token: callers that only count
// successes (Charge) ask it first, so failed attempts under someone else's
// key cannot use that key's budget.
func (l *Limiter) Check(key string) (bool, time.Duration) {
	if l == nil {
		return true, 0
	}
	l.mu.Lock()
	b := l.bucket(key)
	ok, wait := b.tokens >= 1, l.wait(b)
	l.mu.Unlock()
	if !ok {
		l.rejections.Inc(l.name)
	}
	return ok, wait
}

// Charge takes one token from key's bucket after the fact; the bucket may
// go into debt (down to minus one burst) when concurrent requests passed
// Check together.
func (l *Limiter) Charge(key string) {
	if l == nil {
		return
	}
	l.mu.Lock()
	b := l.bucket(key)
	b.tokens = math.Max(b.tokens-1, -float64(l.rate.Burst))
	l.mu.Unlock()
}

// Keys is how many keys the limiter remembers.
func (l *Limiter) Keys() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// wait is how long until b holds a whole token.
func (l *Limiter) wait(b *bucket) time.Duration {
	if b.tokens >= 1 {
		return 0
	}
	return time.Duration((1 - b.tokens) * float64(l.every))
}

// bucket returns key's bucket refilled to now; l.mu is held.
func (l *Limiter) bucket(key string) *bucket {
	now := l.now()
	b, ok := l.buckets[key]
	if !ok {
		l.makeRoom(now)
		b = &bucket{tokens: float64(l.rate.Burst), at: now}
		l.buckets[key] = b
		return b
	}
	if d := now.Sub(b.at); d > 0 {
		b.tokens = math.Min(b.tokens+float64(d)/float64(l.every), float64(l.rate.Burst))
		b.at = now
	}
	return b
}

// makeRoom forgets refilled buckets every minute, and arbitrary ones when
// the map is full; l.mu is held.
func (l *Limiter) makeRoom(now time.Time) {
	full := len(l.buckets) >= l.maxKeys
	if !full && now.Sub(l.lastSweep) < time.Minute {
		return
	}
	for k, b := range l.buckets {
		if b.tokens+float64(now.Sub(b.at))/float64(l.every) >= float64(l.rate.Burst) {
			delete(l.buckets, k)
		}
	}
	l.lastSweep = now
	for k := range l.buckets {
		if len(l.buckets) < l.maxKeys {
			break
		}
		delete(l.buckets, k)
	}
}
