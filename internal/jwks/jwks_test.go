package jwks_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-iot/gatehouse/internal/jwks"
	"github.com/gatehouse-iot/gatehouse/internal/testenv"
)

// issuer serves a key set it can change, fail, and count requests to.
type issuer struct {
	mu       sync.Mutex
	keys     []jose.JSONWebKey
	down     bool
	requests atomic.Int32
	srv      *httptest.Server
}

func newIssuer(t *testing.T, kids ...string) *issuer {
	is := &issuer{}
	is.set(t, kids...)
	is.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		is.requests.Add(1)
		is.mu.Lock()
		defer is.mu.Unlock()
		if is.down {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: is.keys})
	}))
	t.Cleanup(is.srv.Close)
	return is
}

func (is *issuer) set(t *testing.T, kids ...string) {
	var keys []jose.JSONWebKey
	for _, kid := range kids {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, jose.JSONWebKey{Key: k.Public(), KeyID: kid, Algorithm: "ES256", Use: "sig"})
	}
	// A private key and an encryption key are never served as signing keys.
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	keys = append(keys, jose.JSONWebKey{Key: priv, KeyID: "private"}, jose.JSONWebKey{Key: priv.Public(), KeyID: "enc", Use: "enc"})
	is.mu.Lock()
	is.keys = keys
	is.mu.Unlock()
}

func (is *issuer) setDown(down bool) {
	is.mu.Lock()
	is.down = down
	is.mu.Unlock()
}

func TestSet(t *testing.T) {
	is := newIssuer(t, "k1")
	clk := testenv.NewClock(time.Unix(1_800_000_000, 0))
	set := jwks.New(is.srv.URL, jwks.Options{TTL: 10 * time.Minute, MinRefetch: 30 * time.Second, MaxBackoff: 2 * time.Minute, Now: clk.Now})
	ctx := t.Context()
	has := func(kid string) bool {
		_, err := set.Key(ctx, kid)
		return err == nil
	}
	steps := []struct {
		name         string
		do           func()
		kid          string
		wantKey      bool
		wantRequests int32 // total so far
	}{
		{"first use fetches", nil, "k1", true, 1},
		{"cached", nil, "k1", true, 1},
		{"private keys are not signing keys (no refetch: just fetched)", nil, "private", false, 1},
		{"unknown kid again within MinRefetch: no request", nil, "nope", false, 1},
		{"encryption keys are not signing keys", func() { clk.Advance(31 * time.Second) }, "enc", false, 2},
		{"a new key is found by refetching", func() { is.set(t, "k1", "k2"); clk.Advance(31 * time.Second) }, "k2", true, 3},
		{"a withdrawn key still verifies within TTL", func() { is.set(t, "k2") }, "k1", true, 3},
		{"and is gone after TTL", func() { clk.Advance(10 * time.Minute) }, "k1", false, 4},
		{"issuer down: stale keys keep verifying", func() { is.setDown(true); clk.Advance(10 * time.Minute) }, "k2", true, 5},
		{"down: no request within the backoff", func() { clk.Advance(20 * time.Second) }, "zzz", false, 5},
		{"down: one attempt after MinRefetch", func() { clk.Advance(11 * time.Second) }, "zzz", false, 6},
		{"down: backoff doubles", func() { clk.Advance(31 * time.Second) }, "zzz", false, 6},
		{"down: after twice MinRefetch", func() { clk.Advance(30 * time.Second) }, "zzz", false, 7},
		{"up again: refetched after the backoff", func() { is.setDown(false); clk.Advance(2 * time.Minute) }, "k2", true, 8},
	}
	for _, st := range steps {
		if st.do != nil {
			st.do()
		}
		if got := has(st.kid); got != st.wantKey {
			t.Errorf("%s: key %q found = %v, want %v", st.name, st.kid, got, st.wantKey)
		}
		if got := is.requests.Load(); got != st.wantRequests {
			t.Errorf("%s: %d requests so far, want %d", st.name, got, st.wantRequests)
		}
	}
}

// TestSetUnreachable: with no keys ever fetched, the error says so, and a
// second call within the backoff does not wait for the issuer again.
func TestSetUnreachable(t *testing.T) {
	is := newIssuer(t, "k1")
	is.setDown(true)
	clk := testenv.NewClock(time.Unix(1_800_000_000, 0))
	set := jwks.New(is.srv.URL, jwks.Options{Now: clk.Now})
	for i := range 3 {
		_, err := set.Key(t.Context(), "k1")
		if err == nil || errors.Is(err, jwks.ErrUnknownKey) {
			t.Errorf("call %d: err = %v, want the fetch failure", i, err)
		}
	}
	if got := is.requests.Load(); got != 1 {
		t.Errorf("%d requests, want 1 (backoff)", got)
	}
}
