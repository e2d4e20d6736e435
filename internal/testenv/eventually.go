package testenv

import (
	"testing"
	"time"
)

// Eventually polls cond until it holds and returns how long that took;
// when within passes first it fails the test with what (the state awaited,
// e.g. "the policy change reaching the live session") and the time waited.
// It is the one way a test waits for something asynchronous that it can
// only observe by asking: a change reaching a live session, an event being
// recorded, a replica catching up. It polls at once, then with a short
// backoff (1 ms doubling to 50 ms), so a fast condition costs little and a
// slow one does not spin.
//
// To prove that something does not happen, do not sleep and look: make a
// sentinel happen after it through the same ordered path and wait for the
// sentinel with Eventually (or a channel).
func Eventually(t testing.TB, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	wait := time.Millisecond
	for !cond() {
		waited := time.Since(start)
		if waited >= within {
			t.Fatalf("%s: not within %v (waited %v)", what, within, waited.Round(time.Millisecond))
		}
		if rest := within - waited; wait > rest {
			wait = rest
		}
		time.Sleep(wait)
		if wait *= 2; wait > 50*time.Millisecond {
			wait = 50 * time.Millisecond
		}
	}
	return time.Since(start)
}
