package console

import (
	"sync"
	"time"
)

// limiter is a token bucket per client address: burst attempts at once,
// then one per interval. It tracks at most maxAddrs addresses: when full it
// forgets buckets that have refilled, and if none has, an arbitrary one
// (which can only make that address's limit more lenient, never block
// anyone else).
type limiter struct {
	burst    float64
	interval time.Duration
	maxAddrs int
	now      func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

func newLimiter(burst int, interval time.Duration, maxAddrs int, now func() time.Time) *limiter {
	return &limiter{burst: float64(burst), interval: interval, maxAddrs: maxAddrs, now: now, buckets: map[string]*bucket{}}
}

// refill brings b's tokens up to now.
func (l *limiter) refill(b *bucket, now time.Time) {
	if d := now.Sub(b.at); d > 0 {
		b.tokens = min(l.burst, b.tokens+float64(d)/float64(l.interval))
		b.at = now
	}
}

// allow takes a token for addr, or says how long until one is available.
func (l *limiter) allow(addr string) (bool, time.Duration) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[addr]
	if !ok {
		if len(l.buckets) >= l.maxAddrs {
			l.evict(now)
		}
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[addr] = b
	}
	l.refill(b, now)
	if b.tokens < 1 {
		return false, time.Duration((1 - b.tokens) * float64(l.interval))
	}
	b.tokens--
	return true, 0
}

// evict makes room for one more address.
func (l *limiter) evict(now time.Time) {
	for addr, b := range l.buckets {
		l.refill(b, now)
		if b.tokens >= l.burst {
			delete(l.buckets, addr)
		}
	}
	for addr := range l.buckets {
		if len(l.buckets) < l.maxAddrs {
			return
		}
		delete(l.buckets, addr)
	}
}

// tracked is how many addresses the limiter holds.
func (l *limiter) tracked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}
