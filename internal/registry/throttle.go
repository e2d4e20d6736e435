package registry

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// SignInThrottle slows password guessing per account, from however many
// addresses it comes: after FreeFailures failed sign-ins in a row, each
// further attempt must wait a delay that doubles from one second with every
// failure, up to MaxDelay. It never locks the account: the real user waits
// at most MaxDelay before their password is checked, while a guesser gets
// one attempt per MaxDelay at best.
type SignInThrottle struct {
	// FreeFailures are the failures allowed before any delay (default 5).
	FreeFailures int
	// MaxDelay caps the delay (default 30s); negative disables the
	// throttle.
	MaxDelay time.Duration
}

// ErrSignInThrottled means an account had too many failed sign-ins just
// now: the password was not checked. Errors matching it have RetryAfter.
var ErrSignInThrottled = errors.New("too many failed sign-ins for this account; try again shortly")

// throttledError is ErrSignInThrottled with the wait.
type throttledError struct{ wait time.Duration }

func (e *throttledError) Error() string {
	return fmt.Sprintf("%v (in %s)", ErrSignInThrottled, e.wait.Round(time.Second))
}
func (e *throttledError) Is(target error) bool      { return target == ErrSignInThrottled }
func (e *throttledError) RetryAfter() time.Duration { return e.wait }

// forgetFailuresAfter is how long a run of failures is remembered without
// another failure.
const forgetFailuresAfter = 15 * time.Minute

// maxThrottledAccounts bounds the throttle's memory; when full, accounts
// whose failures are forgotten go first, then arbitrary ones (which only
// makes their throttle more lenient).
const maxThrottledAccounts = 10000

// accountThrottle tracks failed sign-ins per username (existing or not,
// so that its answers tell nothing about which usernames exist).
type accountThrottle struct {
	cfg SignInThrottle
	now func() time.Time

	mu       sync.Mutex
	accounts map[string]*failures
}

type failures struct {
	n    int
	last time.Time
}

func newAccountThrottle(cfg SignInThrottle, now func() time.Time) *accountThrottle {
	if cfg.FreeFailures <= 0 {
		cfg.FreeFailures = 5
	}
	if cfg.MaxDelay == 0 {
		cfg.MaxDelay = 30 * time.Second
	}
	return &accountThrottle{cfg: cfg, now: now, accounts: map[string]*failures{}}
}

// delay is the wait after n failures in a row.
func (t *accountThrottle) delay(n int) time.Duration {
	over := n - t.cfg.FreeFailures
	if over <= 0 {
		return 0
	}
	d := time.Second
	for i := 1; i < over && d < t.cfg.MaxDelay; i++ {
		d *= 2
	}
	return min(d, t.cfg.MaxDelay)
}

// check returns a throttledError when username must wait before trying.
func (t *accountThrottle) check(username string) error {
	if t.cfg.MaxDelay < 0 {
		return nil
	}
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	f, ok := t.accounts[username]
	if !ok {
		return nil
	}
	if now.Sub(f.last) > forgetFailuresAfter {
		delete(t.accounts, username)
		return nil
	}
	if wait := f.last.Add(t.delay(f.n)).Sub(now); wait > 0 {
		return &throttledError{wait: wait}
	}
	return nil
}

// failed counts a failed sign-in for username.
func (t *accountThrottle) failed(username string) {
	if t.cfg.MaxDelay < 0 {
		return
	}
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	f, ok := t.accounts[username]
	if !ok {
		if len(t.accounts) >= maxThrottledAccounts {
			t.makeRoom(now)
		}
		f = &failures{}
		t.accounts[username] = f
	}
	if now.Sub(f.last) > forgetFailuresAfter {
		f.n = 0
	}
	f.n++
	f.last = now
}

// succeeded ends username's run of failures.
func (t *accountThrottle) succeeded(username string) {
	t.mu.Lock()
	delete(t.accounts, username)
	t.mu.Unlock()
}

func (t *accountThrottle) makeRoom(now time.Time) {
	for name, f := range t.accounts {
		if now.Sub(f.last) > forgetFailuresAfter {
			delete(t.accounts, name)
		}
	}
	for name := range t.accounts {
		if len(t.accounts) < maxThrottledAccounts {
			return
		}
		delete(t.accounts, name)
	}
}
