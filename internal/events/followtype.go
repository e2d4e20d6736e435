package events

import (
	"context"
	"strings"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// followTypeBatch is how many events FollowType reads per query.
const followTypeBatch = 100

// FollowType calls fn, in order, with every event matching f that any replica
// records from the call on, until ctx ends (f.AfterID, f.BeforeID and
// f.Limit are its own). A matching event this process commits is read at
// once; other replicas' within the poll interval (a second). Unlike Wait it
// does not query the database on every local commit, only on matching
// ones, and unlike Follow it reads only the events of that type: for a
// cache that must drop what another replica changed.
//
// Each read covers the events up to the newest settled one at the time and
// the follower then moves past all of them, matching or not, so the next
// read starts there: the log's other events (a CONNECT storm's) are looked
// at once, not again on every poll until the next matching event.
func (l *Log) FollowType(ctx context.Context, f store.EventFilter, fn func(store.Event)) {
	// Only matching local events are announced to it: the others (two
	// per MQTT connection) would each wake it for nothing, and could fill
	// its buffer so that a matching one is dropped until the next poll.
	local, stop := l.subscribe(16, f.Type)
	defer stop()
	f.RareType = true // keys, CAs: a handful of events in a log of connections
	tick := time.NewTicker(l.poll)
	defer tick.Stop()
	after, known := int64(0), false
	for ctx.Err() == nil {
		var soon <-chan time.Time
		if !known {
			id, err := l.LatestID(ctx)
			after, known = id, err == nil
		} else {
			next, more, unsettled := l.readType(ctx, f, after, fn)
			after = next
			if more {
				continue
			}
			if unsettled {
				soon = time.After(settleRetry)
			}
		}
		waitFor(ctx, local, tick.C, soon)
	}
}

// readType hands fn the events matching f after the ID after, up to the
// newest settled event now (at most followTypeBatch of them), and returns
// the ID to read after next time: the last event handed over when the
// batch was full (more is then set), else the newest settled event's ID.
// Every event up to that one is committed or never will be (the settled
// horizon), so nothing is skipped; unsettled reports more behind a gap. On
// an error it returns after unchanged, or the last event handed over.
func (l *Log) readType(ctx context.Context, f store.EventFilter, after int64, fn func(store.Event)) (next int64, more, unsettled bool) {
	latest, unsettled, err := l.latest(ctx)
	if err != nil || latest <= after {
		return after, false, unsettled
	}
	f.AfterID, f.BeforeID, f.Limit = after, latest+1, followTypeBatch
	evs, err := l.store.ListEvents(ctx, f)
	for _, ev := range evs {
		after = ev.ID
		fn(ev)
	}
	switch {
	case err != nil:
		return after, false, unsettled
	case len(evs) == followTypeBatch:
		return after, true, unsettled
	}
	return latest, false, unsettled
}

// waitFor returns when ctx ends, tick or soon fires, or a local event (of
// the type subscribed to) arrives.
func waitFor(ctx context.Context, local <-chan store.Event, tick, soon <-chan time.Time) {
	select {
	case <-ctx.Done():
	case <-tick:
	case <-soon:
	case <-local:
	}
}

// typeMatches reports whether an event of type typ is one of filter's:
// every type for "", those starting with filter when it ends in ".",
// else typ itself.
func typeMatches(filter, typ string) bool {
	return filter == "" || typ == filter || strings.HasSuffix(filter, ".") && strings.HasPrefix(typ, filter)
}
