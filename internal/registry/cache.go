package registry

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/policy"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// cacheTTL bounds how long a resolved policy set is reused without an
// invalidation, in case an invalidation from another replica is missed.
const cacheTTL = 30 * time.Second

// maxCached bounds each of the cache's maps.
const maxCached = 10000

// policyCache keeps what resolving policies costs most: parsed documents
// and compiled sets (both by content, so they never go stale) and resolved
// sets per subject (dropped by Invalidate whenever the registry changes).
// A CONNECT storm of things of one type then parses and compiles once.
type policyCache struct {
	mu       sync.Mutex
	docs     map[[32]byte]*policy.Document
	sets     map[string]*policy.Set
	resolved map[string]cachedResolved
	things   map[string]cachedThing
}

type cachedThing struct {
	thing *store.Thing
	typ   *store.ThingType
	at    time.Time
}

type cachedResolved struct {
	res *Resolved
	at  time.Time
}

func newPolicyCache() *policyCache {
	return &policyCache{docs: map[[32]byte]*policy.Document{}, sets: map[string]*policy.Set{}, resolved: map[string]cachedResolved{}, things: map[string]cachedThing{}}
}

// InvalidatePolicies drops every resolved policy set. The registry calls it
// on its own changes; the broker calls it for changes it reads from the
// event log that other replicas made.
func (s *Service) InvalidatePolicies() {
	s.cache.mu.Lock()
	clear(s.cache.resolved)
	clear(s.cache.things)
	s.cache.mu.Unlock()
}

// ThingAndType returns a thing and its thing type (nil if it has none),
// from a cache that InvalidatePolicies empties: authentication reads them
// on every CONNECT.
func (s *Service) ThingAndType(ctx context.Context, name string) (*store.Thing, *store.ThingType, error) {
	now := s.now()
	s.cache.mu.Lock()
	e, ok := s.cache.things[name]
	s.cache.mu.Unlock()
	if ok && now.Sub(e.at) <= cacheTTL {
		return e.thing, e.typ, nil
	}
	th, err := s.store.GetThing(ctx, name)
	if err != nil {
		return nil, nil, err
	}
	var tt *store.ThingType
	if th.ThingType != "" {
		if tt, err = s.store.GetThingType(ctx, th.ThingType); err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, nil, err
		}
	}
	s.cache.mu.Lock()
	if len(s.cache.things) >= maxCached {
		clear(s.cache.things)
	}
	s.cache.things[name] = cachedThing{thing: th, typ: tt, at: now}
	s.cache.mu.Unlock()
	return th, tt, nil
}

func subjectKey(sub Subject, opts policy.Options) string {
	scopes := slices.Clone(sub.Scopes)
	slices.Sort(scopes)
	return strings.Join([]string{sub.ThingName, sub.CertificateFingerprint, strings.Join(scopes, " "), opts.Region, opts.Account, sub.UserName}, "\x00")
}

func (c *policyCache) getResolved(key string, now time.Time) *Resolved {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.resolved[key]
	if !ok || now.Sub(e.at) > cacheTTL {
		return nil
	}
	return e.res
}

func (c *policyCache) putResolved(key string, r *Resolved, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.resolved) >= maxCached {
		clear(c.resolved)
	}
	c.resolved[key] = cachedResolved{res: r, at: now}
}

// parse returns the parsed document for raw, parsing it once.
func (c *policyCache) parse(raw []byte) (*policy.Document, error) {
	sum := sha256.Sum256(raw)
	c.mu.Lock()
	d := c.docs[sum]
	c.mu.Unlock()
	if d != nil {
		return d, nil
	}
	d, err := policy.Parse(raw)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if len(c.docs) >= maxCached {
		clear(c.docs)
	}
	c.docs[sum] = d
	c.mu.Unlock()
	return d, nil
}

// compile returns the compiled set of named documents, compiling once per
// distinct combination.
func (c *policyCache) compile(opts policy.Options, named []policy.NamedDocument) (*policy.Set, error) {
	var b strings.Builder
	b.WriteString(opts.Region + "\x00" + opts.Account)
	for _, n := range named {
		// Documents come from c.docs, one pointer per content.
		fmt.Fprintf(&b, "\x00%s\x00%p", n.Name, n.Document)
	}
	key := b.String()
	c.mu.Lock()
	set := c.sets[key]
	c.mu.Unlock()
	if set != nil {
		return set, nil
	}
	set, err := opts.Compile(named...)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if len(c.sets) >= maxCached {
		clear(c.sets)
	}
	c.sets[key] = set
	c.mu.Unlock()
	return set, nil
}
