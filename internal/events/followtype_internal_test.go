package events

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/store"
	"github.com/gatehouse-iot/gatehouse/internal/store/storetest"
)

// TestFollowTypeWokenOnlyByItsType: with polling out of the picture (an
// hour), a local matching event committed together with far more other
// events than a FollowType subscriber buffers (16) still reaches it, at
// once: the others are not announced to it, so they neither fill its
// buffer nor wake it.
func TestFollowTypeWokenOnlyByItsType(t *testing.T) {
	s, err := store.Open(t.Context(), storetest.SQLiteDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	l := NewLog(s, time.Now)
	l.poll = time.Hour
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	got := make(chan string, 100)
	go l.FollowType(ctx, store.EventFilter{Type: "key."}, func(ev store.Event) { got <- ev.Type + " " + ev.Subject })
	// FollowType starts at the newest event: probe (announced, as
	// ChangeAll announces) until it follows one.
	probe := func(*store.Tx) ([]Pending, error) { return []Pending{{Type: "key.probe", Subject: "probe"}}, nil }
	for i := 0; ; i++ {
		if i == 200 {
			t.Fatal("FollowType followed no probe within 200 tries")
		}
		if _, err := l.ChangeAll(ctx, probe); err != nil {
			t.Fatal(err)
		}
		select {
		case <-got:
		case <-time.After(50 * time.Millisecond): // pacing the probes
			continue
		}
		break
	}
	var pending []Pending
	for i := range 200 {
		pending = append(pending, Pending{Type: "broker.connected", Subject: fmt.Sprintf("client/c%d", i)})
	}
	pending = append(pending, Pending{Type: "key.rotated", Subject: "k1"})
	if _, err := l.ChangeAll(ctx, func(*store.Tx) ([]Pending, error) { return pending, nil }); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case ev := <-got:
			if ev == "key.probe probe" {
				continue
			}
			if ev != "key.rotated k1" {
				t.Fatalf("followed %q, want key.rotated k1", ev)
			}
			return
		case <-time.After(10 * time.Second):
			t.Fatal("key.rotated k1 not followed within 10s (polling is an hour away)")
		}
	}
}
