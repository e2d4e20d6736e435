package httpapi

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/events"
	"github.com/gatehouse-iot/gatehouse/internal/ratelimit"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// Sessions authenticates a request by the web console's session cookie.
// An empty username with a nil error means the request carries no valid
// session (no cookie, or an unknown, expired or idle one); an error means
// the check itself failed. csrf is the token the session's changes must
// carry in X-CSRF-Token.
type Sessions interface {
	Authenticate(r *http.Request) (username string, roles []string, csrf string, err error)
}

// ownerRead is the requirement of the reads a user (role "user") may make
// for the things they have a relationship with; operators and admins read
// everything.
const ownerRead = "owner-read"

// principal is who the request authenticated as.
type principal struct {
	username string
	roles    []string
	// scoped: a user who sees only the things they have a relationship
	// with.
	scoped bool
}

type principalKey struct{}

func principalFrom(ctx context.Context) principal {
	p, _ := ctx.Value(principalKey{}).(principal)
	return p
}

// CSRFHeader carries a cookie-authenticated request's CSRF token.
const CSRFHeader = "X-CSRF-Token"

// safeMethod reports whether a method only reads.
func safeMethod(m string) bool { return m == http.MethodGet || m == http.MethodHead }

// CSRFMatches compares the request's X-CSRF-Token with want in constant
// time. An empty want never matches.
func CSRFMatches(r *http.Request, want string) bool {
	got := r.Header.Get(CSRFHeader)
	return want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// identify checks the bearer API token or, without an Authorization
// header, the console session cookie (whose changes need X-CSRF-Token),
// and returns who the request is and the actor for the event log. A token
// bound to a user acts only while that user exists and is enabled.
func (a *API) identify(r *http.Request) (principal, string, error) {
	if a.authFailures == nil {
		return a.identifyOnce(r)
	}
	key := ratelimit.AddrKey(r.RemoteAddr)
	if ok, wait := a.authFailures.Check(key); !ok {
		return principal{}, "", &retryLater{wait: wait}
	}
	p, actor, err := a.identifyOnce(r)
	if errors.Is(err, errUnauthenticated) || errors.Is(err, ErrNoSession) {
		a.authFailures.Charge(key)
	}
	return p, actor, err
}

// retryLater is ErrRateLimited with the time until the client may try
// again (the Retry-After header).
type retryLater struct{ wait time.Duration }

func (e *retryLater) Error() string             { return ErrRateLimited.Error() }
func (e *retryLater) Is(target error) bool      { return target == ErrRateLimited }
func (e *retryLater) RetryAfter() time.Duration { return e.wait }

// identifyOnce is identify without the failure limit.
func (a *API) identifyOnce(r *http.Request) (principal, string, error) {
	if h := r.Header.Get("Authorization"); h != "" || a.sessions == nil {
		scheme, secret, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || secret == "" {
			return principal{}, "", errUnauthenticated
		}
		tok, err := a.reg.AuthenticateAPIToken(r.Context(), strings.TrimSpace(secret))
		if err != nil {
			if errors.Is(err, registry.ErrBadToken) {
				return principal{}, "", errUnauthenticated
			}
			return principal{}, "", err
		}
		if tok.Username == "" {
			return principal{roles: tok.Roles}, "token:" + tok.ID, nil
		}
		u, err := a.reg.User(r.Context(), tok.Username)
		if errors.Is(err, store.ErrNotFound) || (err == nil && u.Disabled) {
			return principal{}, "", errUnauthenticated
		}
		if err != nil {
			return principal{}, "", err
		}
		return principal{username: tok.Username, roles: tok.Roles}, "user:" + tok.Username, nil
	}
	username, roles, csrf, err := a.sessions.Authenticate(r)
	if err != nil {
		return principal{}, "", err
	}
	if username == "" {
		if r.Header.Get("Cookie") != "" {
			return principal{}, "", ErrNoSession
		}
		return principal{}, "", errUnauthenticated
	}
	if !safeMethod(r.Method) && !CSRFMatches(r, csrf) {
		return principal{}, "", ErrCSRF
	}
	return principal{username: username, roles: roles}, "user:" + username, nil
}

// authenticate identifies the caller, checks role and returns a context
// naming the actor for the event log.
func (a *API) authenticate(r *http.Request, role string) (context.Context, error) {
	p, actor, err := a.identify(r)
	if err != nil {
		return nil, err
	}
	switch {
	case slices.Contains(p.roles, registry.RoleAdmin), slices.Contains(p.roles, role):
	case role == ownerRead && slices.Contains(p.roles, registry.RoleOperator):
	case role == ownerRead && slices.Contains(p.roles, registry.RoleUser):
		p.scoped = true
	default:
		return nil, errForbidden
	}
	ctx := events.WithActor(r.Context(), actor)
	return context.WithValue(ctx, principalKey{}, p), nil
}

// ownedThings returns the names of the things a scoped user has any
// relationship with.
func (a *API) ownedThings(ctx context.Context, username string) (map[string]bool, error) {
	owned := map[string]bool{}
	if username == "" {
		return owned, nil
	}
	rels, err := a.reg.Relationships(ctx, store.RelationshipFilter{SubjectKind: store.KindUser, Subject: username, ObjectKind: store.KindThing})
	if err != nil {
		return nil, err
	}
	for _, rel := range rels {
		owned[rel.Object] = true
	}
	return owned, nil
}

// errNotYours hides a thing from a user without a relationship to it: the
// same answer as for a thing that does not exist.
func errNotYours(name string) error {
	return fmt.Errorf("store: thing %q: %w", name, store.ErrNotFound)
}
