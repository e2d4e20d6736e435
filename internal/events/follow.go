package events

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// followPage bounds the events one read of the store returns to a
// follower, and the events it is handed from memory at once.
const followPage = 1000

// followBuffer is how many announced events a follower holds before it
// misses some (and reads them from the store instead).
const followBuffer = 4096

// Follow hands fn every event after the ID after, in ID order and in
// batches, until ctx ends or a read of the store fails; it returns the ID
// of the last event handed to fn (after, if none) and the read's error, or
// nil once ctx ended. A caller that gets an error calls Follow again from
// the ID it returned.
//
// Events this process commits are handed over from memory, as Notify
// announces them, without reading them back: that is what keeps the
// broker's event mirror cheap under a CONNECT storm. The store is read
// when an announced event does not directly follow the last one handed
// over - another replica's event came in between, or this follower fell
// behind and missed announcements - and every poll interval, for other
// replicas' events. Either way fn gets each event once, as ListEvents
// returns it, and never an event before one with a lower ID that commits
// later (List's settled horizon). fn runs on Follow's goroutine and must not keep the slice.
func (l *Log) Follow(ctx context.Context, after int64, fn func([]store.Event)) (int64, error) {
	announced, stop := l.Subscribe(followBuffer)
	defer stop()
	poll := time.NewTicker(l.poll)
	defer poll.Stop()
	batch := make([]store.Event, 0, 64)
	read := true // catch up with the store first
	var soon <-chan time.Time
	for {
		if read {
			evs, unsettled, err := l.tail(ctx, store.EventFilter{AfterID: after, Limit: followPage})
			if err != nil {
				if ctx.Err() != nil {
					return after, nil
				}
				return after, fmt.Errorf("events: follow: %w", err)
			}
			if len(evs) > 0 {
				after = evs[len(evs)-1].ID
				fn(evs)
			}
			read = len(evs) == followPage
			if read {
				continue
			}
			soon = nil
			if unsettled {
				soon = time.After(settleRetry)
			}
		}
		select {
		case <-ctx.Done():
			return after, nil
		case <-poll.C:
			read = true
		case <-soon:
			read = true
		case ev := <-announced:
			batch = batch[:0]
			for {
				switch {
				case ev.ID <= after: // read from the store already
				case ev.ID == after+1:
					after = ev.ID
					batch = append(batch, asStored(ev))
				default:
					// Something in between is only in the store: read
					// it, and what follows, from there.
					read = true
				}
				if read || len(batch) == followPage {
					break
				}
				select {
				case ev = <-announced:
					continue
				default:
				}
				break
			}
			if len(batch) > 0 {
				fn(batch)
			}
		}
	}
}

// asStored is ev as ListEvents returns it once stored: time in UTC
// microseconds, empty details as {}, a count of one as none.
func asStored(ev store.Event) store.Event {
	ev.Time = ev.Time.UTC().Truncate(time.Microsecond)
	if len(ev.Details) == 0 {
		ev.Details = json.RawMessage("{}")
	}
	if ev.Count <= 1 {
		ev.Count = 0
	}
	return ev
}
