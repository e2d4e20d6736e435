package console

import (
	"strconv"
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	now := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	l := newLimiter(2, 10*time.Second, 3, clock)
	steps := []struct {
		advance  time.Duration
		addr     string
		want     bool
		wantWait time.Duration
	}{
		{0, "a", true, 0},
		{0, "a", true, 0},
		{0, "a", false, 10 * time.Second},
		{0, "b", true, 0}, // addresses are limited separately
		{4 * time.Second, "a", false, 6 * time.Second},
		{6 * time.Second, "a", true, 0},
		{0, "a", false, 10 * time.Second},
		{time.Hour, "a", true, 0}, // refills up to the burst only
		{0, "a", true, 0},
		{0, "a", false, 10 * time.Second},
	}
	for i, st := range steps {
		now = now.Add(st.advance)
		got, wait := l.allow(st.addr)
		if got != st.want || wait != st.wantWait {
			t.Errorf("step %d: allow(%s) = %v, %s; want %v, %s", i, st.addr, got, wait, st.want, st.wantWait)
		}
	}
}

func TestLimiterMemoryIsBounded(t *testing.T) {
	now := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	l := newLimiter(1, time.Minute, 100, func() time.Time { return now })
	for i := range 10000 {
		l.allow("10.0." + strconv.Itoa(i/256) + "." + strconv.Itoa(i%256))
		if n := l.tracked(); n > 100 {
			t.Fatalf("after %d addresses the limiter tracks %d, want at most 100", i+1, n)
		}
	}
	// An address just limited stays limited while the table has room.
	l = newLimiter(1, time.Minute, 100, func() time.Time { return now })
	l.allow("192.0.2.1")
	for i := range 50 {
		l.allow("198.51.100." + strconv.Itoa(i))
	}
	if ok, _ := l.allow("192.0.2.1"); ok {
		t.Error("a limited address was let through")
	}
}
