package oauth

import (
	"sync"
	"time"
)

// limiter is a token bucket per key (the client's address) plus one shared
// bucket, used to slow down user code (and password) guessing on the
// verification page. A key may make burst attempts at once and then one
// per every; all keys together burstAll and then one per everyAll.
type limiter struct {
	mu        sync.Mutex
	burst     float64
	every     time.Duration
	buckets   map[string]*bucket
	all       bucket
	burstAll  float64
	everyAll  time.Duration
	lastSweep time.Time
}

type bucket struct {
	tokens float64
	at     time.Time
}

func newLimiter(burst int, every time.Duration, burstAll int, everyAll time.Duration) *limiter {
	return &limiter{burst: float64(burst), every: every, buckets: map[string]*bucket{}, burstAll: float64(burstAll), everyAll: everyAll,
		all: bucket{tokens: float64(burstAll)}}
}

func (b *bucket) take(now time.Time, burst float64, every time.Duration) bool {
	if !b.at.IsZero() {
		b.tokens += float64(now.Sub(b.at)) / float64(every)
		if b.tokens > burst {
			b.tokens = burst
		}
	}
	b.at = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// allow reports whether key may make an attempt now, and counts it.
func (l *limiter) allow(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastSweep) > time.Minute {
		// Forget keys whose bucket has refilled: they are back to a full burst.
		for k, b := range l.buckets {
			if now.Sub(b.at) > time.Duration(l.burst)*l.every {
				delete(l.buckets, k)
			}
		}
		l.lastSweep = now
	}
	b, ok := l.buckets[key]
	if !ok {
		b = &bucket{tokens: l.burst}
		l.buckets[key] = b
	}
	if !b.take(now, l.burst, l.every) {
		return false
	}
	return l.all.take(now, l.burstAll, l.everyAll)
}
