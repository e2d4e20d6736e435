package thing

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
)

// Retry is how the SDK behaves when the server says "not now": an HTTP
// 429 Too Many Requests or 503 Service Unavailable on any call (register,
// token, device flow, HTTPS publish, discovery), or an MQTT CONNACK
// refusing with 0x88 server unavailable, 0x89 server busy, 0x97 quota
// exceeded or 0x9F connection rate exceeded. The call is then tried again
// after a wait: the server's Retry-After (HTTP) plus a random share of an
// exponentially growing ceiling ("full jitter": Base, 2×Base, 4×Base, ...
// up to Cap), so that a fleet refused at the same moment does not come back
// at the same moment. The waiting ends with the call's context, when the
// context's deadline would pass before the next try, or when MaxWait is
// used up; the call then fails with the server's last answer.
//
// The same backoff spaces MQTT reconnections: after a connection drops
// (a broker restart, say) the first try comes after a random share of
// Base, and failed tries back off as above.
//
// The zero Retry is the default policy.
type Retry struct {
	// Disable makes every call fail at the first refusal, as before
	// retries existed (and Connect too, whatever the CONNACK code).
	Disable bool
	// MaxWait bounds the total time one call waits between tries;
	// default 10 minutes.
	MaxWait time.Duration
	// Base is the ceiling of the first wait; default 1 s.
	Base time.Duration
	// Cap bounds the ceiling; default 10 s.
	Cap time.Duration
	// Rand returns a number in [0, 1); default math/rand/v2.Float64.
	Rand func() float64
	// Sleep waits d or until ctx ends (returning its error); default a
	// timer. MQTT reconnection waits are autopaho's own timers.
	Sleep func(ctx context.Context, d time.Duration) error
	// OnRetry, if set, is told about every retry before its wait (for
	// metrics; it must not block).
	OnRetry func(RetryEvent)
}

// RetryEvent describes one retry.
type RetryEvent struct {
	// Op is what is retried: "register", "token", "device code",
	// "publish", "discovery" or "mqtt connect".
	Op string
	// Attempt is the number of the try that failed, from 1.
	Attempt int
	// Wait is how long the SDK waits before the next try.
	Wait time.Duration
	// Err is the refusal (an *HTTPError, or the MQTT connect error).
	Err error
}

// Retry defaults.
const (
	DefaultRetryMaxWait = 10 * time.Minute
	DefaultRetryBase    = time.Second
	DefaultRetryCap     = 10 * time.Second
)

// withDefaults fills in the zero fields.
func (r Retry) withDefaults() Retry {
	if r.MaxWait <= 0 {
		r.MaxWait = DefaultRetryMaxWait
	}
	if r.Base <= 0 {
		r.Base = DefaultRetryBase
	}
	if r.Cap <= 0 {
		r.Cap = DefaultRetryCap
	}
	r.Cap = max(r.Cap, r.Base)
	if r.Rand == nil {
		r.Rand = rand.Float64
	}
	if r.Sleep == nil {
		r.Sleep = sleep
	}
	return r
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}

// Backoff is the wait before retry number attempt (from 0 for the first
// retry) when the server asked for at least after: after plus a random
// share of min(Cap, Base × 2^attempt).
func (r Retry) Backoff(attempt int, after time.Duration) time.Duration {
	r = r.withDefaults()
	ceiling := r.Cap
	if attempt < 30 {
		ceiling = min(r.Cap, r.Base<<attempt)
	}
	return max(after, 0) + time.Duration(r.Rand()*float64(ceiling))
}

// Retryable tells whether err is a refusal worth retrying: an *HTTPError
// with status 429 or 503, or an MQTT CONNACK refusal with 0x88, 0x89, 0x97
// or 0x9F.
func Retryable(err error) bool {
	var he *HTTPError
	if errors.As(err, &he) {
		return he.StatusCode == http.StatusTooManyRequests || he.StatusCode == http.StatusServiceUnavailable
	}
	var ce *autopaho.ConnackError
	if errors.As(err, &ce) {
		return retryableConnack(ce.ReasonCode)
	}
	return false
}

// retryableConnack: server unavailable, server busy, quota exceeded,
// connection rate exceeded.
func retryableConnack(code byte) bool {
	return code == 0x88 || code == 0x89 || code == 0x97 || code == 0x9F
}

// retry runs f until it succeeds, fails with an error that is not
// Retryable, or the policy, ctx or its deadline ends the waiting; the
// error is then f's last one.
func (t *Thing) retry(ctx context.Context, op string, f func() error) error {
	var waited time.Duration
	for attempt := 0; ; attempt++ {
		err := f()
		if err == nil || t.retryPolicy.Disable || !Retryable(err) {
			return err
		}
		var after time.Duration
		var he *HTTPError
		if errors.As(err, &he) {
			after = he.RetryAfter
		}
		wait := t.retryPolicy.Backoff(attempt, after)
		if waited+wait > t.retryPolicy.MaxWait {
			return fmt.Errorf("%w (gave up after %d tries: waiting %s more would pass Retry.MaxWait %s)", err, attempt+1, wait.Round(time.Millisecond), t.retryPolicy.MaxWait)
		}
		if dl, ok := ctx.Deadline(); ok && t.now().Add(wait).After(dl) {
			return fmt.Errorf("%w (the deadline comes before the next try in %s)", err, wait.Round(time.Millisecond))
		}
		t.noteRetry(RetryEvent{Op: op, Attempt: attempt + 1, Wait: wait, Err: err})
		if serr := t.retryPolicy.Sleep(ctx, wait); serr != nil {
			return fmt.Errorf("%w (stopped waiting to retry: %w)", err, serr)
		}
		waited += wait
	}
}

// noteRetry logs a retry at debug level and tells OnRetry.
func (t *Thing) noteRetry(e RetryEvent) {
	t.log.Debug("thing: server refused for now, retrying", "thing", t.Name(), "op", e.Op, "attempt", e.Attempt,
		"wait", e.Wait.Round(time.Millisecond), "err", e.Err)
	if t.retryPolicy.OnRetry != nil {
		t.retryPolicy.OnRetry(e)
	}
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an
// HTTP-date (RFC 9110 section 10.2.3); 0 when absent or unreadable.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s <= 0 {
			return 0
		}
		return time.Duration(min(s, 24*3600)) * time.Second
	}
	if at, err := http.ParseTime(v); err == nil {
		return min(max(at.Sub(now), 0), 24*time.Hour)
	}
	return 0
}
