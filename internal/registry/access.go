package registry

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/events"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// Errors of access request decisions.
var (
	// ErrNotAllowed means the caller may not act on the request.
	ErrNotAllowed = errors.New("registry: not allowed")
	// ErrNotPending means the request was already decided, cancelled or
	// expired.
	ErrNotPending = errors.New("registry: access request is not pending")
)

// Caller is who acts on access requests: the username and roles of the API
// token (or session) making the call.
type Caller struct {
	Username string
	Roles    []string
}

// privileged reports whether c is an administrator or operator, who may
// decide any request and see every request.
func (c Caller) privileged() bool {
	return slices.Contains(c.Roles, RoleAdmin) || slices.Contains(c.Roles, RoleOperator)
}

// MaxReason bounds the reason and decision note of an access request.
const MaxReason = 1024

// NewAccessRequest is what RequestAccess needs.
type NewAccessRequest struct {
	Thing    string `json:"thing"`
	Relation string `json:"relation"`
	Reason   string `json:"reason"`
	// Requester is the user asking; only administrators may name someone
	// other than themselves.
	Requester string `json:"requester,omitempty"`
}

// Decision is an approval or denial.
type Decision struct {
	Note string `json:"note,omitempty"`
	// ExpiresAt ends an approved grant; zero for never. TTL is the same
	// as a duration from now; give at most one.
	ExpiresAt time.Time `json:"expiresAt,omitzero"`
	TTL       string    `json:"ttl,omitempty"`
}

// changeEvents runs fn in a transaction that records every event fn
// returns, then notifies readers and invalidates the policy cache.
func (s *Service) changeEvents(ctx context.Context, fn func(tx *store.Tx) ([]pendingEvent, error)) error {
	evs, err := s.events.ChangeAll(ctx, func(tx *store.Tx) ([]events.Pending, error) {
		pend, err := fn(tx)
		if err != nil {
			return nil, err
		}
		out := make([]events.Pending, len(pend))
		for i, p := range pend {
			out[i] = events.Pending{Type: p.typ, Subject: p.subject, Details: p.details}
		}
		return out, nil
	})
	if err != nil || len(evs) == 0 {
		return err
	}
	s.InvalidatePolicies()
	for _, ev := range evs {
		s.log.InfoContext(ctx, "registry change", "event", ev.Type, "subject", ev.Subject, "actor", ev.Actor)
	}
	return nil
}

type pendingEvent struct {
	typ, subject string
	details      any
}

// newAccessID returns an id that sorts by creation time: 13 hex digits of
// UNIX microseconds and 8 random bytes.
func (s *Service) newAccessID(now time.Time) (string, error) {
	b := make([]byte, 8)
	if _, err := io.ReadFull(s.rand, b); err != nil {
		return "", fmt.Errorf("registry: id: %w", err)
	}
	return fmt.Sprintf("%013x", now.UnixMicro()) + hex.EncodeToString(b), nil
}

func accessSubject(id string) string { return "access_request/" + id }

func accessDetails(a *store.AccessRequest) map[string]any {
	d := map[string]any{"requester": a.Requester, "thing": a.Thing, "relation": a.Relation, "state": a.State}
	if a.Reason != "" {
		d["reason"] = a.Reason
	}
	if a.DecisionNote != "" {
		d["note"] = a.DecisionNote
	}
	if !a.GrantExpiresAt.IsZero() {
		d["grantExpiresAt"] = a.GrantExpiresAt
	}
	return d
}

// RequestAccess records caller's request for a relation to a thing.
func (s *Service) RequestAccess(ctx context.Context, caller Caller, in NewAccessRequest) (*store.AccessRequest, error) {
	var p problems
	requester := caller.Username
	if in.Requester != "" && in.Requester != caller.Username {
		if !slices.Contains(caller.Roles, RoleAdmin) {
			return nil, fmt.Errorf("only administrators may request access for another user: %w", ErrNotAllowed)
		}
		requester = in.Requester
	}
	if requester == "" {
		p.add("requester", "the API token names no user: use a token bound to a username or give requester")
	}
	checkName(&p, "thing", in.Thing)
	switch in.Relation {
	case RelOwner, RelOperator, RelViewer:
	default:
		p.add("relation", "%q is not owner, operator or viewer", truncate(in.Relation))
	}
	if in.Reason == "" || len(in.Reason) > MaxReason {
		p.add("reason", "must be 1 to %d bytes", MaxReason)
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	now := s.now()
	id, err := s.newAccessID(now)
	if err != nil {
		return nil, err
	}
	a := &store.AccessRequest{ID: id, Requester: requester, Thing: in.Thing, Relation: in.Relation, Reason: in.Reason,
		State: store.AccessPending, CreatedAt: now, UpdatedAt: now}
	err = s.changeEvents(ctx, func(tx *store.Tx) ([]pendingEvent, error) {
		if err := principalExists(ctx, tx, &p, "requester", store.KindUser, requester); err != nil {
			return nil, err
		}
		if err := principalExists(ctx, tx, &p, "thing", store.KindThing, in.Thing); err != nil {
			return nil, err
		}
		if err := p.err(); err != nil {
			return nil, err
		}
		held, err := tx.ListRelationships(ctx, store.RelationshipFilter{SubjectKind: store.KindUser, Subject: requester, Relation: in.Relation, ObjectKind: store.KindThing, Object: in.Thing, At: now})
		if err != nil {
			return nil, err
		}
		if len(held) > 0 && held[0].ExpiresAt.IsZero() {
			p.add("relation", "%s is already %s of %s", requester, in.Relation, in.Thing)
			return nil, p.err()
		}
		open, err := tx.ListAccessRequests(ctx, store.AccessRequestFilter{Requester: requester, Thing: in.Thing, State: store.AccessPending, Limit: 1000})
		if err != nil {
			return nil, err
		}
		for _, o := range open {
			if o.Relation == in.Relation {
				return nil, fmt.Errorf("access request %s for the same relation is pending: %w", o.ID, store.ErrExists)
			}
		}
		if err := tx.CreateAccessRequest(ctx, a); err != nil {
			return nil, err
		}
		return []pendingEvent{{"access_request.created", accessSubject(id), accessDetails(a)}}, nil
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// mayDecide reports whether caller may approve or deny a request about
// thing: administrators, operators and the thing's owners may.
func mayDecide(ctx context.Context, tx *store.Tx, caller Caller, thing string, now time.Time) (bool, error) {
	if caller.privileged() {
		return true, nil
	}
	if caller.Username == "" {
		return false, nil
	}
	owners, err := tx.ListRelationships(ctx, store.RelationshipFilter{SubjectKind: store.KindUser, Subject: caller.Username, Relation: RelOwner, ObjectKind: store.KindThing, Object: thing, At: now})
	return len(owners) > 0, err
}

// AccessRequest returns a request the caller may see: their own, one about
// a thing they own, or any for administrators and operators. Others get
// store.ErrNotFound, so ids of other people's requests are not confirmed.
func (s *Service) AccessRequest(ctx context.Context, caller Caller, id string) (*store.AccessRequest, error) {
	a, err := s.store.GetAccessRequest(ctx, id)
	if err != nil {
		return nil, err
	}
	if caller.privileged() || a.Requester == caller.Username {
		return a, nil
	}
	var ok bool
	err = s.store.InTx(ctx, func(tx *store.Tx) error {
		ok, err = mayDecide(ctx, tx, caller, a.Thing, s.now())
		return err
	})
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("access request %q: %w", id, store.ErrNotFound)
	}
	return a, nil
}

// AccessRequests lists requests; callers other than administrators and
// operators see only their own and those about things they own.
func (s *Service) AccessRequests(ctx context.Context, caller Caller, f store.AccessRequestFilter) ([]store.AccessRequest, error) {
	switch f.State {
	case "", store.AccessPending, store.AccessApproved, store.AccessDenied, store.AccessCancelled, store.AccessExpired:
	default:
		var p problems
		p.add("state", "%q is not pending, approved, denied, cancelled or expired", truncate(f.State))
		return nil, p.err()
	}
	if !caller.privileged() {
		if caller.Username == "" {
			return []store.AccessRequest{}, nil
		}
		f.VisibleTo, f.At = caller.Username, s.now()
	}
	f.CreatedBefore, f.GrantEndedBy = time.Time{}, time.Time{}
	return s.store.ListAccessRequests(ctx, f)
}

// decide moves a pending request to state on behalf of caller.
func (s *Service) decide(ctx context.Context, caller Caller, id string, ifVersion int64, state string, d Decision) (*store.AccessRequest, error) {
	var p problems
	if len(d.Note) > MaxReason {
		p.add("note", "at most %d bytes", MaxReason)
	}
	now := s.now()
	expires := d.ExpiresAt
	if d.TTL != "" {
		ttl, err := time.ParseDuration(d.TTL)
		switch {
		case err != nil:
			p.add("ttl", "%q is not a duration like 72h", truncate(d.TTL))
		case ttl <= 0:
			p.add("ttl", "must be positive")
		case !expires.IsZero():
			p.add("ttl", "give ttl or expiresAt, not both")
		default:
			expires = now.Add(ttl)
		}
	}
	if state != store.AccessApproved && !expires.IsZero() {
		p.add("expiresAt", "only an approval takes an expiry")
	}
	if !expires.IsZero() && !expires.After(now) {
		p.add("expiresAt", "%s is not in the future", expires.Format(time.RFC3339))
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	expires = expires.UTC().Truncate(time.Microsecond)
	var out *store.AccessRequest
	err := s.changeEvents(ctx, func(tx *store.Tx) ([]pendingEvent, error) {
		a, err := tx.GetAccessRequest(ctx, id)
		if err != nil {
			return nil, err
		}
		if state == store.AccessCancelled {
			if a.Requester != caller.Username && !slices.Contains(caller.Roles, RoleAdmin) {
				// Only the requester (or an administrator) cancels; others
				// who cannot see the request do not learn it exists.
				ok, err := mayDecide(ctx, tx, caller, a.Thing, now)
				if err != nil {
					return nil, err
				}
				if !ok {
					return nil, fmt.Errorf("access request %q: %w", id, store.ErrNotFound)
				}
				return nil, fmt.Errorf("only %s may cancel their request: %w", a.Requester, ErrNotAllowed)
			}
		} else {
			ok, err := mayDecide(ctx, tx, caller, a.Thing, now)
			if err != nil {
				return nil, err
			}
			if !ok {
				if a.Requester == caller.Username {
					return nil, fmt.Errorf("an owner of %s, an operator or an administrator decides this request: %w", a.Thing, ErrNotAllowed)
				}
				return nil, fmt.Errorf("access request %q: %w", id, store.ErrNotFound)
			}
			if a.Requester == caller.Username && !caller.privileged() {
				return nil, fmt.Errorf("a requester cannot decide their own request: %w", ErrNotAllowed)
			}
		}
		if err := checkVersion(ifVersion, a.Version); err != nil {
			return nil, err
		}
		if a.State != store.AccessPending {
			return nil, fmt.Errorf("access request %s is %s: %w", id, a.State, ErrNotPending)
		}
		actor := events.ActorFrom(ctx)
		a.State, a.DecidedBy, a.DecisionNote, a.DecidedAt, a.UpdatedAt = state, actor, d.Note, now, now
		a.GrantExpiresAt = expires
		var evs []pendingEvent
		if state == store.AccessApproved {
			if _, err := tx.GetThing(ctx, a.Thing); err != nil {
				return nil, err
			}
			if _, err := tx.GetUser(ctx, a.Requester); err != nil {
				return nil, err
			}
			rel, err := tx.GrantRelationship(ctx, &store.Relationship{SubjectKind: store.KindUser, Subject: a.Requester, Relation: a.Relation,
				ObjectKind: store.KindThing, Object: a.Thing, CreatedAt: now, ExpiresAt: expires})
			if err != nil {
				return nil, err
			}
			a.GrantExpiresAt = rel.ExpiresAt
			evs = append(evs, pendingEvent{"relationship.added", "thing/" + a.Thing, rel})
		}
		if err := tx.UpdateAccessRequest(ctx, a); err != nil {
			return nil, err
		}
		out = a
		return append([]pendingEvent{{"access_request." + state, accessSubject(id), accessDetails(a)}}, evs...), nil
	})
	return out, err
}

// ApproveAccessRequest grants the requested relation, until d's expiry if
// it has one.
func (s *Service) ApproveAccessRequest(ctx context.Context, caller Caller, id string, ifVersion int64, d Decision) (*store.AccessRequest, error) {
	return s.decide(ctx, caller, id, ifVersion, store.AccessApproved, d)
}

// DenyAccessRequest refuses a request.
func (s *Service) DenyAccessRequest(ctx context.Context, caller Caller, id string, ifVersion int64, d Decision) (*store.AccessRequest, error) {
	return s.decide(ctx, caller, id, ifVersion, store.AccessDenied, d)
}

// CancelAccessRequest withdraws the caller's own pending request.
func (s *Service) CancelAccessRequest(ctx context.Context, caller Caller, id string, ifVersion int64) (*store.AccessRequest, error) {
	return s.decide(ctx, caller, id, ifVersion, store.AccessCancelled, Decision{})
}

// ExpiryReport counts what one ExpireAccess pass did.
type ExpiryReport struct {
	Relationships   int // expired relationships purged
	PendingRequests int // pending requests past their time
	Grants          int // approved requests whose grant ended
}

// ExpireAccess purges relationships whose expiry has passed (recording
// relationship.expired for each, which the broker's re-authorization
// follows), marks approved requests whose grant ended and pending requests
// older than pendingTTL (0: never) as expired (access_request.expired).
func (s *Service) ExpireAccess(ctx context.Context, pendingTTL time.Duration) (ExpiryReport, error) {
	var rep ExpiryReport
	now := s.now()
	ctx = events.WithActor(ctx, "system:expiry")
	const batch = 500
	for {
		var n int
		err := s.changeEvents(ctx, func(tx *store.Tx) ([]pendingEvent, error) {
			rels, err := tx.PurgeExpiredRelationships(ctx, now, batch)
			if err != nil {
				return nil, err
			}
			n = len(rels)
			evs := make([]pendingEvent, 0, len(rels))
			for _, r := range rels {
				evs = append(evs, pendingEvent{"relationship.expired", fmt.Sprintf("%s/%s", r.ObjectKind, r.Object), r})
			}
			return evs, nil
		})
		if err != nil {
			return rep, err
		}
		rep.Relationships += n
		if n < batch {
			break
		}
	}
	expire := func(f store.AccessRequestFilter, reason string, count *int) error {
		f.Limit = batch
		for {
			var n int
			err := s.changeEvents(ctx, func(tx *store.Tx) ([]pendingEvent, error) {
				reqs, err := tx.ListAccessRequests(ctx, f)
				if err != nil {
					return nil, err
				}
				n = len(reqs)
				var evs []pendingEvent
				for i := range reqs {
					a := &reqs[i]
					a.State, a.UpdatedAt = store.AccessExpired, now
					if err := tx.UpdateAccessRequest(ctx, a); err != nil {
						return nil, err
					}
					d := accessDetails(a)
					d["why"] = reason
					evs = append(evs, pendingEvent{"access_request.expired", accessSubject(a.ID), d})
				}
				return evs, nil
			})
			if err != nil {
				return err
			}
			*count += n
			if n < batch {
				return nil
			}
		}
	}
	if err := expire(store.AccessRequestFilter{State: store.AccessApproved, GrantEndedBy: now}, "grant ended", &rep.Grants); err != nil {
		return rep, err
	}
	if pendingTTL > 0 {
		if err := expire(store.AccessRequestFilter{State: store.AccessPending, CreatedBefore: now.Add(-pendingTTL)}, "not decided in time", &rep.PendingRequests); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// RunExpiry calls ExpireAccess every interval until ctx ends. Errors are
// logged, not returned: a database hiccup must not stop the server.
func (s *Service) RunExpiry(ctx context.Context, interval, pendingTTL time.Duration) error {
	if interval <= 0 {
		return nil
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		rep, err := s.ExpireAccess(ctx, pendingTTL)
		switch {
		case err != nil && ctx.Err() == nil:
			s.log.WarnContext(ctx, "access expiry", "err", err)
		case rep != ExpiryReport{}:
			s.log.InfoContext(ctx, "access expiry", slog.Int("relationships", rep.Relationships), slog.Int("pending", rep.PendingRequests), slog.Int("grants", rep.Grants))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
