package events_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/events"
	"github.com/gatehouse-iot/gatehouse/internal/store"
	"github.com/gatehouse-iot/gatehouse/internal/store/storetest"
	"github.com/gatehouse-iot/gatehouse/internal/testenv"
)

// TestLateCommitOnPostgres: on PostgreSQL appends do not wait for each
// other, so an event can commit while one with a lower ID is still in an
// open transaction. A reader tailing by ID must then stop below the open
// one - not skip it - and go on once it commits, or once it rolls back,
// even while an unrelated transaction (idle in transaction, with a
// transaction ID) stays open on the same server.
func TestLateCommitOnPostgres(t *testing.T) {
	dsn := storetest.PostgresDSN(t)
	idle, err := sql.Open("pgx", os.Getenv(storetest.PostgresEnv))
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	itx, err := idle.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer itx.Rollback()
	if _, err := itx.Exec(`SELECT pg_current_xact_id()`); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		rollback bool
	}{
		{"the open transaction commits", false},
		{"the open transaction rolls back", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := store.Open(t.Context(), dsn)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			l := events.NewLog(s, time.Now)
			ctx := t.Context()
			first, err := l.Record(ctx, s, "thing.created", "thing/first", nil)
			if err != nil {
				t.Fatal(err)
			}

			var (
				mu       sync.Mutex
				followed []string
			)
			fctx, cancel := context.WithCancel(ctx)
			defer cancel()
			go l.Follow(fctx, first.ID, func(evs []store.Event) {
				mu.Lock()
				defer mu.Unlock()
				for _, ev := range evs {
					followed = append(followed, ev.Subject)
				}
			})

			appended, release, done := make(chan store.Event), make(chan struct{}), make(chan error, 1)
			errRollback := errors.New("rolled back on purpose")
			go func() {
				done <- s.InTx(ctx, func(tx *store.Tx) error {
					ev, err := l.Record(ctx, tx, "thing.updated", "thing/late", nil)
					if err != nil {
						return err
					}
					appended <- ev
					<-release
					if tc.rollback {
						return errRollback
					}
					return nil
				})
			}()
			late := <-appended
			// Another connection appends and commits while the first
			// transaction is open: it must not wait for it.
			actx, acancel := context.WithTimeout(ctx, 10*time.Second)
			early, err := l.Record(actx, s, "thing.updated", "thing/early", nil)
			acancel()
			if err != nil {
				t.Fatalf("an append while another transaction holds an unsettled event: %v (appends serialized?)", err)
			}
			if early.ID <= late.ID {
				t.Fatalf("IDs %d (open) and %d (committed): want the open one lower", late.ID, early.ID)
			}
			stored, err := s.ListEvents(ctx, store.EventFilter{AfterID: first.ID})
			if err != nil || len(stored) != 1 || stored[0].ID != early.ID {
				t.Fatalf("the store after %d = %v, %v; want only the committed %d (else this test shows nothing)", first.ID, stored, err, early.ID)
			}
			got, err := l.List(ctx, store.EventFilter{AfterID: first.ID})
			if err != nil || len(got) != 0 {
				t.Fatalf("List after %d while %d is open = %v, %v; want nothing (a cursor past %d would skip %d)", first.ID, late.ID, got, err, early.ID, late.ID)
			}

			close(release)
			if err := <-done; err != nil && !errors.Is(err, errRollback) {
				t.Fatal(err)
			}
			want := []string{"thing/late", "thing/early"}
			if tc.rollback {
				want = []string{"thing/early"}
			}
			testenv.Eventually(t, 10*time.Second, "the follower handed both", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(followed) >= len(want)
			})
			mu.Lock()
			if !slices.Equal(followed, want) {
				t.Errorf("followed %v, want %v", followed, want)
			}
			mu.Unlock()
			var listed []string
			testenv.Eventually(t, 10*time.Second, "List past the settled gap", func() bool {
				evs, err := l.List(ctx, store.EventFilter{AfterID: first.ID})
				listed = listed[:0]
				for _, ev := range evs {
					listed = append(listed, ev.Subject)
				}
				return err == nil && len(listed) == len(want)
			})
			if !slices.Equal(listed, want) {
				t.Errorf("listed %v, want %v", listed, want)
			}
		})
	}
}
