package storetest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/store"
)

func testConsoleSessions(t *testing.T, s *store.Store) {
	ctx := t.Context()
	sessions := []*store.ConsoleSession{
		{IDHash: "live", Username: "alice", CSRFToken: "csrf-1", CreatedAt: t0, LastSeenAt: t0, ExpiresAt: t0.Add(12 * time.Hour)},
		{IDHash: "expired", Username: "alice", CSRFToken: "csrf-2", CreatedAt: t0.Add(-13 * time.Hour), LastSeenAt: t0, ExpiresAt: t0.Add(-time.Hour)},
		{IDHash: "idle", Username: "bob", CSRFToken: "csrf-3", CreatedAt: t0.Add(-3 * time.Hour), LastSeenAt: t0.Add(-2 * time.Hour), ExpiresAt: t0.Add(9 * time.Hour)},
	}
	for _, cs := range sessions {
		if err := s.CreateConsoleSession(ctx, cs); err != nil {
			t.Fatalf("CreateConsoleSession(%s): %v", cs.IDHash, err)
		}
	}
	if err := s.CreateConsoleSession(ctx, &store.ConsoleSession{IDHash: "live", Username: "mallory", CSRFToken: "x", CreatedAt: t0, LastSeenAt: t0, ExpiresAt: t0}); !errors.Is(err, store.ErrExists) {
		t.Errorf("duplicate session hash: err = %v, want ErrExists", err)
	}
	got, err := s.ConsoleSessionByHash(ctx, "live")
	if err != nil {
		t.Fatal(err)
	}
	if got.Username != "alice" || got.CSRFToken != "csrf-1" || !got.CreatedAt.Equal(t0) || !got.ExpiresAt.Equal(t0.Add(12*time.Hour)) {
		t.Errorf("ConsoleSessionByHash = %+v", got)
	}
	if _, err := s.ConsoleSessionByHash(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown session: err = %v, want ErrNotFound", err)
	}

	for _, tc := range []struct {
		user string
		want []string
	}{{"alice", []string{"live", "expired"}}, {"bob", []string{"idle"}}, {"nobody", nil}} {
		list, err := s.ListConsoleSessions(ctx, tc.user)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, cs := range list {
			got = append(got, cs.IDHash)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("ListConsoleSessions(%s) = %v, want %v", tc.user, got, tc.want)
		}
	}

	seen := t0.Add(30 * time.Minute)
	if err := s.TouchConsoleSession(ctx, "live", seen); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.ConsoleSessionByHash(ctx, "live"); got == nil || !got.LastSeenAt.Equal(seen) {
		t.Errorf("after touch: %+v, want last seen %s", got, seen)
	}
	if err := s.TouchConsoleSession(ctx, "nope", seen); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("touch unknown: err = %v, want ErrNotFound", err)
	}

	// At t0 with a one-hour idle limit: "expired" is past its expiry and
	// "idle" was last seen two hours ago; "live" stays.
	n, err := s.PurgeConsoleSessions(ctx, t0, t0.Add(-time.Hour))
	if err != nil || n != 2 {
		t.Errorf("PurgeConsoleSessions = %d, %v; want 2", n, err)
	}
	for _, tc := range []struct {
		hash string
		want error
	}{{"live", nil}, {"expired", store.ErrNotFound}, {"idle", store.ErrNotFound}} {
		if _, err := s.ConsoleSessionByHash(ctx, tc.hash); !errors.Is(err, tc.want) {
			t.Errorf("after purge, session %s: err = %v, want %v", tc.hash, err, tc.want)
		}
	}

	if err := s.DeleteConsoleSession(ctx, "live"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteConsoleSession(ctx, "live"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second delete: err = %v, want ErrNotFound", err)
	}
}
