package oauth

import (
	"strings"
	"sync"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// clientCacheTTL bounds how long a thing's credentials, state and type are
// reused without reading the store. Changes made through this process
// (registry or credential changes: their events) drop the entry at once;
// changes made on another replica are seen within the TTL. The cache is only
// used while Run is active, since Run applies those invalidations.
const clientCacheTTL = 2 * time.Second

// maxCachedClients bounds the cache; it is cleared when full.
const maxCachedClients = 100_000

type clientCache struct {
	mu sync.RWMutex
	m  map[string]cachedClient
}

type cachedClient struct {
	tc *store.ThingClient
	at time.Time
}

func newClientCache() *clientCache { return &clientCache{m: map[string]cachedClient{}} }

func (c *clientCache) get(name string, now time.Time) (*store.ThingClient, bool) {
	c.mu.RLock()
	e, ok := c.m[name]
	c.mu.RUnlock()
	if !ok || now.Sub(e.at) >= clientCacheTTL || now.Before(e.at) {
		return nil, false
	}
	return e.tc, true
}

func (c *clientCache) put(tc *store.ThingClient, now time.Time) {
	c.mu.Lock()
	if len(c.m) >= maxCachedClients {
		clear(c.m)
	}
	c.m[tc.Name] = cachedClient{tc: tc, at: now}
	c.mu.Unlock()
}

// invalidate drops what an event may have changed: one thing, or every
// thing when a thing type changed.
func (c *clientCache) invalidate(ev store.Event) {
	if strings.HasPrefix(ev.Type, "token.") {
		return // issuing or revoking a token changes no client
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case strings.HasPrefix(ev.Subject, "thing/"):
		delete(c.m, strings.TrimPrefix(ev.Subject, "thing/"))
	case strings.HasPrefix(ev.Subject, "thingtype/"), strings.HasPrefix(ev.Type, "thingtype."):
		clear(c.m)
	case strings.HasPrefix(ev.Type, "thing."):
		clear(c.m)
	}
}

func (c *clientCache) clear() {
	c.mu.Lock()
	clear(c.m)
	c.mu.Unlock()
}
