package registry_test

import (
	"errors"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/events"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/store"
	"github.com/gatehouse-iot/gatehouse/internal/store/storetest"
	"github.com/gatehouse-iot/gatehouse/internal/testenv"
)

// TestSignInThrottle: failed sign-ins for one account, from anywhere, are
// free up to FreeFailures; then each attempt waits a doubling delay capped
// at MaxDelay, refused (password unchecked) until it passes; the right
// password after the wait signs in and clears the failures, so the real
// user is slowed, never locked out. Other accounts are not affected.
func TestSignInThrottle(t *testing.T) {
	ctx := t.Context()
	s, err := store.Open(ctx, storetest.SQLiteDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	clk := testenv.NewClock(time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC))
	svc, err := registry.New(registry.Config{Store: s, Events: events.NewLog(s, clk.Now), Now: clk.Now, Hash: testenv.CheapHash,
		SignIn: registry.SignInThrottle{FreeFailures: 3, MaxDelay: 4 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"alice", "bob"} {
		if _, err := svc.CreateUser(ctx, registry.NewUser{Username: u, Password: "password-" + u}); err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		name     string
		advance  time.Duration
		user     string
		password string
		want     error // nil: signed in
		wait     time.Duration
	}{
		{"failure 1", 0, "alice", "guess", registry.ErrBadCredentials, 0},
		{"failure 2", 0, "alice", "guess", registry.ErrBadCredentials, 0},
		{"failure 3, the last free one", 0, "alice", "guess", registry.ErrBadCredentials, 0},
		{"failure 4 is counted", 0, "alice", "guess", registry.ErrBadCredentials, 0},
		{"then 1s to wait", 0, "alice", "password-alice", registry.ErrSignInThrottled, time.Second},
		{"other accounts are not slowed", 0, "bob", "password-bob", nil, 0},
		{"failure 5 after the wait", time.Second, "alice", "guess", registry.ErrBadCredentials, 0},
		{"then 2s", 0, "alice", "guess", registry.ErrSignInThrottled, 2 * time.Second},
		{"failure 6", 2 * time.Second, "alice", "guess", registry.ErrBadCredentials, 0},
		{"failure 7", 4 * time.Second, "alice", "guess", registry.ErrBadCredentials, 0},
		{"capped at MaxDelay", 0, "alice", "password-alice", registry.ErrSignInThrottled, 4 * time.Second},
		{"the real user after the cap signs in", 4 * time.Second, "alice", "password-alice", nil, 0},
		{"and the failures are cleared", 0, "alice", "guess", registry.ErrBadCredentials, 0},
		{"unknown users are throttled alike", 0, "nobody", "x", registry.ErrBadCredentials, 0},
	}
	for _, st := range steps {
		clk.Advance(st.advance)
		_, err := svc.Authenticate(ctx, st.user, st.password)
		if st.want == nil && err != nil || st.want != nil && !errors.Is(err, st.want) {
			t.Fatalf("%s: err = %v, want %v", st.name, err, st.want)
		}
		if st.wait > 0 {
			var later interface{ RetryAfter() time.Duration }
			if !errors.As(err, &later) || later.RetryAfter() != st.wait {
				t.Errorf("%s: RetryAfter = %v, want %s", st.name, err, st.wait)
			}
		}
	}
}
