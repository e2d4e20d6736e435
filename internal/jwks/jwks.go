// Package jwks fetches and caches another server's JSON Web Key Set (RFC
// 7517) for verifying its JWTs: the broker's external issuers
// (internal/authn) and the AWS IoT custom authorizer Lambda
// (cmd/gatehouse-aws-authorizer) use it.
//
// It exists so that the two share one set of rules:
//
//   - The set is refetched once it is older than TTL, so keys the issuer
//     withdrew stop verifying within TTL.
//   - An unknown kid refetches at once, but at most once per MinRefetch: a
//     flood of tokens with made-up kids is not a flood of JWKS requests.
//   - A failed fetch keeps the keys from the last good one (stale keys keep
//     verifying while the issuer is down) and backs off: the next attempt
//     waits MinRefetch, then twice that, up to MaxBackoff. A caller never
//     pays a fetch timeout twice in a row while the issuer is down.
//
// Only signing keys are kept: public keys whose use is "sig" or unset.
package jwks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Options tune a Set; zero values take the defaults.
type Options struct {
	// TTL is how long a fetched set is used before it is refetched
	// (default 10 minutes).
	TTL time.Duration
	// MinRefetch is the least time between two fetches, and the first
	// backoff after a failure (default 30 s).
	MinRefetch time.Duration
	// MaxBackoff bounds the wait after repeated failures (default 5
	// minutes).
	MaxBackoff time.Duration
	// Timeout bounds one fetch (default 3 s).
	Timeout time.Duration
	// Client makes the requests (default http.DefaultClient).
	Client *http.Client
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// ErrUnknownKey is returned for a kid the (possibly refetched) set lacks.
var ErrUnknownKey = errors.New("jwks: unknown key id")

// maxSetBytes bounds a key set document.
const maxSetBytes = 1 << 20

// Set is one issuer's key set. It is safe for concurrent use; fetches are
// serialised.
type Set struct {
	url  string
	opts Options

	mu       sync.Mutex
	keys     []jose.JSONWebKey
	fetched  time.Time // of the last good fetch
	tried    time.Time // of the last attempt
	failures int       // consecutive failed attempts
	lastErr  error
}

// New returns the set published at url.
func New(url string, o Options) *Set {
	if o.TTL <= 0 {
		o.TTL = 10 * time.Minute
	}
	if o.MinRefetch <= 0 {
		o.MinRefetch = 30 * time.Second
	}
	if o.MaxBackoff < o.MinRefetch {
		o.MaxBackoff = max(5*time.Minute, o.MinRefetch)
	}
	if o.Timeout <= 0 {
		o.Timeout = 3 * time.Second
	}
	if o.Client == nil {
		o.Client = http.DefaultClient
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Set{url: url, opts: o}
}

// Key returns the signing key with id kid.
func (s *Set) Key(ctx context.Context, kid string) (*jose.JSONWebKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now()
	if s.fetched.IsZero() || now.Sub(s.fetched) >= s.opts.TTL {
		s.refresh(ctx, now) // on failure the last good keys stay
	}
	if k := s.lookup(kid); k != nil {
		return k, nil
	}
	if s.refresh(ctx, now) {
		if k := s.lookup(kid); k != nil {
			return k, nil
		}
	}
	if s.fetched.IsZero() && s.lastErr != nil {
		return nil, fmt.Errorf("jwks: no keys from %s: %w", s.url, s.lastErr)
	}
	return nil, fmt.Errorf("%w %q", ErrUnknownKey, truncate(kid))
}

// refresh fetches the set unless the last attempt was too recent (the
// backoff), and reports whether it fetched a new set.
func (s *Set) refresh(ctx context.Context, now time.Time) bool {
	if !s.tried.IsZero() && now.Sub(s.tried) < s.wait() {
		return false
	}
	s.tried = now
	keys, err := s.fetch(ctx)
	if err != nil {
		s.failures++
		s.lastErr = err
		return false
	}
	s.keys, s.fetched, s.failures, s.lastErr = keys, now, 0, nil
	return true
}

// wait is the least time between the last attempt and the next one.
func (s *Set) wait() time.Duration {
	d := s.opts.MinRefetch
	for i := 1; i < s.failures && d < s.opts.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, s.opts.MaxBackoff)
}

func (s *Set) lookup(kid string) *jose.JSONWebKey {
	for i := range s.keys {
		if s.keys[i].KeyID == kid {
			return &s.keys[i]
		}
	}
	return nil
}

func (s *Set) fetch(ctx context.Context) ([]jose.JSONWebKey, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, fmt.Errorf("jwks: request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.opts.Client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("jwks: fetch: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("jwks: fetch: status %d", resp.StatusCode)
	}
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxSetBytes)).Decode(&set); err != nil {
		return nil, fmt.Errorf("jwks: decode: %w", err)
	}
	keys := set.Keys[:0]
	for _, k := range set.Keys {
		if (k.Use == "" || k.Use == "sig") && k.IsPublic() && k.Valid() {
			keys = append(keys, k)
		}
	}
	return keys, nil
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
