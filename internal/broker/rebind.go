package broker

import (
	"context"
	"errors"
	"maps"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/gatehouse-iot/gatehouse/internal/authn"
	"github.com/gatehouse-iot/gatehouse/internal/live"
	"github.com/gatehouse-iot/gatehouse/internal/policy"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
)

// refreshWorkers bounds the sessions re-authorized at once (each reads the
// registry); recompiling (memory only) uses every processor.
const refreshWorkers = 8

// rebinds is the work the follower hands to the rebinder: changes merged
// until the rebinder takes them, so that a long re-bind never holds the
// follower up and changes arriving meanwhile are applied together next.
type rebinds struct {
	mu      sync.Mutex
	pending *live.Changes
	through int64 // the newest event id pending covers
	wake    chan struct{}
	// applied is the newest event id whose effects on sessions are all
	// applied (Broker.Applied).
	applied atomic.Int64
}

func newRebinds() *rebinds {
	return &rebinds{pending: &live.Changes{}, wake: make(chan struct{}, 1)}
}

// queue adds c, which covers the events up to id, to the pending work.
func (r *rebinds) queue(c *live.Changes, id int64) {
	r.mu.Lock()
	r.pending.Merge(c)
	r.through = id
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// take returns the pending work and the event id it covers.
func (r *rebinds) take() (*live.Changes, int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, id := r.pending, r.through
	r.pending = &live.Changes{}
	return c, id
}

// done records that the events up to id are applied.
func (r *rebinds) done(id int64) {
	for {
		cur := r.applied.Load()
		if id <= cur || r.applied.CompareAndSwap(cur, id) {
			return
		}
	}
}

// Applied is the id of the newest event in the log whose effects on this
// broker's sessions are all applied; ending sessions (revocations,
// disables) is applied earlier, without waiting for re-binds.
func (b *Broker) Applied() int64 { return b.rebinds.applied.Load() }

// rebinder applies the follower's changes to live sessions, a round at a
// time.
func (b *Broker) rebinder(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.rebinds.wake:
		}
		c, through := b.rebinds.take()
		if c.Rebinding() {
			b.rebind(ctx, c)
		}
		b.rebinds.done(through)
	}
}

// recompiling is a session to re-bind with new documents and, for an
// attachment, more policies.
type recompiling struct {
	s   *session
	add []string
}

// rebind re-binds the sessions c affects, and only those: sessions whose
// subject is unchanged are recompiled from documents read in one query;
// the others are re-authorized, a bounded number at a time.
func (b *Broker) rebind(ctx context.Context, c *live.Changes) {
	b.cfg.Registry.InvalidatePolicies()
	var (
		refresh   []*session
		recompile []recompiling
		names     = map[string]bool{}
	)
	b.hook.sessions.Range(func(_, v any) bool {
		s := v.(*session)
		if s.anonymous {
			return true // bound to the fixed AnonymousPolicy, nothing in the registry
		}
		res := s.res.Load()
		if c.All || res == nil || refreshes(c, s, res) {
			refresh = append(refresh, s)
			return true
		}
		add, ok := recompiles(c, s, res)
		if !ok {
			return true
		}
		recompile = append(recompile, recompiling{s, add})
		for _, n := range res.Named {
			names[n] = true
		}
		for _, n := range add {
			names[n] = true
		}
		return true
	})
	if len(recompile) > 0 {
		rc, err := b.cfg.Registry.NewRecompiler(ctx, slices.Sorted(maps.Keys(names)), b.cfg.Policy)
		if err != nil {
			b.log.Warn("broker: read policies to re-bind", "err", err)
			for _, r := range recompile {
				refresh = append(refresh, r.s)
			}
		} else {
			parallel(runtime.GOMAXPROCS(0), recompile, func(r recompiling) { b.hook.recompile(rc, r.s, r.add) })
		}
	}
	parallel(refreshWorkers, refresh, func(s *session) { b.hook.refresh(ctx, s) })
}

// refreshes reports whether the session depends on something c
// re-authorizes: a thing, person, group, thing type, relationship, or a
// policy detached from one of its targets.
func refreshes(c *live.Changes, s *session, res *registry.Resolved) bool {
	if len(c.Refresh) > 0 {
		for k := range s.keys {
			if c.Refresh[k] {
				return true
			}
		}
	}
	for _, d := range c.Detached {
		if slices.Contains(res.Named, d.Policy) && s.dependsOn(d.Target) {
			return true
		}
	}
	return false
}

// recompiles reports whether the session names a policy c recompiles, or
// has a target a policy was attached to (add: those policies).
func recompiles(c *live.Changes, s *session, res *registry.Resolved) (add []string, ok bool) {
	for _, n := range res.Named {
		if c.Recompile[n] {
			ok = true
			break
		}
	}
	for _, a := range c.Attached {
		if !slices.Contains(res.Named, a.Policy) && s.dependsOn(a.Target) {
			add, ok = append(add, a.Policy), true
		}
	}
	return add, ok
}

// parallel calls fn for every item, on at most n goroutines.
func parallel[T any](n int, items []T, fn func(T)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(n, len(items)) {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(len(items)); i = next.Add(1) - 1 {
				fn(items[i])
			}
		})
	}
	wg.Wait()
}

// recompile re-binds a session to new documents, its subject unchanged.
func (h *hook) recompile(rc *registry.Recompiler, s *session, add []string) {
	res, err := rc.Recompile(s.res.Load(), add)
	if err != nil {
		h.b.log.Warn("broker: rebind session", "client", s.cl.ID, "err", err)
		return
	}
	h.bindTo(s, res)
	h.b.metrics.rebind("recompiled")
	h.rebound(s)
}

// refresh re-authorizes a live session against the current registry and
// policies.
func (h *hook) refresh(ctx context.Context, s *session) {
	if s.anonymous {
		return // bound to the fixed AnonymousPolicy, nothing in the registry
	}
	if err := h.b.cfg.Authn.Recheck(ctx, s.id); err != nil {
		if errors.Is(err, authn.ErrNotAuthorized) {
			h.kick(s, packets.ErrNotAuthorized, err.Error())
		} else {
			h.b.log.Warn("broker: recheck session", "client", s.cl.ID, "err", err)
		}
		return
	}
	if err := h.bind(ctx, s); err != nil {
		h.b.log.Warn("broker: rebind session", "client", s.cl.ID, "err", err)
		return
	}
	h.b.metrics.rebind("refreshed")
	h.rebound(s)
}

// rebound ends a session its new binding no longer lets connect and drops
// the subscriptions it forbids. The will is checked against the new
// binding when it is sent (OnWill).
func (h *hook) rebound(s *session) {
	if !s.bound.Load().Allowed(policy.ActionConnect, s.clientID) {
		h.kick(s, packets.ErrNotAuthorized, "iot:Connect no longer allowed")
		return
	}
	h.recheckSubscriptions(s)
}
