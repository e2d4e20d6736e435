package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// jwks caches the Gatehouse key set. A Lambda instance serves one request
// at a time, but the cache is safe for concurrent use anyway.
type jwks struct {
	url    string
	ttl    time.Duration
	client *http.Client
	now    func() time.Time

	mu      sync.Mutex
	keys    *jose.JSONWebKeySet
	fetched time.Time
	tried   time.Time
}

// minRefetch limits refetches for unknown key ids (a flood of tokens with
// made-up kids must not become a flood of JWKS requests).
const minRefetch = time.Minute

// key returns the key with id kid, fetching the set when it is stale or
// (at most once a minute) when kid is unknown.
func (j *jwks) key(ctx context.Context, kid string) (*jose.JSONWebKey, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	now := j.now()
	if j.keys == nil || now.Sub(j.fetched) > j.ttl {
		if err := j.fetch(ctx, now); err != nil && j.keys == nil {
			return nil, err
		}
	}
	if k := j.lookup(kid); k != nil {
		return k, nil
	}
	if now.Sub(j.tried) >= minRefetch {
		if err := j.fetch(ctx, now); err != nil {
			return nil, err
		}
		if k := j.lookup(kid); k != nil {
			return k, nil
		}
	}
	return nil, fmt.Errorf("unknown key id %q", truncate(kid))
}

func (j *jwks) lookup(kid string) *jose.JSONWebKey {
	if j.keys == nil {
		return nil
	}
	for i := range j.keys.Keys {
		k := &j.keys.Keys[i]
		if k.KeyID == kid && (k.Use == "" || k.Use == "sig") && k.IsPublic() {
			return k
		}
	}
	return nil
}

func (j *jwks) fetch(ctx context.Context, now time.Time) error {
	j.tried = now
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.url, nil)
	if err != nil {
		return fmt.Errorf("jwks request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := j.client.Do(req)
	if err != nil {
		return fmt.Errorf("fetch jwks: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetch jwks: status %d", resp.StatusCode)
	}
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&set); err != nil {
		return fmt.Errorf("decode jwks: %w", err)
	}
	j.keys, j.fetched = &set, now
	return nil
}
